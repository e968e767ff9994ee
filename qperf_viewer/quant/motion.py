"""In-plane respiratory motion correction of a perfusion slice's 2D+T series.

Arrays are ``(T, Y, X)`` (Y = DICOM rows); shifts are ``(drow, dcol)`` in pixels.

Method (rigid translation per frame, robust to the bolus' contrast change):

0. **Band limit.** Shifts are estimated on frames whose spatial frequencies above half the
   Nyquist frequency are tapered off (``BAND_LIMIT_FROM``; resampling uses the originals).
1. **Heart region.** The heart is located from the transient enhancement of the dynamic
   frames (temporal maximum minus upper quartile: the first pass makes RV/LV blood bright for a
   few frames, while structures that move in and out of a pixel with respiration score low)
   within a centre prior; a soft weight covers the enhancing blood pools plus 15 mm
   (myocardium, epicardium). Registration works in a crop around it.
2. **Coarse, contrast-invariant stage** (2x2 binned): group-wise registration of edge maps
   ``g/(g+eps)`` of the gradient magnitude (polarity- and contrast-invariant) to their mean:
   windowed phase correlation for large shifts, then weighted Gauss-Newton (Lucas-Kanade)
   with band-limited (Fourier) warping. A motion weight, ``var_raw / (var_raw + var_corrected)``
   of the edge maps, then suppresses static structures (chest wall, spine), which are steady
   before correction and smeared after it.
3. **Fine, contrast-matched stage** (full resolution): each frame is compared with a synthetic
   frame of the same contrast, the least-squares combination of a few *phase basis images*:
   means of the corrected frames of six distinct contrast phases (pre-contrast, RV and LV
   first pass, myocardial enhancement, late ...; picked by farthest-point sampling in the
   series' low-rank temporal score space). Unlike a plain SVD model of the corrected series,
   these basis images are aligned to one another by mutual information (which tolerates the
   contrast change), so the model cannot absorb slow motion (e.g. the shift of the mean
   position when a breath-hold ends during the first pass). Frames are registered to their
   synthetic counterparts by robust (Cauchy IRLS) Gauss-Newton; two rounds, then more
   (``BASIS_MORE_ROUNDS``) while a phase image still moves in its alignment.
4. **PD frames** do not enter the basis: they are registered to their own mean, and that mean
   to the reference geometry by mutual information (fallback: the edge stage, flagged).
5. **Reference frame**: a well-matched frame of the first pass (``FIRST_PASS_FRAMES`` frames
   from the bolus arrival in the heart region) at the position most of those frames share
   (e.g. the breath-hold), then the closest to their median shift; without a clear first pass,
   the most typical position among all well-matched dynamic frames. Shifts are re-expressed
   relative to it and every acquired frame is resampled once, with separable cubic
   convolution (Catmull-Rom, edge pixels replicated; ``RESAMPLE_ORDER``), clamped to the range
   of the 2 x 2 pixels around each point (``RESAMPLE_CLAMP``), into its grid: the first-pass
   frames, which carry the flow, are thus resampled least.

Convention: ``shifts_px[t]`` is the transform reference -> frame ``t``: anatomy at ``p`` in the
reference grid sits at ``p + shifts_px[t]`` in acquired frame ``t``; hence
``corrected[t](p) = images[t](p + shifts_px[t])`` and a label map drawn on the reference grid is
brought to frame ``t`` with ``label(q - shifts_px[t])`` (:func:`apply_shifts`).

Speed: small dense linear algebra (60x60 eigenproblems, thin matrix products) is much slower
with a multi-threaded BLAS on a busy machine; batch tools may set ``OPENBLAS_NUM_THREADS=1``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import fft as sfft
from scipy import ndimage as ndi

from qperf_viewer.errors import InputError
from qperf_viewer.exam import AifSeries, SliceSeries

__all__ = [
    "MotionResult",
    "apply_shifts",
    "correct_motion",
    "correct_series",
    "shift_frames",
]

#: Default pixel spacing (mm) when none is given.
_DEFAULT_SPACING_MM = (2.0, 2.0)
#: Phase basis images of the fine stage and corrected frames averaged into each.
N_BASIS = 6
#: Pattern-search start steps (pixels) of the mutual-information alignment of the phase
#: basis, one per round of basis building and Gauss-Newton registration.
BASIS_STEPS = (0.5, 0.125)
#: Further rounds (at the last step) while a phase image still moves by ``BASIS_TOL_PX`` or
#: more in its alignment: each round takes the frames of one contrast phase only part of the
#: way to the others, so a phase registered off as a group (e.g. the first pass's frames, whose
#: contrast no other phase shares) needs several. Measured at stop 34 on noise-free stress
#: slices held still through the first pass (worst frame, two rounds / up to 12 more): dark_rim
#: 211 basal 0.19 / 0.10 px, philips 512 mid 0.26 / 0.14 px, philips 512 basal 0.23 / 0.27 px.
#: Noise-free held-out exams (``benchmarks/bench_quant_noisefree.py``, seeds 201-513): 47 of 52
#: within the limits before, 50 with up to 6 more rounds, **51** with up to 12 (normal 309
#: passes at 3.2%; no_aif 213 misses, 7.0%: its pool AIF's coil shading, 4.7% since stop 35's
#: ``pipeline.aif.AIF_POOL_COIL_CORRECTION``). The 65 noisy runs of
#: ``benchmarks/bench_accuracy.py``: 64 meeting every target before, with 6 and with 12; summed
#: condition error 566.1%, 565.9%, 566.1%. Measured and not adopted: a 0.02 px tolerance (51 of
#: 52 noise-free; noisy 63 runs, 567.6%); moving each phase image's frames by its alignment
#: shift before the Gauss-Newton step (49 of 52); 8 or 10 phase images (larger errors on the
#: still frames).
BASIS_MORE_ROUNDS = 12
BASIS_TOL_PX = 0.05
BASIS_FRAMES = 3
#: Margin (mm, full weight; then an 8 mm ramp) around the enhancing blood pools.
HEART_MARGIN_MM = 15.0
#: Registration estimates shifts on frames whose spatial frequencies above this fraction of
#: Nyquist are tapered off (raised cosine to zero at Nyquist, per axis; 0 = off). The Fourier
#: shift model of the registration holds for band-limited images (any acquired MR image: the
#: transform of its sampled k-space); the taper keeps out the top band's noise and, in
#: rendered images without a k-space window, the sharp partial-volume edges that no shift of
#: another frame reproduces. Synthetic exams, myocardial misregistration RMS over all slices
#: (mean / worst slice, px): 13 noisy exams (seeds 301-313) 0.104 / 0.291 without, 0.089 /
#: 0.259 with it; 5 noise-free exams without a window 0.160 / 0.520 and 0.059 / 0.182.
#: Resampling always uses the original frames.
BAND_LIMIT_FROM = 0.5
#: Reference frame from the first pass: among the well-matched frames of the first
#: ``FIRST_PASS_FRAMES`` frames from the bolus arrival (the frames that carry the flow), the
#: one at the position most of them share (within 0.3 px; e.g. the breath-hold), so that they
#: are resampled least. Each resampling by a fractional shift mixes neighbouring pixels (the
#: cubic kernel reaches 2 px, with negative lobes), and during the first pass the blood beside
#: the wall is several times brighter than the myocardium.
REFERENCE_FROM_FIRST_PASS = True
FIRST_PASS_FRAMES = 12
#: Interpolation order of the corrected series (:func:`shift_frames`): 3, Catmull-Rom cubic. It
#: reaches 2 px with negative lobes: on a half-pixel frame it takes 1/16 of the LV pool's signal
#: from a pixel 1.5 px away. Order 1 (linear: non-negative weights on the 2 x 2 pixels around
#: each point) was measured at stop 32 with the 8-neighbour delay core
#: (``pipeline.slices.CORE_NEIGHBOURS``): on the noise-free held-out exams
#: (``benchmarks/bench_quant_noisefree.py``, seeds 201-513) 50 of 52 within the limits instead
#: of 46, every BTEX segment within 4.6% (cubic: 12.9%), stress delay error RMS on the 65 noisy
#: benchmark runs 0.064 s instead of 0.077 s; but 60 of those 65 runs met all targets instead of
#: 63 (summed condition error 567% against 569%, 4 conditions with a segment over 20% against
#: 1), and the tested noise-free no_motion 103 (``tests/test_quant_exam.py``), whose estimated
#: shifts are at most 0.15 px, read 5.0% on its apical rest segment 14 (cubic, same core: 2.3%),
#: at the limit. So cubic stays, clamped (``RESAMPLE_CLAMP``).
RESAMPLE_ORDER = 3
#: Clamp the cubic resampling of the corrected series to the range of the 2 x 2 pixels
#: around each point (:func:`shift_frames`): the negative lobes no longer carry the first
#: pass's bright blood into the wall, and smooth profiles keep their cubic values.
#: Measured at stop 33 (4-neighbour delay core): the noise-free held-out exams
#: (``benchmarks/bench_quant_noisefree.py``, seeds 201-513) 47 of 52 within the limits (46
#: unclamped); the 65 noisy runs of ``benchmarks/bench_accuracy.py`` 64 meeting every target
#: (63), summed condition error 566.1% (569.3%), no condition with a segment over 20% (1).
RESAMPLE_CLAMP = True
#: Divide the series by a smooth receive-coil estimate (:func:`coil_estimate`) for
#: registration and resampling, and give the corrected frames the reference position's
#: shading back: the coil's shading stays with the scanner while the heart breathes through
#: it, which biases the registration of moved frames and, through the PD normalisation, their
#: signal. Measured at stop 33 and not adopted: on the noise-free held-out exams of seeds
#: 201-413 (``benchmarks/bench_quant_noisefree.py``) 34 of 39 within the limits against 36
#: without it (normal 309 went from 12.3% to 1.8%, but dark_rim 211, four_slices 304,
#: three_tesla 402 and two_slices 405 got worse): a second-order polynomial is too coarse a
#: coil model. Stop 34: the flat-coil diagnostic had misled for normal 309 (its first-pass
#: frames were registered off as a group under either coil: ``BASIS_MORE_ROUNDS``); the coil's
#: gradient across the heart is 0.1-0.4% per pixel in these exams.
COIL_FLATTEN = False


@dataclass
class MotionResult:
    """Result of :func:`correct_motion`.

    corrected: (T, Y, X) float32, every frame resampled into the grid of ``reference_frame``.
    shifts_px: (T, 2) float64 transform reference -> frame, (drow, dcol) in pixels
        (``shifts_px[reference_frame] == 0``).
    reference_frame: index of the acquired frame whose grid is the reference.
    ncc_before / ncc_after: (T,) weighted normalised cross-correlation of each frame with its
        synthetic (same-contrast) reference in the heart region, before / after correction
        (PD frames: with their mean; method 'edges': of edge maps). 1 = perfect.
    heart_centre: (row, col) of the located heart, pixels.
    weight: (Y, X) float32 heart-region weight used for registration (0..1).
    converged: True when the last Gauss-Newton updates were all below 0.1 pixel.
    method: 'basis' | 'edges'.
    flags: data-quality notes ('moco: ...').
    """

    corrected: np.ndarray
    shifts_px: np.ndarray
    reference_frame: int
    ncc_before: np.ndarray
    ncc_after: np.ndarray
    heart_centre: tuple[float, float]
    weight: np.ndarray
    converged: bool = True
    method: str = "basis"
    flags: list[str] = field(default_factory=list)

    def shifts_mm(self, pixel_spacing_mm: Sequence[float]) -> np.ndarray:
        """(T, 2) shifts in mm along (rows, cols) for PixelSpacing (dy, dx)."""
        return self.shifts_px * np.asarray(pixel_spacing_mm, dtype=float)[None, :]


# ----------------------------------------------------------------------------- resampling


def _kernel(frac: np.ndarray, order: int) -> tuple[tuple[int, ...], list[np.ndarray]]:
    """Tap offsets and (T,) weights of a 1D interpolation kernel at fractions in [0, 1)."""
    f = frac
    if order == 0:
        return (0,), [np.ones_like(f)]
    if order == 1:
        return (0, 1), [1.0 - f, f]
    if order == 3:  # Catmull-Rom cubic convolution (a = -0.5), interpolating
        f2, f3 = f * f, f * f * f
        return (-1, 0, 1, 2), [
            0.5 * (-f3 + 2 * f2 - f),
            0.5 * (3 * f3 - 5 * f2 + 2),
            0.5 * (-3 * f3 + 4 * f2 + f),
            0.5 * (f3 - f2),
        ]
    raise ValueError(f"interpolation order must be 0, 1 or 3, not {order}")


def shift_frames(
    images: np.ndarray, shifts_px: np.ndarray, *, order: int = 3, clamp: bool = False
) -> np.ndarray:
    """Sample each frame at ``p + shifts_px[t]``: ``out[t](p) = images[t](p + shifts_px[t])``.

    images: (T, Y, X); shifts_px: (T, 2) (drow, dcol) pixels. ``order`` 0 (nearest: labels),
    1 (linear) or 3 (Catmull-Rom cubic). ``clamp`` (order 3): each value is limited to the
    range of the 2 x 2 pixels around its point, so a sharp edge neither overshoots nor
    undershoots (the cubic's negative lobes), while smooth profiles keep their cubic values.
    Outside the image, edge pixels are replicated. Returns float32 for float input (order
    1/3), the input dtype for order 0.
    """
    a = np.asarray(images)
    s = np.asarray(shifts_px, dtype=float).reshape(-1, 2)
    if a.ndim != 3 or s.shape[0] != a.shape[0]:
        raise ValueError("images must be (T, Y, X) and shifts_px (T, 2)")
    if not np.all(np.isfinite(s)):
        raise ValueError("shifts_px must be finite")
    n_t, ny, nx = a.shape
    if order == 0:
        s = np.round(s)
        work = a
    else:
        work = a.astype(np.float32, copy=False)
    base = np.floor(s).astype(int)
    frac = s - base
    pad = int(np.max(np.abs(base))) + 3 if base.size else 3
    padded = np.pad(work, ((0, 0), (pad, pad), (pad, pad)), mode="edge")
    offs_r, w_r = _kernel(frac[:, 0], order)
    offs_c, w_c = _kernel(frac[:, 1], order)
    out = np.empty((n_t, ny, nx), dtype=work.dtype)
    for t in range(n_t):
        r0 = pad + base[t, 0]
        c0 = pad + base[t, 1]
        if order == 0:
            out[t] = padded[t, r0 : r0 + ny, c0 : c0 + nx]
            continue
        rows = None
        for k, o in enumerate(offs_r):
            term = padded[t, r0 + o : r0 + o + ny, :] * np.float32(w_r[k][t])
            rows = term if rows is None else rows + term
        acc = None
        for k, o in enumerate(offs_c):
            term = rows[:, c0 + o : c0 + o + nx] * np.float32(w_c[k][t])
            acc = term if acc is None else acc + term
        if clamp and order == 3:
            win = padded[t, r0 : r0 + ny + 1, c0 : c0 + nx + 1]
            near = [win[i : i + ny, j : j + nx] for i in (0, 1) for j in (0, 1)]
            lo = np.minimum(np.minimum(near[0], near[1]), np.minimum(near[2], near[3]))
            hi = np.maximum(np.maximum(near[0], near[1]), np.maximum(near[2], near[3]))
            acc = np.clip(acc, lo, hi)
        out[t] = acc
    return out


def apply_shifts(
    array: np.ndarray,
    shifts_px: np.ndarray,
    *,
    direction: str = "to_frames",
    order: int | None = None,
) -> np.ndarray:
    """Apply a motion result's shifts to another array.

    array: (Y, X) (broadcast to every frame) or (T, Y, X).
    direction: 'to_frames' moves content drawn on the reference grid to each acquired frame's
        position (``out[t](q) = array(q - shifts_px[t])``, e.g. label maps for display on the
        uncorrected frames); 'to_reference' resamples acquired frames into the reference grid
        (``out[t](p) = array[t](p + shifts_px[t])``, what :func:`correct_motion` does).
    order: interpolation order; default 0 (nearest) for integer/bool arrays, 3 otherwise.
    Returns (T, Y, X).
    """
    a = np.asarray(array)
    s = np.asarray(shifts_px, dtype=float).reshape(-1, 2)
    if a.ndim == 2:
        a = np.broadcast_to(a, (s.shape[0],) + a.shape)
    if a.ndim != 3 or a.shape[0] != s.shape[0]:
        raise ValueError("array must be (Y, X) or (T, Y, X) with T == len(shifts_px)")
    if order is None:
        order = 0 if (a.dtype.kind in "biu") else 3
    if direction == "to_frames":
        return shift_frames(a, -s, order=order)
    if direction == "to_reference":
        return shift_frames(a, s, order=order)
    raise ValueError("direction must be 'to_frames' or 'to_reference'")


def _fourier_shift(spec: np.ndarray, shifts: np.ndarray, ky: np.ndarray, kx: np.ndarray, n):
    """Band-limited warp of (T, h, w//2+1) rfft2 spectra: out[t](p) = img[t](p + shifts[t])."""
    py = np.exp(2j * np.pi * shifts[:, 0, None, None] * ky[None, :, None])
    px = np.exp(2j * np.pi * shifts[:, 1, None, None] * kx[None, None, :])
    ph = (py.astype(spec.dtype) * spec) * px.astype(spec.dtype)
    return sfft.irfft2(ph, s=n, axes=(-2, -1), workers=-1)


# ------------------------------------------------------------------------ heart region


def _band_limit(x: np.ndarray, start: float) -> np.ndarray:
    """(T, Y, X) frames with spatial frequencies above ``start`` x Nyquist tapered to zero
    at Nyquist (raised cosine, separable per axis)."""

    def taper(k: np.ndarray) -> np.ndarray:
        r = np.clip((k - start) / (1.0 - start), 0.0, 1.0)
        return 0.5 * (1.0 + np.cos(np.pi * r))

    ny, nx = x.shape[1:]
    f = taper(2 * np.abs(np.fft.fftfreq(ny)))[:, None] * taper(2 * np.fft.rfftfreq(nx))[None, :]
    spec = sfft.rfft2(x, axes=(-2, -1), workers=-1) * f[None].astype(np.complex64)
    return sfft.irfft2(spec, s=(ny, nx), axes=(-2, -1), workers=-1).astype(np.float32)


def _enhancement(dyn: np.ndarray) -> np.ndarray:
    """(Y, X) transient enhancement of (T, Y, X) dynamic frames: temporal maximum minus upper
    quartile after light temporal smoothing. The first pass of the bolus (bright for a few
    frames) scores high; structures that are bright half the time because they move with
    respiration (fat, liver edges) score low."""
    x = dyn.astype(np.float32, copy=False)
    if x.shape[0] >= 3:
        x = ndi.uniform_filter1d(x, 3, axis=0, mode="nearest")
    q = np.percentile(x, 75, axis=0)
    return (x.max(axis=0) - q).astype(np.float32)


def _heart_weight(
    dyn: np.ndarray, spacing: np.ndarray, centre: tuple[float, float] | None
) -> tuple[np.ndarray, tuple[float, float], list[str]]:
    """Soft (Y, X) weight of the heart region and its centre (row, col)."""
    flags: list[str] = []
    n_t, ny, nx = dyn.shape
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float32)
    sig_px = lambda mm: np.maximum(mm / spacing, 0.5)  # noqa: E731
    enh = _enhancement(dyn)
    enh_s = ndi.gaussian_filter(enh, sig_px(3.0))
    if centre is None:
        prior = np.exp(
            -0.5
            * (((yy - (ny - 1) / 2) / (0.3 * ny)) ** 2 + ((xx - (nx - 1) / 2) / (0.3 * nx)) ** 2)
        )
        score = ndi.gaussian_filter(enh, sig_px(12.0)) * prior
        cy, cx = np.unravel_index(int(np.argmax(score)), score.shape)
    else:
        cy, cx = int(round(centre[0])), int(round(centre[1]))
        cy, cx = min(max(cy, 0), ny - 1), min(max(cx, 0), nx - 1)
    # enhancing regions (RV and LV blood pools are separated by the septum) near the centre
    r = np.hypot((yy - cy) * spacing[0], (xx - cx) * spacing[1])
    near = r < 25.0
    peak = float(enh_s[near].max()) if np.any(near) else float(enh_s.max())
    mask = (enh_s > 0.25 * peak) & (r < 75.0)
    lab, _ = ndi.label(mask)
    core = np.unique(lab[(r < 60.0) & (lab > 0)])
    frac_img = 0.0
    if core.size:
        mask = np.isin(lab, core)
        frac_img = float(mask.mean())
    if not core.size or frac_img > 0.45 or frac_img * ny * nx * spacing.prod() < 300.0:
        flags.append("moco: heart region not found, centre-weighted window used")
        weight = np.exp(-0.5 * (r / 35.0) ** 2)
    else:
        # dilated so that the myocardium and the epicardial border are included
        dist = ndi.distance_transform_edt(~mask, sampling=tuple(spacing))
        weight = np.clip(1.0 - (dist - HEART_MARGIN_MM) / 8.0, 0.0, 1.0)
        weight *= np.clip((80.0 - r) / 15.0, 0.0, 1.0)
        weight = ndi.gaussian_filter(weight, sig_px(3.0))
    weight = (weight / max(float(weight.max()), 1e-12)).astype(np.float32)
    return weight, (float(cy), float(cx)), flags


def _crop_box(weight: np.ndarray, margin: int) -> tuple[slice, slice]:
    ny, nx = weight.shape
    rows = np.flatnonzero(weight.max(axis=1) > 0.01)
    cols = np.flatnonzero(weight.max(axis=0) > 0.01)
    out = []
    for idx, n in ((rows, ny), (cols, nx)):
        lo, hi = int(idx[0]) - margin, int(idx[-1]) + 1 + margin
        size = min(sfft.next_fast_len(max(hi - lo, 16), real=True), n)
        lo = min(max(lo - (size - (hi - lo)) // 2, 0), n - size)
        out.append(slice(lo, lo + size))
    return out[0], out[1]


# ---------------------------------------------------------------------- registration


def _wncc(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted normalised cross-correlation per frame of (T, h, w) arrays."""
    sw = float(w.sum())
    am = a - (a * w).sum(axis=(1, 2), keepdims=True) / sw
    bm = b - (b * w).sum(axis=(1, 2), keepdims=True) / sw
    num = (w * am * bm).sum(axis=(1, 2))
    den = np.sqrt((w * am * am).sum(axis=(1, 2)) * (w * bm * bm).sum(axis=(1, 2)))
    return np.where(den > 0, num / np.maximum(den, 1e-30), 0.0)


def _phase_correlation(
    frames: np.ndarray, refs: np.ndarray, w: np.ndarray, max_shift: np.ndarray
) -> np.ndarray:
    """Shift s (T, 2) with frames[t](p + s) ~ refs[t](p), from windowed phase correlation."""
    sw = float(w.sum())

    def prep(x):
        x = x - (x * w).sum(axis=(1, 2), keepdims=True) / sw
        return sfft.rfft2(x * w, axes=(-2, -1), workers=-1)

    n = frames.shape[1:]
    cross = prep(frames) * np.conj(prep(refs))
    cross /= np.abs(cross) ** 0.7 + 1e-12  # partial whitening: robust yet not too noisy
    cc = sfft.irfft2(cross, s=n, axes=(-2, -1), workers=-1)
    cc = np.fft.fftshift(cc, axes=(-2, -1))
    cy, cx = n[0] // 2, n[1] // 2
    yy = np.arange(n[0])[:, None] - cy
    xx = np.arange(n[1])[None, :] - cx
    allowed = (np.abs(yy) <= max_shift[0]) & (np.abs(xx) <= max_shift[1])
    cc = np.where(allowed[None], cc, -np.inf)
    out = np.zeros((frames.shape[0], 2))
    for t in range(frames.shape[0]):
        iy, ix = np.unravel_index(int(np.argmax(cc[t])), n)
        sub = []
        for d, (i, nn) in enumerate(((iy, n[0]), (ix, n[1]))):
            if 0 < i < nn - 1:
                lo = cc[t, i - 1, ix] if d == 0 else cc[t, iy, i - 1]
                hi = cc[t, i + 1, ix] if d == 0 else cc[t, iy, i + 1]
                c0 = cc[t, iy, ix]
                den = lo - 2 * c0 + hi
                off = 0.5 * (lo - hi) / den if np.isfinite(den) and den < 0 else 0.0
                sub.append(float(np.clip(off, -0.5, 0.5)))
            else:
                sub.append(0.0)
        out[t] = (iy - cy + sub[0], ix - cx + sub[1])
    return out


def _gauss_newton(
    spec: np.ndarray,
    refs: np.ndarray,
    w: np.ndarray,
    shifts: np.ndarray,
    ky: np.ndarray,
    kx: np.ndarray,
    max_shift: np.ndarray,
    n_iter: int = 6,
    tol: float = 0.02,
    accept: float = 0.1,
    basis: np.ndarray | None = None,
    robust: bool = False,
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Weighted Lucas-Kanade translation refinement (ESM gradients, Fourier warp).

    spec: rfft2 spectra of the (T, h, w) frames; refs: (T, h, w) or (h, w) references.
    Minimises sum_p w(p) (frame_t(p + s_t) - ref_t(p))^2 over s_t by Gauss-Newton.
    Returns the refined shifts, the warped frames and whether the last update was below
    ``accept`` pixel (iterations stop once it is below ``tol``).
    """
    n = refs.shape[-2:]
    s = shifts.copy()
    if refs.ndim == 2:
        refs = refs[None]
    wi = w[1:-1, 1:-1][None]
    converged = False
    warped = _fourier_shift(spec, s, ky, kx, n)
    for _ in range(n_iter):
        if basis is not None:
            refs = _fit_basis(warped, basis, w)
        rc = refs[:, 1:-1, 1:-1]
        gry = 0.25 * (refs[:, 2:, 1:-1] - refs[:, :-2, 1:-1])
        grx = 0.25 * (refs[:, 1:-1, 2:] - refs[:, 1:-1, :-2])
        gy = 0.25 * (warped[:, 2:, 1:-1] - warped[:, :-2, 1:-1]) + gry
        gx = 0.25 * (warped[:, 1:-1, 2:] - warped[:, 1:-1, :-2]) + grx
        res = warped[:, 1:-1, 1:-1] - rc
        if robust:
            wr = _robust_weights(res, wi)
            wgy = wr * gy
            wgx = wr * gx
        else:
            wgy = wi * gy
            wgx = wi * gx
        hyy = np.einsum("tij,tij->t", wgy, gy).astype(np.float64)
        hxx = np.einsum("tij,tij->t", wgx, gx).astype(np.float64)
        hxy = np.einsum("tij,tij->t", wgy, gx).astype(np.float64)
        by = np.einsum("tij,tij->t", wgy, res).astype(np.float64)
        bx = np.einsum("tij,tij->t", wgx, res).astype(np.float64)
        det = hyy * hxx - hxy * hxy
        ok = det > 1e-9 * np.maximum(hyy * hxx, 1e-300)
        det = np.where(ok, det, 1.0)
        step = np.stack(
            [
                np.where(ok, -(hxx * by - hxy * bx) / det, 0.0),
                np.where(ok, -(hyy * bx - hxy * by) / det, 0.0),
            ],
            axis=1,
        )
        step = np.clip(step, -2.0, 2.0)
        s = np.clip(s + step, -max_shift, max_shift)
        warped = _fourier_shift(spec, s, ky, kx, n)
        last = float(np.max(np.abs(step)))
        converged = last < accept
        if last < tol:
            break
    return s, warped, converged


def _robust_weights(res: np.ndarray, w: np.ndarray, c: float = 2.5) -> np.ndarray:
    """Cauchy IRLS weights of (T, h, w) residuals times the region weight (1, h, w)."""
    sel = w[0] > 0.1 * float(w.max())
    a = np.abs(res[:, sel])
    scale = 1.4826 * np.median(a, axis=1) + 1e-12
    return w / (1.0 + (res / (c * scale[:, None, None])) ** 2)


def _fit_basis(frames: np.ndarray, basis: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted least-squares fit of each (T, h, w) frame by the (K, h, w) basis images plus
    a constant; returns the fitted (synthetic) frames.

    (einsum rather than BLAS products: these thin products are faster single-threaded, and
    a multi-threaded BLAS is very slow on a busy machine.)"""
    k = basis.shape[0]
    x = np.concatenate([basis.reshape(k, -1), np.ones((1, basis[0].size), basis.dtype)], 0)
    xw = x * w.reshape(1, -1)
    gram = np.einsum("kn,jn->kj", xw, x).astype(np.float64)
    gram += 1e-9 * np.trace(gram) / gram.shape[0] * np.eye(gram.shape[0])
    rhs = np.einsum("tn,kn->tk", frames.reshape(frames.shape[0], -1), xw).astype(np.float64)
    coef = np.linalg.solve(gram, rhs.T).T.astype(np.float32)
    return np.einsum("tk,kn->tn", coef, x).reshape(frames.shape)


def _mi(a_bins: np.ndarray, b: np.ndarray, wts: np.ndarray, lo: float, hi: float, nb: int):
    """Mutual information of (C, N) candidate images ``b`` (soft-binned into ``nb`` bins over
    [lo, hi]) with fixed bin indices ``a_bins`` (N,), weighted by ``wts`` (N,)."""
    c = b.shape[0]
    x = np.clip((b - lo) / max(hi - lo, 1e-12) * (nb - 1), 0, nb - 1 - 1e-6)
    i0 = x.astype(np.int64)
    f = x - i0
    base = (np.arange(c)[:, None] * nb + a_bins[None, :]) * nb
    h = np.bincount((base + i0).ravel(), (wts[None] * (1 - f)).ravel(), minlength=c * nb * nb)
    h += np.bincount((base + i0 + 1).ravel(), (wts[None] * f).ravel(), minlength=c * nb * nb)
    p = h.reshape(c, nb, nb)
    p = p / np.maximum(p.sum(axis=(1, 2), keepdims=True), 1e-30)
    pa = p.sum(axis=2, keepdims=True)
    pb = p.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p / np.maximum(pa * pb, 1e-30)), 0.0)
    return terms.sum(axis=(1, 2))


def _mi_align(
    mov: np.ndarray,
    ref: np.ndarray,
    w: np.ndarray,
    ky,
    kx,
    s0=(0.0, 0.0),
    nb: int = 24,
    step0: float = 0.5,
) -> np.ndarray:
    """Shift s (2,) maximising the weighted mutual information of mov(p + s) and ref(p).

    Pattern search (steps ``step0`` .. 1/16 pixel) with a final parabolic refinement; contrast
    invariant (any one-to-one or many-to-one intensity relation), for high-SNR images.
    """
    n = ref.shape
    sel = w > 0.05 * float(w.max())
    wts = w[sel].astype(np.float64)
    ra = ref[sel]
    lo_a, hi_a = np.percentile(ra, [0.5, 99.5])
    a_bins = np.clip((ra - lo_a) / max(hi_a - lo_a, 1e-12) * nb, 0, nb - 1).astype(np.int64)
    lo_b, hi_b = (float(v) for v in np.percentile(mov[sel], [0.5, 99.5]))
    spec = sfft.rfft2(mov[None], axes=(-2, -1))
    offs = np.array([(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)], dtype=float)
    s = np.asarray(s0, dtype=float).copy()
    step = float(step0)
    scores = None
    for _ in range(40):
        cands = s[None] + step * offs
        warped = _fourier_shift(np.broadcast_to(spec, (9,) + spec.shape[1:]), cands, ky, kx, n)
        scores = _mi(a_bins, warped[:, sel], wts, lo_b, hi_b, nb)
        best = int(np.argmax(scores))
        if best == 4:
            if step <= 1 / 16:
                break
            step /= 2
        else:
            s = cands[best]
    if scores is not None:
        g = scores.reshape(3, 3)
        for ax in (0, 1):
            lo_v = g[0, 1] if ax == 0 else g[1, 0]
            hi_v = g[2, 1] if ax == 0 else g[1, 2]
            den = lo_v - 2 * g[1, 1] + hi_v
            if den < 0:
                s[ax] += step * float(np.clip(0.5 * (lo_v - hi_v) / den, -0.5, 0.5))
    return s


def _phase_basis(
    frames: np.ndarray, w: np.ndarray, k: int, ky, kx, step0: float = 0.5
) -> tuple[np.ndarray, float]:
    """(k, h, w) basis images: means of corrected frames of k distinct contrast phases,
    aligned to the first (most typical) one by mutual information; and the largest of those
    alignment shifts (pixels), 0 when the frames' registration already agrees."""
    n_t = frames.shape[0]
    wf = w.ravel()
    sel = np.flatnonzero(wf > 0.1 * float(wf.max()))
    sel = sel[:: max(1, sel.size // 2000)]
    x = frames.reshape(n_t, -1)[:, sel] * np.sqrt(wf[sel])[None]
    # farthest-point sampling of contrast phases, from the most typical frame
    first = int(np.argmin(((x - np.median(x, axis=0)) ** 2).sum(axis=1)))
    dist = [((x - x[first]) ** 2).sum(axis=1)]
    anchors = [first]
    dmin = dist[0].copy()
    while len(anchors) < min(k, n_t):
        nxt = int(np.argmax(dmin))
        anchors.append(nxt)
        dist.append(((x - x[nxt]) ** 2).sum(axis=1))
        dmin = np.minimum(dmin, dist[-1])
    m = max(1, min(BASIS_FRAMES, n_t // max(k, 1)))
    out = [frames[np.argsort(d)[:m]].mean(axis=0) for d in dist]
    basis = np.stack(out).astype(np.float32)
    n = frames.shape[1:]
    moved = 0.0
    for j in range(1, basis.shape[0]):
        sh = _mi_align(basis[j], basis[0], w, ky, kx, step0=step0)
        moved = max(moved, float(np.hypot(*sh)))
        basis[j] = _fourier_shift(sfft.rfft2(basis[j][None], axes=(-2, -1)), sh[None], ky, kx, n)[0]
    return basis, moved


def _grad_mag(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gradient magnitude of (T, h, w) frames after Gaussian smoothing (pixels)."""
    xs = ndi.gaussian_filter(x, (0, sigma, sigma)) if sigma > 0 else x
    gy = np.zeros_like(xs)
    gx = np.zeros_like(xs)
    gy[:, 1:-1] = 0.5 * (xs[:, 2:] - xs[:, :-2])
    gx[:, :, 1:-1] = 0.5 * (xs[:, :, 2:] - xs[:, :, :-2])
    return np.sqrt(gy * gy + gx * gx)


def _edge_maps(x: np.ndarray, w: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """Contrast-invariant edge maps g / (g + eps) of (T, h, w) frames, float32 in [0, 1).

    g is the gradient magnitude after Gaussian smoothing (``sigma`` pixels); eps, per frame,
    is the upper quartile of g in the heart region, so that edges of any contrast or polarity
    (pre-contrast, RV/LV first pass, PD frames) count alike.
    """
    g = _grad_mag(x.astype(np.float32, copy=False), sigma)
    sel = w > 0.5
    if not np.any(sel):
        sel = w > 0
    eps = np.percentile(g[:, sel], 75, axis=1)
    eps = np.maximum(eps, 1e-6 * max(float(np.abs(x).max()), 1e-30))
    return (g / (g + eps[:, None, None])).astype(np.float32)


def _bin2(x: np.ndarray) -> np.ndarray:
    """2x2 block means of (T, h, w) frames (odd last row/column dropped)."""
    t, h, w = x.shape
    h2, w2 = h // 2, w // 2
    return x[:, : 2 * h2, : 2 * w2].reshape(t, h2, 2, w2, 2).mean(axis=(2, 4))


def _moving_weight(raw: np.ndarray, warped: np.ndarray, sigma: float) -> np.ndarray:
    """(h, w) weight in [0, 1] favouring edges that move with the heart over static ones.

    raw / warped: (T, h, w) edge maps before / after correction. Static edges (chest wall,
    spine) are steady in the raw series and smeared by the correction; moving edges the
    opposite: the weight is var_raw / (var_raw + var_corrected), smoothed (``sigma`` px).
    Without motion both variances agree and the weight is a uniform 0.5.
    """
    v_raw = ndi.gaussian_filter(raw.var(axis=0), sigma)
    v_cor = ndi.gaussian_filter(warped.var(axis=0), sigma)
    tiny = 1e-6 * float(max(v_raw.max(), v_cor.max(), 1e-30))
    return ((v_raw + tiny) / (v_raw + v_cor + 2 * tiny)).astype(np.float32)


def _register_edges(
    edges: np.ndarray,
    w: np.ndarray,
    dyn: np.ndarray,
    max_shift: np.ndarray,
    s0: np.ndarray | None,
    n_outer: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """Group-wise registration of (T, h, w) edge maps to the mean of the dynamic frames.

    s0: initial shifts (None: phase correlation against the unregistered mean).
    Returns shifts (median of the dynamic frames at 0), warped maps, their dynamic mean and
    the convergence of the last Gauss-Newton pass.
    """
    n = edges.shape[1:]
    ky = np.fft.fftfreq(n[0]).astype(np.float32)
    kx = np.fft.rfftfreq(n[1]).astype(np.float32)
    spec = sfft.rfft2(edges, axes=(-2, -1), workers=-1)
    if s0 is None:
        warped = edges
        s = _phase_correlation(
            edges, np.broadcast_to(warped[dyn].mean(axis=0), edges.shape), w, max_shift
        )
    else:
        s = np.asarray(s0, dtype=float).copy()
    warped = _fourier_shift(spec, s, ky, kx, n)
    converged = False
    for _ in range(n_outer):
        mean_edges = warped[dyn].mean(axis=0)
        s, warped, converged = _gauss_newton(spec, mean_edges, w, s, ky, kx, max_shift)
        shift0 = np.median(s[dyn], axis=0)
        if float(np.abs(shift0).max()) > 0.01:
            s -= shift0
            warped = _fourier_shift(spec, s, ky, kx, n)
    return s, warped, warped[dyn].mean(axis=0), converged


# ------------------------------------------------------------------------------ public


def correct_motion(
    images: np.ndarray,
    pd_frames: Sequence[int] = (),
    *,
    pixel_spacing_mm: Sequence[float] | None = None,
    reference_frame: int | None = None,
    heart_centre: tuple[float, float] | None = None,
    method: str = "basis",
    max_shift_mm: float = 40.0,
    weight: np.ndarray | None = None,
) -> MotionResult:
    """Rigid in-plane motion correction of one slice's series (see the module notes).

    images: (T, Y, X) signal (any real dtype). pd_frames: 0-based PD frame indices (kept out of
    the contrast model). pixel_spacing_mm: (dy, dx), default 2 mm (region sizes are in mm).
    reference_frame: force the reference (default: step 5 of the module notes).
    heart_centre: (row, col) to skip automatic localisation.
    method: 'basis' (default: edge stage, then contrast-matched phase-basis stage) or
        'edges' (edge stage only: faster, less accurate across contrast phases).
    max_shift_mm: largest accepted shift. weight: optional (Y, X) region weight replacing the
    automatic heart region.
    Returns a :class:`MotionResult`; never raises for poor data (flags instead), only for
    malformed input (:class:`InputError`).
    """
    imgs = np.asarray(images)
    if imgs.ndim != 3 or min(imgs.shape) < 1:
        raise InputError(f"motion correction needs a (T, Y, X) series, got shape {imgs.shape}.")
    if method not in ("basis", "edges"):
        raise ValueError("method must be 'basis' or 'edges'")
    n_t, ny, nx = imgs.shape
    data = np.nan_to_num(imgs.astype(np.float32, copy=False), nan=0.0, posinf=0.0, neginf=0.0)
    spacing = np.asarray(pixel_spacing_mm or _DEFAULT_SPACING_MM, dtype=float)
    if spacing.shape != (2,) or not np.all(spacing > 0):
        raise InputError(f"pixel spacing must be two positive numbers (mm), not {spacing}.")
    pd = sorted({int(i) for i in pd_frames if 0 <= int(i) < n_t})
    dyn = np.array([i for i in range(n_t) if i not in set(pd)], dtype=int)
    flags: list[str] = []

    def identity(reason: str) -> MotionResult:
        ref = int(dyn[dyn.size // 2]) if dyn.size else 0
        return MotionResult(
            corrected=data.copy(),
            shifts_px=np.zeros((n_t, 2)),
            reference_frame=ref if reference_frame is None else int(reference_frame),
            ncc_before=np.ones(n_t),
            ncc_after=np.ones(n_t),
            heart_centre=((ny - 1) / 2, (nx - 1) / 2),
            weight=np.ones((ny, nx), np.float32),
            converged=True,
            method=method,
            flags=flags + [f"moco: {reason}, not corrected"],
        )

    if dyn.size < 4 or ny < 24 or nx < 24:
        return identity("too few frames or too small image")
    if float(np.ptp(data[dyn])) <= 0:
        return identity("constant images")
    # the receive coil's shading stays with the scanner while the heart moves through it:
    # registration and resampling work on the series divided by a smooth coil estimate
    coil = coil_estimate(data, pd) if COIL_FLATTEN else None
    if coil is not None:
        data = data / coil[None]
    # registration works on a normalised copy (any intensity scale); resampling on the data
    scale = float(np.percentile(np.abs(data[dyn]), 99.5)) or float(np.abs(data[dyn]).max())
    work = (data / np.float32(scale)).astype(np.float32)
    if 0 < BAND_LIMIT_FROM < 1:
        work = _band_limit(work, BAND_LIMIT_FROM)

    if weight is None:
        w_full, centre, wflags = _heart_weight(work[dyn], spacing, heart_centre)
        flags += wflags
    else:
        w_full = np.clip(np.asarray(weight, dtype=np.float32), 0, None)
        if w_full.shape != (ny, nx) or float(w_full.max()) <= 0:
            raise InputError("motion weight must be a non-negative (Y, X) map, not all zero.")
        w_full = w_full / float(w_full.max())
        cy, cx = ndi.center_of_mass(w_full)
        centre = (float(cy), float(cx))
    max_shift = np.minimum(max_shift_mm / spacing, np.array([ny, nx]) / 4.0)

    # -- 1. coarse stage: edge maps, 2x2 binned, group-wise; then static structures suppressed
    rs, cs = _crop_box(w_full, int(np.ceil(max_shift.max())) + 4)
    # bin 2x2 only where pixels are small and the crop large (not for low-resolution series)
    small_px = float(spacing.max()) < 3.0
    f = 2 if small_px and min(rs.stop - rs.start, cs.stop - cs.start) >= 64 else 1
    coarse = _bin2(work[:, rs, cs]) if f == 2 else work[:, rs, cs]
    w_c = _bin2(w_full[None, rs, cs])[0] if f == 2 else w_full[rs, cs]
    e_c = _edge_maps(coarse, w_c)
    s, warped_c, _, _ = _register_edges(e_c, w_c, dyn, max_shift / f, None, 3)
    w_c = w_c * _moving_weight(e_c[dyn], warped_c[dyn], 1.0) ** 2
    s, warped_c, mean_c, converged = _register_edges(e_c, w_c, dyn, max_shift / f, s, 2)
    s *= float(f)

    # -- 2. fine crop and region weight (heart region x motion weight)
    margin = int(np.ceil(np.abs(s).max())) + 4
    rs, cs = _crop_box(w_full, margin)
    crop = work[:, rs, cs]
    n = crop.shape[1:]
    ky = np.fft.fftfreq(n[0]).astype(np.float32)
    kx = np.fft.rfftfreq(n[1]).astype(np.float32)
    edges = _edge_maps(crop, w_full[rs, cs])
    espec = sfft.rfft2(edges, axes=(-2, -1), workers=-1)
    ewarp = _fourier_shift(espec, s, ky, kx, n)
    w = w_full[rs, cs] * _moving_weight(edges[dyn], ewarp[dyn], 2.0) ** 2

    if method == "edges":
        s, ewarp, mean_e, converged = _register_edges(edges, w, dyn, max_shift, s, 2)
        mean_b = np.broadcast_to(mean_e, edges.shape)
        ncc_before = _wncc(edges, mean_b, w)
        ncc_after = _wncc(ewarp, mean_b, w)
    else:
        # -- 3. contrast-matched stage on the dynamic frames
        dspec = sfft.rfft2(crop[dyn], axes=(-2, -1), workers=-1)
        sd = s[dyn].copy()
        basis = None
        dwarp = _fourier_shift(dspec, sd, ky, kx, n)
        for r in range(len(BASIS_STEPS) + BASIS_MORE_ROUNDS):
            basis, moved = _phase_basis(
                dwarp, w, N_BASIS, ky, kx, BASIS_STEPS[min(r, len(BASIS_STEPS) - 1)]
            )
            if r >= len(BASIS_STEPS) and moved < BASIS_TOL_PX:
                break  # the phase images agree with the frames' registration: converged
            sd, dwarp, converged = _gauss_newton(
                dspec, basis[0], w, sd, ky, kx, max_shift, basis=basis, robust=True
            )
        s_edge = s.copy()
        s[dyn] = sd
        synth = _fit_basis(dwarp, basis, w)
        ncc_before = np.ones(n_t)
        ncc_after = np.ones(n_t)
        ncc_before[dyn] = _wncc(crop[dyn], synth, w)
        ncc_after[dyn] = _wncc(dwarp, synth, w)
        # -- 4. PD frames: to their mean (same contrast), the mean to basis[0] by MI
        if pd:
            near = np.median(s[dyn[:PD_NEIGHBOUR_FRAMES]], axis=0) if PD_NEIGHBOUR_FRAMES else None
            s[pd], nb, na, pflags = _register_pd(
                crop[pd], s_edge[pd], basis[0], w, ky, kx, near=near
            )
            ncc_before[pd], ncc_after[pd] = nb, na
            flags += pflags
    if not converged:
        flags.append("moco: registration did not fully converge")

    # -- 5. reference frame: most typical position among well-matched dynamic frames
    poor_level = min(0.5, 0.6 * float(np.median(ncc_after[dyn])))
    if reference_frame is None:
        good = dyn[ncc_after[dyn] >= np.percentile(ncc_after[dyn], 25)]
        pool = dyn
        if REFERENCE_FROM_FIRST_PASS:
            window = _first_pass_frames(work, w_full, dyn)
            in_window = good[np.isin(good, window)]
            if in_window.size >= 3:
                good, pool = in_window, window
        sd = s[good]
        dist = np.hypot(*(sd - np.median(s[pool], axis=0)).T)
        mid = pool[pool.size // 2]
        score = dist + 0.01 * np.abs(good - mid) / max(dyn.size, 1)
        if pool is not dyn:
            # the position most first-pass frames share (e.g. the breath-hold), then the median
            near = np.hypot(*(sd[:, None, :] - s[pool][None, :, :]).transpose(2, 0, 1)) < 0.3
            score = score - near.sum(axis=1)
        ref = int(good[int(np.argmin(score))])
    else:
        ref = int(reference_frame)
        if not 0 <= ref < n_t:
            raise InputError(f"reference frame {ref} is outside the series (0..{n_t - 1}).")
    shifts = s - s[ref]

    big = np.flatnonzero(np.hypot(*(shifts * spacing).T) > 0.9 * max_shift_mm)
    if big.size:
        flags.append(f"moco: shift near the {max_shift_mm:g} mm limit in frames {big.tolist()}")
    poor = np.flatnonzero(ncc_after < poor_level)
    if poor.size:
        flags.append(f"moco: poor match in frames {poor.tolist()}")

    corrected = shift_frames(data, shifts, order=RESAMPLE_ORDER, clamp=RESAMPLE_CLAMP)
    if coil is not None:
        corrected *= coil[None]  # the reference frame's shading, as the PD frames have it
    return MotionResult(
        corrected=corrected,
        shifts_px=shifts,
        reference_frame=ref,
        ncc_before=np.asarray(ncc_before, dtype=np.float64),
        ncc_after=np.asarray(ncc_after, dtype=np.float64),
        heart_centre=centre,
        weight=w_full,
        converged=bool(converged),
        method=method,
        flags=flags,
    )


def coil_estimate(images: np.ndarray, pd_frames: Sequence[int] = ()) -> np.ndarray:
    """(Y, X) float32 smooth receive-coil shading of a (T, Y, X) series, median 1 over the
    body: a second-order polynomial fitted to the log of the mean PD frame (without PD frames:
    the median frame) over the pixels above 20% of its 99th percentile, on a grid of about 48
    pixels a side. Ones where fewer than 50 such pixels exist."""
    a = np.asarray(images, dtype=np.float32)
    n_t, ny, nx = a.shape
    pd = [int(k) for k in pd_frames if 0 <= int(k) < n_t]
    img = a[pd].mean(axis=0) if pd else np.median(a, axis=0)
    step = max(1, min(ny, nx) // 48)
    sub = img[::step, ::step].astype(np.float64)
    body = sub > 0.2 * np.percentile(sub, 99)
    if body.sum() < 50:
        return np.ones((ny, nx), np.float32)
    rr, cc = np.mgrid[0:ny:step, 0:nx:step].astype(np.float64)

    def design(r: np.ndarray, c: np.ndarray) -> np.ndarray:
        y, x = r / ny - 0.5, c / nx - 0.5
        return np.stack([np.ones_like(y), y, x, y * y, x * y, x * x], axis=-1)

    coef = np.linalg.lstsq(design(rr[body], cc[body]), np.log(sub[body]), rcond=None)[0]
    log_c = design(*np.mgrid[0:ny, 0:nx].astype(np.float64))[..., 1:] @ coef[1:]
    c = np.exp(log_c - np.median(log_c[::step, ::step][body]))
    return c.astype(np.float32)


def _first_pass_frames(work: np.ndarray, w: np.ndarray, dyn: np.ndarray) -> np.ndarray:
    """Dynamic frames of the first pass: ``FIRST_PASS_FRAMES`` frames from the one where the
    heart region's mean signal has risen by 10% of its rise to its peak (the blood pools'
    upslope and peak, then the myocardium's). work: (T, Y, X); w: (Y, X) heart-region weight;
    dyn: dynamic frame indices. Empty when there is no clear rise."""
    if dyn.size < 6:
        return dyn[:0]
    m = np.tensordot(work[dyn], w, axes=([1, 2], [0, 1])) / max(float(w.sum()), 1e-9)
    base = float(np.median(m[:3]))
    peak = int(np.argmax(m))
    rise = float(m[peak]) - base
    if not rise > 0:
        return dyn[:0]
    above = np.flatnonzero(m[: peak + 1] - base >= 0.1 * rise)
    start = int(above[0]) if above.size else peak
    return dyn[start : start + FIRST_PASS_FRAMES]


#: PD frames: when their mutual-information match and the edge stage disagree (> 2 px), the
#: one nearer the median shift of this many first dynamic frames is kept. Keeping the edge
#: stage always misplaced the PD frames of the noise-free exam standard 501 (stress, apical
#: slice) by 3.2 px (the MI match: 0.1 px), and with them the PD normalisation of the Gd
#: conversion: its segments read -25% to +20% (stop 30). 0: always the edge stage.
PD_NEIGHBOUR_FRAMES = 3


def _register_pd(pcrop, s_init, ref, w, ky, kx, near=None):
    """Shifts (P, 2) of the PD frames in the geometry of ``ref``, NCC before/after, flags.

    When the mutual-information match and the edge stage (``s_init``) differ by more than
    2 pixels, the one whose mean lies nearer ``near`` (2,), the fine-stage shift of the first
    dynamic frames (acquired next, usually in the same breath-hold), is kept; without
    ``near``, the edge stage."""
    n = pcrop.shape[1:]
    pspec = sfft.rfft2(pcrop, axes=(-2, -1), workers=-1)
    sp = s_init - s_init.mean(axis=0)
    pw = _fourier_shift(pspec, sp, ky, kx, n)
    if pcrop.shape[0] > 1:
        for _ in range(2):
            sp, pw, _ = _gauss_newton(pspec, pw.mean(axis=0), w, sp, ky, kx, np.array([5.0, 5.0]))
            sp -= sp.mean(axis=0)
            pw = _fourier_shift(pspec, sp, ky, kx, n)
    pmean = pw.mean(axis=0)
    nb = _wncc(pcrop, np.broadcast_to(pmean, pcrop.shape), w)
    na = _wncc(pw, np.broadcast_to(pmean, pcrop.shape), w)
    off = _mi_align(pmean, ref, w, ky, kx, s0=s_init.mean(axis=0), step0=0.25)
    out = sp + off[None, :]
    flags: list[str] = []
    if float(np.max(np.hypot(*(out - s_init).T))) > 2.0:
        d_mi = np.inf if near is None else float(np.hypot(*(out.mean(axis=0) - near)))
        d_edge = 0.0 if near is None else float(np.hypot(*(s_init.mean(axis=0) - near)))
        if d_edge <= d_mi:
            flags.append("moco: PD frames aligned by the edge stage only (no reliable match)")
            out = s_init
    return out, nb, na, flags


def correct_series(
    series: SliceSeries | AifSeries, **kwargs
) -> tuple[SliceSeries | AifSeries, MotionResult]:
    """Motion-correct a :class:`SliceSeries` (or :class:`AifSeries`); returns a corrected copy
    and the result.

    The copy holds the corrected images (reference-frame grid) and the result's flags appended
    to its own; everything else is unchanged. ``kwargs`` go to :func:`correct_motion`.
    """
    kwargs.setdefault("pixel_spacing_mm", series.geometry.pixel_spacing_mm)
    res = correct_motion(series.images, series.pd_frames, **kwargs)
    out = dataclasses.replace(
        series, images=res.corrected, flags=list(series.flags) + list(res.flags)
    )
    return out, res
