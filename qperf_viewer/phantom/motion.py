"""Respiratory motion of the phantom: breath-hold, then free breathing.

Displacements are in-plane ``(drow, dcol)`` in pixels, relative to the breath-hold
(reference) position; heart and liver move, chest wall and spine stay. The 3D breathing
displacement is projected onto each slice: there is no through-plane motion.
"""

from __future__ import annotations

import numpy as np

from qperf_viewer.geometry import SliceGeometry


def breathing_mm(
    times_s: np.ndarray,
    rng: np.random.Generator,
    *,
    breath_hold_end_s: float | None,
    amplitude_mm: float = 12.0,
) -> np.ndarray:
    """3D displacement (T, 3) in patient coordinates (mm): zero up to ``breath_hold_end_s``
    (None: no motion at all), then quasi-periodic breathing mostly along the superior axis."""
    t = np.asarray(times_s, dtype=float)
    out = np.zeros((t.size, 3))
    if breath_hold_end_s is None:
        return out
    direction = np.array([rng.uniform(-0.2, 0.2), rng.uniform(-0.5, -0.1), 1.0])
    direction /= np.linalg.norm(direction)
    period = rng.uniform(3.5, 5.5)
    tt = np.clip(t - breath_hold_end_s, 0.0, None)
    # Slowly varying period and amplitude; starts at 0 with zero slope.
    phase = 2 * np.pi * tt / period * (1.0 + 0.08 * np.sin(tt / rng.uniform(7, 15)))
    amp = amplitude_mm * (1.0 + 0.2 * np.sin(tt / rng.uniform(5, 12) + rng.uniform(0, 6)))
    sign = rng.choice([-1.0, 1.0])
    s = sign * amp * 0.5 * (1.0 - np.cos(phase))
    drift = rng.uniform(-2.0, 2.0) * (1.0 - np.exp(-tt / 5.0))
    disp = (s + drift)[:, None] * direction[None, :]
    disp[t <= breath_hold_end_s] = 0.0
    return disp


def in_plane_px(disp_mm: np.ndarray, geom: SliceGeometry) -> np.ndarray:
    """Project 3D displacements (T, 3) mm onto the slice: (T, 2) (drow, dcol) in pixels."""
    dy, dx = geom.pixel_spacing_mm
    return np.column_stack([disp_mm @ geom.col_dir / dy, disp_mm @ geom.row_dir / dx])


#: Step (pixels) to which the phantom rounds in-plane displacements. Each distinct sub-pixel
#: part is rendered once (anatomy moved by it) and the whole-pixel part is an exact shift, so a
#: step of 1/2 costs at most three extra renders per slice. Shifting rendered frames by linear
#: interpolation instead (until 2026-12-05) blurred every displaced frame (a half-pixel shift
#: averages neighbours: edges 2 px wide instead of 1), which a scanner does not do.
STEP_PX = 0.5


def quantise_px(disp_px: np.ndarray, step: float | None = None) -> np.ndarray:
    """In-plane displacements (T, 2) pixels rounded to multiples of ``step`` (default
    ``STEP_PX``; 0 or None keeps them as they are)."""
    step = STEP_PX if step is None else step
    d = np.asarray(disp_px, dtype=float)
    return np.round(d / step) * step if step else d.copy()


def _shift_axis(a: np.ndarray, d: np.ndarray, axis: int) -> np.ndarray:
    """Linear-interpolation shift of a (F, ..., Y, X) array by d (F,) along ``axis``
    (-2 rows or -1 columns); content moves towards increasing index for d > 0."""
    n = a.shape[axis]
    src = np.arange(n)[None, :] - d[:, None]  # (F, n) source coordinates
    i0 = np.floor(src)
    w = (src - i0).astype(a.dtype)
    i0 = np.clip(i0.astype(int), 0, n - 1)
    i1 = np.clip(i0 + 1, 0, n - 1)
    shape = [a.shape[0]] + [1] * (a.ndim - 1)
    shape[axis] = n
    i0, i1, w = (v.reshape(shape) for v in (i0, i1, w))
    return np.take_along_axis(a, i0, axis) * (1 - w) + np.take_along_axis(a, i1, axis) * w


def shift_frames(stack: np.ndarray, disp_px: np.ndarray) -> np.ndarray:
    """Move the content of each frame of ``stack`` (T, ..., Y, X) by (drow, dcol) pixels
    (separable linear interpolation, edges repeated); frames with zero displacement are
    copied unchanged."""
    disp = np.asarray(disp_px, dtype=float)
    out = np.array(stack, copy=True)
    moving = np.flatnonzero(np.any(disp != 0, axis=1))
    if moving.size == 0:
        return out
    sub = out[moving]
    sub = _shift_axis(sub, disp[moving, 0], -2)
    sub = _shift_axis(sub, disp[moving, 1], -1)
    out[moving] = sub
    return out
