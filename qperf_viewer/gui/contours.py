"""Contour and brush editing of label maps (numpy/scipy only, no Qt).

Labels: 0 background, 1 LV blood pool, 2 myocardium, 3 RV (docs/CONVENTIONS.md). Points are
``(row, col)`` floats in the slice's DICOM pixel grid with pixel (r, c) centred at (r, c).
The endocardial contour bounds label 1, the epicardial contour bounds labels 1 + 2. Both are
smooth closed curves (periodic cubic splines) through a few control points.
"""

from __future__ import annotations

import numpy as np

from qperf_viewer.exam import LABEL_LV, LABEL_MYO, LABEL_RV


def centroid(mask: np.ndarray) -> tuple[float, float] | None:
    """(row, col) centroid of a boolean mask, None when empty."""
    rr, cc = np.nonzero(mask)
    if rr.size == 0:
        return None
    return float(rr.mean()), float(cc.mean())


def radial_contour(
    mask: np.ndarray, centre_rc: tuple[float, float], n_points: int = 16, step: float = 0.25
) -> np.ndarray | None:
    """(n_points, 2) boundary points of a star-shaped ``mask`` seen from ``centre_rc``.

    Along rays at equal angles (pixel space, starting at 12 o'clock of the pixel grid), the
    boundary is where the bilinearly interpolated mask drops below 0.5 for the last time
    within the first connected run. None when the mask is empty.
    """
    if not np.any(mask):
        return None
    from scipy import ndimage  # scipy is imported lazily: it doubles the GUI's start-up time

    m = mask.astype(np.float32)
    h, w = m.shape
    rmax = float(np.hypot(h, w))
    radii = np.arange(0.0, rmax, step)
    ang = np.linspace(0.0, 2 * np.pi, n_points, endpoint=False)
    dr, dc = -np.cos(ang), np.sin(ang)
    rows = centre_rc[0] + dr[:, None] * radii[None, :]
    cols = centre_rc[1] + dc[:, None] * radii[None, :]
    vals = ndimage.map_coordinates(m, [rows.ravel(), cols.ravel()], order=1, cval=0.0)
    inside = vals.reshape(n_points, -1) >= 0.5
    out = np.zeros((n_points, 2))
    for i in range(n_points):
        idx = np.nonzero(inside[i])[0]
        if idx.size == 0:
            r = 0.5
        else:
            first = idx[0]
            gaps = np.nonzero(~inside[i, first:])[0]
            last = first + (gaps[0] if gaps.size else inside.shape[1]) - 1
            r = max(radii[last] + step / 2, 0.5)
        out[i] = centre_rc[0] + dr[i] * r, centre_rc[1] + dc[i] * r
    return out


def smooth_closed_curve(
    ctrl_rc: np.ndarray, samples: int = 200, with_arcs: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """(samples, 2) points of the periodic cubic spline through control points (N, 2),
    parametrised by cumulative chord length. ``with_arcs``: also return, per sample, the
    index k of the arc from control point k to k+1 it lies on."""
    p = np.asarray(ctrl_rc, dtype=float)
    if len(p) < 3:
        return (p.copy(), np.arange(len(p))) if with_arcs else p.copy()
    from scipy.interpolate import CubicSpline

    closed = np.vstack([p, p[:1]])
    seg = np.linalg.norm(np.diff(closed, axis=0), axis=1)
    seg = np.maximum(seg, 1e-6)
    u = np.concatenate([[0.0], np.cumsum(seg)])
    spline = CubicSpline(u, closed, bc_type="periodic", axis=0)
    us = np.linspace(0.0, u[-1], samples, endpoint=False)
    pts = spline(us)
    if not with_arcs:
        return pts
    arcs = np.clip(np.searchsorted(u, us, side="right") - 1, 0, len(p) - 1)
    return pts, arcs


def polygon_mask(poly_rc: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Boolean (Y, X) mask of pixel centres inside a closed polygon (even-odd rule)."""
    poly = np.asarray(poly_rc, dtype=float)
    out = np.zeros(shape, dtype=bool)
    if len(poly) < 3:
        return out
    r0 = max(int(np.floor(poly[:, 0].min())), 0)
    r1 = min(int(np.ceil(poly[:, 0].max())) + 1, shape[0])
    c0 = max(int(np.floor(poly[:, 1].min())), 0)
    c1 = min(int(np.ceil(poly[:, 1].max())) + 1, shape[1])
    if r1 <= r0 or c1 <= c0:
        return out
    rr, cc = np.mgrid[r0:r1, c0:c1]
    y, x = rr.ravel().astype(float), cc.ravel().astype(float)
    inside = np.zeros(y.shape, dtype=bool)
    pr, pc = poly[:, 0], poly[:, 1]
    qr, qc = np.roll(pr, -1), np.roll(pc, -1)
    for a_r, a_c, b_r, b_c in zip(pr, pc, qr, qc, strict=True):
        crosses = (a_r > y) != (b_r > y)
        if not crosses.any():
            continue
        xint = a_c + (y - a_r) * (b_c - a_c) / (b_r - a_r + 1e-300)
        inside ^= crosses & (x < xint)
    out[r0:r1, c0:c1] = inside.reshape(rr.shape)
    return out


def labels_from_contours(
    labels: np.ndarray, endo_ctrl: np.ndarray, epi_ctrl: np.ndarray, samples: int = 256
) -> np.ndarray:
    """New label map after an endo/epi contour edit (a copy; the input is not changed).

    Inside the endocardial curve: LV; between the curves: myocardium; LV or myocardium
    pixels left outside the epicardial curve become background; RV keeps its pixels outside
    the epicardial curve.
    """
    shape = labels.shape
    endo = polygon_mask(smooth_closed_curve(endo_ctrl, samples), shape)
    epi = polygon_mask(smooth_closed_curve(epi_ctrl, samples), shape) | endo
    out = labels.copy()
    out[np.isin(out, (LABEL_LV, LABEL_MYO)) & ~epi] = 0
    out[epi] = LABEL_MYO
    out[endo] = LABEL_LV
    return out


def _near_moved_arcs(
    pixels_rc: np.ndarray, curves: list[tuple[np.ndarray, np.ndarray]], moved: np.ndarray, n: int
) -> np.ndarray:
    """Bool per pixel: its nearest curve sample (on any of ``curves``) lies on an arc that
    touches a moved control point (arcs k-1 and k of control point k)."""
    near = set()
    for k in moved:
        near |= {(k - 1) % n, k % n}
    keep = np.zeros(len(pixels_rc), dtype=bool)
    for pts, arcs in curves:
        d = np.linalg.norm(pixels_rc[:, None, :] - pts[None, :, :], axis=2)
        keep |= np.isin(arcs[np.argmin(d, axis=1)], list(near))
    return keep


def edit_contours(
    labels: np.ndarray,
    old_ctrl: dict[str, np.ndarray],
    new_ctrl: dict[str, np.ndarray],
    samples: int = 256,
) -> np.ndarray:
    """Label map after moving contour control points, changed only near the moved points.

    Pixels between the old and the new curve, next to a moved control point, change: the
    epicardial curve grows or shrinks the wall (LV + myocardium; RV and background give way),
    the endocardial curve moves the LV / myocardium border. Every other pixel keeps its label,
    so segments away from the edit keep their values exactly.
    """
    out = labels.copy()
    shape = labels.shape
    for name in ("epi", "endo"):
        old_p = np.asarray(old_ctrl[name], float)
        new_p = np.asarray(new_ctrl[name], float)
        if old_p.shape != new_p.shape:
            raise ValueError("edit_contours: control point counts differ")
        moved = np.nonzero(np.any(np.abs(old_p - new_p) > 1e-9, axis=1))[0]
        if moved.size == 0:
            continue
        old_c = smooth_closed_curve(old_p, samples, with_arcs=True)
        new_c = smooth_closed_curve(new_p, samples, with_arcs=True)
        old_m, new_m = polygon_mask(old_c[0], shape), polygon_mask(new_c[0], shape)
        changed = old_m ^ new_m
        idx = np.argwhere(changed)
        if idx.size == 0:
            continue
        local = _near_moved_arcs(idx.astype(float), [old_c, new_c], moved, len(new_p))
        sel = np.zeros(shape, dtype=bool)
        sel[tuple(idx[local].T)] = True
        grow, shrink = sel & new_m, sel & old_m
        if name == "epi":
            out[grow & (out != LABEL_LV)] = LABEL_MYO
            out[shrink & np.isin(out, (LABEL_LV, LABEL_MYO))] = 0
        else:
            out[grow] = LABEL_LV
            out[shrink & (out == LABEL_LV)] = LABEL_MYO
    return out


def brush(
    labels: np.ndarray, centre_rc: tuple[float, float], radius_px: float, add: bool
) -> np.ndarray:
    """Paint (``add``) or erase myocardium in a disc; returns a new label map.

    Adding turns any pixel of the disc into myocardium; erasing turns myocardium into
    background (LV and RV pixels are left alone).
    """
    rr, cc = np.ogrid[: labels.shape[0], : labels.shape[1]]
    disc = (rr - centre_rc[0]) ** 2 + (cc - centre_rc[1]) ** 2 <= radius_px**2
    out = labels.copy()
    if add:
        out[disc] = LABEL_MYO
    else:
        out[disc & (out == LABEL_MYO)] = 0
    return out


def control_points(
    labels: np.ndarray, centre_rc: tuple[float, float] | None = None, n_points: int = 16
) -> dict[str, np.ndarray] | None:
    """Endo/epi control points {'endo': (n, 2), 'epi': (n, 2)} derived from a label map."""
    from scipy import ndimage

    lv = labels == LABEL_LV
    wall = lv | (labels == LABEL_MYO)
    c = centre_rc or centroid(lv) or centroid(wall)
    if c is None:
        return None
    epi = radial_contour(ndimage.binary_fill_holes(wall), c, n_points)
    endo = radial_contour(lv, c, n_points) if lv.any() else None
    if epi is None:
        return None
    if endo is None:
        endo = c + 0.3 * (epi - c)
    return {"endo": endo, "epi": epi}


def rv_mask_outline(labels: np.ndarray) -> np.ndarray:
    """Boolean (Y, X) one-pixel outline of the RV label."""
    from scipy import ndimage

    rv = labels == LABEL_RV
    return rv & ~ndimage.binary_erosion(rv)
