"""AHA 16-segment assignment, slice positions and segment statistics (Qt-free).

Convention (docs/CONVENTIONS.md, docs/AHA.md; Cerqueira et al., Circulation 2002;105:539-542):
``n`` is the unit slice normal pointing base -> apex (:func:`base_to_apex_normal`). Angles are
right-handed about ``n`` (counter-clockwise on the standard short-axis display seen from the
apex) and computed in DICOM patient coordinates, never from image axes, so mirrored or rotated
acquisitions number the same. The anterior RV insertion is the one from which that rotation
crosses the septum to the inferior one.

- basal / mid: 60-degree sectors starting at the anterior insertion: 2 (8) spans [0, 60),
  then 3, 4, 5, 6 (9..12) and 1 (7) spans [-60, 0);
- apical: 90-degree sectors, 14 centred on the bisector of the septal angle from the anterior
  to the inferior insertion, then 15, 16 and 13.

Arrays are ``(Y, X)`` in the slice's DICOM pixel grid; points are ``(row, col)``; labels
0 background, 1 LV blood pool, 2 myocardium, 3 RV.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from qperf_viewer.errors import InputError
from qperf_viewer.exam import LABEL_LV, LABEL_MYO, POSITIONS
from qperf_viewer.geometry import SliceGeometry, angle_about_normal_deg, base_to_apex_normal
from qperf_viewer.results import SegmentValue

N_SEGMENTS = 16

SEGMENT_NAMES: dict[int, str] = {
    1: "basal anterior",
    2: "basal anteroseptal",
    3: "basal inferoseptal",
    4: "basal inferior",
    5: "basal inferolateral",
    6: "basal anterolateral",
    7: "mid anterior",
    8: "mid anteroseptal",
    9: "mid inferoseptal",
    10: "mid inferior",
    11: "mid inferolateral",
    12: "mid anterolateral",
    13: "apical anterior",
    14: "apical septal",
    15: "apical inferior",
    16: "apical lateral",
}

#: Usual coronary territory of each segment (Cerqueira et al. 2002, Figure 3).
TERRITORIES: dict[str, tuple[int, ...]] = {
    "LAD": (1, 2, 7, 8, 13, 14),
    "RCA": (3, 4, 9, 10, 15),
    "LCX": (5, 6, 11, 12, 16),
}
TERRITORY_OF_SEGMENT: dict[int, str] = {s: t for t, segs in TERRITORIES.items() for s in segs}

#: Segments of each slice position, in the order of increasing right-handed angle from the
#: anterior insertion (basal/mid) or from the start of segment 14 (apical).
POSITION_SEGMENTS: dict[str, tuple[int, ...]] = {
    "basal": (2, 3, 4, 5, 6, 1),
    "mid": (8, 9, 10, 11, 12, 7),
    "apical": (14, 15, 16, 13),
}

#: Slice locations closer than this (mm) to the same distance from the midpoint tie.
TIE_MM = 0.5

#: Stress and rest slices farther apart than this (mm) compare different myocardium.
ALIGNMENT_TOLERANCE_MM = 5.0


# --------------------------------------------------------------------------- angles
@dataclass(frozen=True)
class SectorFrame:
    """In-plane frame of one slice for sector angles.

    centre_mm: patient coordinates of the LV centre (3,).
    u: unit in-plane vector from the LV centre towards the anterior insertion (3,).
    w: ``n x u``, so that (u, w, n) is right-handed (3,).
    normal: the base-to-apex normal ``n`` (3,).
    septal_angle_deg: right-handed angle from the anterior to the inferior insertion.
    """

    centre_mm: np.ndarray
    u: np.ndarray
    w: np.ndarray
    normal: np.ndarray
    septal_angle_deg: float


def sector_frame(
    geometry: SliceGeometry,
    lv_centre: tuple[float, float],
    rv_anterior: tuple[float, float],
    rv_inferior: tuple[float, float],
) -> SectorFrame:
    """The in-plane reference frame of a slice from its LV centre and RV insertion points."""
    n = base_to_apex_normal(geometry)
    c = geometry.pixel_to_patient(*lv_centre)
    a = geometry.pixel_to_patient(*rv_anterior) - c
    i = geometry.pixel_to_patient(*rv_inferior) - c
    a_in = a - (a @ n) * n
    i_in = i - (i @ n) * n
    if np.linalg.norm(a_in) < 1e-6 or np.linalg.norm(i_in) < 1e-6:
        raise InputError(
            "An RV insertion point coincides with the LV centre; AHA sectors are undefined.",
            hint="Check the segmentation's RV insertion points.",
        )
    u = a_in / np.linalg.norm(a_in)
    w = np.cross(n, u)
    sept = float(angle_about_normal_deg(u, i_in, n))
    return SectorFrame(centre_mm=c, u=u, w=w, normal=n, septal_angle_deg=sept)


def pixel_angles_deg(geometry: SliceGeometry, frame: SectorFrame, rows, cols) -> np.ndarray:
    """Right-handed angle (degrees, [0, 360)) of pixels about the LV centre from the anterior
    insertion, in patient coordinates. ``rows``/``cols`` any matching shapes."""
    v = geometry.pixel_to_patient(rows, cols) - frame.centre_mm
    return angle_about_normal_deg(frame.u, v, frame.normal)


def _check_position(position: str) -> str:
    if position not in POSITIONS:
        raise InputError(f"Unknown slice position {position!r}; expected one of {POSITIONS}.")
    return position


def sector_start_angles_deg(position: str, septal_angle_deg: float) -> list[tuple[float, int]]:
    """``(start angle, segment)`` of each sector, angles right-handed from the anterior
    insertion in degrees [0, 360), in the order of increasing angle of the sequence."""
    _check_position(position)
    segs = POSITION_SEGMENTS[position]
    if position == "apical":
        start = septal_angle_deg / 2.0 - 45.0
        return [(float(np.mod(start + 90.0 * k, 360.0)), s) for k, s in enumerate(segs)]
    return [(60.0 * k, s) for k, s in enumerate(segs)]


def segment_of_angle(angle_deg, position: str, septal_angle_deg: float) -> np.ndarray:
    """AHA segment number (uint8) of angles (degrees right-handed from the anterior insertion)."""
    _check_position(position)
    ang = np.asarray(angle_deg, dtype=float)
    segs = np.asarray(POSITION_SEGMENTS[position], dtype=np.uint8)
    if position == "apical":
        rel = np.mod(ang - (septal_angle_deg / 2.0 - 45.0), 360.0)
        idx = np.floor(rel / 90.0).astype(int)
    else:
        idx = np.floor(np.mod(ang, 360.0) / 60.0).astype(int)
    return segs[np.clip(idx, 0, len(segs) - 1)]


def aha_segments(
    labels: np.ndarray,
    geometry: SliceGeometry,
    lv_centre: tuple[float, float],
    rv_anterior: tuple[float, float],
    rv_inferior: tuple[float, float],
    position: str,
) -> np.ndarray:
    """AHA segment map ``(Y, X)`` uint8: 1-16 on myocardial pixels (label 2), 0 elsewhere.

    Pixel angles are measured at pixel centres about the LV centre, right-handed about the
    base-to-apex normal in patient coordinates (see the module docstring).
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise InputError(f"labels must be a 2D (Y, X) array, got shape {labels.shape}.")
    _check_position(position)
    out = np.zeros(labels.shape, dtype=np.uint8)
    rows, cols = np.nonzero(labels == LABEL_MYO)
    if rows.size == 0:
        return out
    frame = sector_frame(geometry, lv_centre, rv_anterior, rv_inferior)
    ang = pixel_angles_deg(geometry, frame, rows, cols)
    out[rows, cols] = segment_of_angle(ang, position, frame.septal_angle_deg)
    return out


def insertion_point_flags(
    geometry: SliceGeometry,
    lv_centre: tuple[float, float],
    rv_anterior: tuple[float, float],
    rv_inferior: tuple[float, float],
) -> list[str]:
    """Plausibility notes on the insertion points (empty when they look right).

    The septal angle (right-handed from the anterior to the inferior insertion) is about
    90-160 degrees in normal anatomy; above 180 degrees the two points are probably swapped.
    """
    sept = sector_frame(geometry, lv_centre, rv_anterior, rv_inferior).septal_angle_deg
    if sept > 180.0:
        return [
            f"RV insertion points: septal angle {sept:.0f} deg > 180 deg "
            "(anterior and inferior insertion probably swapped)"
        ]
    if sept < 45.0:
        return [f"RV insertion points: septal angle {sept:.0f} deg is implausibly small"]
    return []


def orient_insertion_points(
    geometry: SliceGeometry,
    lv_centre: tuple[float, float],
    p1: tuple[float, float],
    p2: tuple[float, float],
    rv_point: tuple[float, float],
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Name two RV insertion points: returns ``(anterior, inferior)``.

    The anterior one is the one from which the right-handed rotation about the base-to-apex
    normal reaches the other through the septum, i.e. passing the RV (``rv_point``, e.g. the
    RV blood-pool centroid).
    """
    frame = sector_frame(geometry, lv_centre, p1, p2)
    to_rv = float(pixel_angles_deg(geometry, frame, rv_point[0], rv_point[1]))
    if to_rv < frame.septal_angle_deg:
        return (tuple(map(float, p1)), tuple(map(float, p2)))
    return (tuple(map(float, p2)), tuple(map(float, p1)))


@dataclass(frozen=True)
class SectorLine:
    """One sector boundary of a slice, for drawing.

    angle_deg: right-handed angle from the anterior insertion about the base-to-apex normal.
    direction_mm: in-plane unit direction as (mm along increasing row, mm along increasing col).
    image_angle_deg: ``atan2(drow, dcol)`` of the direction in pixel-index space, degrees in
        (-180, 180]: 0 = towards +col (right on screen), 90 = towards +row (down on screen).
    segment_after: the segment that starts at this line (increasing angle).
    """

    angle_deg: float
    direction_mm: tuple[float, float]
    image_angle_deg: float
    segment_after: int

    def end_point(
        self, centre_rc: tuple[float, float], length_mm: float, spacing_mm: tuple[float, float]
    ) -> tuple[float, float]:
        """Pixel (row, col) at ``length_mm`` from ``centre_rc`` along the line."""
        dy, dx = spacing_mm
        return (
            float(centre_rc[0] + length_mm * self.direction_mm[0] / dy),
            float(centre_rc[1] + length_mm * self.direction_mm[1] / dx),
        )


def _in_plane_direction(geometry: SliceGeometry, frame: SectorFrame, angle_deg: float):
    t = np.radians(angle_deg)
    d = np.cos(t) * frame.u + np.sin(t) * frame.w
    drow_mm = float(d @ geometry.col_dir)
    dcol_mm = float(d @ geometry.row_dir)
    dy, dx = geometry.pixel_spacing_mm
    img = float(np.degrees(np.arctan2(drow_mm / dy, dcol_mm / dx)))
    return (drow_mm, dcol_mm), img


def sector_lines(
    geometry: SliceGeometry,
    lv_centre: tuple[float, float],
    rv_anterior: tuple[float, float],
    rv_inferior: tuple[float, float],
    position: str,
) -> list[SectorLine]:
    """Sector boundaries of a slice (6 for basal/mid, 4 for apical) for drawing on the image."""
    frame = sector_frame(geometry, lv_centre, rv_anterior, rv_inferior)
    out = []
    for ang, seg in sector_start_angles_deg(position, frame.septal_angle_deg):
        d_mm, img = _in_plane_direction(geometry, frame, ang)
        out.append(SectorLine(ang, d_mm, img, seg))
    return out


def segment_label_points(
    geometry: SliceGeometry,
    lv_centre: tuple[float, float],
    rv_anterior: tuple[float, float],
    rv_inferior: tuple[float, float],
    position: str,
    radius_mm: float,
) -> dict[int, tuple[float, float]]:
    """Pixel (row, col) at ``radius_mm`` from the LV centre on each segment's mid-angle."""
    frame = sector_frame(geometry, lv_centre, rv_anterior, rv_inferior)
    starts = sector_start_angles_deg(position, frame.septal_angle_deg)
    width = 360.0 / len(starts)
    dy, dx = geometry.pixel_spacing_mm
    out = {}
    for ang, seg in starts:
        (drow_mm, dcol_mm), _ = _in_plane_direction(geometry, frame, ang + width / 2.0)
        out[seg] = (
            float(lv_centre[0] + radius_mm * drow_mm / dy),
            float(lv_centre[1] + radius_mm * dcol_mm / dx),
        )
    return out


# --------------------------------------------------------------------------- positions
def assign_positions(
    locations_mm: Sequence[float],
    overrides: Mapping[int, str | None] | None = None,
) -> list[str | None]:
    """Slice positions from locations along the base-to-apex normal (larger = more apical).

    3 slices: basal/mid/apical by order; 2: basal/mid; 1: mid; 4 or more: the first (most
    basal), the one nearest the midpoint between first and last (ties within 0.5 mm: the one
    whose rank is nearest ``n // 2``, so evenly spaced slices give index ``n // 2`` as the
    phantom's truth does) and the last; the others get None. Results are in input order.

    overrides: slice index (into ``locations_mm``) -> position or None, e.g. from the user;
    an automatic position taken by an override is removed from the slice that had it.
    """
    loc = np.asarray(locations_mm, dtype=float)
    n = loc.size
    if not np.all(np.isfinite(loc)):
        raise InputError("Slice locations must be finite numbers (mm).")
    order = list(np.argsort(loc, kind="stable"))
    out: list[str | None] = [None] * n
    if n == 1:
        out[order[0]] = "mid"
    elif n == 2:
        out[order[0]], out[order[1]] = "basal", "mid"
    elif n >= 3:
        first, last = order[0], order[-1]
        mid_target = 0.5 * (loc[first] + loc[last])
        inner = order[1:-1]
        best = min(abs(loc[k] - mid_target) for k in inner)
        near = [k for k in inner if abs(loc[k] - mid_target) <= best + TIE_MM]
        rank = {k: r for r, k in enumerate(order)}
        middle = min(near, key=lambda k: (abs(rank[k] - n // 2), -loc[k]))
        out[first], out[middle], out[last] = "basal", "mid", "apical"
    for k, pos in (overrides or {}).items():
        if not 0 <= int(k) < n:
            raise InputError(f"Position override for slice {k}: there are only {n} slices.")
        if pos is not None and pos not in POSITIONS:
            raise InputError(f"Position override {pos!r}: expected one of {POSITIONS} or None.")
    overridden = {int(k): p for k, p in (overrides or {}).items()}
    taken = {p for p in overridden.values() if p is not None}
    for k in range(n):
        if k in overridden:
            out[k] = overridden[k]
        elif out[k] in taken:
            out[k] = None
    dup = [p for p in POSITIONS if sum(o == p for o in out) > 1]
    if dup:
        raise InputError(f"Position overrides give {dup[0]!r} to more than one slice.")
    return out


def plane_distance_mm(
    a: SliceGeometry, b: SliceGeometry, point_rc: tuple[float, float] | None = None
) -> float:
    """Distance (mm) from a point of slice ``b`` (its centre, or ``point_rc`` in b's grid, e.g.
    the LV centre) to the plane of slice ``a``."""
    p = b.centre_mm() if point_rc is None else b.pixel_to_patient(*point_rc)
    return float(abs((p - np.asarray(a.origin_mm, dtype=float)) @ a.normal))


def check_stress_rest_alignment(
    stress: Mapping[str, float | SliceGeometry],
    rest: Mapping[str, float | SliceGeometry],
    tolerance_mm: float = ALIGNMENT_TOLERANCE_MM,
    points_rc: Mapping[str, tuple[float, float]] | None = None,
) -> tuple[dict[str, float], list[str]]:
    """Compare stress and rest slices position by position.

    ``stress``/``rest``: position -> location along the base-to-apex normal (mm) or the slice
    geometry (then the distance from the rest slice's LV centre, ``points_rc[position]`` in the
    rest grid, or its image centre, to the stress plane). Returns ``(offset_mm per position,
    flags)``; a flag for each position more than ``tolerance_mm`` apart (MPR there would compare
    different myocardium).
    """
    offsets: dict[str, float] = {}
    flags: list[str] = []
    for pos in POSITIONS:
        if pos not in stress or pos not in rest:
            continue
        s, r = stress[pos], rest[pos]
        if isinstance(s, SliceGeometry) and isinstance(r, SliceGeometry):
            pt = None if points_rc is None else points_rc.get(pos)
            d = plane_distance_mm(s, r, pt)
        elif isinstance(s, SliceGeometry) or isinstance(r, SliceGeometry):
            raise InputError("Stress and rest locations must both be mm or both geometries.")
        else:
            d = abs(float(s) - float(r))
        offsets[pos] = d
        if d > tolerance_mm:
            flags.append(
                f"{pos} stress and rest slices are {d:.1f} mm apart (> {tolerance_mm:g} mm): "
                "MPR compares different myocardium"
            )
    return offsets, flags


# --------------------------------------------------------------------------- statistics
def transmural_depth(labels: np.ndarray, spacing_mm: tuple[float, float] = (1.0, 1.0)):
    """Normalised transmural depth of myocardial pixels: 0 at the endocardium, 1 at the
    epicardium, NaN elsewhere (and everywhere when the slice has no LV blood pool).

    depth = d_endo / (d_endo + d_epi), with d_endo / d_epi the Euclidean distances (mm) from the
    pixel centre to the nearest LV blood-pool pixel / nearest pixel outside myocardium and LV.
    """
    labels = np.asarray(labels)
    depth = np.full(labels.shape, np.nan, dtype=np.float32)
    myo = labels == LABEL_MYO
    lv = labels == LABEL_LV
    if not myo.any() or not lv.any():
        return depth
    outside = ~(myo | lv)
    d_endo = ndimage.distance_transform_edt(~lv, sampling=spacing_mm)
    if outside.any():
        d_epi = ndimage.distance_transform_edt(~outside, sampling=spacing_mm)
    else:  # myocardium touches the image border everywhere: treat the border as epicardium
        d_epi = ndimage.distance_transform_edt(np.pad(~outside, 1, constant_values=False))
        d_epi = d_epi[1:-1, 1:-1] * float(min(spacing_mm))
    tot = d_endo[myo] + d_epi[myo]
    depth[myo] = (d_endo[myo] / np.maximum(tot, 1e-9)).astype(np.float32)
    return depth


def _as_list(x) -> list:
    if x is None:
        return []
    if isinstance(x, np.ndarray) and x.ndim == 2:
        return [x]
    return list(x)


def _median(v: np.ndarray) -> float:
    return float(np.median(v))


#: Endo / epi layer values leave out the wall's border pixels (:func:`wall_border`): the
#: pixels next to the LV pool carry its blood (partial volume, blur), those next to fat or
#: lung read low. Over 67 analysed synthetic exams (the 65 runs of
#: ``benchmarks/bench_accuracy.py``, seeds 101-501, with stop 32's maps, and two seed-101 runs
#: with stop 33's; 2,104 segments, offline) the reported endo/epi ratio read +16.5% on
#: average against the true map's (MAE 17.3%; the inner half +8.5%, the outer -6.3%), and a
#: subendocardial defect's stress ratio 1.06 where the truth is 0.87. Off the borders (1,871
#: layers; the others come from walls too thin to split): -0.4% (MAE 9.4%; inner -1.9%, outer
#: -0.8%; inner-half MAE 7.7% instead of 10.7%), the subendocardial stress ratio 0.91.
LAYER_OFF_BORDERS = True


def wall_border(labels: np.ndarray) -> np.ndarray:
    """(Y, X) bool: the myocardial pixels of ``labels`` (Y, X) with one of their 8 neighbours
    in the LV pool or anywhere outside the myocardium (the endo- and epicardial borders)."""
    lab = np.asarray(labels)
    myo = lab == LABEL_MYO
    return myo & ndimage.binary_dilation(~myo, structure=np.ones((3, 3), bool))


def segment_values(
    mbf_map,
    valid_mask,
    aha_map,
    labels,
    spacing_mm=None,
    min_reliable_pixels: int = 5,
    min_reliable_fraction: float = 0.5,
    min_layer_pixels: int = 3,
    layers_off_borders: bool | None = None,
) -> dict[int, SegmentValue]:
    """Per-segment MBF summary of one condition.

    Each of ``mbf_map`` ``(Y, X)`` (mL/min/g), ``valid_mask`` ``(Y, X)`` bool (reliable fit),
    ``aha_map`` ``(Y, X)`` uint8 and ``labels`` ``(Y, X)`` may be one array or a sequence of
    arrays (one per slice, pixels pooled by segment); ``spacing_mm`` likewise one ``(dy, dx)``
    or a sequence (default 1 mm). Non-finite MBF values count as unreliable.

    A segment is covered when it has myocardial pixels (``n_pixels > 0``); it is reliable when
    at least ``min_reliable_pixels`` and ``min_reliable_fraction`` of them are reliable; then
    ``mbf`` is the median of its reliable pixels, otherwise None. ``endo`` / ``epi`` are the
    medians of the reliable pixels of the inner / outer half of the wall (normalised transmural
    depth < 0.5 / >= 0.5, :func:`transmural_depth`) off the wall's borders (``LAYER_OFF_BORDERS``:
    without the myocardial pixels 8-connected to the LV pool or to anything outside the
    myocardium; ``layers_off_borders`` False: the whole halves, e.g. for a true map), None with
    fewer than ``min_layer_pixels`` there (a wall too thin to split) or when the segment is
    unreliable. Returns segments 1-16, no NaN.

    All myocardial pixels count, the ring next to the LV pool included. On the phantom exams
    that ring reads 6-70% above the rest of the wall from blood spill (seeds 201-213; truth
    0.69-1.07) and the epicardial border reads low; over the 65 runs of
    ``benchmarks/bench_accuracy.py`` leaving both borders out (stop 26) met the targets in 58
    runs instead of 61, and leaving out the endocardial ring alone (stop 29) in 45, with the
    stress bias at -6.5% instead of -3.0% and the rest bias at -4.5% instead of -0.7%. A
    per-pixel LV blood fraction fitted on the frames between the AIF's foot and the tissue's
    arrival (offline, normal 209) took the ring's stress excess from 1.25-1.74 to 1.09-1.34 but
    the whole wall's stress median down 16-20%: those frames already carry tissue signal.
    """
    maps, valids, ahas, labs = map(_as_list, (mbf_map, valid_mask, aha_map, labels))
    if not (len(maps) == len(valids) == len(ahas) == len(labs)):
        raise InputError("segment_values: as many MBF maps, masks, AHA maps and labels needed.")
    if spacing_mm is None:
        spacings = [(1.0, 1.0)] * len(maps)
    elif len(spacing_mm) == 2 and np.isscalar(spacing_mm[0]):
        spacings = [tuple(map(float, spacing_mm))] * len(maps)
    else:
        spacings = [tuple(map(float, s)) for s in spacing_mm]
    vals: dict[int, list[np.ndarray]] = {s: [] for s in range(1, N_SEGMENTS + 1)}
    depths: dict[int, list[np.ndarray]] = {s: [] for s in range(1, N_SEGMENTS + 1)}
    okays: dict[int, list[np.ndarray]] = {s: [] for s in range(1, N_SEGMENTS + 1)}
    for m, v, a, lab, sp in zip(maps, valids, ahas, labs, spacings, strict=False):
        m = np.asarray(m, dtype=float)
        a = np.asarray(a)
        lab = np.asarray(lab)
        if not (m.shape == np.shape(v) == a.shape == lab.shape):
            raise InputError("segment_values: MBF map, mask, AHA map and labels differ in shape.")
        ok = np.asarray(v, dtype=bool) & np.isfinite(m)
        depth = transmural_depth(lab, sp)
        if LAYER_OFF_BORDERS if layers_off_borders is None else layers_off_borders:
            # border pixels: in no layer (NaN depth)
            depth = np.where(wall_border(lab), np.nan, depth)
        myo = (lab == LABEL_MYO) & (a >= 1) & (a <= N_SEGMENTS)
        for s in np.unique(a[myo]):
            sel = myo & (a == s)
            vals[int(s)].append(m[sel])
            depths[int(s)].append(depth[sel])
            okays[int(s)].append(ok[sel])
    out: dict[int, SegmentValue] = {}
    for s in range(1, N_SEGMENTS + 1):
        if not vals[s]:
            out[s] = SegmentValue(segment=s, mbf=None)
            continue
        m = np.concatenate(vals[s])
        d = np.concatenate(depths[s])
        ok = np.concatenate(okays[s])
        n_pix, n_ok = int(m.size), int(ok.sum())
        reliable = n_ok >= min_reliable_pixels and n_ok >= min_reliable_fraction * n_pix
        sv = SegmentValue(segment=s, mbf=None, n_pixels=n_pix, n_reliable=n_ok, reliable=reliable)
        if reliable:
            sv.mbf = _median(m[ok])
            endo = ok & (d < 0.5)
            epi = ok & (d >= 0.5)
            sv.endo = _median(m[endo]) if endo.sum() >= min_layer_pixels else None
            sv.epi = _median(m[epi]) if epi.sum() >= min_layer_pixels else None
        out[s] = sv
    return out


def global_mbf(segments: Mapping[int, SegmentValue]) -> float | None:
    """Global MBF: mean of the segments with a (reliable) value; None when there is none."""
    vals = [sv.mbf for sv in segments.values() if sv.mbf is not None]
    return float(np.mean(vals)) if vals else None
