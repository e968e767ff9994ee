"""Arterial input function: LV blood-pool detection, curve extraction, time alignment.

Arrays: image series ``(T, Y, X)`` (signal or Gd, any units: the curve keeps the units of the
images), regions ``(Y, X)`` bool, curves ``(T,)``, times in s.

Automatic LV detection on the dual-sequence AIF series (:func:`detect_lv_region`) uses the
temporal behaviour of the blood pools: both ventricles show a strong first pass with washout;
the RV is reached first, the LV a few heartbeats later. Pixels are classified by the time at
which they reach half their own peak enhancement (robust to the double-peaked RV curves of
real data); those within two frames of the first arrival are the RV class, the later ones
hold the LV, the descending aorta (which also peaks late, after the LV) and partial-volume
borders. The LV is the late connected region adjacent to the RV
(only the septum separates them, whereas the aorta lies behind the heart, away from the RV),
preferring large, strongly enhancing regions; the AIF region is its core (brightest pixels,
away from the border to avoid partial volume). A manual region replaces the automatic one
(:func:`aif_from_region`); without an AIF series the LV pool of a perfusion slice is used
(:func:`aif_from_perfusion`, flagged: saturation of the bright blood signal at the bolus peak
may bias MBF).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

from qperf_viewer.errors import InputError

#: Flag attached when the AIF comes from the perfusion series instead of an AIF series.
PERFUSION_AIF_FLAG = "AIF from perfusion series: saturation may bias MBF"
#: Flag attached when the LV could not be told apart with confidence.
UNCERTAIN_FLAG = "AIF: LV blood pool detection uncertain, please review the AIF region"

LABEL_LV, LABEL_RV = 1, 3
#: Narrower early (RV) classes (frames after the first arrival) tried in turn when the
#: default class leaves no confident LV next to the RV (see :func:`detect_lv_region`).
RV_SPREAD_FALLBACKS = (1.5, 1.0, 0.75)


@dataclass
class AifResult:
    """An arterial input function and where it came from.

    curve: (T,) robust mean over ``region`` per frame (units of the images; Gd for MBF).
    times_s: (T,) frame times. region: (Y, X) bool pixels used. source: ``'aif_series'``,
    ``'perfusion'`` or ``'manual'``. peak_frame: index of the curve maximum.
    rv_region: (Y, X) bool early-peaking (RV) pixels found by the detection, when any.
    flags: data-quality notes.
    """

    curve: np.ndarray
    times_s: np.ndarray
    region: np.ndarray
    source: str
    peak_frame: int
    rv_region: np.ndarray | None = None
    flags: list[str] = field(default_factory=list)


@dataclass
class LvDetection:
    """Result of :func:`detect_lv_region` (all masks (Y, X) bool)."""

    region: np.ndarray  # core of the LV pool used for the AIF
    lv_component: np.ndarray  # whole late-enhancing region taken as the LV
    rv_component: np.ndarray  # early-enhancing region taken as the RV
    candidates: np.ndarray  # all blood-pool-like pixels
    half_max_frame: np.ndarray  # (Y, X) float frame index of half-peak arrival (nan elsewhere)
    flags: list[str] = field(default_factory=list)


def _check_series(images: np.ndarray, what: str = "images") -> np.ndarray:
    arr = np.asarray(images)
    if arr.ndim != 3 or arr.shape[0] < 4:
        raise InputError(f"The {what} must be a (T, Y, X) series with T >= 4, not {arr.shape}.")
    out = arr.astype(np.float64)
    if not np.all(np.isfinite(out)):
        out = np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)
    return out


def _dynamic(images: np.ndarray, skip_frames: tuple[int, ...] | list[int]) -> np.ndarray:
    keep = np.setdiff1d(np.arange(images.shape[0]), np.asarray(list(skip_frames), dtype=int))
    return images[keep], keep


def _half_max_frame(enh: np.ndarray, peak_idx: np.ndarray, peak: np.ndarray) -> np.ndarray:
    """Fractional frame where each pixel's enhancement first reaches half its peak, searching
    backwards from the peak (the last crossing before the peak). enh (T, P)."""
    t = enh.shape[0]
    half = 0.5 * peak
    frames = np.arange(t)[:, None]
    below = (enh < half[None, :]) & (frames < peak_idx[None, :])
    # last frame before the peak that is below half the peak
    last_below = np.where(below.any(axis=0), t - 1 - np.argmax(below[::-1], axis=0), -1)
    k0 = np.clip(last_below, 0, t - 2)
    v0 = enh[k0, np.arange(enh.shape[1])]
    v1 = enh[k0 + 1, np.arange(enh.shape[1])]
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(v1 > v0, (half - v0) / (v1 - v0), 0.0)
    return np.where(last_below >= 0, k0 + np.clip(frac, 0.0, 1.0), 0.0)


def detect_lv_region(
    images: np.ndarray,
    *,
    skip_frames: tuple[int, ...] | list[int] = (),
    n_baseline: int | None = None,
    core_fraction: float = 0.7,
    rv_spread_frames: float = 2.0,
    lv_spread_frames: float = 1.5,
) -> LvDetection:
    """Find the LV blood pool of a (T, Y, X) AIF series from its temporal behaviour.

    skip_frames: frames to ignore (proton-density frames). n_baseline: pre-contrast frames
    for the baseline (default: those before the foot of the blood-pool curve, 1 to 6).
    core_fraction: the AIF region keeps the LV pixels whose peak enhancement reaches this
    fraction of the LV's 90th percentile, eroded by one pixel when enough remain.
    rv_spread_frames: pixels reaching half their peak within this many frames of the first
    arrival form the early (RV) class (the pulmonary transit to the LV takes several beats).
    lv_spread_frames: within the LV region, pixels arriving later than this after its first
    arrivals are left out (descending aorta touching the LV).
    """
    dyn, _ = _dynamic(_check_series(images), skip_frames)
    t, ny, nx = dyn.shape
    flags: list[str] = []
    nb = n_baseline if n_baseline is not None else _n_baseline(dyn)
    smooth = ndi.uniform_filter1d(dyn, size=3, axis=0, mode="nearest")
    base = np.median(dyn[:nb], axis=0)
    enh = (smooth - base[None]).reshape(t, -1)
    peak_idx = np.argmax(enh, axis=0)
    peak = enh[peak_idx, np.arange(enh.shape[1])]
    late = enh[int(0.8 * t) :].mean(axis=0) if t >= 5 else enh[-1]
    # frame-to-frame noise: over the baseline, or with fewer than 3 pre-contrast frames (a
    # series started as the bolus arrived) over the whole series, where the median ignores
    # the few frames of the bolus
    noise_frames = dyn[:nb] if nb >= 3 else dyn
    noise = np.median(np.abs(np.diff(noise_frames, axis=0)), axis=0).reshape(-1) + 1e-12
    empty = np.zeros((ny, nx), dtype=bool)
    pos_peak = peak[peak > 0]
    if pos_peak.size == 0:
        return LvDetection(
            empty, empty, empty, empty, np.full((ny, nx), np.nan), ["AIF: no enhancement found"]
        )
    high = float(np.percentile(pos_peak, 99.5))
    # Blood-pool-like: strong first pass that washes out (rejects slowly enhancing tissue),
    # clearly above noise, peaking after the baseline frames and before the series ends.
    cand = (
        (peak >= 0.25 * high)
        & (peak >= 2.0 * np.maximum(late, 0.0))
        & (peak > 8.0 * noise)
        & (peak_idx >= nb)
        & (peak_idx < t - 2)
    )
    cand_img = ndi.binary_opening(cand.reshape(ny, nx), structure=np.ones((2, 2)))
    cand_img &= cand.reshape(ny, nx)
    half_frame = np.full(ny * nx, np.nan)
    sel = cand_img.reshape(-1)
    if sel.sum() < 3:
        return LvDetection(
            empty, empty, empty, cand_img, half_frame.reshape(ny, nx), ["AIF: no blood pool found"]
        )
    half_frame[sel] = _half_max_frame(enh[:, sel], peak_idx[sel], peak[sel])
    hf = half_frame.reshape(ny, nx)
    # Arrival classes: the RV is reached first; everything arriving clearly later (LV, aorta,
    # partial-volume borders, recirculation) is "late". The first arrival is a low weighted
    # percentile of the candidates' half-peak frames, robust to a few noisy early pixels.
    vals = half_frame[sel]
    wts = peak[sel]
    order = np.argsort(vals)
    cw = np.cumsum(wts[order]) / max(float(wts.sum()), 1e-300)
    t_first = float(vals[order][min(int(np.searchsorted(cw, 0.05)), vals.size - 1)])
    # A short pulmonary transit (rest, slow heart rate: one frame per beat) can bring the LV
    # within two frames of the RV; then every pool is "early" and no LV is found next to the
    # RV. Narrower early classes are tried until the LV is found with confidence.
    spreads = [rv_spread_frames] + [s for s in RV_SPREAD_FALLBACKS if s < rv_spread_frames]
    first_try = None
    for spread in spreads:
        thr = t_first + spread
        early = cand_img & (hf <= thr)
        late_mask = cand_img & (hf > thr)
        rv, lv, more_flags = _pick_components(early, late_mask, peak.reshape(ny, nx))
        if first_try is None:
            first_try = (rv, lv, more_flags)
        if lv.any() and not more_flags:
            break
    else:
        rv, lv, more_flags = first_try
    flags += more_flags
    if not lv.any():
        return LvDetection(empty, empty, rv, cand_img, hf, flags or [UNCERTAIN_FLAG])
    # The descending aorta can touch the LV in low-resolution images: keep the earliest
    # arrivals of the chosen region (the aorta fills after the LV).
    h_lv, w_lv = hf[lv], peak.reshape(ny, nx)[lv]
    order = np.argsort(h_lv)
    cw = np.cumsum(w_lv[order]) / max(float(w_lv.sum()), 1e-300)
    t_lv = float(h_lv[order][min(int(np.searchsorted(cw, 0.1)), h_lv.size - 1)])
    first = lv & (hf <= t_lv + lv_spread_frames)
    region = _core(first if first.sum() >= 3 else lv, peak.reshape(ny, nx), core_fraction)
    return LvDetection(region, lv, rv, cand_img, hf, flags)


def _n_baseline(dyn: np.ndarray) -> int:
    """Pre-contrast frames of a series: those before the foot of the earliest blood pool, 1 to
    6 frames (the bolus may arrive early).

    The foot is taken on the mean curve of the most variable pixels and on the mean curve of
    the earliest-peaking quarter of all blood-pool-like pixels (variance above 40% of theirs):
    at rest, one frame per slow beat, the RV can enhance several frames before the brighter
    LV and aorta dominate the first mean. The earlier foot counts, so that no baseline frame
    holds the RV's bolus."""
    from qperf_viewer.quant.mapping import baseline_frames

    t = dyn.shape[0]
    flat = dyn.reshape(t, -1)
    var = flat.std(axis=0)
    v_hi = float(np.percentile(var, 99.5))
    n = baseline_frames(flat[:, var >= v_hi].mean(axis=1)).size
    pools = flat[:, var >= 0.4 * v_hi]
    if pools.shape[1] >= 8 and t >= 3:
        smooth = ndi.uniform_filter1d(pools, size=3, axis=0, mode="nearest")
        k = np.argmax(smooth, axis=0)
        early = k <= np.percentile(k, 25)
        if early.sum() >= 4:
            n = min(n, baseline_frames(pools[:, early].mean(axis=1)).size)
    return int(np.clip(n, 1, 6))


def _pick_components(
    early: np.ndarray, late: np.ndarray, peak: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """RV = the largest strongly enhancing early component; LV = the late component next to
    it (the aorta is late too but away from the RV), preferring size and enhancement."""
    flags: list[str] = []
    eight = np.ones((3, 3), dtype=bool)
    lab_e, n_e = ndi.label(early, structure=eight)
    lab_l, n_l = ndi.label(late, structure=eight)
    empty = np.zeros_like(early)
    if n_l == 0:
        return empty, empty, ["AIF: no late-enhancing (LV) region found"]
    idx_l = np.arange(1, n_l + 1)
    size_l = ndi.sum(np.ones_like(peak), lab_l, idx_l)
    pk_l = ndi.median(peak, lab_l, idx_l)
    if n_e:
        idx_e = np.arange(1, n_e + 1)
        size_e = ndi.sum(np.ones_like(peak), lab_e, idx_e)
        score_e = size_e * ndi.median(peak, lab_e, idx_e)
        rv = lab_e == idx_e[int(np.argmax(score_e))]
        rv_diam = 2.0 * np.sqrt(rv.sum() / np.pi)
        dist = ndi.distance_transform_edt(~rv)
        gap = np.asarray(ndi.minimum(dist, lab_l, idx_l), dtype=float)
        adjacent = gap <= max(3.0, 0.75 * rv_diam)
    else:
        rv = empty
        gap = np.zeros(n_l)
        adjacent = np.ones(n_l, dtype=bool)
        flags.append(UNCERTAIN_FLAG)
    big = size_l >= max(3.0, 0.1 * float(size_l.max()))
    ok = adjacent & big
    if not ok.any():
        flags.append(UNCERTAIN_FLAG)
        ok = big
    score = np.where(ok, size_l * pk_l / (1.0 + gap), -np.inf)
    lv = lab_l == idx_l[int(np.argmax(score))]
    return rv, lv, flags


def _core(component: np.ndarray, peak: np.ndarray, fraction: float) -> np.ndarray:
    ref = float(np.percentile(peak[component], 90))
    core = component & (peak >= fraction * ref)
    eroded = ndi.binary_erosion(component, structure=np.ones((3, 3), dtype=bool)) & core
    if eroded.sum() >= 4:
        core = eroded
    if core.sum() == 0:
        core = component
    lab, n = ndi.label(core)
    if n > 1:  # keep the largest piece
        sizes = ndi.sum(np.ones_like(peak), lab, np.arange(1, n + 1))
        core = lab == 1 + int(np.argmax(sizes))
    return core


def extract_aif_curve(images: np.ndarray, region: np.ndarray, *, trim: float = 0.2) -> np.ndarray:
    """Robust mean curve (T,) over ``region`` (Y, X) bool of a (T, Y, X) series: per frame the
    mean of the pixels after trimming ``trim`` of them at each end (plain mean below 5 px)."""
    arr = _check_series(images)
    reg = np.asarray(region, dtype=bool)
    if reg.shape != arr.shape[1:]:
        raise InputError(
            f"The AIF region has shape {reg.shape} but the images are {arr.shape[1:]}."
        )
    if not reg.any():
        raise InputError("The AIF region is empty.", hint="Draw a region inside the LV cavity.")
    vals = arr[:, reg]  # (T, P)
    if vals.shape[1] < 5:
        return vals.mean(axis=1)
    # trimmed mean in numpy (scipy.stats.trim_mean's definition; importing scipy.stats costs
    # about a second at start-up)
    n = vals.shape[1]
    cut = int(trim * n)
    if 2 * cut >= n:
        return vals.mean(axis=1).astype(float)
    part = np.partition(vals, (cut, n - cut - 1), axis=1)
    return part[:, cut : n - cut].astype(float).mean(axis=1)


def aif_from_region(
    images: np.ndarray,
    times_s: np.ndarray,
    region: np.ndarray,
    *,
    source: str = "manual",
    flags: list[str] | None = None,
) -> AifResult:
    """AIF from a given region (manual override, or any region chosen elsewhere)."""
    curve = extract_aif_curve(images, region)
    times = np.asarray(times_s, dtype=float)
    if times.shape != curve.shape:
        raise InputError(f"times_s has {times.size} values for {curve.size} frames.")
    return AifResult(
        curve=curve,
        times_s=times,
        region=np.asarray(region, dtype=bool),
        source=source,
        peak_frame=int(np.argmax(curve)),
        flags=list(flags or []),
    )


def detect_aif(
    images: np.ndarray,
    times_s: np.ndarray,
    *,
    skip_frames: tuple[int, ...] | list[int] = (),
    manual_region: np.ndarray | None = None,
) -> AifResult:
    """AIF of a dual-sequence AIF series (T, Y, X): automatic LV region (or ``manual_region``),
    robust mean curve over all frames (PD frames included, so that the caller can convert the
    curve to Gd with the series' own PD frames and TS)."""
    if manual_region is not None:
        return aif_from_region(images, times_s, manual_region, source="manual")
    det = detect_lv_region(images, skip_frames=skip_frames)
    if not det.region.any():
        raise InputError(
            "No LV blood pool found in the AIF series.",
            hint="Draw the AIF region manually or use the perfusion series.",
        )
    res = aif_from_region(images, times_s, det.region, source="aif_series", flags=det.flags)
    res.rv_region = det.rv_component
    keep = np.setdiff1d(np.arange(res.curve.size), np.asarray(list(skip_frames), dtype=int))
    res.peak_frame = int(keep[np.argmax(res.curve[keep])])
    return res


def aif_from_perfusion(
    images: np.ndarray,
    times_s: np.ndarray,
    labels: np.ndarray,
    *,
    skip_frames: tuple[int, ...] | list[int] = (),
    erosion_px: int = 2,
) -> AifResult:
    """Fallback AIF from the LV blood pool (label 1) of a perfusion slice (T, Y, X).

    The pool is eroded by ``erosion_px`` (partial volume with the myocardium) and the curve is
    the per-frame median over the remaining pixels: papillary muscles (labelled LV cavity,
    enhancing less) and the ringing of a truncated k-space at the pool's edge (over- and
    undershoot at the bolus peak) stay out of it as long as they are a minority. Keeping the
    brightest half of the pixels by peak enhancement, as before, kept the overshoot and the
    upward noise: on phantom exams the AIF read 5-15% high at its peak and 2-9% high over the
    first pass, and MBF read low.
    Always carries :data:`PERFUSION_AIF_FLAG`.
    """
    arr = _check_series(images)
    lab = np.asarray(labels)
    if lab.shape != arr.shape[1:]:
        raise InputError(f"The label map has shape {lab.shape} but the images are {arr.shape}.")
    pool = lab == LABEL_LV
    if not pool.any():
        raise InputError("The label map has no LV blood pool (label 1) for the AIF.")
    core = pool
    for _ in range(max(0, erosion_px)):
        nxt = ndi.binary_erosion(core)
        if nxt.sum() < 4:
            break
        core = nxt
    times = np.asarray(times_s, dtype=float)
    curve = np.median(arr[:, core], axis=1).astype(float)
    if times.shape != curve.shape:
        raise InputError(f"times_s has {times.size} values for {curve.size} frames.")
    keep = np.setdiff1d(np.arange(curve.size), np.asarray(list(skip_frames), dtype=int))
    peak = int(keep[np.argmax(curve[keep])]) if keep.size else int(np.argmax(curve))
    return AifResult(
        curve=curve,
        times_s=times,
        region=core,
        source="perfusion",
        peak_frame=peak,
        flags=[PERFUSION_AIF_FLAG],
    )


def align_aif(
    aif: np.ndarray, aif_times_s: np.ndarray, slice_times_s: np.ndarray
) -> tuple[np.ndarray, list[str]]:
    """Resample an AIF curve to a slice's frame times by linear interpolation.

    The AIF series and each slice are acquired in the same heartbeats at different trigger
    delays, so their times differ by a fraction of an RR interval: the AIF is linearly
    interpolated at the slice times, held at its first value before its first sample and at
    its last value after its last. (``mbf_map``/``fit_curves`` can also take the AIF at its
    own times with ``aif_times_s=``, which interpolates it inside the model's fine grid.)
    Returns the curve (T_slice,) and flags (e.g. when the slice extends beyond the AIF).
    """
    a = np.asarray(aif, dtype=float).reshape(-1)
    at = np.asarray(aif_times_s, dtype=float).reshape(-1)
    st = np.asarray(slice_times_s, dtype=float).reshape(-1)
    if a.size != at.size or a.size < 2:
        raise InputError(f"The AIF has {a.size} values for {at.size} times.")
    if np.any(np.diff(at) <= 0):
        raise InputError("The AIF times must be strictly increasing.")
    flags = []
    step = float(np.median(np.diff(at)))
    if st.size and (st[0] < at[0] - step or st[-1] > at[-1] + step):
        flags.append("AIF does not cover the slice acquisition: values held at its ends")
    return np.interp(st, at, a), flags
