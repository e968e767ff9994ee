"""Preprocessing of one motion-corrected short-axis slice series for the segmentation model.

One function, :func:`preprocess_series`, serves training and inference (training passes an
augmentation affine and per-frame shifts; inference passes none). Steps:

1. dynamic frames only (PD frames dropped);
2. bolus arrival ``t_arrival_s`` from the mean curve of the most-enhancing (blood) pixels and the
   pre-contrast baseline (per-pixel median of the frames before arrival);
3. enhancement ``E = S - baseline``: works for signal and for Gd (baseline ~ 0);
4. heart localisation (:func:`localise_heart`): the LV blood pool is the late-peaking,
   strongly enhancing blob next to the early-peaking RV;
5. temporal resampling onto ``n_frames`` times ``t_arrival_s + t_start_s + j * dt_s``
   (triangular kernel, see :func:`temporal_weights`);
6. spatial resampling (bilinear) onto a ``crop_px`` square grid of ``pixel_mm`` pixels centred
   on the heart, :class:`CropGeometry` maps crop <-> DICOM pixels exactly;
7. division by a robust percentile of the peak enhancement near the heart, clipped.

Arrays: images ``(T, Y, X)``, model input ``(F, H, W)`` float32, points ``(row, col)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import ndimage

from qperf_viewer.errors import InputError

#: Weight of early-peaking (RV) blood in the LV localisation score.
EARLY_WEIGHT = 0.5


@dataclass(frozen=True)
class PreprocessParams:
    """Parameters that define the model input; stored in ``models/metadata.json``."""

    n_frames: int = 24
    dt_s: float = 1.5
    t_start_s: float = -4.5
    crop_px: int = 176
    pixel_mm: float = 1.0
    norm_percentile: float = 99.0
    norm_radius_mm: float = 60.0
    clip: tuple[float, float] = (-1.0, 3.0)
    arrival_fraction: float = 0.1
    blood_top_fraction: float = 0.004

    def to_dict(self) -> dict:
        d = asdict(self)
        d["clip"] = list(self.clip)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> PreprocessParams:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        if "clip" in known:
            known["clip"] = tuple(float(v) for v in known["clip"])
        return cls(**known)


@dataclass(frozen=True)
class CropGeometry:
    """Axis-aligned map between the crop grid (i, j) and DICOM pixels (row, col).

    ``row = centre_row + (i - (shape[0] - 1) / 2) * pixel_mm / spacing_mm[0]`` and likewise for
    columns; :meth:`crop_to_native` and :meth:`native_to_crop` are exact inverses.
    spacing_mm: DICOM PixelSpacing (row spacing dy, column spacing dx) in mm.
    """

    centre: tuple[float, float]
    spacing_mm: tuple[float, float]
    shape: tuple[int, int]
    pixel_mm: float
    native_shape: tuple[int, int]

    def _scale(self) -> np.ndarray:
        return self.pixel_mm / np.asarray(self.spacing_mm, dtype=float)

    def crop_to_native(self, i, j) -> tuple[np.ndarray, np.ndarray]:
        """DICOM (row, col) of crop pixel (i, j) (arrays or floats)."""
        s = self._scale()
        h = (np.asarray(self.shape, dtype=float) - 1.0) / 2.0
        r = self.centre[0] + (np.asarray(i, dtype=float) - h[0]) * s[0]
        c = self.centre[1] + (np.asarray(j, dtype=float) - h[1]) * s[1]
        return r, c

    def native_to_crop(self, r, c) -> tuple[np.ndarray, np.ndarray]:
        """Crop (i, j) of DICOM pixel (row, col) (arrays or floats)."""
        s = self._scale()
        h = (np.asarray(self.shape, dtype=float) - 1.0) / 2.0
        i = (np.asarray(r, dtype=float) - self.centre[0]) / s[0] + h[0]
        j = (np.asarray(c, dtype=float) - self.centre[1]) / s[1] + h[1]
        return i, j

    def native_bbox(self, margin: int = 2) -> tuple[slice, slice]:
        """Slices of the DICOM grid covered by the crop (plus ``margin`` pixels), clipped."""
        r, c = self.crop_to_native(
            np.array([0.0, self.shape[0] - 1.0]), np.array([0.0, self.shape[1] - 1.0])
        )
        r0 = max(int(np.floor(r[0])) - margin, 0)
        r1 = min(int(np.ceil(r[1])) + margin + 1, self.native_shape[0])
        c0 = max(int(np.floor(c[0])) - margin, 0)
        c1 = min(int(np.ceil(c[1])) + margin + 1, self.native_shape[1])
        return slice(r0, max(r1, r0)), slice(c0, max(c1, c0))

    def to_dict(self) -> dict:
        return {
            "centre": [float(v) for v in self.centre],
            "spacing_mm": [float(v) for v in self.spacing_mm],
            "shape": [int(v) for v in self.shape],
            "pixel_mm": float(self.pixel_mm),
            "native_shape": [int(v) for v in self.native_shape],
        }


@dataclass
class Augment:
    """Training-only changes to the sampling (all identity by default).

    affine: (2, 2) map from crop offsets (mm, (di, dj)) to native offsets (mm, (drow, dcol))
        applied about the crop centre (rotation, flip, scale).
    frame_shifts_px: (F, 2) per output frame shift (drow, dcol) in DICOM pixels (residual
        motion).
    time_shift_s / time_stretch: the output time grid becomes
        ``t_arrival + time_shift_s + time_stretch * (t_start + j dt)``.
    noise: standard deviation of white noise added to the normalised enhancement on the
        DICOM grid (before spatial resampling); rng: its generator.
    """

    affine: np.ndarray | None = None
    frame_shifts_px: np.ndarray | None = None
    time_shift_s: float = 0.0
    time_stretch: float = 1.0
    noise: float = 0.0
    rng: np.random.Generator | None = None


@dataclass
class Preprocessed:
    """Model input and everything needed to map results back.

    x: (F, H, W) float32 model input. crop: crop <-> DICOM map. t_arrival_s: bolus arrival
    (s, same origin as times_s). scale: enhancement divisor. lv_guess: (row, col) crop centre
    (the localised LV blood pool or the given centre). candidates: further LV candidates
    (row, col) from the localisation, best first (empty when a centre was given).
    flags: data-quality notes. baseline_frames: indices (into the dynamic frames) of the
    pre-contrast frames; with ``t_arrival_s`` they can be passed back as ``arrival`` to
    prepare the same series at another centre without repeating the temporal analysis.
    """

    x: np.ndarray
    crop: CropGeometry
    t_arrival_s: float
    scale: float
    lv_guess: tuple[float, float]
    flags: list[str] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    candidates: list[tuple[float, float]] = field(default_factory=list)
    baseline_frames: np.ndarray | None = None


# --------------------------------------------------------------------------------------------
# temporal


def dynamic_indices(n_frames: int, pd_frames) -> np.ndarray:
    """Indices of non-PD frames, in order."""
    pd = {int(i) for i in pd_frames}
    return np.array([i for i in range(n_frames) if i not in pd], dtype=int)


def _coarse(images: np.ndarray, spacing_mm: tuple[float, float], target_mm: float = 3.0):
    """Block-mean downsampling to about ``target_mm`` pixels; returns (array, factors).
    Factors of 1 return the input (as float32) without a copy."""
    fy = max(int(round(target_mm / float(spacing_mm[0]))), 1)
    fx = max(int(round(target_mm / float(spacing_mm[1]))), 1)
    t, y, x = images.shape
    if fy == 1 and fx == 1:
        return images.astype(np.float32, copy=False), (1, 1)
    yy, xx = (y // fy) * fy, (x // fx) * fx
    if yy == 0 or xx == 0:
        return images.astype(np.float32), (1, 1)
    # sum of strided views: no reshaped copy of the whole series
    a = np.zeros((t, yy // fy, xx // fx), np.float32)
    for i in range(fy):
        for j in range(fx):
            a += images[:, i:yy:fy, j:xx:fx]
    a *= 1.0 / (fy * fx)
    return a, (fy, fx)


def bolus_arrival(
    coarse_dyn: np.ndarray,
    times_dyn: np.ndarray,
    params: PreprocessParams,
    smoothed: np.ndarray | None = None,
) -> tuple[float, np.ndarray, np.ndarray]:
    """Bolus arrival time (s) and the pre-contrast frame indices of a dynamic series.

    coarse_dyn: (T, y, x) dynamic frames (any units, coarse grid). Blood pixels are the top
    ``blood_top_fraction`` of peak enhancement over a first baseline (median of the first 3
    frames); arrival is where their mean curve first reaches ``arrival_fraction`` of its peak
    (linear interpolation between frames), minus one frame interval (the foot).
    smoothed: ``coarse_dyn`` already filtered with the 3-frame running mean (as computed here),
    to share it with :func:`localise_heart`.
    Returns (t_arrival_s, baseline frame indices, blood curve (T,)).
    """
    t = coarse_dyn.shape[0]
    b0 = np.median(coarse_dyn[: min(3, t)], axis=0)
    if smoothed is None:
        smoothed = temporal_smooth(coarse_dyn)
    e_s = smoothed - b0  # the running mean of a constant baseline is that baseline
    pk = e_s.max(axis=0).ravel()
    n_top = max(int(round(params.blood_top_fraction * pk.size)), 4)
    idx = np.argpartition(pk, -n_top)[-n_top:]
    curve = e_s.reshape(t, -1)[:, idx].mean(axis=1)
    peak = float(curve.max())
    if peak <= 0 or t < 2:
        return float(times_dyn[0]), np.array([0]), curve
    thr = params.arrival_fraction * peak
    k = int(np.argmax(curve >= thr))
    if k == 0:
        t_cross = float(times_dyn[0])
    else:
        c0, c1 = curve[k - 1], curve[k]
        w = (thr - c0) / (c1 - c0) if c1 != c0 else 1.0
        t_cross = float(times_dyn[k - 1] + w * (times_dyn[k] - times_dyn[k - 1]))
    dt = float(np.median(np.diff(times_dyn))) if t > 1 else 1.0
    t_arr = t_cross - dt
    base = np.nonzero(times_dyn < t_arr)[0]
    if base.size == 0:
        base = np.array([0])
    return t_arr, base[-8:], curve


def temporal_weights(times_s: np.ndarray, grid_s: np.ndarray, half_width_s: float) -> np.ndarray:
    """(F, T) resampling matrix: triangular kernel of ``half_width_s`` normalised per output
    time; an output time with no input frame within reach takes the nearest frame."""
    times_s = np.asarray(times_s, dtype=float)
    d = np.abs(grid_s[:, None] - times_s[None, :])
    w = np.clip(1.0 - d / half_width_s, 0.0, None)
    s = w.sum(axis=1)
    empty = s <= 1e-9
    if np.any(empty):
        nearest = np.argmin(d[empty], axis=1)
        w[empty] = 0.0
        w[np.nonzero(empty)[0], nearest] = 1.0
        s = w.sum(axis=1)
    return (w / s[:, None]).astype(np.float32)


def time_grid(t_arrival_s: float, params: PreprocessParams, aug: Augment | None = None):
    """Output frame times (s) of the model input."""
    rel = params.t_start_s + params.dt_s * np.arange(params.n_frames)
    if aug is None:
        return t_arrival_s + rel
    return t_arrival_s + aug.time_shift_s + aug.time_stretch * rel


def temporal_smooth(a: np.ndarray) -> np.ndarray:
    """3-frame running mean along time (axis 0, edge frames repeated); unchanged below 3."""
    if a.shape[0] < 3:
        return a
    return ndimage.uniform_filter1d(a, 3, axis=0, mode="nearest")


# --------------------------------------------------------------------------------------------
# heart localisation


def localise_heart(
    coarse_e: np.ndarray,
    times_dyn: np.ndarray,
    factors: tuple[int, int],
    spacing_mm,
    max_candidates: int = 3,
    smoothed: bool = False,
) -> tuple[list[tuple[float, float]], list[str]]:
    """Candidate (row, col) positions (DICOM pixels) of the LV blood pool, best first.

    coarse_e: (T, y, x) enhancement on the coarse grid. Blood pools are where the first pass
    peaks high and washes out (``wash`` = peak - mean of the last frames; tissue such as liver
    keeps rising and has little wash-out). Blood is split by time to peak into early (RV) and
    late (LV, aorta) pixels; the score is the wash-out smoothed at the scale of a cavity
    (thin bright edges fade), early pixels at half weight, times a mild image-centre prior.
    Candidates are score maxima at least 40 mm apart and at least a quarter of the best; the
    caller checks them with the model. Falls back to the image centre with a flag.
    smoothed: ``coarse_e`` is already the 3-frame running mean (:func:`temporal_smooth`).
    """
    t, y, x = coarse_e.shape
    mm = np.array([factors[0] * spacing_mm[0], factors[1] * spacing_mm[1]], dtype=float)
    centre_px = ((y * factors[0] - 1) / 2.0, (x * factors[1] - 1) / 2.0)
    e = coarse_e if smoothed else temporal_smooth(coarse_e)
    sig = np.maximum(3.0 / mm, 0.5)
    e = ndimage.gaussian_filter(e, (0, sig[0], sig[1]))
    kpk = np.argmax(e, axis=0)
    pk = np.take_along_axis(e, kpk[None], axis=0)[0]
    tp = np.asarray(times_dyn, dtype=float)[kpk]
    tail = e[-max(2, t // 8) :].mean(axis=0)
    wash = np.clip(pk - tail, 0.0, None)
    ref = float(np.percentile(wash, 99.5))
    if not np.isfinite(ref) or ref <= 0:
        return [centre_px], ["heart localisation failed: no enhancement"]
    blood = wash > 0.35 * ref
    if blood.sum() < 3:
        return [centre_px], ["heart localisation uncertain"]
    tb = tp[wash > 0.6 * ref]  # timing of the strongest pools (RV, LV), not of edges
    lo, hi = np.percentile(tb, [10, 90])
    late = blood & (tp >= 0.5 * (lo + hi)) if hi - lo >= 1.5 else blood
    lw = np.where(blood, wash, 0.0) * np.where(late, 1.0, EARLY_WEIGHT)
    score = ndimage.gaussian_filter(lw, 7.0 / mm)
    yy, xx = np.mgrid[0:y, 0:x]
    dc_mm = np.hypot((yy - (y - 1) / 2.0) * mm[0], (xx - (x - 1) / 2.0) * mm[1])
    score = score * np.exp(-0.5 * (dc_mm / 120.0) ** 2)
    out: list[tuple[float, float]] = []
    best = float(score.max())
    for _ in range(max_candidates):
        py, px = np.unravel_index(int(np.argmax(score)), score.shape)
        if score[py, px] <= 0 or score[py, px] < 0.25 * best:
            break
        d = np.hypot((yy - py) * mm[0], (xx - px) * mm[1])
        near = d <= 15.0
        wsum = float(lw[near].sum())
        cy = float((lw * yy)[near].sum() / wsum) if wsum > 0 else float(py)
        cx = float((lw * xx)[near].sum() / wsum) if wsum > 0 else float(px)
        out.append(((cy + 0.5) * factors[0] - 0.5, (cx + 0.5) * factors[1] - 0.5))
        score = np.where(d <= 40.0, 0.0, score)
    return out or [centre_px], []


# --------------------------------------------------------------------------------------------
# spatial


def make_crop(
    centre: tuple[float, float], spacing_mm, native_shape, params: PreprocessParams, size=None
) -> CropGeometry:
    """Crop grid of ``size`` (default ``params.crop_px``) pixels centred on ``centre``."""
    n = int(size or params.crop_px)
    return CropGeometry(
        centre=(float(centre[0]), float(centre[1])),
        spacing_mm=(float(spacing_mm[0]), float(spacing_mm[1])),
        shape=(n, n),
        pixel_mm=float(params.pixel_mm),
        native_shape=(int(native_shape[0]), int(native_shape[1])),
    )


def _lin_idx(coords: np.ndarray, n: int):
    """Bilinear indices/weights along one axis; out-of-range samples get weight 0."""
    f = np.floor(coords)
    w1 = coords - f
    i0 = f.astype(np.int64)
    i1 = i0 + 1
    v0 = (i0 >= 0) & (i0 < n)
    v1 = (i1 >= 0) & (i1 < n)
    w0 = np.where(v0, 1.0 - w1, 0.0)
    w1 = np.where(v1, w1, 0.0)
    return np.clip(i0, 0, n - 1), np.clip(i1, 0, n - 1), w0, w1


def resample_axis_aligned(
    frames: np.ndarray, rows: np.ndarray, cols: np.ndarray, fill: float = 0.0
) -> np.ndarray:
    """Separable bilinear sampling of ``frames`` (C, Y, X) at the grid rows x cols.

    Samples outside the image take ``fill`` (weights of missing neighbours go to the fill).
    """
    c, y, x = frames.shape
    r0, r1, wr0, wr1 = _lin_idx(np.asarray(rows, dtype=float), y)
    c0, c1, wc0, wc1 = _lin_idx(np.asarray(cols, dtype=float), x)
    a = frames[:, r0, :] * wr0[None, :, None].astype(np.float32) + frames[:, r1, :] * wr1[
        None, :, None
    ].astype(np.float32)
    out = a[:, :, c0] * wc0[None, None, :].astype(np.float32) + a[:, :, c1] * wc1[
        None, None, :
    ].astype(np.float32)
    if fill != 0.0:
        wsum = (wr0 + wr1)[:, None] * (wc0 + wc1)[None, :]
        out = out + np.float32(fill) * (1.0 - wsum)[None].astype(np.float32)
    return out.astype(np.float32, copy=False)


def sample_crop(
    frames: np.ndarray,
    crop: CropGeometry,
    offset: tuple[int, int] = (0, 0),
    aug: Augment | None = None,
    order: int = 1,
) -> np.ndarray:
    """Sample ``frames`` (C, Y', X') -- a sub-array of the DICOM grid starting at ``offset`` --
    on the crop grid; (C, H, W) float32, zero outside the image.

    Without augmentation (inference) this is separable bilinear interpolation; with an
    affine or frame shifts it is ``scipy.ndimage.map_coordinates`` of the same order.
    """
    h, w = crop.shape
    if aug is None or (aug.affine is None and aug.frame_shifts_px is None):
        if order != 1:
            raise ValueError("axis-aligned sampling is bilinear")
        rows, _ = crop.crop_to_native(np.arange(h), 0.0)
        _, cols = crop.crop_to_native(0.0, np.arange(w))
        return resample_axis_aligned(frames, rows - offset[0], cols - offset[1])
    hc = (np.array([h, w], dtype=float) - 1.0) / 2.0
    ii, jj = np.meshgrid(np.arange(h) - hc[0], np.arange(w) - hc[1], indexing="ij")
    off_mm = np.stack([ii.ravel(), jj.ravel()]) * crop.pixel_mm
    a = np.eye(2) if aug.affine is None else np.asarray(aug.affine, dtype=float)
    nat = (a @ off_mm) / np.asarray(crop.spacing_mm, dtype=float)[:, None]
    base_r = crop.centre[0] + nat[0] - offset[0]
    base_c = crop.centre[1] + nat[1] - offset[1]
    out = np.empty((frames.shape[0], h, w), dtype=np.float32)
    for k in range(frames.shape[0]):
        dr, dc = (0.0, 0.0)
        if aug.frame_shifts_px is not None:
            dr, dc = aug.frame_shifts_px[min(k, len(aug.frame_shifts_px) - 1)]
        coords = np.stack([base_r + dr, base_c + dc])
        out[k] = ndimage.map_coordinates(
            frames[k], coords, order=order, mode="constant", cval=0.0, prefilter=False
        ).reshape(h, w)
    return out


def crop_to_native(
    maps: np.ndarray, crop: CropGeometry, fill: np.ndarray | None = None
) -> np.ndarray:
    """Map crop-grid maps (C, H, W) back onto the DICOM grid (C, Y, X) by bilinear sampling
    at each DICOM pixel centre (the exact inverse of the crop coordinate map).

    Pixels outside the crop get ``fill`` (C,) (default: zeros).
    """
    cch = maps.shape[0]
    ny, nx = crop.native_shape
    out = np.zeros((cch, ny, nx), dtype=np.float32)
    if fill is not None:
        out[:] = np.asarray(fill, dtype=np.float32)[:, None, None]
    rs, cs = crop.native_bbox(margin=0)
    rows = np.arange(rs.start, rs.stop)
    cols = np.arange(cs.start, cs.stop)
    if rows.size == 0 or cols.size == 0:
        return out
    ii, _ = crop.native_to_crop(rows, 0.0)
    _, jj = crop.native_to_crop(0.0, cols)
    # samples exactly on the last crop row/col must stay inside: clamp rounding noise
    h, w = crop.shape
    ii = np.where(np.abs(ii - (h - 1)) < 1e-9, h - 1, ii)
    jj = np.where(np.abs(jj - (w - 1)) < 1e-9, w - 1, jj)
    inside_r = (ii >= 0) & (ii <= h - 1)
    inside_c = (jj >= 0) & (jj <= w - 1)
    rows, ii = rows[inside_r], ii[inside_r]
    cols, jj = cols[inside_c], jj[inside_c]
    if rows.size == 0 or cols.size == 0:
        return out
    vals = resample_axis_aligned(maps.astype(np.float32, copy=False), ii, jj)
    out[:, rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] = vals
    return out


# --------------------------------------------------------------------------------------------
# the one preprocessing function


@dataclass
class Enhancement:
    """Output of :func:`temporal_stage`: normalised enhancement on (part of) the DICOM grid.

    e: (F, y, x) float32 enhancement / scale on the DICOM sub-grid starting at ``offset``
    (row, col); native_shape: (Y, X) of the whole image; centre: (row, col) the crop centre
    (localised LV or given); candidates: other LV candidates; t_arrival_s, scale, flags as in
    :class:`Preprocessed`.
    """

    e: np.ndarray
    offset: tuple[int, int]
    native_shape: tuple[int, int]
    spacing_mm: tuple[float, float]
    centre: tuple[float, float]
    t_arrival_s: float
    scale: float
    candidates: list[tuple[float, float]] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    baseline_frames: np.ndarray | None = None


def temporal_stage(
    images: np.ndarray,
    times_s: np.ndarray,
    pd_frames,
    spacing_mm: tuple[float, float],
    params: PreprocessParams | None = None,
    *,
    centre: tuple[float, float] | None = None,
    aug: Augment | None = None,
    full_region: bool = False,
    arrival: tuple[float, np.ndarray] | None = None,
) -> Enhancement:
    """Steps 1-5 and 7 of the module docstring: arrival, baseline, localisation, temporal
    resampling and normalisation, on the DICOM grid around the crop (or on the whole image
    with ``full_region``, as training does before its random spatial sampling).
    arrival: (t_arrival_s, baseline frame indices) of an earlier call on the same series, to
    skip the arrival analysis (needs ``centre``)."""
    import time

    t0 = time.perf_counter()
    params = params or PreprocessParams()
    images = np.asarray(images)
    if images.ndim != 3:
        raise InputError(f"expected a (T, Y, X) image series, got shape {images.shape}")
    times_s = np.asarray(times_s, dtype=float)
    if times_s.shape != (images.shape[0],):
        raise InputError(f"times_s has shape {times_s.shape}, expected ({images.shape[0]},)")
    dyn = dynamic_indices(images.shape[0], pd_frames)
    if dyn.size < 2:
        raise InputError("a slice series needs at least 2 dynamic (non-PD) frames")
    spacing_mm = (float(spacing_mm[0]), float(spacing_mm[1]))
    tdyn = times_s[dyn]
    flags: list[str] = []
    if arrival is not None and centre is not None:
        t_arr, base_idx = float(arrival[0]), np.asarray(arrival[1], dtype=int)
        if not np.all(np.isfinite(images[dyn[base_idx]])):
            images = np.nan_to_num(images)
    else:
        # a view when the dynamic frames are contiguous (PD frames lead): no series copy
        contiguous = dyn[-1] - dyn[0] + 1 == dyn.size
        dyn_images = images[dyn[0] : dyn[-1] + 1] if contiguous else images[dyn]
        coarse, factors = _coarse(dyn_images, spacing_mm)
        if not np.all(np.isfinite(coarse)):  # a non-finite pixel makes its block non-finite
            images = np.nan_to_num(images)
            coarse, factors = _coarse(images[dyn], spacing_mm)
        smooth = temporal_smooth(coarse)
        t_arr, base_idx, _ = bolus_arrival(coarse, tdyn, params, smoothed=smooth)
    t1 = time.perf_counter()
    candidates: list[tuple[float, float]] = []
    if centre is None:
        smooth_e = smooth - np.median(coarse[base_idx], axis=0)
        candidates, lflags = localise_heart(smooth_e, tdyn, factors, spacing_mm, smoothed=True)
        flags += lflags
        centre = candidates[0]
    centre = (float(centre[0]), float(centre[1]))
    t2 = time.perf_counter()
    if full_region:
        rs, cs = slice(0, images.shape[1]), slice(0, images.shape[2])
    else:
        rs, cs = make_crop(centre, spacing_mm, images.shape[1:], params).native_bbox(margin=2)
    if rs.stop <= rs.start or cs.stop <= cs.start:
        raise InputError("the crop around the heart lies outside the image")
    grid = time_grid(t_arr, params, aug)
    w = temporal_weights(tdyn, grid, max(params.dt_s, 1.0))
    used = np.union1d(np.nonzero(w.any(axis=0))[0], base_idx)  # frames that matter
    sub = images[dyn[used], rs, cs].astype(np.float32)
    base = np.median(sub[np.searchsorted(used, base_idx)], axis=0)
    e = np.tensordot(w[:, used], sub, axes=(1, 0)) - base[None]  # (F, y, x); rows sum to 1
    # robust scale: peak enhancement percentile within norm_radius_mm of the centre
    yy = (np.arange(rs.start, rs.stop) - centre[0]) * spacing_mm[0]
    xx = (np.arange(cs.start, cs.stop) - centre[1]) * spacing_mm[1]
    near = (yy[:, None] ** 2 + xx[None, :] ** 2) <= params.norm_radius_mm**2
    pk = e.max(axis=0)
    vals = pk[near] if near.any() else pk.ravel()
    scale = float(np.percentile(vals, params.norm_percentile)) if vals.size else 0.0
    if not np.isfinite(scale) or scale <= 0:
        scale = float(np.abs(e).max()) or 1.0
        flags.append("no contrast enhancement found")
    e /= scale
    t3 = time.perf_counter()
    return Enhancement(
        e=e.astype(np.float32, copy=False),
        offset=(rs.start, cs.start),
        native_shape=(int(images.shape[1]), int(images.shape[2])),
        spacing_mm=spacing_mm,
        centre=centre,
        t_arrival_s=float(t_arr),
        scale=scale,
        candidates=candidates[1:],
        flags=flags,
        baseline_frames=np.asarray(base_idx, dtype=int),
        timings_ms={
            "arrival": 1e3 * (t1 - t0),
            "localise": 1e3 * (t2 - t1),
            "temporal": 1e3 * (t3 - t2),
        },
    )


def spatial_stage(
    enh: Enhancement,
    params: PreprocessParams,
    *,
    centre: tuple[float, float] | None = None,
    aug: Augment | None = None,
    crop_size: int | None = None,
) -> tuple[np.ndarray, CropGeometry]:
    """Step 6: (F, H, W) clipped model input on the crop grid around ``centre`` (default
    ``enh.centre``) and the crop map; training adds noise and its augmentation here."""
    c = enh.centre if centre is None else (float(centre[0]), float(centre[1]))
    crop = make_crop(c, enh.spacing_mm, enh.native_shape, params, crop_size)
    e = enh.e
    if aug is not None and aug.noise > 0:
        rng = aug.rng or np.random.default_rng()
        e = e + aug.noise * rng.standard_normal(e.shape, dtype=np.float32)
    x = sample_crop(e, crop, offset=enh.offset, aug=aug)
    np.clip(x, params.clip[0], params.clip[1], out=x)
    return x, crop


def preprocess_series(
    images: np.ndarray,
    times_s: np.ndarray,
    pd_frames,
    spacing_mm: tuple[float, float],
    params: PreprocessParams | None = None,
    *,
    centre: tuple[float, float] | None = None,
    aug: Augment | None = None,
    crop_size: int | None = None,
    arrival: tuple[float, np.ndarray] | None = None,
) -> Preprocessed:
    """Model input of one motion-corrected slice series (:func:`temporal_stage` then
    :func:`spatial_stage`).

    images: (T, Y, X) signal or Gd (mmol/L), PD frames included or not; times_s: (T,) s;
    pd_frames: indices of PD frames; spacing_mm: PixelSpacing (dy, dx) in mm.
    centre: crop centre (row, col); default from :func:`localise_heart` (training passes the
    true LV centre plus jitter). aug: training augmentation (None at inference).
    crop_size: crop pixels (default ``params.crop_px``; training may use smaller crops).
    arrival: ``(p.t_arrival_s, p.baseline_frames)`` of an earlier result ``p`` for the same
    series, to prepare it at another ``centre`` without repeating the temporal analysis.
    """
    import time

    params = params or PreprocessParams()
    spatial_aug = aug is not None and (aug.affine is not None or aug.frame_shifts_px is not None)
    enh = temporal_stage(
        images,
        times_s,
        pd_frames,
        spacing_mm,
        params,
        centre=centre,
        aug=aug,
        full_region=spatial_aug,
        arrival=arrival,
    )
    t3 = time.perf_counter()
    x, crop = spatial_stage(enh, params, aug=aug, crop_size=crop_size)
    timings = dict(enh.timings_ms)
    timings["spatial"] = 1e3 * (time.perf_counter() - t3)
    return Preprocessed(
        x=x,
        crop=crop,
        t_arrival_s=enh.t_arrival_s,
        scale=enh.scale,
        lv_guess=enh.centre,
        flags=list(enh.flags),
        candidates=list(enh.candidates),
        timings_ms=timings,
        baseline_frames=enh.baseline_frames,
    )
