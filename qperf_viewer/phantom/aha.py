"""Ground-truth AHA segments of the phantom, computed independently of the app's sectors code
from the true insertion points, in patient coordinates (docs/CONVENTIONS.md, 'AHA convention').
"""

from __future__ import annotations

import numpy as np

from qperf_viewer.exam import LABEL_MYO
from qperf_viewer.geometry import SliceGeometry, base_to_apex_normal


def slice_positions(n_slices: int) -> list[str | None]:
    """Positions of ``n_slices`` ordered basal -> apical: 3 basal/mid/apical, 2 basal/mid,
    4+: first basal, middle (index n // 2) mid, last apical, others None."""
    if n_slices == 1:
        return ["mid"]
    if n_slices == 2:
        return ["basal", "mid"]
    pos: list[str | None] = [None] * n_slices
    pos[0], pos[n_slices // 2], pos[-1] = "basal", "mid", "apical"
    return pos


def _angles_deg(geom: SliceGeometry, rc: np.ndarray, centre_rc, ref_rc) -> np.ndarray:
    """Right-handed angles about the base-to-apex normal from centre->ref to centre->rc."""
    n = base_to_apex_normal(geom)
    c = geom.pixel_to_patient(*centre_rc)
    v_ref = geom.pixel_to_patient(*ref_rc) - c
    v = geom.pixel_to_patient(rc[..., 0], rc[..., 1]) - c
    cross = np.cross(v_ref, v)
    return np.mod(np.degrees(np.arctan2(cross @ n, v @ v_ref)), 360.0)


def aha_segment_map(
    labels: np.ndarray,
    geom: SliceGeometry,
    lv_centre: tuple[float, float],
    rv_anterior: tuple[float, float],
    rv_inferior: tuple[float, float],
    level: str,
) -> np.ndarray:
    """AHA segment (1-16) of every myocardial pixel (label 2), 0 elsewhere; (Y, X) uint8.

    level: 'basal' (1-6), 'mid' (7-12) or 'apical' (13-16).
    """
    out = np.zeros(labels.shape, dtype=np.uint8)
    rc = np.argwhere(labels == LABEL_MYO).astype(float)
    if rc.size == 0:
        return out
    ang = _angles_deg(geom, rc, lv_centre, rv_anterior)
    if level in ("basal", "mid"):
        base = 0 if level == "basal" else 6
        sector = np.floor(ang / 60.0).astype(int)  # 0 -> segment 2, ..., 5 -> segment 1
        seg = base + 1 + (sector + 1) % 6
    elif level == "apical":
        span = float(_angles_deg(geom, np.asarray(rv_inferior)[None], lv_centre, rv_anterior)[0])
        rel = np.mod(ang - span / 2.0 + 45.0, 360.0)  # 0..90: segment 14
        seg = 13 + (np.floor(rel / 90.0).astype(int) + 1) % 4
    else:
        raise ValueError(f"unknown level {level!r}")
    out[rc[:, 0].astype(int), rc[:, 1].astype(int)] = seg
    return out
