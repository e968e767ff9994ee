"""analyze_exam: the whole analysis of an assembled exam; apply_manual_aif; partial-exam notes and
the exit status.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from qperf_viewer import __version__
from qperf_viewer.errors import CancelledError, InputError, ModelError
from qperf_viewer.exam import (
    CONDITIONS,
    PerfusionExam,
)
from qperf_viewer.pipeline.aggregate import (
    condition_heart_rate,
    condition_result,
    mpr_of,
    stress_response_flag,
)
from qperf_viewer.pipeline.aif import (
    AIF_MANUAL,
    AIF_SERIES_INDEX,
    condition_aif,
    manual_aif,
    manual_aif_series,
)
from qperf_viewer.pipeline.common import (
    AIF_NONE,
    AIF_POOL,
    FLAG_AIF_BLOOD_POOL,
    FLAG_NO_GD,
    MODELS,
    Progress,
    Segmenter,
    StageClock,
    check_cancel,
    default_workers,
    monotonic_progress,
    report_progress,
    run_in_processes,
    run_parallel,
)
from qperf_viewer.pipeline.edits import SECTOR_PREFIXES, apply_saved_edits, slice_position
from qperf_viewer.pipeline.segmenter import OnnxSegmenter
from qperf_viewer.pipeline.slices import (
    condition_delays,
    consistent_insertion_points,
    failed_slice,
    finish_slice,
    motion_correct,
    nearest_position,
    prepare_slice,
    quantify_slice,
    slice_curves,
    slice_reference_delay,
)
from qperf_viewer.results import (
    AnalysisResult,
    ConditionResult,
    QuantOptions,
    Segmentation,
    SliceResult,
)

if TYPE_CHECKING:
    from qperf_viewer.quant.motion import MotionResult

log = logging.getLogger(__name__)


def _map_delays(
    slices: list[SliceResult],
    aif,
    key: str,
    clock: StageClock,
    hct: float,
    cancel: Any,
    workers: int | None = 1,
) -> list[float | None]:
    """Per slice the map's bolus-arrival delay (s): each slice's reference delay, drawn
    towards the condition's median (:func:`~qperf_viewer.pipeline.slices.condition_delays`);
    None where a slice has no map (it then estimates its own)."""
    if aif is None:
        return [None] * len(slices)
    return condition_delays(
        run_parallel(lambda sr: _slice_delay(sr, aif, key, clock, hct, cancel), slices, workers)
    )


def _slice_delay(sr: SliceResult, aif, key: str, clock: StageClock, hct: float, cancel: Any):
    check_cancel(cancel)
    try:
        return slice_reference_delay(sr, aif, key, clock, hct)
    except CancelledError:
        raise
    except Exception:  # noqa: BLE001 - the slice's own fit reports the problem
        log.warning("slice %d: reference delay failed", sr.slice_index, exc_info=True)
        return None


#: What stage 4 (:func:`_quantify`) changes on a SliceResult: a forked worker returns these.
MAP_FIELDS = ("mbf", "mbf_valid", "maps", "flags", "map_delay_s")


def _map_fields(sr: SliceResult) -> dict[str, Any]:
    return {name: getattr(sr, name) for name in MAP_FIELDS}


def _quantify(sr: SliceResult, aif, key: str, clock: StageClock, hct: float, delay) -> None:
    """MBF map of one slice; a failure becomes a flag on the slice."""
    if sr.gd is None and sr.segmentation is not None:
        sr.flags.append(FLAG_NO_GD)
    if aif is None or sr.gd is None:
        return
    try:
        quantify_slice(sr, aif, key, clock, hct, delay)
    except CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - one bad slice never sinks the rest
        log.warning("%s slice %d: MBF failed", sr.condition, sr.slice_index, exc_info=True)
        sr.flags.append(f"MBF failed: {_why(exc)}")


def _moco_one(task, clock: StageClock) -> tuple[MotionResult | None, str | None]:
    """Motion correction of one slice (run in a forked worker): (result, None), or (None,
    why) when it failed; one bad slice never sinks the rest."""
    name, _, ss = task
    try:
        return motion_correct(ss, clock), None
    except Exception as exc:  # noqa: BLE001 - reported on the slice
        log.warning("%s slice %d: motion correction failed", name, ss.slice_index, exc_info=True)
        return None, _why(exc)


# ------------------------------------------------------------------------- analyze_exam
def _why(exc: BaseException) -> str:
    msg = exc.user_message() if hasattr(exc, "user_message") else str(exc)
    return msg if isinstance(exc, InputError) else f"{type(exc).__name__}: {msg}"


def _model_key(model: str) -> str:
    key = str(model).strip().lower()
    if key not in MODELS:
        raise InputError(f"unknown kinetic model {model!r}; choose one of: {', '.join(MODELS)}.")
    return key


def _versions(model: str, seg_version: str) -> dict[str, str]:
    import numpy
    import scipy

    return {
        "qperf-viewer": __version__,
        "segmentation model": seg_version,
        "kinetic model": {
            "btex": "BTEX (distributed blood-tissue exchange, reported)",
            "fermi": "Fermi-constrained deconvolution (reported)",
        }[model],
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
    }


def default_segmenter() -> Segmenter:
    """The shipped ONNX model, loaded (ModelError when missing or damaged)."""
    seg = OnnxSegmenter()
    seg.load()
    return seg


def analyze_exam(
    exam: PerfusionExam,
    *,
    model: str = "btex",
    segmenter: Segmenter | None = None,
    progress: Progress | None = None,
    cancel: Any = None,
    edits: str | Path | Mapping[tuple[str, int], Segmentation | None] | None = None,
    quantify: bool = True,
    options: QuantOptions | None = None,
    workers: int | None = None,
) -> AnalysisResult:
    """Analyse an assembled exam: per slice motion correction, segmentation (``segmenter``,
    default the shipped ONNX model), Gd conversion and AHA sectors; per condition the AIF
    (dual-sequence series, else the LV blood pool with a flag); per slice pixelwise MBF over the
    myocardium dilated by 5 mm (``model`` 'btex' or 'fermi'); segment, endo/epi and global
    values, semi-quantitative indices, heart rate; MPR.

    edits: saved segmentations to apply (an ``edits/`` folder of
    :mod:`qperf_viewer.seg.edits` files, or {(condition, slice_index): Segmentation or None
    (slice rejected)}). quantify: False stops after sectors (the ``segment`` command).
    options: r1, default TS, hematocrit and already-Gd (:class:`QuantOptions`, recorded).
    workers: slices analysed at once on threads (default
    :func:`~qperf_viewer.pipeline.common.default_workers`; 1 = one after the other); the
    results do not depend on it.
    Raises ModelError (model missing), CancelledError; a failing slice is flagged instead.
    """
    key = _model_key(model)
    options = options or QuantOptions()
    clock = StageClock()
    progress = monotonic_progress(progress)
    t_start = time.perf_counter()
    if not exam.conditions:
        raise InputError("the exam holds no stress or rest perfusion slices.")
    report_progress(progress, 0.0, "loading the segmentation model")
    if segmenter is None:
        with clock("model_load"):
            segmenter = default_segmenter()
    seg_version = str(getattr(segmenter, "version", "") or "injected segmenter")
    names = [n for n in CONDITIONS if n in exam.conditions]
    tasks = [(n, k, ss) for n in names for k, ss in enumerate(exam.conditions[n].slices)]
    steps = max(1, 2 * len(tasks) if quantify else len(tasks))
    done = [0]
    lock = threading.Lock()

    def step(message: str) -> None:
        with lock:
            done[0] += 1
            report_progress(progress, done[0] / steps, message)

    def prepare(task, motion: tuple[MotionResult | None, str | None]) -> SliceResult:
        name, k, ss = task
        cd = exam.conditions[name]
        check_cancel(cancel)
        mr, why = motion
        try:
            if mr is None:  # motion correction failed in its worker (logged there)
                sr = failed_slice(name, ss, why or "motion correction failed")
            else:
                pos = nearest_position([s.position for s in cd.slices], k)
                sr = prepare_slice(
                    name, ss, pos, exam, segmenter, clock, gd=quantify, options=options,
                    sectors=False, motion=mr,
                )  # fmt: skip
        except (CancelledError, ModelError):
            raise
        except Exception as exc:  # noqa: BLE001 - one bad slice never sinks the rest
            log.warning("%s slice %d failed", name, ss.slice_index, exc_info=True)
            sr = failed_slice(name, ss, _why(exc))
        n = len(cd.slices)
        step(f"{name} slice {k + 1}/{n}: motion correction, segmentation, Gd done")
        return sr

    # stage 1: every slice of both conditions: motion correction (many small numpy calls that
    # hold the GIL: forked worker processes), then here, as each slice comes back,
    # segmentation (onnxruntime, which runs without the GIL), Gd conversion on threads
    report_progress(progress, 0.0, "motion correction, segmentation, Gd conversion")
    from concurrent.futures import ThreadPoolExecutor

    n_threads = default_workers() if workers is None else max(1, int(workers))
    with ThreadPoolExecutor(max_workers=n_threads, thread_name_prefix="qperf") as pool:
        pending: dict[int, Any] = {}

        def moco_done(i: int, motion) -> None:
            pending[i] = pool.submit(prepare, tasks[i], motion)

        run_in_processes(_moco_one, tasks, workers, clock, cancel=cancel, done=moco_done)
        prepared = [pending[i].result() for i in range(len(tasks))]
    by_cond: dict[str, list[SliceResult]] = {n: [] for n in names}
    for (name, _, _), sr in zip(tasks, prepared, strict=True):
        by_cond[name].append(sr)
    # the RV insertion points of a condition's slices agree; then the AHA sectors
    for name in names:
        with clock("sectors"):
            try:
                consistent_insertion_points(by_cond[name])
            except Exception:  # noqa: BLE001 - a check; the detected points stay
                log.warning("%s: RV insertion consistency check failed", name, exc_info=True)

    def finish(task) -> None:
        name, k, _ = task
        sr = by_cond[name][k]
        if sr.segmentation is None:
            return
        try:
            pos = nearest_position([s.position for s in exam.conditions[name].slices], k)
            finish_slice(sr, pos, clock)
        except Exception as exc:  # noqa: BLE001 - one bad slice never sinks the rest
            log.warning("%s slice %d: sectors failed", name, sr.slice_index, exc_info=True)
            sr.flags.append(f"AHA segments undefined: {_why(exc)}")

    run_parallel(finish, tasks, workers)
    aifs: dict[str, tuple] = {n: (None, AIF_NONE, []) for n in names}
    if quantify:
        # stage 2: the AIF of each condition
        def find_aif(name: str):
            check_cancel(cancel)
            with clock("aif"):
                return condition_aif(
                    exam.conditions[name], by_cond[name], exam.field_strength_t, options
                )

        report_progress(progress, done[0] / steps, "arterial input functions")
        aifs = dict(zip(names, run_parallel(find_aif, names, workers), strict=True))
        # stage 3: each condition's map delay from its slices' reference delays
        report_progress(progress, done[0] / steps, "bolus-arrival delays")
        hct = options.hematocrit
        flat = [(n, sr) for n in names for sr in by_cond[n]]
        # stages 3 and 4 are kinetic fits (many small numpy calls that hold the GIL): forked
        # worker processes; the slices come back from them as values (see _map_fields)

        def delay_one(item, clk: StageClock):
            name, sr = item
            aif = aifs[name][0]
            return None if aif is None else _slice_delay(sr, aif, key, clk, hct, None)

        raw = run_in_processes(delay_one, flat, workers, clock, cancel=cancel)
        delay_of: dict[int, float | None] = {}
        for n in names:
            own = [d for (c, _), d in zip(flat, raw, strict=True) if c == n]
            for sr, d in zip(by_cond[n], condition_delays(own), strict=True):
                delay_of[id(sr)] = d

        # stage 4: pixelwise MBF maps
        def quantify_one(item, clk: StageClock, delay: float | None) -> dict[str, Any]:
            name, sr = item
            _quantify(sr, aifs[name][0], key, clk, hct, delay)
            return _map_fields(sr)

        def map_done(i: int, _fields) -> None:
            name, sr = flat[i]
            n = len(by_cond[name])
            step(f"{name} slice {by_cond[name].index(sr) + 1}/{n}: MBF map done")

        fields = run_in_processes(
            quantify_one, flat, workers, clock, cancel=cancel, done=map_done,
            args=[(delay_of[id(sr)],) for _, sr in flat],
        )  # fmt: skip
        for (_, sr), f in zip(flat, fields, strict=True):
            for name, value in f.items():
                setattr(sr, name, value)
    conditions: dict[str, ConditionResult] = {}
    for name in names:
        cd = exam.conditions[name]
        slices = by_cond[name]
        aif, source, aflags = aifs[name]
        flags = list(cd.flags) + list(aflags)
        if quantify and aif is None:
            flags.append("MBF not computed: no usable AIF")
        with clock("aggregate"):
            for sr in slices:
                sr.curves = slice_curves(sr)
            failed = [sr for sr in slices if sr.segmentation is None]
            for sr in failed:
                flags.append(f"slice {sr.slice_index + 1} ({sr.position or 'extra'}) not analysed")
            conditions[name] = condition_result(
                name, slices, aif, source, condition_heart_rate(cd), flags
            )
    with clock("aggregate"):
        st, re_ = conditions.get("stress"), conditions.get("rest")
        if st is not None and re_ is not None:
            f = stress_response_flag(st.heart_rate_bpm, re_.heart_rate_bpm)
            if f:
                st.flags.append(f)
            _alignment_flags(st, re_)
        mpr_g, mpr_s = mpr_of(st, re_)
    result = AnalysisResult(
        exam=exam,
        conditions=conditions,
        model=MODELS[key] if quantify else "none",
        mpr_global=mpr_g,
        mpr_segments=mpr_s,
        flags=[],
        versions=_versions(key, seg_version),
        options=options,
    )
    if edits is not None:
        with clock("edits"):
            result = apply_saved_edits(result, edits)
    result.timings_s = {k: round(v, 4) for k, v in clock.t.items()}
    result.timings_s["analysis"] = round(time.perf_counter() - t_start, 4)
    report_progress(progress, 1.0, "analysis done")
    return result


def _alignment_flags(st: ConditionResult, re_: ConditionResult) -> None:
    """Flag (on the slices of both conditions) each position whose stress and rest planes are
    more than 5 mm apart at the rest LV centre: MPR there compares different myocardium."""
    from qperf_viewer.sectors import check_stress_rest_alignment

    def named(cr):
        return {sr.position: sr for sr in cr.slices if sr.position}

    s_by, r_by = named(st), named(re_)
    pts = {
        p: sr.segmentation.lv_centre
        for p, sr in r_by.items()
        if sr.segmentation is not None and sr.segmentation.lv_centre is not None
    }
    _, flags = check_stress_rest_alignment(
        {p: sr.series.geometry for p, sr in s_by.items()},
        {p: sr.series.geometry for p, sr in r_by.items()},
        points_rc=pts,
    )
    for f in flags:
        pos = f.split(" ", 1)[0]
        for sr in (s_by.get(pos), r_by.get(pos)):
            if sr is not None and f not in sr.flags:
                sr.flags.append(f)


# ------------------------------------------------------------------------ manual AIF
_AIF_FLAG_PREFIXES = (
    "AIF",
    "no dual-sequence AIF series",
    "no LV blood pool",
    "LV blood-pool AIF",
    "MBF not computed: no usable AIF",
)


def apply_manual_aif(
    result: AnalysisResult,
    condition: str,
    slice_index: int,
    mask: np.ndarray | None,
    progress: Progress | None = None,
    cancel: Any = None,
) -> AnalysisResult:
    """Re-fit one condition's MBF maps with the AIF from a hand-drawn region: ``mask`` bool
    (Y, X) on slice ``slice_index`` (reference-frame grid) over the LV blood pool, or on the
    dual-sequence AIF series when ``slice_index`` is ``AIF_SERIES_INDEX`` (-1); None
    returns to the automatic AIF. Segmentations (manual edits included) are kept; segment,
    global and MPR values are re-aggregated. The AIF source becomes 'manual'."""
    if condition not in result.conditions:
        raise InputError(f"the result has no {condition} condition.")
    key = _model_key(result.model)
    cr = result.conditions[condition]
    clock = StageClock()
    if mask is None:
        cd = result.exam.conditions[condition]
        aif, source, aflags = condition_aif(
            cd, cr.slices, result.exam.field_strength_t, result.options
        )
    elif slice_index == AIF_SERIES_INDEX:
        cd = result.exam.conditions[condition]
        aif, aflags = manual_aif_series(cd, mask, result.exam.field_strength_t, result.options)
        source = AIF_MANUAL
    else:
        aif, aflags = manual_aif(cr.slices[slice_position(cr, slice_index)], mask)
        source = AIF_MANUAL
    slices = []
    hct = result.options.hematocrit
    delays = _map_delays(cr.slices, aif, key, clock, hct, cancel)
    for k, sr in enumerate(cr.slices):
        check_cancel(cancel)
        report_progress(progress, k / max(1, len(cr.slices)), f"{condition} slice {k + 1}: MBF map")
        new = dataclasses.replace(
            sr,
            mbf=None,
            mbf_valid=None,
            map_delay_s=None,
            maps={n: v for n, v in sr.maps.items() if n == "gd_valid"},
            flags=[f for f in sr.flags if not f.startswith(("MBF", FLAG_NO_GD))],
        )
        if aif is not None and new.gd is not None:
            try:
                quantify_slice(new, aif, key, clock, hct, delays[k])
            except InputError as exc:
                new.flags.append(f"MBF failed: {exc.message}")
        new.curves = slice_curves(new)
        slices.append(new)
    flags = [f for f in cr.flags if not f.startswith(_AIF_FLAG_PREFIXES)] + aflags
    if aif is None:
        flags.append("MBF not computed: no usable AIF")
    new_cr = condition_result(condition, slices, aif, source, cr.heart_rate_bpm, flags)
    conds = dict(result.conditions)
    conds[condition] = new_cr
    g, segs = mpr_of(conds.get("stress"), conds.get("rest"))
    report_progress(progress, 1.0, "MBF re-fitted")
    return dataclasses.replace(result, conditions=conds, mpr_global=g, mpr_segments=segs)


# ------------------------------------------------------------------ notes and exit status
def partial_notes(result: AnalysisResult) -> list[str]:
    """What is missing or degraded, in words for the report and the console (a missing
    condition excepted: the report adds that note itself)."""
    notes: list[str] = list(result.exam.flags) + list(result.flags)
    quantified = result.model != "none"
    for name, cr in result.conditions.items():
        cap = name.capitalize()
        cd = result.exam.conditions.get(name)
        for f in cd.flags if cd is not None else []:
            if "could not be loaded" in f:
                notes.append(f"{cap}: {f}.")
        for sr in cr.slices:
            where = f"{cap} slice {sr.slice_index + 1} ({sr.position or 'extra'})"
            failed = [f for f in sr.flags if f.startswith("analysis failed")]
            if failed:
                notes.append(f"{where}: {failed[0]}; its segments are not covered.")
            elif sr.segmentation is not None and sr.aha is None:
                why = next((f for f in sr.flags if f.startswith(SECTOR_PREFIXES)), "no sectors")
                notes.append(f"{where}: {why}; its segments are not covered.")
        if not quantified:
            continue
        if cr.global_mbf is None and any(sr.mbf is not None for sr in cr.slices):
            notes.append(f"{cap}: no segment has a reliable MBF value.")
        if cr.aif_source == AIF_POOL:
            notes.append(f"{cap}: {FLAG_AIF_BLOOD_POOL}.")
        if cr.aif_source == AIF_NONE and any(sr.gd is not None for sr in cr.slices):
            notes.append(f"{cap}: no usable arterial input function; MBF not computed.")
        if cr.slices and all(sr.gd is None for sr in cr.slices):
            notes.append(
                f"{cap}: no Gd conversion (TS unknown or no dynamic frames); MBF and "
                "MPR not computed, semi-quantitative indices only."
            )
    return list(dict.fromkeys(notes))


def exit_status(result: AnalysisResult) -> int:
    """0: complete; 1: finished with problems (a condition missing, a slice failed, AIF
    fallback, no MBF). Unusable input raises before a result exists (exit status 2)."""
    missing = any(c not in result.conditions for c in CONDITIONS)
    problems = [n for n in partial_notes(result) if "set by the user" not in n]
    return 1 if missing or problems else 0
