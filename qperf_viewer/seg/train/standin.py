"""Quick stand-in slices (ellipse anatomy, gamma-variate dynamics) to exercise the training
chain without the project's phantom. Not used for the shipped model.

Produces the same per-slice record as :mod:`qperf_viewer.seg.train.data` caches from phantom
exams: raw signal (T, Y, X) with PD frames, already motion-free, labels (Y, X).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def _gamma(t: np.ndarray, t0: float, tp: float, alpha: float = 3.0) -> np.ndarray:
    x = np.clip(t - t0, 0, None) / tp
    out = np.zeros_like(x)
    pos = x > 0
    out[pos] = np.exp(alpha * (np.log(x[pos]) + 1 - x[pos]))
    return out


def standin_slice(seed: int) -> dict:
    """One random slice record (see :func:`qperf_viewer.seg.train.data.slice_record`)."""
    rng = np.random.default_rng(seed)
    sp = float(rng.uniform(1.6, 2.4))
    ny, nx = 160, 176
    yy, xx = np.mgrid[0:ny, 0:nx].astype(float)
    cy = ny / 2 + rng.normal(0, 8)
    cx = nx / 2 + rng.normal(0, 8)
    r_lv = rng.uniform(9, 24) / sp
    th = rng.uniform(6, 12) / sp
    ang = rng.uniform(0, 2 * np.pi)
    ecc = rng.uniform(0.9, 1.1)
    dy, dx = yy - cy, xx - cx
    u = dx * np.cos(ang) + dy * np.sin(ang)
    v = -dx * np.sin(ang) + dy * np.cos(ang)
    rr = np.hypot(u * ecc, v / ecc)
    labels = np.zeros((ny, nx), np.uint8)
    lv = rr < r_lv
    myo = (rr >= r_lv) & (rr < r_lv + th)
    # RV: crescent on the side at angle rv_dir
    rv_dir = rng.uniform(0, 2 * np.pi)
    off = (r_lv + th) * 0.9
    ry, rx = cy + off * np.sin(rv_dir), cx + off * np.cos(rv_dir)
    rv_r = (r_lv + th) * rng.uniform(0.8, 1.1)
    rv = (np.hypot(yy - ry, xx - rx) < rv_r) & (rr >= r_lv + th + 0.8 / sp * 2)
    labels[rv] = 3
    labels[myo] = 2
    labels[lv] = 1
    body = np.hypot((yy - ny / 2) / (ny * 0.45), (xx - nx / 2) / (nx * 0.48)) < 1
    lung = body & (np.hypot(yy - cy, xx - cx) > (r_lv + th) * 2.2) & (rng.random() < 0.7)
    n_dyn = int(rng.integers(40, 60))
    n_pd = 2
    rr_s = float(rng.uniform(0.5, 1.0))
    t = np.arange(n_pd + n_dyn) * rr_s
    td = t
    t_arr = float(rng.uniform(4, 10))
    rvc = 6 * _gamma(td, t_arr, rng.uniform(2, 4))
    lvc = 5 * _gamma(td, t_arr + rng.uniform(2.5, 4.5), rng.uniform(3, 6))
    lvc += 0.8 * ndimage.uniform_filter1d(lvc, max(int(12 / rr_s), 1), mode="nearest")
    myoc = 0.12 * ndimage.gaussian_filter1d(lvc, 3 / rr_s) * rng.uniform(0.6, 1.4)
    myoc += 0.05 * lvc
    tis = 0.03 * ndimage.gaussian_filter1d(lvc, 6 / rr_s)
    gd = np.zeros((len(t), ny, nx), np.float32)
    gd += tis[:, None, None] * body[None]
    gd[:, labels == 3] = rvc[:, None]
    gd[:, labels == 1] = lvc[:, None]
    gd[:, labels == 2] = myoc[:, None]
    gd[:, lung] = 0.0
    r10 = np.full((ny, nx), 1.0, np.float32)
    r10[labels == 1] = r10[labels == 3] = 1 / 1.55
    m0 = np.where(body, 1000.0, 20.0) * np.where(lung, 0.15, 1.0)
    m0 = ndimage.gaussian_filter(m0 * (1 + 0.2 * rng.standard_normal((ny, nx))), 1.0)
    ts = float(rng.uniform(90, 130)) / 1000
    r1 = r10[None] + 4.5 * gd
    sig = m0[None] * (1 - np.exp(-ts * r1))
    sig[:n_pd] = m0[None]
    sig += rng.normal(0, 4, sig.shape)
    sig = ndimage.gaussian_filter(sig, (0, 0.6, 0.6))
    return {
        "images": sig.astype(np.float32),
        "times_s": t,
        "pd_frames": np.arange(n_pd),
        "spacing_mm": np.array([sp, sp]),
        "labels": labels,
        "lv_centre": np.array([cy, cx]),
        "rv_ant": np.array([np.nan, np.nan]),
        "rv_inf": np.array([np.nan, np.nan]),
        "ts_ms": ts * 1000,
        "variant": "standin",
        "seed": seed,
        "condition": "rest",
        "slice_index": 0,
        "orientation": np.array([1.0, 0, 0, 0, 1, 0]),
        "origin_mm": np.zeros(3),
    }
