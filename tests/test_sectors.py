"""AHA sectors, slice positions and segment statistics against synthetic truth.

The synthetic heart is defined in patient coordinates (LPS, mm): a myocardial ring about the LV
centre, the RV towards the patient's right, the insertion points where RV and ring meet. It is
sampled on slice grids that are rotated in-plane, mirrored (row vector negated, pixel grid
flipped) and anisotropic; the segment numbering must follow the anatomy, not the grid.
"""

from __future__ import annotations

import numpy as np
import pytest

from qperf_viewer.errors import InputError
from qperf_viewer.geometry import (
    APEX_DIRECTION_LPS,
    SliceGeometry,
    angle_about_normal_deg,
    base_to_apex_normal,
)
from qperf_viewer.sectors import (
    POSITION_SEGMENTS,
    TERRITORY_OF_SEGMENT,
    aha_segments,
    assign_positions,
    check_stress_rest_alignment,
    global_mbf,
    insertion_point_flags,
    orient_insertion_points,
    plane_distance_mm,
    sector_lines,
    segment_label_points,
    segment_of_angle,
    segment_values,
    transmural_depth,
    wall_border,
)

N = APEX_DIRECTION_LPS
CENTRE_MM = np.array([10.0, -20.0, 30.0])


def _proj(v):
    v = np.asarray(v, float)
    v = v - (v @ N) * N
    return v / np.linalg.norm(v)


ANTERIOR = _proj([0.0, -1.0, 0.0])  # towards the patient's front
SIDE = np.cross(N, ANTERIOR)  # right-handed +90 deg about the base-to-apex normal


def _direction(angle_deg):
    t = np.radians(angle_deg)
    return np.cos(t) * ANTERIOR + np.sin(t) * SIDE


def make_geometry(rot_deg=0.0, mirror=False, spacing=(1.25, 1.25), shape=(80, 88)):
    """Short-axis grid through CENTRE_MM, rotated in-plane by rot_deg, optionally mirrored."""
    t = np.radians(rot_deg)
    e1 = _proj([1.0, 1.0, 0.0])
    e2 = np.cross(N, e1)
    row_dir = np.cos(t) * e1 + np.sin(t) * e2
    col_dir = -np.sin(t) * e1 + np.cos(t) * e2
    dy, dx = spacing
    rows, cols = shape
    origin = CENTRE_MM - (rows - 1) / 2 * dy * col_dir - (cols - 1) / 2 * dx * row_dir
    origin = origin + 3.1 * row_dir - 2.3 * col_dir  # centre off the pixel grid's middle
    if mirror:
        origin = origin + (cols - 1) * dx * row_dir
        row_dir = -row_dir
    return SliceGeometry(
        orientation=tuple(float(v) for v in (*row_dir, *col_dir)),
        origin_mm=tuple(float(v) for v in origin),
        pixel_spacing_mm=(float(dy), float(dx)),
        shape=shape,
    )


def to_pixel(geom: SliceGeometry, p):
    d = np.asarray(p, float) - np.asarray(geom.origin_mm)
    return (
        float(d @ geom.col_dir / geom.pixel_spacing_mm[0]),
        float(d @ geom.row_dir / geom.pixel_spacing_mm[1]),
    )


def phantom(geom: SliceGeometry, ant_deg=0.0, septal_deg=120.0, r_in=18.0, r_out=26.0):
    """Labels of a ring heart; insertion points at ant_deg / ant_deg+septal_deg (anatomical
    angles right-handed about the base-to-apex normal, 0 = straight anterior)."""
    rr, cc = np.indices(geom.shape)
    v = geom.pixel_to_patient(rr, cc) - CENTRE_MM
    x, y = v @ ANTERIOR, v @ SIDE
    r = np.hypot(x, y)
    ang = np.mod(np.degrees(np.arctan2(y, x)) - ant_deg, 360.0)
    labels = np.zeros(geom.shape, np.uint8)
    labels[r < r_in] = 1
    labels[(r >= r_in) & (r < r_out)] = 2
    labels[(r >= r_out) & (r < r_out + 14) & (ang > 5) & (ang < septal_deg - 5)] = 3
    ant = to_pixel(geom, CENTRE_MM + r_out * _direction(ant_deg))
    inf = to_pixel(geom, CENTRE_MM + r_out * _direction(ant_deg + septal_deg))
    lv = to_pixel(geom, CENTRE_MM)
    return labels, lv, ant, inf, ang


def expected_segments(labels, ang, position, septal_deg):
    exp = np.zeros(labels.shape, np.uint8)
    myo = labels == 2
    exp[myo] = segment_of_angle(ang[myo], position, septal_deg)
    return exp


def test_convention_matches_anatomy():
    """Anterior -> septum (patient right) -> inferior is right-handed about base->apex."""
    right, inferior = _proj([-1.0, 0, 0]), _proj([0, 0, -1.0])
    a_rv = float(angle_about_normal_deg(ANTERIOR, right, N))
    a_inf = float(angle_about_normal_deg(ANTERIOR, inferior, N))
    assert 0 < a_rv < a_inf < 180


def test_segment_of_angle_basal_mid_60_degree_sectors():
    ang = np.array([0.0, 30, 59.99, 60, 119.9, 120, 180, 240, 300, 359.99, -1.0])
    assert list(segment_of_angle(ang, "basal", 120.0)) == [2, 2, 2, 3, 3, 4, 5, 6, 1, 1, 1]
    assert list(segment_of_angle(ang, "mid", 100.0)) == [8, 8, 8, 9, 9, 10, 11, 12, 7, 7, 7]
    # basal/mid sectors do not depend on the inferior insertion
    assert np.array_equal(segment_of_angle(ang, "basal", 90.0), segment_of_angle(ang, "basal", 150))


def test_segment_of_angle_apical_bisector_rule():
    # septal angle 120: bisector at 60, 14 = [15, 105), 15 = [105, 195), 16, 13
    ang = np.array([15.0, 60, 104.9, 105, 194.9, 195, 284.9, 285, 0, 14.9])
    assert list(segment_of_angle(ang, "apical", 120.0)) == [14, 14, 14, 15, 15, 16, 16, 13, 13, 13]
    # a wider septum moves the bisector: septal 160 -> 14 = [35, 125)
    assert list(segment_of_angle([34.9, 35, 124.9, 125], "apical", 160.0)) == [13, 14, 14, 15]


@pytest.mark.parametrize("position", ["basal", "mid", "apical"])
@pytest.mark.parametrize("rot_deg", [0.0, 37.0, 90.0, 180.0, 251.0])
@pytest.mark.parametrize("mirror", [False, True])
def test_aha_segments_follow_anatomy(position, rot_deg, mirror):
    geom = make_geometry(rot_deg, mirror, spacing=(1.25, 1.1))
    ant_deg, septal = 12.0, 128.0
    labels, lv, ant, inf, ang = phantom(geom, ant_deg, septal)
    aha = aha_segments(labels, geom, lv, ant, inf, position)
    exp = expected_segments(labels, ang, position, septal)
    # pixels right on a boundary (within 1e-6 deg) may go either way
    assert (aha == exp).mean() > 0.999
    assert set(np.unique(aha[labels == 2])) == set(POSITION_SEGMENTS[position])
    assert np.all(aha[labels != 2] == 0)
    assert aha.dtype == np.uint8


def test_mirrored_grid_numbers_the_same_patient_points():
    geom = make_geometry(23.0, False)
    geom_m = make_geometry(23.0, True)
    labels, lv, ant, inf, _ = phantom(geom, 20.0, 115.0)
    labels_m, lv_m, ant_m, inf_m, _ = phantom(geom_m, 20.0, 115.0)
    assert np.array_equal(labels_m, labels[:, ::-1])  # the same patient points, flipped grid
    assert not np.allclose(geom_m.normal, geom.normal)  # raw normals differ...
    assert np.allclose(base_to_apex_normal(geom_m), base_to_apex_normal(geom))  # ...oriented agree
    for position in ("basal", "mid", "apical"):
        a = aha_segments(labels, geom, lv, ant, inf, position)
        b = aha_segments(labels_m, geom_m, lv_m, ant_m, inf_m, position)
        assert np.array_equal(b, a[:, ::-1])


def test_rotated_grids_agree_in_patient_space():
    """Segment of the nearest pixel to fixed patient points is the same on every grid."""
    probes = [CENTRE_MM + 22.0 * _direction(a) for a in np.arange(5.0, 360.0, 10.0)]
    ref = None
    for rot, mirror in [(0, False), (90, False), (200, True), (315, True)]:
        geom = make_geometry(rot, mirror, spacing=(1.0, 1.0), shape=(96, 96))
        labels, lv, ant, inf, _ = phantom(geom, 0.0, 120.0)
        aha = aha_segments(labels, geom, lv, ant, inf, "mid")
        segs = []
        for p in probes:
            r, c = to_pixel(geom, p)
            segs.append(int(aha[int(round(r)), int(round(c))]))
        if ref is None:
            ref = segs
        assert segs == ref
    # probes at 5, 15, ... deg: 6 probes per 60-deg sector, starting with segment 8
    assert ref == [s for s in (8, 9, 10, 11, 12, 7) for _ in range(6)]


def test_sector_sizes_on_uniform_ring():
    geom = make_geometry(10.0, spacing=(0.5, 0.5), shape=(150, 150))
    labels, lv, ant, inf, _ = phantom(geom, 0.0, 120.0)
    n_myo = (labels == 2).sum()
    for position, width in (("basal", 60.0), ("apical", 90.0)):
        aha = aha_segments(labels, geom, lv, ant, inf, position)
        for s in POSITION_SEGMENTS[position]:
            assert (aha == s).sum() / n_myo == pytest.approx(width / 360.0, abs=0.01)


def test_sector_lines_and_label_points():
    geom = make_geometry(0.0, spacing=(1.0, 1.0), shape=(96, 96))
    labels, lv, ant, inf, _ = phantom(geom, 0.0, 120.0)
    lines = sector_lines(geom, lv, ant, inf, "basal")
    assert [round(ln.angle_deg) for ln in lines] == [0, 60, 120, 180, 240, 300]
    # the first line points at the anterior insertion
    end = lines[0].end_point(lv, 26.0, geom.pixel_spacing_mm)
    assert np.allclose(end, ant, atol=1e-6)
    # the 120-deg line points at the inferior insertion (septal angle 120)
    end = lines[2].end_point(lv, 26.0, geom.pixel_spacing_mm)
    assert np.allclose(end, inf, atol=1e-6)
    d = np.radians(lines[0].image_angle_deg)
    v = np.array(ant) - np.array(lv)
    assert np.allclose([np.sin(d), np.cos(d)], v / np.linalg.norm(v), atol=1e-9)
    apical = sector_lines(geom, lv, ant, inf, "apical")
    assert [round(ln.angle_deg) for ln in apical] == [15, 105, 195, 285]
    aha = aha_segments(labels, geom, lv, ant, inf, "apical")
    for seg, (r, c) in segment_label_points(geom, lv, ant, inf, "apical", 22.0).items():
        assert aha[int(round(r)), int(round(c))] == seg


def test_orient_and_flag_insertion_points():
    geom = make_geometry(45.0, True)
    labels, lv, ant, inf, _ = phantom(geom, 0.0, 120.0)
    rv = tuple(np.argwhere(labels == 3).mean(axis=0))
    assert orient_insertion_points(geom, lv, inf, ant, rv) == (ant, inf)
    assert orient_insertion_points(geom, lv, ant, inf, rv) == (ant, inf)
    assert insertion_point_flags(geom, lv, ant, inf) == []
    assert "swapped" in insertion_point_flags(geom, lv, inf, ant)[0]
    with pytest.raises(InputError):
        aha_segments(labels, geom, lv, lv, inf, "basal")
    with pytest.raises(InputError):
        aha_segments(labels, geom, lv, ant, inf, "apex")


def test_assign_positions():
    assert assign_positions([10.0, 20.0, 30.0]) == ["basal", "mid", "apical"]
    assert assign_positions([30.0, 10.0, 20.0]) == ["apical", "basal", "mid"]
    assert assign_positions([5.0, -3.0]) == ["mid", "basal"]
    assert assign_positions([1.0]) == ["mid"]
    assert assign_positions([]) == []
    # 4+: first, middle (index n // 2 when evenly spaced, as the phantom's truth), last
    assert assign_positions([0, 10, 20, 30]) == ["basal", None, "mid", "apical"]
    assert assign_positions([0, 10, 20.2, 30]) == ["basal", None, "mid", "apical"]
    assert assign_positions([0, 8, 18, 22, 40]) == ["basal", None, "mid", None, "apical"]
    assert assign_positions([0, 10, 20, 30, 40, 50]) == ["basal", None, None, "mid", None, "apical"]
    # the best spread, not the index, when spacing is uneven
    assert assign_positions([0, 4, 8, 27, 40]) == ["basal", None, None, "mid", "apical"]
    # user overrides win; the automatic holder of that position loses it
    assert assign_positions([0, 10, 20, 30], {1: "mid"}) == ["basal", "mid", None, "apical"]
    assert assign_positions([0, 10, 20], {2: None}) == ["basal", "mid", None]
    with pytest.raises(InputError):
        assign_positions([0, 10, 20], {0: "mid", 1: "mid"})
    with pytest.raises(InputError):
        assign_positions([0, 10, 20], {5: "mid"})
    with pytest.raises(InputError):
        assign_positions([0, 10, 20], {0: "apex"})


def test_stress_rest_alignment():
    offsets, flags = check_stress_rest_alignment(
        {"basal": 10.0, "mid": 20.0, "apical": 30.0}, {"basal": 12.0, "mid": 26.0}
    )
    assert offsets == {"basal": 2.0, "mid": 6.0}
    assert len(flags) == 1 and flags[0].startswith("mid") and "6.0 mm" in flags[0]
    g = make_geometry(0.0)
    shifted = SliceGeometry(
        g.orientation,
        tuple(float(v) for v in np.asarray(g.origin_mm) + 7.0 * base_to_apex_normal(g)),
        g.pixel_spacing_mm,
        g.shape,
    )
    assert plane_distance_mm(g, shifted) == pytest.approx(7.0)
    offsets, flags = check_stress_rest_alignment({"mid": g}, {"mid": shifted})
    assert offsets["mid"] == pytest.approx(7.0) and len(flags) == 1
    offsets, flags = check_stress_rest_alignment({"mid": g}, {"mid": g})
    assert offsets["mid"] == pytest.approx(0.0) and flags == []


def test_transmural_depth_and_endo_epi_split():
    geom = make_geometry(0.0, spacing=(0.8, 0.8), shape=(110, 110))
    labels, lv, ant, inf, _ = phantom(geom, 0.0, 120.0, r_in=18.0, r_out=26.0)
    rr, cc = np.indices(labels.shape)
    r_mm = np.linalg.norm(geom.pixel_to_patient(rr, cc) - CENTRE_MM, axis=-1)
    depth = transmural_depth(labels, geom.pixel_spacing_mm)
    myo = labels == 2
    assert np.all(np.isfinite(depth[myo])) and np.all(np.isnan(depth[~myo]))
    true_depth = (r_mm - 18.0) / 8.0
    assert np.abs(depth[myo] - true_depth[myo]).mean() < 0.08
    # MBF 1.0 in the inner half of the wall, 2.0 in the outer half; 10% unreliable pixels
    mbf = np.where(r_mm < 22.0, 1.0, 2.0).astype(np.float32)
    rng = np.random.default_rng(0)
    valid = rng.random(labels.shape) > 0.1
    mbf[~valid] = np.nan  # unreliable pixels may hold anything
    aha = aha_segments(labels, geom, lv, ant, inf, "mid")
    segs = segment_values(mbf, valid, aha, labels, geom.pixel_spacing_mm)
    for s in range(7, 13):
        sv = segs[s]
        assert sv.reliable and sv.n_pixels > 0
        assert sv.endo == pytest.approx(1.0) and sv.epi == pytest.approx(2.0)
        assert sv.mbf in (1.0, 1.5, 2.0)
        assert sv.n_reliable < sv.n_pixels
    for s in (*range(1, 7), *range(13, 17)):
        assert segs[s].mbf is None and segs[s].n_pixels == 0 and not segs[s].reliable


def test_endo_epi_layers_leave_out_the_wall_borders():
    """The pixels next to the LV pool carry its blood and those next to fat read low: the
    layer values come from the wall off both borders; a wall too thin to split has none."""
    geom = make_geometry(0.0, spacing=(1.0, 1.0), shape=(96, 96))
    labels, lv, ant, inf, _ = phantom(geom, 0.0, 120.0, r_in=18.0, r_out=24.0)
    border = wall_border(labels)
    myo = labels == 2
    # the border touches the pool or the outside; the rest touches only myocardium
    grown = np.zeros_like(myo)
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            grown |= np.roll(np.roll(~myo, dr, 0), dc, 1)
    np.testing.assert_array_equal(border, myo & grown)
    assert 0 < border.sum() < myo.sum()
    depth = transmural_depth(labels, geom.pixel_spacing_mm)
    mbf = np.where(depth < 0.5, 1.0, 2.0).astype(np.float32)
    mbf[border & (depth < 0.5)] = 3.0  # blood spill into the endocardial border
    mbf[border & (depth >= 0.5)] = 0.5  # dilution at the epicardial border
    # three in four of the inner half's other pixels unreliable: the border is its majority
    inner = myo & ~border & (depth < 0.5)
    valid = myo & ~(inner & (np.random.default_rng(3).random(myo.shape) < 0.75))
    aha = aha_segments(labels, geom, lv, ant, inf, "mid")
    sp = geom.pixel_spacing_mm
    segs = segment_values(mbf, valid, aha, labels, sp)
    whole = segment_values(mbf, valid, aha, labels, sp, layers_off_borders=False)
    for s in range(7, 13):
        assert segs[s].reliable
        assert segs[s].endo == pytest.approx(1.0) and segs[s].epi == pytest.approx(2.0)
        assert segs[s].mbf == whole[s].mbf  # the segment value keeps every pixel
        assert whole[s].endo == pytest.approx(3.0)  # what the border pixels would give
    # a 2-pixel wall is all border: segment values, no layers
    labels, lv, ant, inf, _ = phantom(geom, 0.0, 120.0, r_in=18.0, r_out=20.0)
    myo = labels == 2
    assert np.all(wall_border(labels) == myo)
    aha = aha_segments(labels, geom, lv, ant, inf, "mid")
    segs = segment_values(np.ones(labels.shape, np.float32), myo, aha, labels)
    for s in range(7, 13):
        assert segs[s].mbf == pytest.approx(1.0) and segs[s].endo is None and segs[s].epi is None


def test_segment_values_pooling_reliability_and_global():
    geom = make_geometry(0.0, spacing=(1.0, 1.0), shape=(96, 96))
    maps, valids, ahas, labs = [], [], [], []
    truth = {}
    for position in ("basal", "mid", "apical"):
        labels, lv, ant, inf, _ = phantom(geom, 0.0, 120.0)
        aha = aha_segments(labels, geom, lv, ant, inf, position)
        mbf = np.zeros(labels.shape, np.float32)
        for s in POSITION_SEGMENTS[position]:
            truth[s] = 0.5 + 0.1 * s
            mbf[aha == s] = truth[s]
        valid = labels == 2
        if position == "apical":
            valid &= aha != 16  # segment 16 entirely unreliable
            mbf[aha == 16] = np.inf
        maps.append(mbf)
        valids.append(valid)
        ahas.append(aha)
        labs.append(labels)
    segs = segment_values(maps, valids, ahas, labs)
    assert sorted(segs) == list(range(1, 17))
    for s, v in truth.items():
        if s == 16:
            assert segs[s].mbf is None and not segs[s].reliable and segs[s].n_pixels > 0
        else:
            assert segs[s].mbf == pytest.approx(v, rel=1e-6) and segs[s].reliable
    for sv in segs.values():
        for x in (sv.mbf, sv.endo, sv.epi):
            assert x is None or np.isfinite(x)
    g = global_mbf(segs)
    assert g == pytest.approx(np.mean([v for s, v in truth.items() if s != 16]))
    assert global_mbf({}) is None
    assert set(TERRITORY_OF_SEGMENT) == set(range(1, 17))


def test_segment_values_rejects_mismatched_inputs():
    a = np.zeros((4, 4))
    with pytest.raises(InputError):
        segment_values(a, a > 0, np.zeros((4, 5), np.uint8), a)
    with pytest.raises(InputError):
        segment_values([a, a], [a > 0], [a], [a])


@pytest.mark.parametrize("mirror", [False, True])
def test_agrees_with_phantom_truth_code(mirror):
    """The phantom computes its truth AHA map independently; both must agree exactly."""
    aha_mod = pytest.importorskip("qperf_viewer.phantom.aha")
    geom = make_geometry(63.0, mirror, spacing=(1.4, 1.2))
    labels, lv, ant, inf, _ = phantom(geom, -8.0, 135.0)
    for position in ("basal", "mid", "apical"):
        ours = aha_segments(labels, geom, lv, ant, inf, position)
        truth = aha_mod.aha_segment_map(labels, geom, lv, ant, inf, position)
        assert (ours == truth).mean() > 0.999
    for n in range(1, 8):
        locs = list(np.arange(n) * 10.0)
        assert assign_positions(locs) == aha_mod.slice_positions(n)
