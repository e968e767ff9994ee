"""Assemble stress / rest conditions from classified series: slices ordered basal to apical
along the base-to-apex normal, frame times relative to the condition's first frame, PD frames,
TS, heart rate; and the pixel load that turns a study into a
:class:`qperf_viewer.exam.PerfusionExam`.

Slice order comes only from geometry (``geometry.base_to_apex_normal``), never from file
order, InstanceNumber or acquisition order, which run either way.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable

import numpy as np

from qperf_viewer.dicom import pixels
from qperf_viewer.dicom.classify import analyse_series, classify_study, stress_agent, tokens
from qperf_viewer.dicom.layout import PositionGroup, median_rr
from qperf_viewer.dicom.model import (
    ConditionIndex,
    Frame,
    Problem,
    Series,
    SliceIndex,
    Study,
    StudyIndex,
)
from qperf_viewer.errors import InputError, NoPerfusionExamError
from qperf_viewer.exam import (
    CONDITIONS,
    AifSeries,
    ConditionData,
    PerfusionExam,
    SliceSeries,
)
from qperf_viewer.geometry import APEX_DIRECTION_LPS

FLAG_TIMING = "timing approximate"
FLAG_NO_PD = "no PD frames"
#: Leading frames looked at when PD frames are found by intensity.
PD_SEARCH_FRAMES = 10
#: A PD frame is at least this many times brighter than the following pre-contrast frames.
PD_INTENSITY_RATIO = 2.5
MAX_PD_FRAMES = 5
DEFAULT_RR_S = 1.0

#: (frames, memo of decoded files) -> mean intensity per frame (None where unreadable).
MeansReader = Callable[[list[Frame], dict], list[float | None]]


def slice_positions(n: int) -> list[str | None]:
    """Position names for ``n`` slices ordered basal to apical (project convention):
    3 -> basal/mid/apical; 2 -> basal/mid; 1 -> mid; 4+ -> first basal, middle (index
    n // 2, as the phantom's truth) mid, last apical, the others None."""
    if n <= 0:
        return []
    if n == 1:
        return ["mid"]
    if n == 2:
        return ["basal", "mid"]
    out: list[str | None] = [None] * n
    out[0], out[n // 2], out[-1] = "basal", "mid", "apical"
    return out


def _positions(locations_mm: list[float]) -> list[str | None]:
    """Positions from the slice locations along the base-to-apex normal (4+ slices: the
    three best spread, :func:`qperf_viewer.sectors.assign_positions`); by order when a
    location is not finite."""
    from qperf_viewer.sectors import assign_positions

    try:
        return assign_positions(locations_mm)
    except InputError:
        return slice_positions(len(locations_mm))


def _is_pd_comment(text: str) -> bool:
    if not text:
        return False
    words = tokens(text)
    return "pd" in words or "proton" in text.lower() or "protondensity" in words


def detect_pd(
    frames: list[Frame], means: MeansReader | None, memo: dict | None = None
) -> tuple[tuple[int, ...], str | None]:
    """Indices of proton-density frames and how they were found.

    ImageComments saying 'PD' first; else, when ``means`` can read pixels, leading frames
    at least :data:`PD_INTENSITY_RATIO` times brighter than the next pre-contrast frames.
    """
    marked = tuple(
        i for i, f in enumerate(frames) if _is_pd_comment(str(f.get("ImageComments") or ""))
    )
    if marked:
        return marked, "ImageComments"
    if means is None or len(frames) < 4:
        return (), None
    m = means(frames[:PD_SEARCH_FRAMES], {} if memo is None else memo)
    best = 0
    for n in range(1, MAX_PD_FRAMES + 1):
        head, tail = m[:n], m[n : n + 4]
        if len(tail) < 2 or any(v is None for v in head) or any(v is None for v in tail):
            break
        ref = statistics.median(tail)  # type: ignore[type-var]
        if (
            ref > 0
            and min(head) > PD_INTENSITY_RATIO * ref
            and m[n - 1] > PD_INTENSITY_RATIO * m[n]
        ):  # type: ignore[operator]
            best = n
    if best:
        return tuple(range(best)), "intensity"
    return (), None


def _median_attr(frames: list[Frame], key: str) -> float | None:
    vals = [float(v) for f in frames if isinstance(v := f.get(key), int | float)]
    return float(statistics.median(vals)) if vals else None


def _nominal_rr_s(frames: list[Frame]) -> tuple[float, str, bool]:
    """(RR in s, where it came from, whether the header gave it)."""
    nominal = _median_attr(frames, "NominalInterval")
    if nominal and 250.0 <= nominal <= 2600.0:
        return nominal / 1000.0, f"NominalInterval {nominal:.0f} ms", True
    hr = _median_attr(frames, "HeartRate")
    if hr and 23.0 <= hr <= 240.0:
        return 60.0 / hr, f"HeartRate {hr:.0f} bpm", True
    return DEFAULT_RR_S, f"an assumed RR of {DEFAULT_RR_S:.1f} s", False


def _common_normal(groups: list[PositionGroup]) -> np.ndarray:
    ref = max(groups, key=lambda g: g.n_frames).normal()
    acc = np.zeros(3)
    for g in groups:
        n = g.normal()
        acc += n if float(n @ ref) >= 0 else -n
    n = acc / np.linalg.norm(acc)
    return n if float(n @ APEX_DIRECTION_LPS) >= 0 else -n


def _dirname(frames: list[Frame]) -> str:
    return os.path.dirname(frames[0].path) if frames else ""


class _Assembler:
    def __init__(self, study: Study, means: MeansReader | None):
        self.study = study
        self.means = means
        self.decoded: dict = {}
        self.problems: list[Problem] = []

    def _problem(self, path: str, reason: str, hint: str, severity: str = "warning") -> None:
        self.problems.append(Problem(path, reason, hint, severity))

    def _usable_groups(self, series: list[Series]) -> list[tuple[Series, PositionGroup]]:
        groups = [(s, g) for s in series for g in s.groups if g.geometry is not None and g.frames]
        for s, g in groups:
            for fr, why in g.dropped:
                self._problem(
                    fr.path,
                    f"series {s.series_number} '{s.description}': {why}",
                    "This image is left out; the rest of the slice is used.",
                )
        if not groups:
            return []
        big = max(g.n_frames for _, g in groups)
        keep = []
        for s, g in groups:
            if g.n_frames < max(2, 0.25 * big):
                self._problem(
                    _dirname(g.frames),
                    f"series {s.series_number} '{s.description}': {g.n_frames} image(s) at a "
                    f"slice position of their own (other slices have up to {big} frames)",
                    "Left out of the perfusion slices; check the series if a slice is missing.",
                )
                continue
            keep.append((s, g))
        return keep

    def _times(
        self, g: PositionGroup, t0: float | None, rr_fallback: tuple[float, str, bool]
    ) -> tuple[tuple[float, ...], list[str]]:
        flags = []
        if g.times_abs is not None and t0 is not None:
            times = tuple(float(t - t0) for t in g.times_abs)
            if g.time_source == "content":
                flags.append("frame times from ContentTime (no per-frame AcquisitionTime)")
        else:
            rr, src, _known = rr_fallback
            times = tuple(float(k * rr) for k in range(g.n_frames))
            flags.append(FLAG_TIMING)
            flags.append(f"{FLAG_TIMING}: frame order x {src}")
        return times, flags

    def _slice(
        self,
        s: Series,
        g: PositionGroup,
        t0: float | None,
        rr_fallback: tuple[float, str, bool],
        normal: np.ndarray,
    ) -> SliceIndex:
        times, flags = self._times(g, t0, rr_fallback)
        pd, how = detect_pd(g.frames, self.means, self.decoded)
        if how == "intensity":
            flags.append("PD frames found by intensity (no 'PD' image comment)")
        elif not pd:
            flags.append(FLAG_NO_PD)
        dyn = [f for i, f in enumerate(g.frames) if i not in set(pd)]
        ts = _median_attr(dyn or g.frames, "InversionTime")
        if any(f.record.get("_no_decoder") for f in g.frames):
            flags.append("compressed without an installed decoder: pixels cannot be loaded")
        assert g.geometry is not None
        from qperf_viewer.quant.gd import header_marks_gd

        units = "gd" if header_marks_gd(s.image_type, s.description) else "signal"
        if units == "gd":
            flags.append("pixel values marked as Gd concentration (mmol/L) in the header")
        return SliceIndex(
            series_instance_uid=s.series_instance_uid,
            geometry=g.geometry,
            frames=list(g.frames),
            times_s=times,
            pd_frames=pd,
            ts_ms=ts,
            location_mm=float(np.asarray(g.geometry.origin_mm) @ normal),
            trigger_time_ms=_median_attr(g.frames, "TriggerTime"),
            flags=flags,
            units=units,
        )

    def condition(self, name: str) -> ConditionIndex | None:
        series = [s for s in self.study.series if s.role == name]
        groups = self._usable_groups(series)
        if not groups:
            if series:
                self._problem(
                    _dirname(series[0].frames),
                    f"{name} series have no usable images",
                    "Check the series on the scanner or PACS.",
                    "error",
                )
            return None
        normal = _common_normal([g for _, g in groups])
        aif = self._aif_group(name)
        timed = [g.times_abs[0] for _, g in groups if g.times_abs]
        if timed and aif is not None and aif[1].times_abs:
            first = aif[1].times_abs[0]  # the AIF is often the first image of each beat
            if first >= min(timed) - 5.0:
                timed.append(first)
        t0 = min(timed) if timed else None
        all_frames = [f for _, g in groups for f in g.frames]
        rr_fallback = _nominal_rr_s(all_frames)
        cond = ConditionIndex(name=name, origin_time_s=t0)
        for s, g in groups:
            sl = self._slice(s, g, t0, rr_fallback, normal)
            cosang = abs(float(g.normal() @ normal))
            if cosang < np.cos(np.radians(10.0)):
                ang = float(np.degrees(np.arccos(min(1.0, cosang))))
                sl.flags.append(f"not parallel to the other slices ({ang:.0f} deg)")
            cond.slices.append(sl)
        cond.slices.sort(key=lambda sl: sl.location_mm)
        positions = _positions([sl.location_mm for sl in cond.slices])
        for k, (sl, pos) in enumerate(zip(cond.slices, positions, strict=True)):
            sl.slice_index, sl.position = k, pos
        for a, b in zip(cond.slices[:-1], cond.slices[1:], strict=True):
            if b.location_mm - a.location_mm < 1.0:
                b.flags.append("at the same location as the previous slice")
        if any(FLAG_TIMING in sl.flags for sl in cond.slices):
            cond.flags.append(FLAG_TIMING)
            for s in series:
                if all(g.time_source == "approximate" for g in s.groups):
                    self._problem(
                        _dirname(s.frames),
                        f"series {s.series_number} '{s.description}' has no per-frame "
                        "acquisition times",
                        f"Frame times are approximated as frame order x {rr_fallback[1]}; "
                        "flow values are less accurate. Export the original scanner images.",
                    )
        rrs = [median_rr(list(sl.times_s)) for sl in cond.slices if FLAG_TIMING not in sl.flags]
        rrs = [r for r in rrs if r]
        if rrs:
            cond.heart_rate_bpm = 60.0 / float(statistics.median(rrs))
        elif rr_fallback[2]:
            cond.heart_rate_bpm = 60.0 / rr_fallback[0]
        if all(FLAG_NO_PD in sl.flags for sl in cond.slices):
            cond.flags.append(FLAG_NO_PD)
        cond.series_instance_uids = tuple(s.series_instance_uid for s in series)
        cond.series_descriptions = tuple(s.description for s in series)
        cond.aif = self._aif(aif, t0, rr_fallback)
        return cond

    def _aif_group(self, name: str) -> tuple[Series, PositionGroup] | None:
        cands = [s for s in self.study.series if s.role == "aif" and s.condition == name]
        if not cands:
            return None
        s = cands[0]
        groups = [g for g in s.groups if g.geometry is not None and g.frames]
        if not groups:
            return None
        return s, max(groups, key=lambda g: g.n_frames)

    def _aif(self, aif: tuple[Series, PositionGroup] | None, t0, rr_fallback) -> SliceIndex | None:
        if aif is None:
            return None
        s, g = aif
        if t0 is None and g.times_abs:
            t0 = g.times_abs[0]
        sl = self._slice(s, g, t0, rr_fallback, _common_normal([g]))
        sl.position = None
        return sl


def assemble_study(
    study: Study,
    overrides: dict[str, str] | None = None,
    means: MeansReader | None = pixels.frame_means,
) -> Study:
    """Classify the study's series (user ``overrides`` first) and assemble its conditions.

    means: reads mean frame intensities for PD detection without image comments (None: no
    pixel access, PD frames only from comments).
    """
    for se in study.series:
        analyse_series(se)
    classify_study(study, overrides)
    asm = _Assembler(study, means)
    study.conditions = {}
    for name in CONDITIONS:
        cond = asm.condition(name)
        if cond is not None:
            study.conditions[name] = cond
    study.assembly_problems = asm.problems
    study.role_overrides = dict(overrides or {})
    return study


def pick_study(index: StudyIndex, study_instance_uid: str | None = None) -> Study:
    """The study with this UID, or without one the perfusion study (both conditions first,
    then the most recent)."""
    studies = index.studies
    if study_instance_uid:
        for st in studies:
            if st.study_instance_uid == study_instance_uid:
                return st
        raise InputError(
            f"study {study_instance_uid} is not in {index.root}",
            hint="Run 'qperf-viewer index' on the folder to list its studies.",
        )
    perf = [st for st in studies if st.conditions]
    if not perf:
        raise NoPerfusionExamError(
            "no stress/rest perfusion series found",
            path=index.root,
            hint="Check that the folder holds the perfusion series (see 'qperf-viewer index').",
        )
    perf.sort(key=lambda st: (len(st.conditions), st.study_date, st.study_time), reverse=True)
    return perf[0]


# --------------------------------------------------------------------------- pixel load
def _load_series(sl: SliceIndex, decoded: dict, cls):
    images, keep, notes = pixels.load_stack(sl.frames, decoded)
    if images is None:
        return None, notes
    keep_set = {i: k for k, i in enumerate(keep)}
    pd = tuple(keep_set[i] for i in sl.pd_frames if i in keep_set)
    kwargs = dict(
        images=images,
        times_s=np.asarray([sl.times_s[i] for i in keep], dtype=np.float64),
        geometry=sl.geometry,
        pd_frames=pd,
        ts_ms=sl.ts_ms,
        sop_instance_uids=tuple(sl.frames[i].sop_instance_uid for i in keep),
        frame_numbers=tuple(sl.frames[i].frame_number for i in keep),
        series_instance_uid=sl.series_instance_uid,
        flags=list(dict.fromkeys(sl.flags + notes)),
        units=sl.units,
    )
    if cls is SliceSeries:
        kwargs.update(
            position=sl.position,
            slice_index=sl.slice_index,
            location_mm=sl.location_mm,
            trigger_time_ms=sl.trigger_time_ms,
        )
    return cls(**kwargs), notes


def load_exam(
    index: StudyIndex,
    study_uid: str | None = None,
    overrides: dict[str, str] | None = None,
    progress: Callable[[int, int], object] | None = None,
    cancel: object = None,
) -> PerfusionExam:
    """Load the pixels of one study's conditions into a :class:`PerfusionExam`.

    Only that study's perfusion and AIF frames are read. A frame that cannot be read is left
    out (the slice is flagged); a slice with no readable frame is left out (the condition is
    flagged). overrides: user roles (SeriesInstanceUID -> role), as for
    :func:`assemble_study`; the study is re-assembled when they change.
    progress(done, total): called after each slice/AIF series; cancel: a threading.Event (or
    callable) that stops the load with :class:`qperf_viewer.errors.CancelledError`.
    """
    from qperf_viewer.dicom.scan import check_cancel

    study = pick_study(index, study_uid)
    if dict(overrides or {}) != study.role_overrides:
        assemble_study(study, overrides)
    if not study.conditions:
        raise NoPerfusionExamError(
            "no stress/rest perfusion series in this study",
            path=index.root,
            hint="Check the series roles (see 'qperf-viewer index') and set them by hand.",
        )
    decoded: dict = {}
    exam = PerfusionExam(
        study_instance_uid=study.study_instance_uid,
        patient_name=study.patient_name,
        patient_id=study.patient_id,
        patient_birth_date=study.patient_birth_date,
        study_date=study.study_date,
        manufacturer=study.manufacturer,
        field_strength_t=study.field_strength_t,
    )
    total = sum(len(c.slices) + (c.aif is not None) for c in study.conditions.values())
    done = 0

    def step() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    for name, ci in study.conditions.items():
        slices, flags = [], list(ci.flags)
        for sl in ci.slices:
            check_cancel(cancel, index.root)
            ss, notes = _load_series(sl, decoded, SliceSeries)
            step()
            if ss is None:
                flags.append(
                    f"slice {sl.slice_index} ({sl.position or 'extra'}) could not be loaded: "
                    + (notes[0] if notes else "no frames")
                )
                continue
            slices.append(ss)
        aif = None
        if ci.aif is not None:
            check_cancel(cancel, index.root)
            aif, notes = _load_series(ci.aif, decoded, AifSeries)
            step()
            if aif is None:
                flags.append("AIF series could not be loaded: " + (notes[0] if notes else ""))
        if not slices:
            exam.flags.append(f"{name}: no slice could be loaded")
            continue
        exam.conditions[name] = ConditionData(
            name=name,
            slices=slices,
            aif=aif,
            heart_rate_bpm=ci.heart_rate_bpm,
            series_descriptions=ci.series_descriptions,
            flags=flags,
        )
        if name == "stress":
            exam.stress_agent = next(
                (a for d in ci.series_descriptions if (a := stress_agent(d))), None
            )
    if not exam.conditions:
        raise NoPerfusionExamError(
            "no perfusion slice could be loaded",
            path=index.root,
            hint="See the problems listed by 'qperf-viewer index'.",
        )
    return exam
