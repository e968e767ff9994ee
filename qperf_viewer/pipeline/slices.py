"""Per-slice stages: motion correction, segmentation, Gd conversion, AHA sectors
(:func:`prepare_slice`), pixelwise MBF over the dilated myocardium (:func:`quantify_slice`) and
the slice curves.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from qperf_viewer.errors import InputError
from qperf_viewer.exam import (
    LABEL_LV,
    LABEL_MYO,
    LABEL_RV,
    PerfusionExam,
    SliceSeries,
)
from qperf_viewer.pipeline.common import MAP_MARGIN_MM, Segmenter, StageClock
from qperf_viewer.pipeline.segmenter import as_segmentation, call_segmenter
from qperf_viewer.quant.btex import prior_cost
from qperf_viewer.results import (
    Curve,
    QuantOptions,
    Segmentation,
    SliceResult,
)

if TYPE_CHECKING:
    from qperf_viewer.quant.motion import MotionResult

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------ slice geometry
def dilate_mm(mask: np.ndarray, spacing_mm: tuple[float, float], margin_mm: float) -> np.ndarray:
    """``mask`` grown by ``margin_mm`` (Euclidean, anisotropic pixel spacing)."""
    if not mask.any():
        return mask.copy()
    d = ndimage.distance_transform_edt(~mask, sampling=tuple(float(s) for s in spacing_mm))
    return d <= margin_mm + 1e-6


def nearest_position(positions: list[str | None], k: int) -> str | None:
    """Position of slice ``k``, or for an extra slice (None) that of the nearest named one."""
    if positions[k] is not None:
        return positions[k]
    named = [(abs(j - k), j) for j, p in enumerate(positions) if p is not None]
    return positions[min(named)[1]] if named else None


def sector_map(
    seg: Segmentation | None, geometry, position: str | None
) -> tuple[np.ndarray | None, list[str]]:
    """AHA map of a segmentation (None and a flag when undefined)."""
    from qperf_viewer.sectors import aha_segments, insertion_point_flags

    if seg is None:
        return None, []
    if not (seg.labels == LABEL_MYO).any():
        return None, ["no myocardium segmented: no AHA segments"]
    if (
        seg.lv_centre is None
        or seg.rv_insertion_anterior is None
        or seg.rv_insertion_inferior is None
    ):
        return None, ["RV insertion points not found: AHA segments undefined"]
    if position is None:
        return None, ["slice position unknown: AHA segments undefined"]
    try:
        aha = aha_segments(
            seg.labels,
            geometry,
            seg.lv_centre,
            seg.rv_insertion_anterior,
            seg.rv_insertion_inferior,
            position,
        )
        flags = insertion_point_flags(
            geometry, seg.lv_centre, seg.rv_insertion_anterior, seg.rv_insertion_inferior
        )
    except InputError as exc:
        return None, [f"AHA segments undefined: {exc.message}"]
    return aha, flags


# --------------------------------------------------------------------------------- curves
def _region_mean(stack: np.ndarray, mask: np.ndarray) -> np.ndarray | None:
    if mask is None or not mask.any():
        return None
    return stack[:, mask].mean(axis=1).astype(np.float64)


def slice_curves(sr: SliceResult) -> list[Curve]:
    """Blood-pool, myocardium and per-segment curves of a slice over its dynamic frames
    (Gd in mmol/L, or signal above the pre-contrast level in a.u. without Gd)."""
    seg = sr.segmentation
    if seg is None:
        return []
    dyn = sr.series.dynamic_frames
    if dyn.size == 0:
        return []
    times = np.asarray(sr.series.times_s, dtype=np.float64)[dyn]
    if sr.gd is not None:
        stack, unit = sr.gd[dyn], "mmol/L"
    else:
        stack = sr.corrected[dyn]
        stack = stack - stack[: min(3, len(dyn))].mean(axis=0)
        unit = "a.u."
    lab = seg.labels
    out = []
    for name, mask in (
        ("lv_blood", lab == LABEL_LV),
        ("rv_blood", lab == LABEL_RV),
        ("myocardium", lab == LABEL_MYO),
    ):
        v = _region_mean(stack, mask)
        if v is not None:
            out.append(Curve(name, times, v, unit))
    if sr.aha is not None:
        for s in np.unique(sr.aha[sr.aha > 0]):
            v = _region_mean(stack, (sr.aha == s) & (lab == LABEL_MYO))
            if v is not None:
                out.append(Curve(f"segment_{int(s)}", times, v, unit))
    return out


# ------------------------------------------------------------------------ stage 1: slice
def motion_correct(ss: SliceSeries, clock: StageClock) -> MotionResult:
    """Motion correction of one slice's series (the first step of :func:`prepare_slice`)."""
    from qperf_viewer.quant.motion import correct_motion

    with clock("moco"):
        return correct_motion(
            ss.images, ss.pd_frames, pixel_spacing_mm=ss.geometry.pixel_spacing_mm
        )


def _segment(
    cond: str,
    ss: SliceSeries,
    corrected: np.ndarray,
    reference_frame: int,
    shifts_px: np.ndarray,
    segmenter: Segmenter,
    clock: StageClock,
    centre: tuple[float, float] | None = None,
) -> Segmentation:
    """Automatic segmentation of a motion-corrected slice; ``centre`` (row, col, pixels): a
    crop-centre hint for segmenters that take one (the shipped model)."""
    context: dict = dict(
        condition=cond, slice_index=ss.slice_index, series=ss,
        reference_frame=reference_frame, shifts_px=shifts_px,
    )  # fmt: skip
    if centre is not None:
        context["centre"] = centre
    with clock("segmentation"):
        out = call_segmenter(
            segmenter, corrected, ss.times_s, ss.pd_frames, ss.geometry, **context
        )  # fmt: skip
        return as_segmentation(out, ss.geometry)


def convert_gd(ss, corrected, labels, field_strength_t, options):
    """Gd conversion of a slice's motion-corrected (T, Y, X) signal ``corrected``
    (:func:`qperf_viewer.quant.gd.signal_to_gd` with the :class:`QuantOptions`; without PD
    frames the (Y, X) ``labels`` give the tissue classes of the assumed T1)."""
    from qperf_viewer.quant.gd import signal_to_gd

    cs = dataclasses.replace(ss, images=corrected, flags=[])
    tissue = labels if not ss.pd_frames else None
    opt = options or QuantOptions()
    return signal_to_gd(
        cs,
        field_strength_t=field_strength_t,
        tissue=tissue,
        r1=opt.r1_l_per_mmol_s,
        default_ts_ms=opt.default_ts_ms,
        already_gd=opt.already_gd,
    )


def _convert_gd(ss, corrected, seg, exam, clock, options):
    """:func:`convert_gd` of a slice, timed as the 'gd' stage."""
    with clock("gd"):
        return convert_gd(ss, corrected, seg.labels, exam.field_strength_t, options)


#: Segmentation flag of a slice whose heart the model could not locate on its own.
LOCALISATION_FLAG = "heart localisation uncertain"


def _mislocated(sr: SliceResult) -> bool:
    seg = sr.automatic
    if seg is None or sr.corrected is None:
        return False
    return LOCALISATION_FLAG in seg.flags or not (seg.labels == LABEL_MYO).any()


def relocate_slices(
    cond: str,
    slices: list[SliceResult],
    exam: PerfusionExam,
    segmenter: Segmenter,
    clock: StageClock,
    gd: bool = True,
    options: QuantOptions | None = None,
) -> None:
    """Segment again, in place, the slices of a condition whose heart the segmenter could not
    locate (flagged, or no myocardium), with the LV centre of the nearest slice of the same
    condition that was located as the crop centre (same image grid). The new segmentation is
    kept when it is located, has myocardium and a higher confidence; the slice is flagged
    with where its centre came from. (A phantom apical rest slice: the model's own search
    centred on the liver, found no myocardium; from the mid slice's centre it segmented 180
    of 181 true myocardial pixels.)"""
    good = [
        (k, sr) for k, sr in enumerate(slices)
        if sr is not None and not _mislocated(sr) and sr.automatic is not None
        and sr.automatic.lv_centre is not None
    ]  # fmt: skip
    for k, sr in enumerate(slices):
        if sr is None or not _mislocated(sr) or not good:
            continue
        same = [
            (j, g) for j, g in good
            if g.corrected.shape[1:] == sr.corrected.shape[1:]
            and tuple(g.series.geometry.pixel_spacing_mm)
            == tuple(sr.series.geometry.pixel_spacing_mm)
        ]  # fmt: skip
        if not same:
            continue
        _, donor = min(same, key=lambda jg: abs(jg[0] - k))
        seg = _segment(
            cond, sr.series, sr.corrected, sr.reference_frame, sr.shifts_px, segmenter, clock,
            centre=tuple(map(float, donor.automatic.lv_centre)),
        )  # fmt: skip
        old = sr.automatic
        if (
            LOCALISATION_FLAG in seg.flags
            or not (seg.labels == LABEL_MYO).any()
            or seg.confidence <= old.confidence
        ):
            continue
        note = (
            f"heart located from the LV centre of slice {donor.slice_index} "
            "(the automatic localisation failed on this slice)"
        )
        sr.automatic = sr.segmentation = seg
        if gd and sr.gd is not None:
            g = _convert_gd(sr.series, sr.corrected, seg, exam, clock, options)
            sr.gd = g.gd_mmol_l
            sr.maps["gd_valid"] = np.asarray(g.valid, dtype=bool)
            sr.flags = [f for f in sr.flags if not f.startswith("Gd: ")]
            sr.flags += [f"Gd: {f}" for f in _myocardial_gd_flags(g, seg)]
        sr.flags = list(dict.fromkeys(sr.flags + [note]))


def prepare_slice(
    cond: str,
    ss: SliceSeries,
    position_for_aha: str | None,
    exam: PerfusionExam,
    segmenter: Segmenter,
    clock: StageClock,
    gd: bool = True,
    options: QuantOptions | None = None,
    sectors: bool = True,
    motion: MotionResult | None = None,
) -> SliceResult:
    """Motion correction (unless ``motion``, the slice's :func:`motion_correct` result, is
    given), segmentation, Gd conversion (unless ``gd`` is False; r1, default TS and
    already-Gd from ``options``) and AHA sectors of one slice (unless ``sectors`` is False:
    then :func:`finish_slice` adds them, e.g. after the condition's insertion points were made
    consistent)."""
    flags: list[str] = []
    mr = motion_correct(ss, clock) if motion is None else motion
    flags += list(mr.flags)
    corrected = np.asarray(mr.corrected, dtype=np.float32)
    seg = _segment(
        cond, ss, corrected, int(mr.reference_frame), mr.shifts_px, segmenter, clock
    )  # fmt: skip
    g = None
    if gd:
        g = _convert_gd(ss, corrected, seg, exam, clock, options)
        flags += [f"Gd: {f}" for f in _myocardial_gd_flags(g, seg)]
    sr = SliceResult(
        condition=cond,
        slice_index=ss.slice_index,
        position=ss.position,
        series=ss,
        reference_frame=int(mr.reference_frame),
        corrected=corrected,
        shifts_px=np.asarray(mr.shifts_px, dtype=np.float64),
        gd=None if g is None else g.gd_mmol_l,
        segmentation=seg,
        aha=None,
        flags=list(dict.fromkeys(list(ss.flags) + flags)),
        automatic=seg,
    )
    if g is not None:
        sr.maps["gd_valid"] = np.asarray(g.valid, dtype=bool)
    if sectors:
        finish_slice(sr, position_for_aha, clock)
    return sr


def finish_slice(sr: SliceResult, position_for_aha: str | None, clock: StageClock) -> None:
    """AHA sectors of a prepared slice (``sr.aha``) and its sector and dark-rim flags."""
    with clock("sectors"):
        aha, flags = sector_map(sr.segmentation, sr.series.geometry, position_for_aha)
    with clock("qc"):
        flags += _dark_rim_flags(sr.condition, sr.series, sr.corrected, sr.segmentation, aha)
    sr.aha = aha
    sr.flags = list(dict.fromkeys(sr.flags + flags))


def consistent_insertion_points(slices: list[SliceResult]) -> None:
    """Moves automatic RV insertion points that disagree with the condition's other slices
    (:func:`~qperf_viewer.seg.rv_insertion.consistent_insertions`) and flags the slice; call
    before :func:`finish_slice`. Manually edited segmentations are left alone."""
    from qperf_viewer.seg.rv_insertion import RvInsertion, consistent_insertions

    auto = [
        sr
        for sr in slices
        if sr.segmentation is not None
        and sr.segmentation is sr.automatic
        and sr.segmentation.source == "automatic"
    ]
    items = [
        (
            sr.segmentation.labels,
            sr.series.geometry,
            RvInsertion(
                sr.segmentation.lv_centre,
                sr.segmentation.rv_insertion_anterior,
                sr.segmentation.rv_insertion_inferior,
            ),
        )
        for sr in auto
    ]
    for fix in consistent_insertions(items):
        sr = auto[fix.slice]
        key = f"rv_insertion_{fix.which}"
        seg = dataclasses.replace(sr.segmentation, **{key: fix.point})
        sr.segmentation = sr.automatic = seg
        sr.flags.append(
            f"RV insertion ({fix.which}) moved to agree with the other slices "
            f"(the detected point was {abs(fix.off_deg):.0f} deg off theirs)"
        )


def _dark_rim_flags(cond, ss: SliceSeries, corrected: np.ndarray, seg, aha) -> list[str]:
    """Dark-rim suspicion of a slice (:mod:`qperf_viewer.quant.darkrim`) as report flags."""
    from qperf_viewer.quant.darkrim import check_dark_rim, dark_rim_flag

    dyn = ss.dynamic_frames
    if seg is None or aha is None or np.size(dyn) == 0:
        return []
    try:  # a quality check never sinks the slice
        check = check_dark_rim(
            corrected[dyn], seg.labels, aha, spacing_mm=ss.geometry.pixel_spacing_mm
        )
    except Exception:  # noqa: BLE001
        log.warning("%s slice %d: dark-rim check failed", cond, ss.slice_index, exc_info=True)
        return []
    f = dark_rim_flag(check, cond)
    return [f] if f else []


def failed_slice(cond: str, ss: SliceSeries, why: str) -> SliceResult:
    n_t = int(ss.images.shape[0]) if np.ndim(ss.images) == 3 else 0
    return SliceResult(
        condition=cond,
        slice_index=ss.slice_index,
        position=ss.position,
        series=ss,
        reference_frame=0,
        corrected=np.asarray(ss.images, dtype=np.float32),
        shifts_px=np.zeros((n_t, 2)),
        gd=None,
        segmentation=None,
        aha=None,
        flags=list(ss.flags) + [f"analysis failed: {why}"],
    )


# ---------------------------------------------------------------------------- stage 3: MBF
#: Share (%) of the core's tissue-like pixels that enhance earliest (largest fraction of their
#: own peak reached at the AIF peak: blood spill from a one-pixel shift of the endocardial
#: border) left out of the curve that centres the BTEX pixel lattice. 25% at first (over 3
#: seeds x 13 phantom variants it lowered the summed condition errors by 6%); with the RV
#: blood removed from the map's pixels and the lattice centre's blood-volume prior (stop 22)
#: 12.5% did better over 5 seeds x 13 variants: 60 of 65 runs within the targets against the
#: phantom's segment_mbf, summed condition error 586% (25%: 58 and 628%; 0%: 56 and 581%
#: with a worst segment 35% off, a basal slice whose core curve carries LV blood read +11%).
#: Used for the bolus-arrival delay as well it made both worse.
#: Known side effect (stop 29): the pick is made on each pixel's own noisy curve, so the pixels
#: left out are also those whose noise was high at the bolus peak, and the kept mean is low on
#: the upslope. On the noise-free exam normal 209 with Rician noise at a myocardial baseline
#: SNR of 3 added to its corrected images (truth masks, true delay, 4 draws) the reference's
#: fitted flow fell 4.6% (stress) / 3.3% (rest) below its noise-free value, against 1.9% /
#: 2.1% for the untrimmed mean. Picks that avoid it were benchmarked over the 65 runs and not
#: adopted: on 3x3 neighbourhood means projected on 4 temporal components (58 runs within the
#: targets against 61, summed condition error 552% against 562%, stress bias -1.5% against
#: -3.0%, but 7 conditions with a segment over 20% against 3) and on the 8-neighbour mean
#: without the pixel itself (57 runs, 558%, 8 conditions over 20%). The lower values offset
#: blood spill elsewhere: the endocardial ring next to the LV pool reads 20-34% above the rest
#: of the wall (truth: 2-5%) in dark_rim 211, whose apical septal segment reads +25% at rest.
REFERENCE_TRIM_PERCENT = 12.5


def _typical_curve(
    gd: np.ndarray,
    myo: np.ndarray,
    aif: Curve,
    times: np.ndarray | None = None,
    trim_percent: float = 0.0,
) -> np.ndarray:
    """Mean (T,) Gd curve of the myocardial pixels that look like tissue: peak above 1% and
    below 50% of the AIF peak (blood partial volume out); all myocardium when too few.

    trim_percent (with the frame ``times``, s): also leave out that share of the pixels that
    enhance earliest (largest fraction of their own peak, 3-frame smoothed, over the two
    frames from the AIF peak), when 20 or more remain to choose from."""
    curves = gd[:, myo]
    pk = curves.max(axis=0)
    peak_blood = float(np.max(aif.values))
    sel = (pk > 0.01 * peak_blood) & (pk < 0.5 * peak_blood)
    n_t = curves.shape[0]
    if times is not None and trim_percent > 0 and sel.sum() >= 20 and n_t >= 3:
        c = curves[:, sel]
        sm = ndimage.uniform_filter1d(c, 3, axis=0)
        k = int(np.searchsorted(times, aif.times_s[int(np.argmax(aif.values))]))
        k = min(k, c.shape[0] - 2)
        early = sm[k : k + 2].mean(axis=0) / np.maximum(sm.max(axis=0), 1e-12)
        keep = early <= np.percentile(early, 100.0 - trim_percent)
        if np.isfinite(early).all() and keep.sum() >= 5:
            return c[:, keep].mean(axis=1)
    return (curves[:, sel] if sel.sum() >= 5 else curves).mean(axis=1)


#: Delays scanned around the free BTEX fit (s). +-0.6 s gave the same segment values as +-1.0 s
#: on 12 of the 13 variants of ``benchmarks/bench_accuracy.py`` (the 13th stayed within the
#: targets) in 40% less scan time; a 0.2 s step lost accuracy. The best delay of this 0.1 s
#: scan is refined on a 0.05 s grid (its two midpoints): over the 39 exams the condition delay
#: error (RMS) was 0.098 s at stress and 0.118 s at rest on a 0.05 s scan, 0.104 and 0.144 s
#: on the 0.1 s scan alone (offline, fixed prior centre; a parabolic refinement of the
#: 0.05 s scan's minimum was worse: 0.100 / 0.122 s).
DELAY_SCAN_S = np.round(np.arange(-0.6, 0.6001, 0.1), 3)
DELAY_REFINE_S = 0.05
#: Delays (s) of a coarse scan that centres the 0.1 s scan when neither free fit of the core
#: curve (BTEX, then the Fermi upslope) converged. Noise-free phantom exam three_tesla 502 at
#: stress (generator version 3: its first pass falls in sharp breathing frames): both free
#: fits failed on all three slices, the condition had no delay and every pixel fit was
#: unreliable (segments -100%); with this scan its delay is 0.10 s late and its segments read
#: within 10% (BTEX). The phantom's tissue delays are 0.3-1.2 s.
DELAY_FALLBACK_S = np.round(np.arange(0.0, 3.0001, 0.2), 3)
#: The 0.1 s scan is searched coarse to fine: every other delay of it first (0.2 s steps),
#: then in one batch the two 0.1 s neighbours of their best and its two midpoints (11 fitted
#: delays instead of 15; one more when a neighbour wins). On the 192 slice scans of seeds
#: 101-301 of ``benchmarks/bench_accuracy.py`` (all 13 delays fitted and logged) the coarse
#: search picked the full scan's best delay every time; the scan of a stress+rest exam takes
#: about 20% less CPU (1.87 s against 2.32 s, 6 slices, best of 3).
DELAY_SCAN_COARSE = True


#: Fermi maps take their bolus-arrival delay from the BTEX delay scan as well (True), not
#: from the Fermi model's upslope estimate. Over the 39 exams of
#: ``benchmarks/bench_accuracy.py`` (3 seeds x 13 variants, 2026-12-03) with Fermi: 7 runs
#: met all targets instead of 4, summed condition MAE 775% instead of 1040%, worst MPR error
#: 23% instead of 51%, SD of the stress condition bias 5.7% instead of 16%.
DELAY_FROM_BTEX = True


def _myocardial_gd_flags(g, seg) -> list[str]:
    """Gd-conversion flags for the report: the count of clipped signal ratios is given for
    the myocardium only (the whole image's count is dominated by air and blood at the bolus
    peak, which the report does not use)."""
    flags = [f for f in g.flags if not f.startswith("S >= S_pd")]
    n_clip = getattr(g, "n_clipped", None)
    if seg is not None and n_clip is not None and np.shape(n_clip) == np.shape(seg.labels):
        myo = np.asarray(seg.labels) == LABEL_MYO
        n = int(np.asarray(n_clip)[myo].sum())
        if n:
            flags.append(
                f"S >= S_pd (or within noise of it) in {n} myocardial pixel-frames: ratio clipped"
            )
    return flags


class FallbackDelay(float):
    """A reference delay (s) that only the fallback scan (``DELAY_FALLBACK_S``) found: a
    condition uses it only when none of its slices has a delay from a converged free fit
    (:func:`condition_delays`)."""


def reference_delay(
    aif: Curve,
    curve: np.ndarray,
    times: np.ndarray,
    model: str = "btex",
    scan: bool = True,
    hematocrit: float = 0.42,
) -> float | None:
    """Reference bolus-arrival delay (s) of a slice's map from its high-SNR myocardial curve
    (T,) at ``times`` (s); None when the curve cannot be fitted.

    The delay is a property of the data, not of the model that maps the flow: it comes from
    the BTEX fit below for both models (``model`` is the map's model; see
    ``DELAY_FROM_BTEX``). The Fermi model's own upslope estimate was 0.1-0.5 s off on phantom
    curves with noise and k-space blur, and a stress condition's Fermi values follow their
    delay error by about 4% per 0.1 s.

    The BTEX likelihood is almost flat along a valley where a later delay trades for a shorter
    capillary transit (smaller blood volume) and a higher flow: noise-free phantom curves pin
    the delay, measured ones (noise, blur) do not, and the map's flow follows the delay by
    tens of percent. The curve is therefore fitted at fixed delays around the free fit and
    the delay minimising ``(T / btex.FRAMES_PER_DOF) log(RSS) + (log(vb / vb0(F)) / log 1.4)^2``
    (:func:`btex.prior_cost`: a physiological prior on the blood volume, centred on
    :func:`btex.vb_prior_centre` of the
    fitted flow, which decides where the data are nearly indifferent) is used: a 0.1 s scan
    (``DELAY_SCAN_S``), then the two 0.05 s midpoints around its best delay. When neither the
    free BTEX fit nor the Fermi upslope converges, a coarse scan over ``DELAY_FALLBACK_S``
    centres it, and the delay is returned as a :class:`FallbackDelay`.
    """
    from qperf_viewer.quant.mapping import DELAY_BOUNDS_S, fit_curves

    if model not in ("btex", "fermi"):
        raise InputError(f"Unknown kinetic model {model!r}; choose 'btex' or 'fermi'.")
    fit_model = "btex" if DELAY_FROM_BTEX or model == "btex" else model
    # the free-delay fit itself ("each"; the default "shared" would refit at that delay)
    ref = fit_curves(
        aif.values, curve[None], times, model=fit_model, aif_times_s=aif.times_s,
        hematocrit=hematocrit, delay_s="each", prior=False,
    )  # fmt: skip
    from qperf_viewer.quant import btex

    start = None
    if ref.reliable[0]:
        d0 = float(np.clip(ref.delay_s[0], *DELAY_BOUNDS_S))
        if fit_model != "btex" or not scan:
            return d0
        # the free fit's shape starts every fixed-delay fit, besides the best dictionary
        # atoms (``mapping.SCAN_STARTS``): from the best atom alone the fits near the true
        # delay stopped in a local minimum
        start = np.array([float(ref.params[k][0]) for k in btex.SHAPE_PARAMS])
    elif fit_model == "btex" and scan:
        # the free fit can run off along the valley (later and later, the flow beyond the
        # plausible range: unreliable); the scan is then centred on the model-free upslope
        # delay (the Fermi fit's) and its fits start from the dictionary atoms alone
        up = fit_curves(
            aif.values, curve[None], times, model="fermi", aif_times_s=aif.times_s,
            hematocrit=hematocrit, delay_s="each",
        )  # fmt: skip
        # neither free fit converged either: the scan is centred on the best of a coarse
        # scan over the plausible delays (``DELAY_FALLBACK_S``)
        d0 = float(np.clip(up.delay_s[0], *DELAY_BOUNDS_S)) if up.reliable[0] else None
    else:
        return None

    def cost(grid: np.ndarray) -> np.ndarray:
        fits = fit_curves(
            aif.values, np.repeat(curve[None], grid.size, axis=0), times, model="btex",
            aif_times_s=aif.times_s, delay_s=grid, hematocrit=hematocrit, start_shape=start,
        )  # fmt: skip
        rss = np.maximum(np.asarray(fits.residual_rms, float), 1e-12) ** 2
        c = prior_cost(rss, fits.vb, fits.mbf_ml_min_g, times.size)
        return np.where(np.asarray(fits.reliable, bool), c, np.inf)

    known: dict[float, tuple[float, float]] = {}  # rounded delay -> (delay, cost)

    def fit(delays: np.ndarray) -> None:
        """Fit the delays (s) not fitted yet, in one batch."""
        todo = [float(d) for d in np.unique(delays) if round(float(d), 9) not in known]
        if todo:
            for d, v in zip(todo, cost(np.array(todo)), strict=True):
                known[round(d, 9)] = (d, float(v))

    def best_of(delays: np.ndarray) -> tuple[float, float]:
        """(delay, cost) of the lowest cost among fitted ``delays``."""
        got = [known[round(float(d), 9)] for d in delays if round(float(d), 9) in known]
        return min(got, key=lambda dc: dc[1])

    def midpoints(d: float) -> np.ndarray:
        return np.clip(d + np.array([-1.0, 1.0]) * DELAY_REFINE_S, *DELAY_BOUNDS_S)

    fallback = d0 is None
    if fallback:
        wide = np.unique(np.clip(DELAY_FALLBACK_S, *DELAY_BOUNDS_S))
        fit(wide)
        d0, c0 = best_of(wide)
        if not np.isfinite(c0):
            return None
    full = np.unique(np.clip(d0 + DELAY_SCAN_S, *DELAY_BOUNDS_S))
    if DELAY_SCAN_COARSE and full.size > 3:
        # every other delay, then in one batch the best one's neighbours and midpoints
        fit(full[::2])
        b, c_b = best_of(full[::2])
        if not np.isfinite(c_b):
            return d0
        i = int(np.searchsorted(full, b))
        fit(np.concatenate([full[max(i - 1, 0) : i + 2], midpoints(b)]))
    else:
        fit(full)
    best, c_best = best_of(full)
    if not np.isfinite(c_best):
        return FallbackDelay(d0) if fallback else d0
    # the scan's best, replaced by one of its 0.05 s midpoints where that fits better
    fit(midpoints(best))
    d_mid, c_mid = best_of(midpoints(best))
    d = d_mid if c_mid < c_best else best
    return FallbackDelay(d) if fallback else d


#: The myocardial core of the reference curves: the myocardium eroded by one pixel with 4
#: neighbours (``CORE_NEIGHBOURS`` = 4); with 8 (every neighbour myocardium), the 4-neighbour
#: erosion and then the whole myocardium are fallbacks where fewer than ``CORE_MIN_PIXELS``
#: remain. Stop 27 measured 8 with cubic resampling: delay error RMS over the 65 benchmark runs
#: 0.062 s instead of 0.077 s at stress, but 61 / 52 runs and 587% against 61 / 53 and 562%.
#: Stop 32 measured it with linear resampling (``motion.RESAMPLE_ORDER``), where diagonal
#: neighbours enter every half-pixel frame and the 4-neighbour core took LV blood (noise-free
#: normal 309: stress delay 0.23 s early, BTEX segments -20%; 8 neighbours: 0.035 s late, at
#: most 4.5%); see ``RESAMPLE_ORDER`` for why neither was adopted. Stop 33 measured 8 with the
#: clamped cubic (``motion.RESAMPLE_CLAMP``): noise-free held-out exams 51 of 52 (4 neighbours:
#: 47), but 60 / 50 of the 65 noisy runs (64 / 56), 595% (566%), 5 conditions with a segment
#: over 20% (none); for the delay only (the lattice centre from 4): 59 / 50, 604%, 4.
CORE_NEIGHBOURS = 4
CORE_MIN_PIXELS = 20
#: Also leave out of the core the pixels with a blood pool (LV or RV) among their 8 neighbours
#: (the diagonal ones that the 4-neighbour erosion keeps), where at least ``CORE_MIN_PIXELS``
#: remain: during the first pass the pools are several times brighter than the wall, and a
#: pixel touching one at a corner carries some of it (its own partial volume, resampling),
#: which makes the core curve rise early; fat and lung beside the wall carry no contrast, so
#: the 4-neighbour erosion stays on that side and the core keeps more pixels (noise) than the
#: 8-neighbour erosion. Measured at stop 33 with the clamped cubic (``motion.RESAMPLE_CLAMP``)
#: and not adopted: noise-free held-out exams 49 of 52 (off: 47), stress delay error RMS on
#: the 65 noisy runs 0.060 s (0.075 s), but 60 / 51 of those runs (64 / 56), 587.5% (566.1%),
#: 3 conditions with a segment over 20% (none).
CORE_AWAY_FROM_BLOOD = False


def myocardial_core(myo: np.ndarray, blood: np.ndarray | None = None) -> np.ndarray:
    """(Y, X) bool core of a (Y, X) myocardium mask for the reference curves
    (``CORE_NEIGHBOURS``); ``blood`` (Y, X) bool: the LV and RV pools, whose 8-neighbours
    leave the core too when ``CORE_AWAY_FROM_BLOOD`` is set."""
    if CORE_NEIGHBOURS == 8:
        core = ndimage.binary_erosion(myo, structure=np.ones((3, 3), bool))
        if core.sum() >= CORE_MIN_PIXELS:
            return core
    core = ndimage.binary_erosion(myo)
    if CORE_AWAY_FROM_BLOOD and blood is not None and blood.any():
        away = core & ~ndimage.binary_dilation(blood, structure=np.ones((3, 3), bool))
        if away.sum() >= CORE_MIN_PIXELS:
            return away
    return core if core.sum() >= CORE_MIN_PIXELS else myo


def _map_inputs(sr: SliceResult):
    """(myocardium, map region, core, frame times, dynamic Gd) of a slice, or None."""
    seg = sr.automatic or sr.segmentation
    myo = np.zeros(sr.corrected.shape[1:], bool)
    for s in (sr.automatic, sr.segmentation):
        if s is not None:
            myo |= s.labels == LABEL_MYO
    if seg is None or not myo.any() or sr.gd is None:
        return None
    region = dilate_mm(myo, sr.series.geometry.pixel_spacing_mm, MAP_MARGIN_MM)
    dyn = sr.series.dynamic_frames
    times = np.asarray(sr.series.times_s, dtype=np.float64)[dyn]
    # The map's reference curve (bolus-arrival delay and, for BTEX, the centre of the pixel
    # lattice) is the mean tissue-like curve of the myocardium's core: border pixels carry
    # blood partial volume and k-space blur, which make the tissue look earlier and the
    # fitted flow much lower (see ``CORE_NEIGHBOURS``).
    core = myocardial_core(myo, np.isin(seg.labels, (LABEL_LV, LABEL_RV)))
    return myo, region, core, times, sr.gd[dyn]


@dataclasses.dataclass
class KineticJob:
    """Inputs of one slice's kinetic fits, made in the analysis process and sent (pickled) to
    a worker: :func:`run_delay_job` (bolus-arrival delay) and :func:`run_map_job` (pixel map).

    aif: the condition's AIF (whole-blood Gd, mmol/L). times: the slice's dynamic frame times
    (T,), s. typical: the mean tissue-like Gd curve of the myocardial core (T,), mmol/L (the
    reference delay). reference: the same without the earliest-enhancing pixels (the BTEX
    lattice centre; map jobs). tissue: Gd of the map region's pixels, (T, N) in mmol/L (map
    jobs). model: 'btex' or 'fermi'; hematocrit: fraction.
    """

    aif: Curve
    times: np.ndarray
    typical: np.ndarray
    model: str
    hematocrit: float
    reference: np.ndarray | None = None
    tissue: np.ndarray | None = None


def _kinetic_job(
    sr: SliceResult, aif: Curve, model: str, clock: StageClock, hematocrit: float, pixels: bool
) -> KineticJob | None:
    inputs = _map_inputs(sr)
    if inputs is None:
        return None
    myo, region, core, times, gd = inputs
    with clock("mbf"):
        rv = rv_signal(sr) if RV_SPILL else None
        job = KineticJob(
            aif, times, remove_rv_spill(_typical_curve(gd, core, aif), rv, aif, times),
            model, hematocrit,
        )  # fmt: skip
        if not pixels:
            keep = delay_frames(sr, job.typical)
            job.times, job.typical = job.times[keep], job.typical[keep]
        if pixels:
            # the lattice centre: without the earliest-enhancing core pixels (blood spill)
            ref = _typical_curve(gd, core, aif, times, REFERENCE_TRIM_PERCENT)
            job.reference = remove_rv_spill(ref, rv, aif, times)
            job.tissue = gd[:, region]
            if PIXEL_RV_SPILL:
                seg = sr.automatic or sr.segmentation
                job.tissue = remove_rv_spill_pixels(
                    gd, region, myo, rv, aif, times, rv_mask=seg.labels == LABEL_RV
                )
        return job


#: The bolus-arrival delay is fitted on the dynamic frames within this distance (mm) of the
#: motion-correction reference only, when at least ``DELAY_MIN_STILL_SHARE`` of them are
#: (None: all frames). A frame far from the reference is resampled across its whole
#: displacement, which spreads the blood pool and the epicardial fat a little into the core
#: curve (interpolation blur): on the noise-free phantom
#: exam ``standard`` 110, breathing from the middle of the stress first pass (up to 5 px)
#: made the core curve 1-1.5% high on the moving upslope frames; the delay came out 0.045 s
#: late, and its stress segments read +4-7% (BTEX) and +9-15% (Fermi) instead of at most
#: +2.8% and +8% at the true delay. With the frames within 2 mm: -0.002 s (0.000 s with the
#: 0.15 s fine grid of ``mapping.FINE_DT_S``).
DELAY_MAX_SHIFT_MM: float | None = 2.0
DELAY_MIN_STILL_SHARE = 0.5


def still_frames(sr: SliceResult) -> np.ndarray:
    """Boolean mask over the slice's dynamic frames that the delay is fitted on: those whose
    motion-correction shift from the reference is at most ``DELAY_MAX_SHIFT_MM``, or all of
    them when fewer than ``DELAY_MIN_STILL_SHARE`` are (free breathing)."""
    dyn = sr.series.dynamic_frames
    keep = np.ones(len(dyn), dtype=bool)
    if DELAY_MAX_SHIFT_MM is None or sr.shifts_px is None:
        return keep
    spacing = np.asarray(sr.series.geometry.pixel_spacing_mm, dtype=float)
    shift_mm = np.hypot(*(np.asarray(sr.shifts_px, dtype=float)[dyn] * spacing).T)
    still = shift_mm <= DELAY_MAX_SHIFT_MM
    return still if still.sum() >= DELAY_MIN_STILL_SHARE * still.size else keep


#: The still frames are used for the delay only when no gap between two of them spans more
#: than this share of the core curve's rise (baseline to peak): otherwise the frames left out
#: carry most of the tissue's upslope, and without it the delay is not pinned. Standard 501
#: (noisy) at stress breathes over the whole first pass: gaps of 0.87-0.92 of the rise; with
#: linear resampling (``motion.RESAMPLE_ORDER`` = 1, measured at stop 32) two slice delays slid
#: to 2.2 and 2.9 s (truth 0.88 s) and almost every pixel fit failed; with all frames 0.83, 0.94 and
#: 0.81 s; with cubic resampling the still frames happened to give 0.91 and 0.98 s. The
#: noise-free standard 110 breathes from the middle of its stress first pass: gaps of
#: 0.55-0.65, where the still frames are the better choice (delay +0.004 s; +0.032 s and Fermi
#: segments up to 10.5% with all frames). With cubic resampling the 65 benchmark runs give the
#: same figures with and without this rule.
DELAY_MAX_RISE_GAP = 0.75


def delay_frames(sr: SliceResult, curve: np.ndarray) -> np.ndarray:
    """Boolean mask over the slice's dynamic frames that its delay is fitted on: the
    :func:`still_frames`, unless they leave out most of the (T,) core ``curve``'s rise
    (``DELAY_MAX_RISE_GAP``): then all frames."""
    keep = still_frames(sr)
    c = np.asarray(curve, dtype=np.float64)
    if keep.all() or keep.sum() < 2 or c.shape != keep.shape:
        return np.ones_like(keep) if keep.sum() < 2 else keep
    rise = float(c.max() - np.median(c[: max(3, c.size // 5)]))
    gaps = np.diff(c[keep])
    if rise > 0 and float(gaps.max()) > DELAY_MAX_RISE_GAP * rise:
        return np.ones_like(keep)
    return keep


#: Remove the RV blood pool's spill from the myocardial reference curves (True).
RV_SPILL = True
#: The RV's signal rise before the AIF's foot must reach this share of its full rise.
RV_SPILL_MIN_PRE_FOOT = 0.5


def rv_signal(sr: SliceResult) -> np.ndarray | None:
    """(T,) mean signal of the slice's RV blood pool over its dynamic frames minus its
    pre-contrast level (median of the first three dynamic frames); None without an RV."""
    seg = sr.automatic or sr.segmentation
    if seg is None or sr.corrected is None:
        return None
    rv = seg.labels == LABEL_RV
    if rv.sum() < 5:
        return None
    dyn = sr.series.dynamic_frames
    sig = sr.corrected[dyn][:, rv].mean(axis=1).astype(np.float64)
    return sig - float(np.median(sig[:3]))


def remove_rv_spill(
    curve: np.ndarray, rv: np.ndarray | None, aif: Curve, times: np.ndarray
) -> np.ndarray:
    """A myocardial Gd curve (T,) without the RV blood pool's spill (blur and ringing of the
    k-space window carry the RV's early, bright bolus into the myocardium: the curve rises
    before the LV blood does, and its fitted bolus arrival comes early).

    The RV's bolus passes before the LV's: over the frames before the AIF's foot (5% of its
    peak) the tissue has no contrast yet, so the curve there is spill alone; its least-squares
    coefficient on the RV signal ``rv`` (T,) is estimated there and ``coef * rv`` removed from
    every frame. Unchanged without an RV signal, when it does not enhance, or when the RV has
    not risen by half before the foot (no separation)."""
    if rv is None or rv.shape != curve.shape:
        return curve
    pre = _rv_before_foot(rv, aif, times)
    if pre is None:
        return curve
    coef = float(pre @ curve[: pre.size] / max(float(pre @ pre), 1e-12))
    return curve - float(coef) * rv


def _rv_before_foot(rv: np.ndarray, aif: Curve, times: np.ndarray) -> np.ndarray | None:
    """The RV signal (T,) over the frames before the AIF's foot (5% of its peak, at the
    slice's ``times``), or None when the AIF is unusable, the RV does not enhance, or it has
    not risen by ``RV_SPILL_MIN_PRE_FOOT`` of its rise before the foot (no separation)."""
    from qperf_viewer.quant.aif import align_aif

    a, _ = align_aif(aif.values, aif.times_s, times)
    a = np.asarray(a, dtype=float)
    if not np.isfinite(a).all() or a.max() <= 0:
        return None
    foot = int(np.argmax(a > 0.05 * a.max()))
    pre = rv[:foot]
    if foot < 2 or rv.max() <= 0 or pre.max(initial=0.0) < RV_SPILL_MIN_PRE_FOOT * rv.max():
        return None
    return pre


#: Remove the RV blood pool's share from the map's pixel curves as well (True): in the phantom
#: exams the anteroseptal segments (2, 8, 14: the septum's RV side) read 9-15% high at rest
#: from RV blood in their border pixels (no_motion seed 103; within 2.5% since).
#: Alone (stop 18) this lowered the values everywhere and was not adopted; with the RV
#: share divided out near the pool (``PIXEL_RV_UNMIX``), pixels beyond
#: ``PIXEL_RV_SPILL_RANGE_PX`` left alone and the lattice centre's blood-volume prior
#: (``mapping.LATTICE_CENTRE_PRIOR``), 60 of 65 benchmark runs met the targets against the
#: phantom's segment_mbf (57 before), 49 against the median truth (42), summed condition
#: error 586% (643%), worst segment 26.0% (30.8%); see the README's accuracy section.
PIXEL_RV_SPILL = True
#: Gaussian SD (pixels) of the smoothing of the spill coefficients over the myocardium (a
#: pixel's few pre-foot frames are noisy; the pool's own coefficients are kept out of it).
PIXEL_RV_SPILL_SIGMA_PX = 1.0
#: Divide each pixel's curve by its tissue share ``1 - f`` after the RV blood is removed,
#: ``f`` = the pixel's coefficient over the RV pool's own (partial volume: a border pixel
#: holds ``(1 - f)`` tissue), at most ``PIXEL_RV_UNMIX_MAX``.
PIXEL_RV_UNMIX = True
PIXEL_RV_UNMIX_MAX = 0.5
#: Only pixels within this distance (pixels) of the RV label lose RV blood (blur and partial
#: volume reach 1-2 pixels: within 2 pixels the phantom's coefficients were worth 0.2-0.46
#: mmol/L at the RV's peak, beyond 3 pixels at most 0.012, and removing those lowered curves
#: that carry no RV blood). None: every pixel.
PIXEL_RV_SPILL_RANGE_PX: float | None = 3.0


def remove_rv_spill_pixels(
    gd: np.ndarray,
    region: np.ndarray,
    myo: np.ndarray,
    rv: np.ndarray | None,
    aif: Curve,
    times: np.ndarray,
    rv_mask: np.ndarray | None = None,
) -> np.ndarray:
    """The map region's Gd curves (T, N, pixels in ``region`` order) without the RV blood
    pool's share (see :func:`remove_rv_spill`).

    Per pixel, the least-squares coefficient of its curve on the RV signal ``rv`` (T,) over
    the frames before the AIF's foot (no tissue contrast yet), smoothed over the myocardium
    ``myo`` (normalised Gaussian, ``PIXEL_RV_SPILL_SIGMA_PX``), times ``rv`` is removed.
    With the RV label ``rv_mask`` (Y, X) only pixels within ``PIXEL_RV_SPILL_RANGE_PX`` of it
    are changed, and (``PIXEL_RV_UNMIX``) each is divided by its tissue share ``1 - f``,
    ``f`` = its coefficient over the median of the pool's own. gd: (T, Y, X) dynamic Gd
    (mmol/L); region, myo: (Y, X) bool. Unchanged without an RV signal that rises before
    the AIF's foot."""
    tissue = gd[:, region]
    if rv is None or rv.shape[0] != gd.shape[0]:
        return tissue
    pre = _rv_before_foot(rv, aif, times)
    if pre is None:
        return tissue
    num = np.tensordot(pre, gd[: pre.size].astype(np.float64), axes=(0, 0))  # (Y, X)
    coef = np.nan_to_num(num / max(float(pre @ pre), 1e-12), nan=0.0, posinf=0.0, neginf=0.0)
    w = myo.astype(np.float64)
    norm = ndimage.gaussian_filter(w, PIXEL_RV_SPILL_SIGMA_PX)
    smooth = ndimage.gaussian_filter(coef * w, PIXEL_RV_SPILL_SIGMA_PX)
    coef = np.where(myo & (norm > 1e-6), smooth / np.maximum(norm, 1e-6), coef)
    if rv_mask is not None and rv_mask.any() and PIXEL_RV_SPILL_RANGE_PX is not None:
        near = ndimage.distance_transform_edt(~rv_mask) <= PIXEL_RV_SPILL_RANGE_PX
        coef = np.where(near | rv_mask, coef, 0.0)
    out = tissue - (coef[region][None, :] * rv[:, None]).astype(tissue.dtype)
    if PIXEL_RV_UNMIX and rv_mask is not None and rv_mask.sum() >= 5:
        pool = ndimage.binary_erosion(rv_mask)
        pool = pool if pool.sum() >= 5 else rv_mask
        c_pool = float(np.median(coef[pool]))
        if c_pool > 0:
            frac = np.clip(coef[region] / c_pool, 0.0, PIXEL_RV_UNMIX_MAX)
            out = out / (1.0 - frac)[None, :].astype(out.dtype)
    return out


def delay_job(
    sr: SliceResult, aif: Curve, model: str, clock: StageClock, hematocrit: float = 0.42
) -> KineticJob | None:
    """The inputs of a slice's reference delay; None when the slice has no map inputs."""
    return _kinetic_job(sr, aif, model, clock, hematocrit, pixels=False)


def run_delay_job(job: KineticJob, clock: StageClock) -> float | None:
    """Reference bolus-arrival delay (s) of a :func:`delay_job` (:func:`reference_delay`);
    None when the curve cannot be fitted."""
    with clock("mbf"):
        return reference_delay(
            job.aif, job.typical, job.times, job.model, hematocrit=job.hematocrit
        )


def slice_reference_delay(
    sr: SliceResult, aif: Curve, model: str, clock: StageClock, hematocrit: float = 0.42
) -> float | None:
    """Bolus-arrival delay (s) of a slice's map from its myocardial core curve
    (:func:`reference_delay`); None when the slice has no map inputs or no fit."""
    job = delay_job(sr, aif, model, clock, hematocrit)
    return None if job is None else run_delay_job(job, clock)


#: Largest difference (s) kept between a slice's reference delay and its condition's median
#: (0: one delay per condition; 0.1 s and 0.05 s gave larger worst-segment errors on the
#: synthetic exams of ``benchmarks/bench_accuracy.py``).
SLICE_DELAY_SPREAD_S = 0.0


def condition_delays(delays: list[float | None]) -> list[float | None]:
    """Slice reference delays drawn towards their condition's median.

    The slices of one condition share the bolus (the AIF) and the coronary transit to within a
    few tenths of a second, while one slice's delay estimate can be off by 0.2-0.3 s (noise,
    blood partial volume), which moves its stress MBF by 20-40%. Each delay is therefore kept
    within ``SLICE_DELAY_SPREAD_S`` of the median of the condition's slices (by default the
    median itself); a slice whose own curve could not be fitted (None: e.g. blood partial
    volume in a basal slice) takes the median, and so does a slice whose delay only the
    fallback scan found (:class:`FallbackDelay`) when another slice has an ordinary one.
    """
    known = [d for d in delays if d is not None]
    if not known:
        return list(delays)
    # the fallback scan's delays count only when no slice's free fit converged
    sure = [d for d in known if not isinstance(d, FallbackDelay)]
    med = float(np.median(sure or known))
    w = SLICE_DELAY_SPREAD_S
    return [
        med if d is None or (sure and isinstance(d, FallbackDelay))
        else float(np.clip(d, med - w, med + w))
        for d in delays
    ]  # fmt: skip


def map_job(
    sr: SliceResult, aif: Curve, model: str, clock: StageClock, hematocrit: float = 0.42
) -> KineticJob | None:
    """The inputs of a slice's pixel map (:func:`run_map_job`); None without map inputs."""
    return _kinetic_job(sr, aif, model, clock, hematocrit, pixels=True)


def run_map_job(job: KineticJob, clock: StageClock, delay: float | None = None):
    """Pixelwise MBF of a :func:`map_job` (:func:`qperf_viewer.quant.mapping.mbf_map`, pixels
    in the order of the map region); delay: the map's bolus-arrival delay (s; None: the
    slice's own reference delay)."""
    from qperf_viewer.quant.mapping import mbf_map

    with clock("mbf"):
        if delay is None:
            delay = reference_delay(
                job.aif, job.typical, job.times, job.model, hematocrit=job.hematocrit
            )
        return mbf_map(
            job.aif.values, job.tissue.T, job.times, model=job.model,
            aif_times_s=job.aif.times_s, delay_s=delay, reference_curve=job.reference,
            hematocrit=job.hematocrit,
        )  # fmt: skip


def apply_map(sr: SliceResult, m) -> None:
    """Put a pixel map (:func:`run_map_job`) into ``sr``: ``mbf``, ``mbf_valid``, ``maps``
    (float32 / bool (Y, X), 0 / False outside the map region), ``map_delay_s`` and flags."""
    myo, region, _, _, _ = _map_inputs(sr)
    shape = region.shape
    gd_ok = sr.maps.get("gd_valid", np.ones(shape, bool))[region]
    valid = np.asarray(m.reliable, bool) & gd_ok
    mbf = np.zeros(shape, np.float32)
    mbf[region] = np.where(valid, np.nan_to_num(m.mbf_ml_min_g), 0.0)
    sr.mbf = mbf
    d_map = float(getattr(m, "reference_delay_s", float("nan")))
    sr.map_delay_s = d_map if np.isfinite(d_map) else None
    sr.mbf_valid = np.zeros(shape, bool)
    sr.mbf_valid[region] = valid
    sr.maps["map_region"] = region
    for name in ("delay_s", "r2", "ps_ml_min_g", "vb", "ve"):
        v = getattr(m, name, None)
        if v is not None:
            full = np.zeros(shape, np.float32)
            full[region] = np.nan_to_num(np.asarray(v, dtype=np.float32))
            sr.maps[name] = full
    n_myo = int(myo.sum())
    frac = float(sr.mbf_valid[myo].sum()) / n_myo
    # the map's own fit statistics cover the dilated region (blood, fat): the myocardial
    # reliability below is what the report needs
    sr.flags += [f"MBF: {f}" for f in m.flags if "of fits" not in f]
    if frac < 0.5:
        sr.flags.append(f"MBF: only {100 * frac:.0f}% of myocardial pixels reliable")


def quantify_slice(
    sr: SliceResult,
    aif: Curve,
    model: str,
    clock: StageClock,
    hematocrit: float = 0.42,
    delay: float | None = None,
) -> None:
    """Pixelwise MBF over the myocardium dilated by :data:`MAP_MARGIN_MM`; fills ``mbf``,
    ``mbf_valid`` and ``maps`` of ``sr`` (float32 / bool (Y, X), 0 / False outside).

    delay: the map's bolus-arrival delay (s; default: the slice's own reference delay, see
    :func:`condition_delays` for the condition-level value the pipeline passes). The same as
    :func:`map_job`, :func:`run_map_job` and :func:`apply_map`, which the pipeline runs with
    the fit in a worker process."""
    job = map_job(sr, aif, model, clock, hematocrit)
    if job is not None:
        apply_map(sr, run_map_job(job, clock, delay))
