"""LV centre and anterior/inferior RV insertion points from a label map.

The insertion points are the two ends of the arc where the RV meets the myocardium, taken on
the epicardial border: epicardial pixels within ``contact_mm`` of the RV are collected by their
angle about the LV centre; the largest angular gap between them separates the two ends.
Which end is anterior is decided in patient coordinates (never from image axes): with
``n = base_to_apex_normal(geometry)``, the anterior insertion is the one from which the
right-handed rotation about ``n`` reaches the septum (the middle of the contact arc) before the
other insertion (docs/CONVENTIONS.md, AHA convention).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from qperf_viewer.exam import LABEL_LV, LABEL_MYO, LABEL_RV
from qperf_viewer.geometry import SliceGeometry, angle_about_normal_deg, base_to_apex_normal

_CROSS = ndimage.generate_binary_structure(2, 1)


@dataclass
class RvInsertion:
    """Points (row, col) in the DICOM grid; None when undefined. contact_deg: angular extent
    of the RV-myocardium contact arc (deg)."""

    lv_centre: tuple[float, float] | None
    anterior: tuple[float, float] | None
    inferior: tuple[float, float] | None
    contact_deg: float = 0.0


def lv_centre(labels: np.ndarray) -> tuple[float, float] | None:
    """Centroid (row, col) of the LV blood pool, None when there is none."""
    idx = np.argwhere(labels == LABEL_LV)
    if idx.size == 0:
        return None
    c = idx.mean(axis=0)
    return float(c[0]), float(c[1])


def anterior_first(
    geometry: SliceGeometry,
    centre: tuple[float, float],
    p1: tuple[float, float],
    p2: tuple[float, float],
    septum: tuple[float, float],
) -> bool:
    """True when ``p1`` is the anterior insertion: rotating right-handed about the
    base-to-apex normal from ``p1`` meets ``septum`` before ``p2`` (patient coordinates)."""
    n = base_to_apex_normal(geometry)
    pts = geometry.pixel_to_patient(
        np.array([centre[0], p1[0], p2[0], septum[0]]),
        np.array([centre[1], p1[1], p2[1], septum[1]]),
    )
    v1, v2, vs = pts[1] - pts[0], pts[2] - pts[0], pts[3] - pts[0]
    a = angle_about_normal_deg(v1, np.stack([vs, v2]), n)
    return bool(a[0] < a[1])


def _epicardial_border(labels: np.ndarray) -> np.ndarray:
    heart = (labels == LABEL_LV) | (labels == LABEL_MYO)
    heart = ndimage.binary_fill_holes(heart)
    return (labels == LABEL_MYO) & ~ndimage.binary_erosion(heart, _CROSS, border_value=0)


def rv_insertion_points(
    labels: np.ndarray, geometry: SliceGeometry, contact_mm: float = 2.5, end_deg: float = 4.0
) -> RvInsertion:
    """Anterior/inferior RV insertion points and LV centre of a (clean) label map.

    contact_mm: distance from the RV within which an epicardial pixel counts as touching it.
    end_deg: each end point is the mean of the contact pixels within this angle of the end.
    """
    centre = lv_centre(labels)
    rv = labels == LABEL_RV
    if centre is None or not rv.any() or not (labels == LABEL_MYO).any():
        return RvInsertion(centre, None, None)
    dy, dx = geometry.pixel_spacing_mm
    epi = _epicardial_border(labels)
    d_rv = ndimage.distance_transform_edt(~rv, sampling=(dy, dx))
    contact = epi & (d_rv <= contact_mm + 0.5 * max(dy, dx))
    pts = np.argwhere(contact).astype(float)
    if len(pts) < 2:
        return RvInsertion(centre, None, None)
    # angles in the image plane (mm), about the LV centre
    ang = np.degrees(np.arctan2((pts[:, 0] - centre[0]) * dy, (pts[:, 1] - centre[1]) * dx))
    order = np.argsort(ang)
    a_sorted = ang[order]
    gaps = np.diff(np.concatenate([a_sorted, a_sorted[:1] + 360.0]))
    g = int(np.argmax(gaps))
    a_end1 = a_sorted[(g + 1) % len(a_sorted)]  # arc starts after the largest gap
    a_end2 = a_sorted[g]  # ... and ends before it
    extent = 360.0 - float(gaps[g])

    def _mean_near(a0: float, sign: float) -> tuple[float, float]:
        rel = np.mod(sign * (ang - a0) + 180.0, 360.0) - 180.0
        sel = (rel >= 0) & (rel <= end_deg)
        p = pts[sel] if sel.any() else pts[np.argmin(np.abs(rel))][None]
        return float(p[:, 0].mean()), float(p[:, 1].mean())

    e1 = _mean_near(a_end1, +1.0)
    e2 = _mean_near(a_end2, -1.0)
    # septum = middle of the contact arc
    a_mid = np.radians(a_end1 + extent / 2.0)
    r_mm = float(np.median(np.hypot((pts[:, 0] - centre[0]) * dy, (pts[:, 1] - centre[1]) * dx)))
    septum = (centre[0] + r_mm * np.sin(a_mid) / dy, centre[1] + r_mm * np.cos(a_mid) / dx)
    if anterior_first(geometry, centre, e1, e2, septum):
        return RvInsertion(centre, e1, e2, extent)
    return RvInsertion(centre, e2, e1, extent)
