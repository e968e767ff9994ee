"""Arterial input function of a condition (:mod:`qperf_viewer.quant.aif` does the work).

Order: the dual-sequence AIF series (motion-corrected like a perfusion slice, see
``AIF_MOTION_CORRECTION``; LV blood pool found from the temporal behaviour by
:func:`~qperf_viewer.quant.aif.detect_aif`, its robust mean signal converted to Gd with the
series' own PD frames and TS), else the LV blood pool of a basal or mid perfusion slice
(:func:`~qperf_viewer.quant.aif.aif_from_perfusion` on its Gd, flagged: saturation may bias
MBF), else none (no MBF). A hand-drawn region replaces both (:func:`manual_aif`).
Curves cover the dynamic (non-PD) frames at their own times (s, condition time base); the
kinetic fit interpolates them to each slice's times.
"""

from __future__ import annotations

import logging

import numpy as np

from qperf_viewer.errors import InputError
from qperf_viewer.exam import LABEL_LV, AifSeries, ConditionData
from qperf_viewer.pipeline.common import (
    AIF_DUAL,
    AIF_NONE,
    AIF_POOL,
    FLAG_AIF_BLOOD_POOL,
    MIN_AIF_PEAK_MMOL_L,
)
from qperf_viewer.results import Curve, QuantOptions, SliceResult

log = logging.getLogger(__name__)

AIF_MANUAL = "manual"

#: Motion-correct the dual-sequence AIF series before the LV region is found and its curve is
#: taken (:func:`qperf_viewer.quant.motion.correct_motion`, reference frame in the first pass).
#: The region is fixed, and after the breath-hold the breathing moves the blood pool under it
#: by several of the series' 4-6 mm pixels: on the noise-free phantom three_tesla 102 the
#: stress AIF read up to 13% low on the recirculation frames (RMS 3.7% from the peak on; 0.9%
#: corrected), and BTEX, which fits all frames, read segment MBF 3.7-5.0% low (0.5-0.8% with
#: the true AIF). A hand-drawn region lies on the corrected series too: the dialog opens on
#: the LV peak, a first-pass frame, and the reference is a first-pass breath-hold frame.
AIF_MOTION_CORRECTION = True

#: Undo the receive coil's shading that breathing moves across the LV blood pool before the
#: perfusion series' own AIF is taken (:mod:`qperf_viewer.quant.coil`; slices with PD frames).
#: Near the AIF peak the saturation-recovery curve is flat, so a signal error of a fraction of
#: a percent reads several % in Gd: on the noise-free phantom no_aif 213 the rest AIF read up
#: to 6% high on the breathing frames after its peak (worst BTEX segment 7.0% off; 4.7% with
#: the correction, as with the AIF rendered under a flat coil).
AIF_POOL_COIL_CORRECTION = True


def _dynamic(n_frames: int, pd_frames) -> np.ndarray:
    pd = {int(i) for i in pd_frames}
    return np.array([i for i in range(n_frames) if i not in pd], dtype=int)


def aif_problem(values: np.ndarray) -> str | None:
    """None when a Gd curve (dynamic frames) looks like a first pass, else why not."""
    v = np.asarray(values, dtype=float)
    if v.size < 6 or not np.all(np.isfinite(v)):
        return "too few frames"
    pk = int(np.argmax(v))
    if float(v[pk]) < MIN_AIF_PEAK_MMOL_L:
        return f"peak {float(v[pk]):.2f} mmol/L < {MIN_AIF_PEAK_MMOL_L:g}"
    if pk < 2:
        return "peak before the bolus could arrive"
    # a first pass rises far above the noise (robust frame-to-frame noise from the second
    # differences, which a smooth bolus curve barely has)
    noise = 1.4826 * float(np.median(np.abs(np.diff(v, 2)))) / np.sqrt(6.0)
    if float(v[pk]) < AIF_PEAK_NOISE_RATIO * noise:
        return (
            f"peak {float(v[pk]):.2f} mmol/L is within {AIF_PEAK_NOISE_RATIO:g}x the noise "
            f"({noise:.2f} mmol/L): no first pass"
        )
    return None


#: An AIF's peak must exceed this many times its noise. The 84 AIFs of the phantom exams of
#: ``benchmarks/bench_accuracy.py`` (generator version 1) reach 59-667x (median 199); regions
#: of air or slowly enhancing tissue that pass the 1 mmol/L peak by noise and drift, 4-6x.
AIF_PEAK_NOISE_RATIO = 10.0


#: ``slice_index`` of a hand-drawn AIF region that lies on the dual-sequence AIF series.
AIF_SERIES_INDEX = -1


def aif_from_series(
    aif: AifSeries,
    field_strength_t: float | None,
    region: np.ndarray | None = None,
    options: QuantOptions | None = None,
    images: tuple[np.ndarray, list[str]] | None = None,
) -> tuple[Curve | None, list[str]]:
    """AIF (Gd, dynamic frames) of a dual-sequence AIF series, or None and why; ``region``:
    a hand-drawn LV region (Y, X) bool of the series instead of the automatic one;
    ``images``: :func:`aif_series_images` of the series when already computed."""
    from qperf_viewer.quant.aif import detect_aif
    from qperf_viewer.quant.gd import images_to_gd

    images, flags = aif_series_images(aif) if images is None else images
    flags = list(flags)
    try:
        det = detect_aif(images, aif.times_s, skip_frames=aif.pd_frames, manual_region=region)
    except InputError as exc:
        return None, flags + [f"AIF series: {exc.message}"]
    flags += det.flags
    dyn = _dynamic(len(det.curve), aif.pd_frames)
    opt = options or QuantOptions()
    if aif.units == "gd" or opt.already_gd:
        values = np.asarray(det.curve, dtype=np.float64)[dyn]
        why = "user choice" if opt.already_gd else "header marker"
        flags.append(f"AIF series taken as Gd (mmol/L): {why}")
    else:
        g = images_to_gd(
            det.curve,
            aif.pd_frames,
            ts_ms=aif.ts_ms,
            times_s=aif.times_s,
            field_strength_t=field_strength_t,
            tissue="blood",
            r1=opt.r1_l_per_mmol_s,
            default_ts_ms=opt.default_ts_ms,
        )
        flags += [f"AIF Gd: {f}" for f in g.flags]
        if g.gd_mmol_l is None:
            return None, flags + ["AIF series: no Gd conversion possible"]
        values = np.asarray(g.gd_mmol_l, dtype=np.float64)[dyn]
    why = aif_problem(values)
    if why:
        return None, flags + [f"AIF series unusable ({why})"]
    times = np.asarray(aif.times_s, dtype=np.float64)[dyn]
    return Curve("aif", times, values, "mmol/L"), flags


def aif_series_images(aif: AifSeries) -> tuple[np.ndarray, list[str]]:
    """The AIF series' images (T, Y, X) as the AIF is taken from them: motion-corrected into
    the grid of one of its first-pass frames when ``AIF_MOTION_CORRECTION`` is on, with the
    correction's flags."""
    if not AIF_MOTION_CORRECTION:
        return np.asarray(aif.images), []
    from qperf_viewer.quant.motion import correct_motion

    try:
        mr = correct_motion(
            aif.images, aif.pd_frames, pixel_spacing_mm=aif.geometry.pixel_spacing_mm
        )
    except InputError as exc:
        return np.asarray(aif.images), [f"AIF series: {exc.message}; not motion-corrected"]
    except Exception:  # noqa: BLE001 - the uncorrected series still gives an AIF
        log.warning("AIF series motion correction failed", exc_info=True)
        why = "AIF series: motion correction failed; not motion-corrected"
        return np.asarray(aif.images), [why]
    return mr.corrected, [f"AIF series {f}" for f in mr.flags]


def _pool_gd(
    sr: SliceResult,
    field_strength_t: float | None,
    options: QuantOptions | None,
    pool: np.ndarray | None = None,
    label: str = "LV blood-pool AIF",
) -> tuple[np.ndarray, list[str]]:
    """The slice's Gd (T, Y, X) for an AIF from its blood ``pool`` (Y, X) bool (default its LV
    label): converted again from the signal with the coil shading that breathing moved across
    the pool undone (:data:`AIF_POOL_COIL_CORRECTION`), else its own Gd; and a note (starting
    with ``label``) when corrected."""
    from qperf_viewer.pipeline.slices import convert_gd
    from qperf_viewer.quant.coil import undo_coil_motion

    opt = options or QuantOptions()
    ss = sr.series
    if (
        not AIF_POOL_COIL_CORRECTION
        or not ss.pd_frames
        or opt.already_gd
        or getattr(ss, "units", "signal") == "gd"
        or sr.corrected is None
        or (pool is None and sr.segmentation is None)
    ):
        return sr.gd, []
    if pool is None:
        pool = sr.segmentation.labels == LABEL_LV
    try:
        data, fit, flags = undo_coil_motion(
            sr.corrected, sr.shifts_px, pool, ss.pd_frames, ss.dynamic_frames
        )
        if fit is None or not fit.applied:
            return sr.gd, [f"{label}: {f}" for f in flags]
        gd = convert_gd(ss, data, None, field_strength_t, opt).gd_mmol_l
        if gd is None or gd.shape != sr.gd.shape:
            return sr.gd, []
    except Exception:  # noqa: BLE001 - an optional correction never costs the AIF
        log.warning("%s: coil correction skipped", label, exc_info=True)
        return sr.gd, []
    g = 100.0 * float(np.hypot(*fit.gradient))
    return gd, [f"{label}: coil shading under breathing undone ({g:.2f}%/px)"]


def aif_from_slices(
    slices: list[SliceResult],
    field_strength_t: float | None = None,
    options: QuantOptions | None = None,
) -> tuple[Curve | None, list[str]]:
    """AIF from the LV blood pool of the perfusion slice with the largest pool (basal or mid
    preferred), or None and why; ``field_strength_t`` and ``options`` as for the slices' Gd
    conversion (used when the pool's coil shading is undone, :func:`_pool_gd`)."""
    from qperf_viewer.quant.aif import aif_from_perfusion

    cands = []
    for sr in slices:
        seg = sr.segmentation
        if seg is None or sr.gd is None:
            continue
        n_lv = int((seg.labels == LABEL_LV).sum())
        if n_lv >= 8:
            cands.append((sr.position in ("basal", "mid"), n_lv, sr))
    if not cands:
        return None, ["no LV blood pool with Gd values for an AIF"]
    _, _, sr = max(cands, key=lambda c: (c[0], c[1]))
    gd, coil_flags = _pool_gd(sr, field_strength_t, options)
    try:
        res = aif_from_perfusion(
            gd, sr.series.times_s, sr.segmentation.labels, skip_frames=sr.series.pd_frames
        )
    except InputError as exc:
        return None, [f"LV blood-pool AIF: {exc.message}"]
    dyn = sr.series.dynamic_frames
    values = np.asarray(res.curve, dtype=np.float64)[dyn]
    why = aif_problem(values)
    if why:
        return None, [f"LV blood-pool AIF unusable ({why})"]
    times = np.asarray(sr.series.times_s, dtype=np.float64)[dyn]
    return Curve("aif", times, values, "mmol/L"), [
        f"{FLAG_AIF_BLOOD_POOL} (slice {sr.slice_index + 1}, {sr.position or 'extra'})",
        *coil_flags,
    ]


def manual_aif_series(
    cd: ConditionData,
    mask: np.ndarray,
    field_strength_t: float | None,
    options: QuantOptions | None = None,
) -> tuple[Curve, list[str]]:
    """AIF from a region (Y, X) bool drawn on the condition's dual-sequence AIF series
    (converted to Gd with the series' own PD frames and TS); InputError when there is no AIF
    series, the region is empty or does not give a first pass."""
    if cd.aif is None:
        raise InputError("this condition has no dual-sequence AIF series to draw on.")
    m = np.asarray(mask, dtype=bool)
    if m.shape != tuple(cd.aif.images.shape[1:]) or not m.any():
        raise InputError(
            f"the AIF region must be a non-empty {tuple(cd.aif.images.shape[1:])} mask of the "
            "AIF series."
        )
    curve, flags = aif_from_series(cd.aif, field_strength_t, region=m, options=options)
    if curve is None:
        raise InputError(
            f"the drawn region does not give a usable AIF ({'; '.join(flags)}).",
            hint="Draw it inside the LV blood pool of the AIF series.",
        )
    note = f"AIF drawn by hand on the AIF series ({int(m.sum())} pixels)"
    return curve, [note, *[f for f in flags if not f.startswith("AIF series")]]


def manual_aif(
    sr: SliceResult,
    mask: np.ndarray,
    field_strength_t: float | None = None,
    options: QuantOptions | None = None,
) -> tuple[Curve, list[str]]:
    """AIF from a hand-drawn region (Y, X) bool on a slice's Gd images (the coil shading that
    breathing moves across it undone as for the automatic pool AIF, :func:`_pool_gd`; the other
    arguments as for the slices' Gd conversion); InputError when the region is empty, the slice
    has no Gd or the curve is no first pass."""
    from qperf_viewer.quant.aif import aif_from_region

    m = np.asarray(mask, dtype=bool)
    if m.shape != tuple(sr.corrected.shape[1:]) or not m.any():
        raise InputError("the AIF region must be a non-empty (Y, X) mask of the slice.")
    if sr.gd is None:
        raise InputError("this slice has no Gd values: a manual AIF cannot be used.")
    gd, coil_flags = _pool_gd(sr, field_strength_t, options, pool=m, label="manual AIF")
    res = aif_from_region(gd, sr.series.times_s, m, source=AIF_MANUAL)
    dyn = sr.series.dynamic_frames
    values = np.asarray(res.curve, dtype=np.float64)[dyn]
    why = aif_problem(values)
    if why:
        raise InputError(
            f"the drawn region does not give a usable AIF ({why}).",
            hint="Draw it inside the LV blood pool.",
        )
    times = np.asarray(sr.series.times_s, dtype=np.float64)[dyn]
    note = f"AIF drawn by hand on slice {sr.slice_index + 1} ({int(m.sum())} pixels)"
    return Curve("aif", times, values, "mmol/L"), [note, *coil_flags]


def condition_aif(
    cd: ConditionData,
    slices: list[SliceResult],
    field_strength_t: float | None,
    options: QuantOptions | None = None,
    series_images: tuple[np.ndarray, list[str]] | None = None,
) -> tuple[Curve | None, str, list[str]]:
    """(AIF curve over dynamic frames, source, flags) of a condition; ``series_images``:
    :func:`aif_series_images` of its AIF series when already computed (the analysis starts it
    with the slices' motion correction, off the path from the slices to their fits)."""
    flags: list[str] = []
    if cd.aif is not None:
        try:
            curve, f = aif_from_series(
                cd.aif, field_strength_t, options=options, images=series_images
            )
        except (InputError, ValueError) as exc:
            curve, f = None, [f"AIF series failed: {getattr(exc, 'message', exc)}"]
        flags += f
        if curve is not None:
            return curve, AIF_DUAL, flags
    else:
        flags.append("no dual-sequence AIF series")
    curve, f = aif_from_slices(slices, field_strength_t, options)
    flags += f
    if curve is not None:
        return curve, AIF_POOL, flags
    return None, AIF_NONE, flags
