"""Display geometry and timing helpers for the views (numpy only, no Qt).

Standard short-axis display: seen from the apex (the base-to-apex normal ``n`` points at the
viewer), anterior up, so the RV (patient's right) lies on the left and a right-handed rotation
about ``n`` runs counter-clockwise on screen (Cerqueira et al., Circulation 2002; the project's
AHA convention in docs/CONVENTIONS.md). Screen coordinates are mm, x to the right, y down.
Points are ``(row, col)`` in the slice's DICOM pixel grid; pixel ``(r, c)`` has its centre at
``(r, c)``.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from qperf_viewer.geometry import SliceGeometry, base_to_apex_normal

#: Anterior direction in DICOM patient coordinates (LPS: +y is posterior).
ANTERIOR_LPS = np.array([0.0, -1.0, 0.0])
#: Fallback "up" when the slice normal is parallel to the anterior direction.
SUPERIOR_LPS = np.array([0.0, 0.0, 1.0])


def screen_axes(geom: SliceGeometry) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit vectors (right, up, n) in patient coordinates for the standard display.

    ``up`` is the in-plane projection of anterior; ``right = up x n`` so that
    ``right x up = n`` points at the viewer (seen from the apex).
    """
    n = base_to_apex_normal(geom)
    up = ANTERIOR_LPS - (ANTERIOR_LPS @ n) * n
    if np.linalg.norm(up) < 1e-6:
        up = SUPERIOR_LPS - (SUPERIOR_LPS @ n) * n
    up = up / np.linalg.norm(up)
    right = np.cross(up, n)
    return right, up, n


def display_matrix(geom: SliceGeometry) -> np.ndarray:
    """(2, 2) matrix A mapping pixel offsets (dcol, drow) to screen mm (x right, y down).

    A rotation (with a reflection for mirrored acquisitions) scaled by the pixel spacing.
    """
    right, up, _ = screen_axes(geom)
    dy, dx = geom.pixel_spacing_mm
    rd, cd = geom.row_dir, geom.col_dir
    return np.array(
        [
            [dx * (rd @ right), dy * (cd @ right)],
            [-dx * (rd @ up), -dy * (cd @ up)],
        ]
    )


def pixel_to_screen(a: np.ndarray, points_rc: np.ndarray) -> np.ndarray:
    """Screen coordinates (N, 2) = (x, y) of pixel centres ``points_rc`` (N, 2) (row, col).

    The image item draws pixel (r, c) over [c, c+1] x [r, r+1], so its centre is (c+.5, r+.5).
    """
    p = np.asarray(points_rc, dtype=float).reshape(-1, 2)
    item = np.stack([p[:, 1] + 0.5, p[:, 0] + 0.5], axis=1)
    return item @ a.T


def screen_to_pixel(a: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Inverse of :func:`pixel_to_screen`: (N, 2) screen (x, y) -> (N, 2) (row, col)."""
    q = np.asarray(xy, dtype=float).reshape(-1, 2) @ np.linalg.inv(a).T
    return np.stack([q[:, 1] - 0.5, q[:, 0] - 0.5], axis=1)


def patient_to_pixel_dir(geom: SliceGeometry, v: np.ndarray) -> np.ndarray:
    """In-plane patient vector (3,) in mm -> pixel offset (drow, dcol)."""
    dy, dx = geom.pixel_spacing_mm
    return np.array([(v @ geom.col_dir) / dy, (v @ geom.row_dir) / dx])


def pixel_to_patient_dir(geom: SliceGeometry, d_rc: np.ndarray) -> np.ndarray:
    """Pixel offset (drow, dcol) -> patient vector (3,) in mm."""
    dy, dx = geom.pixel_spacing_mm
    return d_rc[1] * dx * geom.row_dir + d_rc[0] * dy * geom.col_dir


def bolus_arrival_s(times_s: np.ndarray, curve: np.ndarray, fraction: float = 0.15) -> float:
    """Bolus arrival time (s): the last upward crossing, before the peak, of
    baseline + ``fraction`` x (peak - baseline), interpolated linearly. Baseline = median of
    the first half of the pre-peak values; ``times_s[0]`` for flat or non-finite curves.
    Pass dynamic frames only (leading PD frames are bright)."""
    t = np.asarray(times_s, dtype=float)
    y = np.asarray(curve, dtype=float)
    if y.size < 3 or not np.all(np.isfinite(y)):
        return float(t[0]) if t.size else 0.0
    ip = int(np.argmax(y))
    pre = y[: max(ip, 1)]
    base = float(np.median(pre[: max(3, len(pre) // 2)]))
    amp = float(y[ip]) - base
    if amp <= 0:
        return float(t[0])
    level = base + fraction * amp
    below = np.nonzero(y[: ip + 1] < level)[0]
    if below.size == 0:
        return float(t[0])
    i0 = int(below[-1])
    i1 = min(i0 + 1, ip)
    f = (level - y[i0]) / max(y[i1] - y[i0], 1e-12)
    return float(t[i0] + np.clip(f, 0.0, 1.0) * (t[i1] - t[i0]))


def synced_frame(
    times_a: np.ndarray, arrival_a: float, frame_a: int, times_b: np.ndarray, arrival_b: float
) -> int:
    """Frame of series B showing the same time after bolus arrival as ``frame_a`` of A."""
    target = arrival_b + (float(times_a[frame_a]) - arrival_a)
    return int(np.argmin(np.abs(np.asarray(times_b, dtype=float) - target)))


def brightness_curve(images: np.ndarray) -> np.ndarray:
    """(T,) 99th percentile of each frame: a segmentation-free blood-pool proxy."""
    t = images.shape[0]
    return np.percentile(images.reshape(t, -1), 99.0, axis=1)


def window_presets(images: np.ndarray, gd: bool = False) -> dict[str, tuple[float, float]]:
    """Named (low, high) display levels for a (T, Y, X) stack."""
    step = max(1, int(np.sqrt(images[0].size / 20000.0)))
    sub = images[:: max(1, images.shape[0] // 16), ::step, ::step]
    lo, p99, p999, hi = np.percentile(sub, [1.0, 99.0, 99.9, 100.0])
    presets = {
        "Auto": (float(lo), float(p99)),
        "Blood pool": (float(lo), float(p999)),
        "Myocardium": (float(lo), float(lo + 0.45 * (p99 - lo))),
        "Full range": (float(sub.min()), float(hi)),
    }
    if gd:
        presets["Auto"] = (0.0, float(max(p99, 1e-3)))
    return {k: (a, b if b > a else a + 1.0) for k, (a, b) in presets.items()}


# --- per-stack display figures, computed once (percentiles of a whole stack are slow) --------

_stats: dict[int, tuple[weakref.ref, dict[Any, Any]]] = {}
_stats_lock = threading.RLock()  # re-entrant: a weakref callback may run inside


def stack_stat(images: np.ndarray, key: Any, compute: Callable[[], Any]) -> Any:
    """``compute()`` for this stack object and ``key``, remembered while the stack lives
    (stacks are never changed in place). Safe from several threads; used by the views, and
    filled ahead off the GUI thread by :func:`prepare_stacks`."""
    sid = id(images)
    with _stats_lock:
        entry = _stats.get(sid)
        if entry is not None and entry[0]() is images and key in entry[1]:
            return entry[1][key]
    value = compute()
    with _stats_lock:
        entry = _stats.get(sid)
        if entry is None or entry[0]() is not images:
            try:
                ref = weakref.ref(images, lambda _, sid=sid: _forget(sid))
            except TypeError:  # not weak-referenceable: not cached
                return value
            entry = _stats[sid] = (ref, {})
        entry[1][key] = value
    return value


def _forget(sid: int) -> None:
    with _stats_lock:
        entry = _stats.get(sid)
        if entry is not None and entry[0]() is None:
            del _stats[sid]


def stack_presets(images: np.ndarray, gd: bool = False) -> dict[str, tuple[float, float]]:
    """:func:`window_presets`, computed once per stack."""
    return dict(stack_stat(images, ("presets", gd), lambda: window_presets(images, gd=gd)))


def stack_arrival_s(images: np.ndarray, times_s: np.ndarray, pd_frames: Iterable[int]) -> float:
    """Bolus arrival (s) from the frames' brightness, PD frames left out (all frames when fewer
    than 3 remain); computed once per stack, times and PD frames."""
    t = np.asarray(times_s, dtype=float)
    pd = set(pd_frames)
    dyn = np.array([i for i in range(images.shape[0]) if i not in pd], dtype=int)
    dyn = dyn if dyn.size >= 3 else np.arange(images.shape[0])
    key = ("arrival", t.tobytes(), dyn.tobytes())
    return stack_stat(images, key, lambda: bolus_arrival_s(t[dyn], brightness_curve(images[dyn])))


def prepare_stacks(exam: Any) -> None:
    """Compute ahead what the cine views need for an exam's raw stacks (presets, brightness
    arrival): called off the GUI thread right after loading."""
    for cd in getattr(exam, "conditions", {}).values():
        for ss in cd.slices:
            if ss.images is None or np.ndim(ss.images) != 3:
                continue
            stack_presets(ss.images, gd=False)
            stack_arrival_s(ss.images, ss.times_s, ss.pd_frames)
