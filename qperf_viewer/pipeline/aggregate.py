"""Per-condition aggregation: segment values (median of reliable pixels, endo/epi), global MBF,
semi-quantitative indices, heart rate, MPR.
"""

from __future__ import annotations

import math

import numpy as np

from qperf_viewer.exam import (
    LABEL_MYO,
    ConditionData,
)
from qperf_viewer.pipeline.common import (
    MIN_STRESS_HR_INCREASE_BPM,
    MPR_MIN_REST_ML_MIN_G,
    finite_or_none,
)
from qperf_viewer.results import (
    ConditionResult,
    Curve,
    SegmentValue,
    SliceResult,
)


# ----------------------------------------------------------------- stage 4: aggregation
def _used_for_segments(sr: SliceResult) -> bool:
    return sr.position is not None and sr.segmentation is not None and sr.aha is not None


def segment_values_of(slices: list[SliceResult]) -> dict[int, SegmentValue]:
    """Segment values of a condition from its slices' pixel maps (slices at the basal, mid and
    apical positions with a segmentation; no map: covered but unreliable)."""
    from qperf_viewer.sectors import N_SEGMENTS, segment_values

    use = [sr for sr in slices if _used_for_segments(sr)]
    if not use:
        return {s: SegmentValue(segment=s, mbf=None) for s in range(1, N_SEGMENTS + 1)}
    maps, valids = [], []
    for sr in use:
        shape = sr.segmentation.labels.shape
        maps.append(sr.mbf if sr.mbf is not None else np.zeros(shape, np.float32))
        valids.append(sr.mbf_valid if sr.mbf_valid is not None else np.zeros(shape, bool))
    return segment_values(
        maps,
        valids,
        [sr.aha for sr in use],
        [sr.segmentation.labels for sr in use],
        [tuple(sr.series.geometry.pixel_spacing_mm) for sr in use],
    )


def _slice_reference_curve(sr: SliceResult, aif: Curve | None) -> tuple[np.ndarray, str] | None:
    """The input curve of a slice's semi-quantitative indices at its dynamic frame times:
    the AIF (Gd) interpolated to them, or without Gd the slice's own LV blood-pool signal
    (the classic signal-intensity upslope index)."""
    from qperf_viewer.quant.aif import align_aif

    times = np.asarray(sr.series.times_s, dtype=float)[sr.series.dynamic_frames]
    if aif is not None and sr.gd is not None:
        values, _ = align_aif(aif.values, aif.times_s, times)
        return values, "gd"
    lv = next((cv for cv in sr.curves if cv.name == "lv_blood"), None)
    if lv is None:
        return None
    return np.asarray(lv.values, dtype=float), "signal"


def semiquant_of(
    slices: list[SliceResult], aif: Curve | None
) -> dict[str, dict[int, float | None]]:
    """Semi-quantitative indices per AHA segment (:func:`qperf_viewer.quant.semiquant_indices`
    on the segment-mean curves, pixel-count weighted over slices): ``upslope_index`` (max
    tissue slope / max input slope), ``time_to_peak_s`` (from the input's foot) and
    ``peak_gd_mmol_l``; without Gd the input is the LV blood-pool signal and the peak is
    ``peak_enhancement_au``."""
    from qperf_viewer.errors import InputError
    from qperf_viewer.quant.semiquant import semiquant_indices

    acc: dict[str, dict[int, list[tuple[float, int]]]] = {}
    for sr in slices:
        if not _used_for_segments(sr):
            continue
        segs = [cv for cv in sr.curves if cv.name.startswith("segment_")]
        ref = _slice_reference_curve(sr, aif)
        if not segs or ref is None:
            continue
        values, kind = ref
        times = np.asarray(segs[0].times_s, dtype=float)
        try:
            sq = semiquant_indices(values, np.stack([cv.values for cv in segs]), times)
        except InputError:
            continue
        myo = sr.segmentation.labels == LABEL_MYO
        peak_name = "peak_gd_mmol_l" if kind == "gd" else "peak_enhancement_au"
        for k, cv in enumerate(segs):
            s = int(cv.name.split("_")[1])
            if not sq.reliable[k]:
                continue
            n_pix = int(((sr.aha == s) & myo).sum())
            for name, arr in (
                ("upslope_index", sq.upslope),
                ("time_to_peak_s", sq.time_to_peak_s),
                (peak_name, sq.peak_enhancement),
            ):
                acc.setdefault(name, {}).setdefault(s, []).append((float(arr[k]), n_pix))
    out: dict[str, dict[int, float | None]] = {}
    for name, per in acc.items():
        out[name] = {}
        for s in range(1, 17):
            items = [(x, w) for x, w in per.get(s, []) if math.isfinite(x) and w > 0]
            w = sum(w for _, w in items)
            out[name][s] = float(sum(x * w for x, w in items) / w) if items else None
    return out


def condition_heart_rate(cd: ConditionData) -> float | None:
    """Heart rate (bpm): the index's (frame times), else the median frame interval."""
    if cd.heart_rate_bpm is not None and math.isfinite(cd.heart_rate_bpm):
        return float(cd.heart_rate_bpm)
    rr = []
    for ss in cd.slices:
        t = np.asarray(ss.times_s, float)[ss.dynamic_frames]
        if t.size > 3:
            rr.append(float(np.median(np.diff(t))))
    rr = [r for r in rr if 0.25 <= r <= 2.6]
    return 60.0 / float(np.median(rr)) if rr else None


def condition_result(
    name: str,
    slices: list[SliceResult],
    aif: Curve | None,
    aif_source: str,
    heart_rate_bpm: float | None,
    flags: list[str],
) -> ConditionResult:
    from qperf_viewer.sectors import global_mbf

    segments = segment_values_of(slices)
    return ConditionResult(
        name=name,
        slices=slices,
        aif=aif,
        aif_source=aif_source,
        heart_rate_bpm=heart_rate_bpm,
        segments=segments,
        global_mbf=finite_or_none(global_mbf(segments)),
        semiquant=semiquant_of(slices, aif),
        flags=list(dict.fromkeys(flags)),
    )


def mpr_of(
    stress: ConditionResult | None, rest: ConditionResult | None
) -> tuple[float | None, dict[int, float | None]]:
    """Global MPR = global stress / global rest; segment MPR only where both segment values are
    reliable and rest >= :data:`MPR_MIN_REST_ML_MIN_G` (:mod:`qperf_viewer.quant.mpr`)."""
    from qperf_viewer.quant.mpr import global_mpr, segment_mpr

    segs: dict[int, float | None] = {s: None for s in range(1, 17)}
    if stress is None or rest is None:
        return None, segs
    got = segment_mpr(
        {s: v.mbf for s, v in stress.segments.items()},
        {s: v.mbf for s, v in rest.segments.items()},
        stress_reliable={s: v.reliable for s, v in stress.segments.items()},
        rest_reliable={s: v.reliable for s, v in rest.segments.items()},
        min_rest=MPR_MIN_REST_ML_MIN_G,
    )
    segs.update({int(s): finite_or_none(v) for s, v in got.items() if int(s) in segs})
    g = global_mpr(stress.global_mbf, rest.global_mbf, min_rest=MPR_MIN_REST_ML_MIN_G)
    return finite_or_none(g), segs


def stress_response_flag(stress_hr: float | None, rest_hr: float | None) -> str | None:
    if stress_hr is None or rest_hr is None:
        return None
    rise = stress_hr - rest_hr
    if rise < MIN_STRESS_HR_INCREASE_BPM:
        return (
            f"inadequate stress response suspected: heart rate {stress_hr:.0f} bpm at stress vs "
            f"{rest_hr:.0f} bpm at rest (rise {rise:.0f} < {MIN_STRESS_HR_INCREASE_BPM:.0f} bpm)"
        )
    return None
