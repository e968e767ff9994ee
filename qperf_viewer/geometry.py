"""Slice geometry in DICOM patient coordinates (LPS, mm) and the project's conventions.

Pixel ``(row, col)`` of a slice sits at ``origin + col * dx * row_dir + row * dy * col_dir``
where ``row_dir``/``col_dir`` are ImageOrientationPatient's first/second triplets (the
direction of increasing column / increasing row) and PixelSpacing is ``(dy, dx)`` =
(spacing between rows, spacing between columns) in mm.

The left-ventricular long axis runs from base to apex towards the patient's left, anterior
and inferior, i.e. roughly ``+x, -y, -z`` in LPS. :func:`base_to_apex_normal` orients a
slice normal that way. AHA angles are measured right-handed about that normal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Approximate base-to-apex direction in LPS (left, anterior, inferior), unit vector.
APEX_DIRECTION_LPS = np.array([1.0, -1.0, -1.0]) / np.sqrt(3.0)


@dataclass(frozen=True)
class SliceGeometry:
    """Geometry of one 2D slice.

    orientation: ImageOrientationPatient, 6 floats (row_dir, col_dir), unit vectors.
    origin_mm: ImagePositionPatient of the first transmitted pixel (row 0, col 0), mm.
    pixel_spacing_mm: (row spacing dy, column spacing dx) in mm, as DICOM PixelSpacing.
    shape: (rows, cols).
    slice_thickness_mm: nominal thickness, mm (0 when unknown).
    """

    orientation: tuple[float, float, float, float, float, float]
    origin_mm: tuple[float, float, float]
    pixel_spacing_mm: tuple[float, float]
    shape: tuple[int, int]
    slice_thickness_mm: float = 0.0

    @property
    def row_dir(self) -> np.ndarray:
        """Unit vector along increasing column index (DICOM 'row direction')."""
        return np.asarray(self.orientation[:3], dtype=float)

    @property
    def col_dir(self) -> np.ndarray:
        """Unit vector along increasing row index (DICOM 'column direction')."""
        return np.asarray(self.orientation[3:], dtype=float)

    @property
    def normal(self) -> np.ndarray:
        """row_dir x col_dir (not yet oriented base to apex)."""
        n = np.cross(self.row_dir, self.col_dir)
        return n / np.linalg.norm(n)

    def pixel_to_patient(self, rows, cols) -> np.ndarray:
        """Patient coordinates (..., 3) in mm of (fractional) pixel indices."""
        rows = np.asarray(rows, dtype=float)[..., None]
        cols = np.asarray(cols, dtype=float)[..., None]
        dy, dx = self.pixel_spacing_mm
        return (
            np.asarray(self.origin_mm, dtype=float)
            + cols * dx * self.row_dir
            + rows * dy * self.col_dir
        )

    def centre_mm(self) -> np.ndarray:
        """Patient coordinates of the image centre, mm."""
        r, c = self.shape
        return self.pixel_to_patient((r - 1) / 2.0, (c - 1) / 2.0)


def base_to_apex_normal(geom: SliceGeometry) -> np.ndarray:
    """Unit slice normal pointing from base to apex (towards left/anterior/inferior)."""
    n = geom.normal
    return n if float(n @ APEX_DIRECTION_LPS) >= 0 else -n


def position_along_normal_mm(geom: SliceGeometry, normal: np.ndarray) -> float:
    """Signed distance of the slice plane along ``normal`` (mm); larger is more apical
    when ``normal`` comes from :func:`base_to_apex_normal`."""
    return float(np.asarray(geom.origin_mm, dtype=float) @ normal)


def angle_about_normal_deg(v_from: np.ndarray, v_to: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """Right-handed angle (degrees, in [0, 360)) from ``v_from`` to ``v_to`` about ``normal``.

    ``v_from`` is (3,), ``v_to`` is (..., 3) in patient coordinates; the components along the
    normal are ignored. Right-handed about the base-to-apex normal is counter-clockwise on a
    standard short-axis display (seen from the apex).
    """
    a = np.asarray(v_from, dtype=float)
    b = np.asarray(v_to, dtype=float)
    cross = np.cross(a, b)
    ang = np.degrees(np.arctan2(cross @ normal, b @ a))
    return np.mod(ang, 360.0)
