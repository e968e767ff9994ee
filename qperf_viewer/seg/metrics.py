"""Segmentation accuracy measures on label maps in the DICOM grid (numpy/scipy only)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from qperf_viewer.exam import LABEL_MYO

_CROSS = ndimage.generate_binary_structure(2, 1)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two boolean masks; NaN when both are empty."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    s = int(a.sum() + b.sum())
    return float(2 * (a & b).sum() / s) if s else float("nan")


def boundary(mask: np.ndarray) -> np.ndarray:
    """Mask pixels with a 4-neighbour outside the mask."""
    m = np.asarray(mask, bool)
    return m & ~ndimage.binary_erosion(m, _CROSS, border_value=0)


def boundary_distances(
    pred: np.ndarray, truth: np.ndarray, spacing_mm=(1.0, 1.0)
) -> tuple[np.ndarray, np.ndarray]:
    """Distances (mm) from each predicted boundary pixel to the true boundary and back."""
    bp, bt = boundary(pred), boundary(truth)
    if not bp.any() or not bt.any():
        return np.array([np.inf]), np.array([np.inf])
    dt = ndimage.distance_transform_edt(~bt, sampling=spacing_mm)
    dp = ndimage.distance_transform_edt(~bp, sampling=spacing_mm)
    return dt[bp], dp[bt]


def myo_boundary_metrics(
    pred_labels: np.ndarray, true_labels: np.ndarray, spacing_mm
) -> dict[str, float]:
    """Myocardium Dice, mean symmetric boundary error (px and mm) and Hausdorff (mm)."""
    p, t = pred_labels == LABEL_MYO, true_labels == LABEL_MYO
    d1, d2 = boundary_distances(p, t, spacing_mm)
    d1p, d2p = boundary_distances(p, t, (1.0, 1.0))
    allmm = np.concatenate([d1, d2])
    allpx = np.concatenate([d1p, d2p])
    return {
        "myo_dice": dice(p, t),
        "boundary_px": float(allpx.mean()),
        "boundary_mm": float(allmm.mean()),
        "hausdorff_mm": float(allmm.max()),
    }


def insertion_angle_error_deg(
    centre: tuple[float, float] | None,
    pred: tuple[float, float] | None,
    truth: tuple[float, float] | None,
    spacing_mm,
) -> float:
    """Angle (deg, in [0, 180]) between predicted and true points seen from ``centre``."""
    if centre is None or pred is None or truth is None:
        return float("nan")
    dy, dx = spacing_mm
    a1 = np.arctan2((pred[0] - centre[0]) * dy, (pred[1] - centre[1]) * dx)
    a2 = np.arctan2((truth[0] - centre[0]) * dy, (truth[1] - centre[1]) * dx)
    d = np.degrees(np.abs(np.angle(np.exp(1j * (a1 - a2)))))
    return float(d)
