"""Training data: per-slice records from phantom exams (cached as float16 npz) and augmented
model inputs built with the one preprocessing function.

A record (dict) holds: ``images`` (T, Y, X) motion-corrected signal (PD frames included),
``times_s`` (T,), ``pd_frames``, ``spacing_mm`` (dy, dx), ``labels`` (Y, X) uint8 (0 bg, 1 LV,
2 myo, 3 RV), ``lv_centre``/``rv_ant``/``rv_inf`` (row, col), ``ts_ms``, ``variant``, ``seed``,
``condition``, ``slice_index``, ``orientation`` (6,), ``origin_mm`` (3,). Records are cut to
a region of ``REGION_MM`` around the LV to keep the cache small (points are shifted with it).
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from scipy import ndimage

from qperf_viewer.seg.preprocess import (
    Augment,
    Enhancement,
    PreprocessParams,
    preprocess_series,
    sample_crop,
    spatial_stage,
    temporal_stage,
)

log = logging.getLogger(__name__)

#: Half-size (mm) of the native region kept around the LV centre in the cache.
REGION_MM = 125.0


def _cut_region(rec: dict) -> dict:
    sp = np.asarray(rec["spacing_mm"], dtype=float)
    c = np.asarray(rec["lv_centre"], dtype=float)
    ny, nx = rec["labels"].shape
    h = np.ceil(REGION_MM / sp).astype(int)
    r0, c0 = max(int(c[0]) - h[0], 0), max(int(c[1]) - h[1], 0)
    r1, c1 = min(int(c[0]) + h[0] + 1, ny), min(int(c[1]) + h[1] + 1, nx)
    out = dict(rec)
    out["images"] = rec["images"][:, r0:r1, c0:c1]
    out["labels"] = rec["labels"][r0:r1, c0:c1]
    shift = np.array([r0, c0], dtype=float)
    for k in ("lv_centre", "rv_ant", "rv_inf"):
        out[k] = np.asarray(rec[k], dtype=float) - shift
    out["region_offset"] = shift
    return out


def motion_correct_truth(images: np.ndarray, displacement_px: np.ndarray) -> np.ndarray:
    """Shift each frame back by its true heart displacement (drow, dcol) in pixels."""
    out = np.empty_like(images, dtype=np.float32)
    for t in range(images.shape[0]):
        d = np.asarray(displacement_px[t], dtype=float)
        if np.allclose(d, 0):
            out[t] = images[t]
        else:
            out[t] = ndimage.shift(images[t], -d, order=1, mode="nearest")
    return out


def phantom_records(seed: int, variant: str) -> list[dict]:
    """All slice records of one phantom exam (stress and rest), motion-corrected with truth."""
    from qperf_viewer.phantom import generate_exam

    pe = generate_exam(seed, variant)
    recs = []
    for cond, cdata in pe.exam.conditions.items():
        ctruth = pe.truth[cond]
        for k, (s, st) in enumerate(zip(cdata.slices, ctruth.slices, strict=True)):
            imgs = motion_correct_truth(np.asarray(s.images, np.float32), st.displacement_px)
            recs.append(
                {
                    "images": imgs,
                    "times_s": np.asarray(s.times_s, float),
                    "pd_frames": np.asarray(s.pd_frames, int),
                    "spacing_mm": np.asarray(s.geometry.pixel_spacing_mm, float),
                    "labels": np.asarray(st.labels, np.uint8),
                    "lv_centre": np.asarray(st.lv_centre, float),
                    "rv_ant": np.asarray(st.rv_insertion_anterior, float),
                    "rv_inf": np.asarray(st.rv_insertion_inferior, float),
                    "ts_ms": float(s.ts_ms) if s.ts_ms else np.nan,
                    "variant": variant,
                    "seed": seed,
                    "condition": cond,
                    "slice_index": k,
                    "orientation": np.asarray(s.geometry.orientation, float),
                    "origin_mm": np.asarray(s.geometry.origin_mm, float),
                    "units": s.units,
                }
            )
    return recs


def _save(path: Path, recs: list[dict]) -> None:
    arrays = {}
    for i, r in enumerate(recs):
        for k, v in r.items():
            if k == "images":
                v = np.asarray(v, np.float16)
            arrays[f"{i}__{k}"] = np.asarray(v)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def load_cached(path: Path) -> list[dict]:
    """Records of one cached exam file."""
    with np.load(path, allow_pickle=False) as z:
        recs: dict[int, dict] = {}
        for key in z.files:
            i, k = key.split("__", 1)
            v = z[key]
            recs.setdefault(int(i), {})[k] = v.item() if v.ndim == 0 else v
    return [recs[i] for i in sorted(recs)]


def _build_one(args: tuple[str, int, str, str, bool]) -> str:
    source, seed, variant, path, cut = args
    p = Path(path)
    if p.exists():
        return path
    if source == "standin":
        from qperf_viewer.seg.train.standin import standin_slice

        recs = [standin_slice(seed * 10 + k) for k in range(3)]
    else:
        recs = phantom_records(seed, variant)
    if cut:
        recs = [_cut_region(r) for r in recs]
    _save(p, recs)
    return path


def build_cache(
    cache_dir: Path,
    source: str,
    items: list[tuple[int, str]],
    workers: int = 2,
    cut: bool = True,
) -> list[Path]:
    """Generate (or reuse) cached exams ``(seed, variant)``; returns their paths.

    cut: keep only the region around the LV (training); False keeps the whole field of view
    (evaluation of the heart localisation)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    tag = "" if cut else "full_"
    jobs = [
        (source, seed, variant, str(cache_dir / f"{tag}{source}_{variant}_{seed}.npz"), cut)
        for seed, variant in items
    ]
    todo = [j for j in jobs if not Path(j[3]).exists()]
    if todo:
        log.info("generating %d exams into %s (%d workers)", len(todo), cache_dir, workers)
        if workers > 1:
            with ProcessPoolExecutor(max_workers=min(workers, 2)) as ex:
                for n, _ in enumerate(ex.map(_build_one, todo), 1):
                    if n % 10 == 0:
                        log.info("  %d/%d exams", n, len(todo))
        else:
            for j in todo:
                _build_one(j)
    return [Path(j[3]) for j in jobs]


# --------------------------------------------------------------------------------------------
# augmentation


def delta_r1(images: np.ndarray, pd_frames, ts_ms: float) -> np.ndarray | None:
    """Signal -> R1 (1/s) with the project's signal contract (S/S_pd = 1 - exp(-TS R1));
    a Gd-like representation (Gd = (R1 - R10) / r1). None without PD frames or TS."""
    pd = list(np.asarray(pd_frames, int))
    if not pd or not np.isfinite(ts_ms) or ts_ms <= 0:
        return None
    spd = ndimage.gaussian_filter(np.mean(images[pd], axis=0), 1.0)
    valid = spd > 0.05 * float(np.percentile(spd, 99))  # no R1 in air/lung (noise only)
    spd = np.where(valid, spd, 1.0)
    ratio = np.where(valid[None], np.clip(images / spd[None], 0.0, 0.95), 0.0)
    return (-np.log1p(-ratio) / (ts_ms / 1000.0)).astype(np.float32)


def random_augment(rng: np.random.Generator, n_frames: int, strength: float = 1.0) -> Augment:
    """Random rotation/flip/scale, residual motion and temporal shift/stretch."""
    th = rng.uniform(0, 2 * np.pi)
    rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    s = np.exp(rng.normal(0, 0.1 * strength)) * np.exp(rng.normal(0, 0.03 * strength, 2))
    a = rot @ np.diag(s)
    if rng.random() < 0.5:
        a = a @ np.diag([1.0, -1.0])
    shifts = rng.normal(0, 0.25 * strength, (n_frames, 2))
    if rng.random() < 0.25 * strength:
        k = rng.integers(0, n_frames, size=rng.integers(1, 4))
        shifts[k] += rng.normal(0, 1.2, (len(k), 2))
    return Augment(
        affine=a,
        frame_shifts_px=shifts,
        time_shift_s=float(rng.normal(0, 0.8 * strength)),
        time_stretch=float(np.exp(rng.normal(0, 0.12 * strength))),
    )


def _intensity_curve(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random monotonic contrast curve on normalised enhancement (keeps 0 -> 0)."""
    g = float(np.exp(rng.normal(0, 0.25)))
    y = np.sign(x) * np.abs(x) ** g
    if rng.random() < 0.3:  # saturation-like compression of the blood peak
        k = rng.uniform(0.5, 2.5)
        y = np.tanh(k * y) / np.tanh(k)
    return y.astype(np.float32)


#: Number of cached temporal variants per record (0: as acquired; 1, 2: random arrival shift
#: and stretch, variant 1 converted to R1 when PD frames allow).
N_TEMPORAL_VARIANTS = 3


def temporal_variant(
    rec: dict,
    params: PreprocessParams,
    seed: int,
    v: int,
    shift_sd_s: float = 1.5,
    stretch_sd: float = 0.2,
) -> Enhancement:
    """Stage-1 preprocessing (:func:`temporal_stage`, whole cached region) of one record in
    temporal/intensity variant ``v``; deterministic in (seed, v). Variants 1 and 2 shift the
    bolus arrival (SD ``shift_sd_s`` s) and stretch time (log SD ``stretch_sd``)."""
    images = np.asarray(rec["images"], np.float32)
    aug = None
    if v > 0:
        rng = np.random.default_rng([seed, v])
        if v == 1:
            dr1 = delta_r1(images, rec["pd_frames"], float(rec.get("ts_ms", np.nan)))
            if dr1 is not None:
                images = dr1
        aug = Augment(
            time_shift_s=float(rng.normal(0, shift_sd_s)),
            time_stretch=float(np.exp(rng.normal(0, stretch_sd))),
        )
    enh = temporal_stage(
        images,
        rec["times_s"],
        rec["pd_frames"],
        tuple(float(v) for v in rec["spacing_mm"]),
        params,
        centre=tuple(np.asarray(rec["lv_centre"], float)),
        aug=aug,
        full_region=True,
    )
    enh.e = enh.e.astype(np.float16)
    return enh


def make_example(
    rec: dict,
    params: PreprocessParams,
    rng: np.random.Generator | None,
    crop_size: int | None = None,
    centre_jitter_mm: float = 12.0,
    enh: Enhancement | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(x (F, h, w) float32, y (h, w) int64) for one record.

    ``rng=None``: no augmentation (validation), the inference preprocessing centred on the
    true LV. Otherwise ``enh`` (a :func:`temporal_variant`, computed when None) is sampled with
    a random centre jitter, rotation/flip/scale, residual motion and noise, then intensity
    curves and blur.
    """
    sp = tuple(float(v) for v in rec["spacing_mm"])
    centre = np.asarray(rec["lv_centre"], float)
    lab = np.asarray(rec["labels"])
    if rng is None:
        pre = preprocess_series(
            np.asarray(rec["images"], np.float32),
            rec["times_s"],
            rec["pd_frames"],
            sp,
            params,
            centre=tuple(centre),
            crop_size=crop_size,
        )
        x, crop, aug = pre.x, pre.crop, None
    else:
        if enh is None:
            enh = temporal_variant(rec, params, int(rng.integers(1 << 30)), int(rng.integers(3)))
        jit = np.clip(
            rng.normal(0, centre_jitter_mm, 2), -2.5 * centre_jitter_mm, 2.5 * centre_jitter_mm
        )
        centre = centre + jit / np.asarray(sp)
        aug = random_augment(rng, params.n_frames)
        if rng.random() < 0.7:  # white noise on the DICOM grid (relative to the blood peak)
            aug.noise = float(rng.uniform(0.0, 0.06))
            aug.rng = rng
        e32 = Enhancement(**{**enh.__dict__, "e": enh.e.astype(np.float32)})
        x, crop = spatial_stage(e32, params, centre=tuple(centre), aug=aug, crop_size=crop_size)
    onehot = np.stack([(lab == c).astype(np.float32) for c in range(4)])
    oh = sample_crop(onehot, crop, aug=None if aug is None else Augment(affine=aug.affine))
    oh[0] += 1e-3  # outside the image: background
    y = np.argmax(oh, axis=0).astype(np.int64)
    if rng is not None:
        x = _intensity_curve(x, rng)
        if rng.random() < 0.3:
            x = ndimage.gaussian_filter(x, (0, *([rng.uniform(0.3, 1.2)] * 2)))
        np.clip(x, params.clip[0], params.clip[1], out=x)
    return x.astype(np.float32), y
