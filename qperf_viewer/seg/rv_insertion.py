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


# ------------------------------------------------------------------ consistency over slices
#: An automatic insertion point more than this (deg, about the LV centre and the slice normal)
#: from the same insertion on the condition's other slices is moved to theirs, when those
#: agree with each other within :data:`CONSENSUS_DEG` (at least two of them). On 39 phantom
#: exams (3 slices per condition) the largest such deviation of a correct point was 13 deg;
#: the outliers (41-46 deg: a basal slice whose myocardial ring was open, so the RV contact
#: ended early) came from slices whose neighbours agreed within 3 deg.
OUTLIER_DEG = 25.0
CONSENSUS_DEG = 10.0
#: Slices whose planes differ by more than this (deg) are not compared.
PARALLEL_DEG = 20.0


@dataclass
class InsertionFix:
    """A moved insertion point: slice (index in the list given), which point ('anterior' or
    'inferior'), the new point (row, col) and how far (deg) the old one was from the others."""

    slice: int
    which: str
    point: tuple[float, float]
    off_deg: float


def _wrap_deg(a):
    return (np.asarray(a, dtype=float) + 180.0) % 360.0 - 180.0


def _circular_mean_deg(a: list[float]) -> float:
    return float(np.degrees(np.angle(np.mean(np.exp(1j * np.radians(a))))))


def consistent_insertions(
    slices: list[tuple[np.ndarray, SliceGeometry, RvInsertion]],
) -> list[InsertionFix]:
    """Insertion points to move so that the slices of one condition agree.

    slices: per slice its label map (Y, X), geometry and automatic insertion points. Angles
    are measured in patient coordinates, right-handed about each slice's base-to-apex normal,
    from a reference direction common to the (near-parallel) slices. An outlying point is put
    on the slice's epicardial border at the other slices' mean angle (the mean of the border
    pixels within ``end`` degrees of it; where the ring is open there, at the border's median
    radius). Returns the fixes (empty when every point agrees or no consensus exists).
    """
    usable = [
        i
        for i, (lab, _, ins) in enumerate(slices)
        if ins.lv_centre is not None and ins.anterior is not None and ins.inferior is not None
    ]
    if len(usable) < 3:
        return []
    n0 = base_to_apex_normal(slices[usable[0]][1])
    r0 = np.asarray(slices[usable[0]][1].row_dir, dtype=float)
    frames = {}
    for i in usable:
        n = base_to_apex_normal(slices[i][1])
        if float(abs(n @ n0)) < np.cos(np.radians(PARALLEL_DEG)):
            return []
        r = r0 - (r0 @ n) * n
        frames[i] = (n, r / np.linalg.norm(r))

    def angle(i: int, p: tuple[float, float]) -> float:
        geom, ins = slices[i][1], slices[i][2]
        pts = geom.pixel_to_patient(
            np.array([ins.lv_centre[0], p[0]]), np.array([ins.lv_centre[1], p[1]])
        )
        n, r = frames[i]
        return float(angle_about_normal_deg(r, pts[1] - pts[0], n))

    fixes: list[InsertionFix] = []
    for which in ("anterior", "inferior"):
        ang = {i: angle(i, getattr(slices[i][2], which)) for i in usable}
        for i in usable:
            others = [ang[j] for j in usable if j != i]
            spread = max(abs(float(_wrap_deg(a - b))) for a in others for b in others)
            if spread > CONSENSUS_DEG:
                continue
            target = _circular_mean_deg(others)
            off = float(_wrap_deg(ang[i] - target))
            if abs(off) <= OUTLIER_DEG:
                continue
            point = _border_point(
                slices[i][0], slices[i][1], slices[i][2].lv_centre, frames[i], target
            )
            if point is not None:
                fixes.append(InsertionFix(i, which, point, off))
    return fixes


def _border_point(
    labels: np.ndarray,
    geometry: SliceGeometry,
    centre: tuple[float, float],
    frame: tuple[np.ndarray, np.ndarray],
    target_deg: float,
    half_deg: float = 4.0,
) -> tuple[float, float] | None:
    """Epicardial point (row, col) of ``labels`` at ``target_deg`` (see
    :func:`consistent_insertions`)."""
    epi = np.argwhere(_epicardial_border(labels)).astype(float)
    if len(epi) == 0:
        return None
    n, r = frame
    c3 = geometry.pixel_to_patient(np.array(centre[0]), np.array(centre[1]))
    v = geometry.pixel_to_patient(epi[:, 0], epi[:, 1]) - c3
    a = angle_about_normal_deg(r, v, n)
    near = np.abs(_wrap_deg(a - target_deg)) <= half_deg
    if near.any():
        p = epi[near].mean(axis=0)
        return float(p[0]), float(p[1])
    radius = float(np.median(np.linalg.norm(v, axis=1)))
    t = np.radians(target_deg)
    d3 = np.cos(t) * r + np.sin(t) * np.cross(n, r)
    p3 = c3 + radius * d3
    # back to pixel indices (in-plane components along the row and column directions)
    dy, dx = geometry.pixel_spacing_mm
    rel = p3 - np.asarray(geometry.origin_mm, dtype=float)
    col = float(rel @ np.asarray(geometry.row_dir, dtype=float)) / dx
    row = float(rel @ np.asarray(geometry.col_dir, dtype=float)) / dy
    return row, col
