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
from qperf_viewer.numpy_pages import numpy_page_policy
from qperf_viewer.pipeline.aggregate import (
    condition_heart_rate,
    condition_result,
    mpr_of,
    stress_response_flag,
)
from qperf_viewer.pipeline.aif import (
    AIF_MANUAL,
    AIF_SERIES_INDEX,
    aif_series_images,
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
    WorkerPool,
    check_cancel,
    default_workers,
    monotonic_progress,
    report_progress,
    run_parallel,
)
from qperf_viewer.pipeline.edits import SECTOR_PREFIXES, apply_saved_edits, slice_position
from qperf_viewer.pipeline.segmenter import OnnxSegmenter
from qperf_viewer.pipeline.slices import (
    apply_map,
    condition_delays,
    consistent_insertion_points,
    delay_job,
    failed_slice,
    finish_slice,
    map_job,
    motion_correct,
    nearest_position,
    prepare_slice,
    quantify_slice,
    relocate_slices,
    run_delay_job,
    run_map_job,
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


def _sectors(name: str, slices: list[SliceResult], cd, clock: StageClock) -> None:
    """AHA sectors of a condition's slices (RV insertion points made consistent first); ``cd``
    the condition's data (slice positions)."""
    with clock("sectors"):
        try:
            consistent_insertion_points(slices)
        except Exception:  # noqa: BLE001 - a check; the detected points stay
            log.warning("%s: RV insertion consistency check failed", name, exc_info=True)
    for k, sr in enumerate(slices):
        if sr.segmentation is None:
            continue
        try:
            finish_slice(sr, nearest_position([s.position for s in cd.slices], k), clock)
        except Exception as exc:  # noqa: BLE001 - one bad slice never sinks the rest
            log.warning("%s slice %d: sectors failed", name, sr.slice_index, exc_info=True)
            sr.flags.append(f"AHA segments undefined: {_why(exc)}")


def _job(make, sr: SliceResult, aif, key: str, clock: StageClock, hct: float):
    """A slice's kinetic job (``make``: delay_job or map_job); None when it cannot be made."""
    try:
        return make(sr, aif, key, clock, hct)
    except Exception as exc:  # noqa: BLE001 - one bad slice never sinks the rest
        log.warning("%s slice %d: MBF inputs failed", sr.condition, sr.slice_index, exc_info=True)
        if make is map_job:
            sr.flags.append(f"MBF failed: {_why(exc)}")
        return None


def _delay_result(future, sr: SliceResult) -> float | None:
    try:
        return future.result()
    except CancelledError:
        raise
    except Exception:  # noqa: BLE001 - the slice's own fit reports the problem
        log.warning("slice %d: reference delay failed", sr.slice_index, exc_info=True)
        return None


def _map_result(future, sr: SliceResult) -> None:
    """Put a finished MBF map into its slice; a failure becomes a flag on the slice."""
    try:
        apply_map(sr, future.result())
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
def _aif_images(aif, clock: StageClock):
    """:func:`~qperf_viewer.pipeline.aif.aif_series_images` of an AIF series (its own stage
    time)."""
    with clock("aif_moco"):
        return aif_series_images(aif)


def _aif_images_result(future) -> tuple | None:
    """The early AIF-series images, or None to let the AIF step compute them (failure)."""
    try:
        return future.result()
    except CancelledError:
        raise
    except Exception:  # noqa: BLE001 - the AIF step tries again and reports
        log.warning("AIF series motion correction failed", exc_info=True)
        return None


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


@numpy_page_policy()
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

    # One pool of worker processes for the whole analysis (motion correction and kinetic
    # fits: many small numpy calls that hold the GIL); segmentation (onnxruntime, which runs
    # without the GIL), Gd conversion, sectors and the AIF run here on threads. Each condition
    # moves on as soon as its own slices are ready: 1. motion correction (workers), then
    # segmentation and Gd (threads) per slice; 2. per condition: sectors, the AIF, 3. each
    # slice's reference delay (workers); 4. per condition: the map delay, each slice's MBF
    # map (workers). The workers get the slices when they fork and the kinetic inputs
    # pickled (:class:`~qperf_viewer.pipeline.slices.KineticJob`). An idle worker takes
    # motion correction first, then delays (the maps wait for them), then maps.
    report_progress(progress, 0.0, "motion correction, segmentation, Gd conversion")
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    hct = options.hematocrit
    n_threads = default_workers() if workers is None else max(1, int(workers))
    by_cond: dict[str, list[Any]] = {n: [None] * len(exam.conditions[n].slices) for n in names}
    aifs: dict[str, tuple] = {n: (None, AIF_NONE, []) for n in names}
    delays: dict[str, dict[int, float | None]] = {n: {} for n in names}
    index = {(n, k): i for i, (n, k, _) in enumerate(tasks)}
    with (
        WorkerPool(workers, clock, cancel=cancel, shared=tasks, shared_fn=_moco_one) as pool,
        ThreadPoolExecutor(max_workers=n_threads, thread_name_prefix="qperf") as threads,
    ):
        jobs: dict[Any, tuple[str, int]] = {}

        def condition_ready(name: str) -> None:
            """Sectors, AIF and the delay fits of a condition whose slices are prepared."""
            slices = by_cond[name]
            try:
                relocate_slices(name, slices, exam, segmenter, clock, quantify, options)
            except (CancelledError, ModelError):
                raise
            except Exception:  # noqa: BLE001 - a second try; the first segmentation stays
                log.warning("%s: segmentation retry failed", name, exc_info=True)
            _sectors(name, slices, exam.conditions[name], clock)
            if not quantify:
                return
            with clock("aif"):
                early = aif_images.get(name)
                aifs[name] = condition_aif(
                    exam.conditions[name], slices, exam.field_strength_t, options,
                    series_images=None if early is None else _aif_images_result(early),
                )  # fmt: skip
            aif = aifs[name][0]
            for k, sr in enumerate(slices):
                job = None if aif is None else _job(delay_job, sr, aif, key, clock, hct)
                if job is None:
                    delays[name][k] = None
                else:
                    jobs[pool.submit(run_delay_job, job, priority=1)] = ("delay", index[name, k])
            delays_done(name)

        def delays_done(name: str) -> None:
            """The MBF maps of a condition once all its slices' delays are known."""
            slices = by_cond[name]
            if len(delays[name]) < len(slices):
                return
            aif = aifs[name][0]
            ds = condition_delays([delays[name][k] for k in range(len(slices))])
            for k, (sr, d) in enumerate(zip(slices, ds, strict=True)):
                if sr.gd is None and sr.segmentation is not None:
                    sr.flags.append(FLAG_NO_GD)
                if aif is None or sr.gd is None:
                    continue
                job = _job(map_job, sr, aif, key, clock, hct)
                if job is not None:
                    jobs[pool.submit(run_map_job, job, d, priority=2)] = ("map", index[name, k])

        for i in range(len(tasks)):
            jobs[pool.submit_shared(i)] = ("moco", i)
        # the AIF series' motion correction, while the workers correct the slices
        aif_images = {
            n: threads.submit(_aif_images, exam.conditions[n].aif, clock)
            for n in names
            if quantify and exam.conditions[n].aif is not None
        }
        while jobs:
            finished, _ = wait(list(jobs), timeout=0.1, return_when=FIRST_COMPLETED)
            pool.pump()
            for f in finished:
                kind, i = jobs.pop(f)
                name, k, _ = tasks[i]
                if kind == "moco":
                    try:
                        motion = f.result()
                    except CancelledError:
                        raise
                    except Exception as exc:  # noqa: BLE001 - e.g. a result that did not come back
                        log.warning("%s slice %d: motion correction failed", name, k, exc_info=True)
                        motion = (None, _why(exc))
                    jobs[threads.submit(prepare, tasks[i], motion)] = ("prepare", i)
                elif kind == "prepare":
                    by_cond[name][k] = f.result()
                    if all(sr is not None for sr in by_cond[name]):
                        condition_ready(name)
                elif kind == "delay":
                    delays[name][k] = _delay_result(f, by_cond[name][k])
                    delays_done(name)
                else:
                    _map_result(f, by_cond[name][k])
                    step(f"{name} slice {k + 1}/{len(by_cond[name])}: MBF map done")
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


@numpy_page_policy()
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
        sr = cr.slices[slice_position(cr, slice_index)]
        aif, aflags = manual_aif(sr, mask, result.exam.field_strength_t, result.options)
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
