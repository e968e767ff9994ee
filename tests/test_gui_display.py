"""Qt-free helpers of the GUI: display orientation, bolus sync, contour editing, progress
parsing and the saved-edit format."""

from __future__ import annotations

import numpy as np
import pytest

from qperf_viewer.exam import LABEL_LV, LABEL_MYO, LABEL_RV
from qperf_viewer.geometry import SliceGeometry, base_to_apex_normal
from qperf_viewer.gui import backend as be
from qperf_viewer.gui import contours as ct
from qperf_viewer.gui import display
from qperf_viewer.gui.display import (
    bolus_arrival_s,
    brightness_curve,
    display_matrix,
    patient_to_pixel_dir,
    pixel_to_screen,
    screen_to_pixel,
    stack_arrival_s,
    stack_presets,
    stack_stat,
    synced_frame,
    window_presets,
)
from qperf_viewer.gui.sample_data import sample_exam
from qperf_viewer.gui.workers import CancelToken, parse_progress
from qperf_viewer.results import Segmentation

APEX = np.array([1.0, -1.0, -1.0]) / np.sqrt(3.0)


def oblique_geometry(rot_deg: float, mirrored: bool, tilt=(0.0, 0.0, 0.0)) -> SliceGeometry:
    """Short-axis plane whose normal is near the LV long axis, rotated in plane; mirrored:
    row direction negated (the pixel grid flipped, same anatomy in patient space)."""
    n = APEX + np.asarray(tilt)
    n /= np.linalg.norm(n)
    e1 = np.cross(n, [0.0, 0.0, 1.0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(n, e1)
    t = np.radians(rot_deg)
    row = np.cos(t) * e1 + np.sin(t) * e2
    col = np.cross(n, row)
    if mirrored:
        row = -row
    return SliceGeometry(tuple(np.r_[row, col]), (0.0, 0.0, 0.0), (1.7, 2.1), (144, 192))


def screen_dir(geom: SliceGeometry, v_patient: np.ndarray) -> np.ndarray:
    a = display_matrix(geom)
    d = patient_to_pixel_dir(geom, v_patient)
    return a @ np.array([d[1], d[0]])  # (x right, y down)


@pytest.mark.parametrize("mirrored", [False, True])
@pytest.mark.parametrize("rot", [0.0, 73.0, 160.0, 245.0, 330.0])
def test_standard_short_axis_display(rot, mirrored):
    """Anterior up, patient's right (RV) on the left, right-handed about n counter-clockwise."""
    g = oblique_geometry(rot, mirrored, tilt=(0.1, 0.05, -0.08))
    n = base_to_apex_normal(g)

    def in_plane(v):
        v = np.asarray(v, float)
        return v - (v @ n) * n

    up = screen_dir(g, in_plane([0.0, -1.0, 0.0]))  # anterior (LPS -y)
    assert up[1] < 0 and abs(up[0]) < 1e-6 * np.linalg.norm(up)
    right_pt = screen_dir(g, in_plane([-1.0, 0.0, 0.0]))  # patient's right
    assert right_pt[0] < 0
    u = in_plane([0.3, 0.5, -0.2])
    w = np.cross(n, u)  # u rotated +90 deg right-handed about n
    su, sw = screen_dir(g, u), screen_dir(g, w)
    # counter-clockwise on screen (y down): cross product z of (su, sw) with y flipped > 0
    assert su[0] * (-sw[1]) - (-su[1]) * sw[0] > 0
    # mm on screen are mm in the patient: A / spacing is orthogonal (no distortion)
    dy, dx = g.pixel_spacing_mm
    m = display_matrix(g) @ np.diag([1 / dx, 1 / dy])
    assert m @ m.T == pytest.approx(np.eye(2), abs=1e-9)


def test_pixel_screen_round_trip():
    g = oblique_geometry(40.0, True)
    a = display_matrix(g)
    pts = np.array([[0.0, 0.0], [10.5, 3.25], [143.0, 191.0]])
    assert screen_to_pixel(a, pixel_to_screen(a, pts)) == pytest.approx(pts)


def test_bolus_arrival_and_sync():
    t = np.arange(50) * 0.8
    curve = np.where(t > 10.0, (t - 10.0) * 50.0, 0.0).clip(0, 400) + 20.0
    curve[:2] = 500.0  # PD frames are bright; callers pass dynamic frames only
    arr = bolus_arrival_s(t[2:], curve[2:])
    assert arr == pytest.approx(10.0 + 0.15 * 400 / 50.0, abs=1e-6)
    t_b = np.arange(40) * 1.1
    f = synced_frame(t, 10.0, 20, t_b, 14.0)  # 6 s after arrival in A
    assert t_b[f] == pytest.approx(20.0, abs=0.55)
    assert bolus_arrival_s(t, np.ones_like(t)) == t[0]


def test_window_presets_ordered():
    stack = np.random.default_rng(0).gamma(2.0, 50.0, (10, 32, 32)).astype(np.float32)
    for lo, hi in window_presets(stack).values():
        assert hi > lo
    assert window_presets(stack, gd=True)["Auto"][0] == 0.0


def test_stack_figures_computed_once_per_stack():
    """The views' per-stack figures (presets, brightness arrival) are the plain functions'
    values, computed once per stack object and forgotten with it."""
    import gc

    rng = np.random.default_rng(1)
    stack = rng.gamma(2.0, 50.0, (20, 24, 24)).astype(np.float32)
    stack[8:] += 200.0  # a bolus
    times = np.arange(20) * 0.9
    assert stack_presets(stack) == window_presets(stack)
    assert stack_presets(stack, gd=True) == window_presets(stack, gd=True)
    dyn = np.arange(2, 20)
    expected = bolus_arrival_s(times[dyn], brightness_curve(stack[dyn]))
    assert stack_arrival_s(stack, times, (0, 1)) == expected
    calls = []
    assert stack_stat(stack, "k", lambda: calls.append(1) or 5) == 5
    assert stack_stat(stack, "k", lambda: calls.append(1) or 6) == 5
    assert calls == [1]
    assert stack_stat(stack.copy(), "k", lambda: 7) == 7  # another array, same values
    n = len(display._stats)
    del stack
    gc.collect()
    assert len(display._stats) == n - 1


def ring_labels(shape=(64, 64), c=(30.0, 33.0), r_endo=8.0, r_epi=13.0) -> np.ndarray:
    rr, cc = np.mgrid[: shape[0], : shape[1]]
    d = np.hypot(rr - c[0], cc - c[1])
    lab = np.zeros(shape, np.uint8)
    lab[(d > r_epi + 1) & (cc < c[1] - 8)] = LABEL_RV
    lab[d <= r_epi] = LABEL_MYO
    lab[d <= r_endo] = LABEL_LV
    return lab


def test_polygon_mask_and_spline():
    t = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    ctrl = np.stack([30 + 10 * np.sin(t), 30 + 10 * np.cos(t)], 1)
    curve = ct.smooth_closed_curve(ctrl, 240)
    assert np.linalg.norm(curve - [30, 30], axis=1) == pytest.approx(np.full(240, 10.0), abs=0.1)
    assert np.min(np.linalg.norm(curve[:, None] - ctrl[None], axis=2), axis=0).max() < 0.3
    m = ct.polygon_mask(curve, (64, 64))
    assert m.sum() == pytest.approx(np.pi * 100, rel=0.03)
    assert m[30, 30] and not m[30, 45]


def test_control_points_and_contour_edit():
    lab = ring_labels()
    ctrl = ct.control_points(lab)
    c = ct.centroid(lab == LABEL_LV)
    assert np.linalg.norm(ctrl["endo"] - c, axis=1) == pytest.approx(np.full(16, 8.5), abs=0.6)
    assert np.linalg.norm(ctrl["epi"] - c, axis=1) == pytest.approx(np.full(16, 13.5), abs=0.6)
    # rasterising the curves reproduces the ring closely (a 0.5-level contour of a mask)
    full = ct.labels_from_contours(lab, ctrl["endo"], ctrl["epi"])
    assert np.mean(full != lab) < 0.02
    assert np.array_equal(full == LABEL_RV, lab == LABEL_RV)
    # pulling one epicardial point outwards grows the wall next to that point only
    epi = ctrl["epi"].copy()
    epi[4] = c + 1.5 * (epi[4] - c)
    new = ct.edit_contours(lab, ctrl, {"endo": ctrl["endo"], "epi": epi})
    assert np.array_equal(lab, ring_labels())  # input untouched
    changed = np.argwhere(new != lab)
    assert len(changed) > 10
    assert set(new[new != lab].tolist()) == {LABEL_MYO}
    dist = np.linalg.norm(changed - ctrl["epi"][4], axis=1)
    assert dist.max() < 2.0 * np.linalg.norm(ctrl["epi"][5] - ctrl["epi"][4]) + 1.5
    # moving it back restores the labels exactly; an endo move only trades LV and myocardium
    back = ct.edit_contours(new, {"endo": ctrl["endo"], "epi": epi}, ctrl)
    assert np.array_equal(back, lab)
    endo = ctrl["endo"].copy()
    endo[0] = c + 0.6 * (endo[0] - c)
    shrunk = ct.edit_contours(lab, ctrl, {"endo": endo, "epi": ctrl["epi"]})
    assert set(zip(lab[shrunk != lab], shrunk[shrunk != lab], strict=True)) == {(1, 2)}


def test_brush():
    lab = ring_labels()
    add = ct.brush(lab, (30.0, 50.0), 2.0, add=True)
    assert (add == LABEL_MYO).sum() > (lab == LABEL_MYO).sum()
    erase = ct.brush(lab, (30.0, 45.0), 2.5, add=False)
    assert (erase == LABEL_MYO).sum() < (lab == LABEL_MYO).sum()
    assert np.array_equal(erase == LABEL_LV, lab == LABEL_LV)


@pytest.mark.parametrize(
    "args, expected",
    [
        ((0.5,), (0.5, "")),
        ((0.25, "moco"), (0.25, "moco")),
        (("seg", 0.75), (0.75, "seg")),
        ((3, 12), (0.25, "")),
        ((50,), (0.5, "")),
        (("working",), (None, "working")),
    ],
)
def test_parse_progress(args, expected):
    assert parse_progress(*args) == expected


def test_cancel_token_is_event_and_callable():
    tok = CancelToken()
    assert not tok() and not tok.is_set()
    tok.cancel()
    assert tok() and tok.is_set()


def test_edit_file_round_trip(tmp_path):
    lab = ring_labels()
    ctrl = ct.control_points(lab)
    seg = Segmentation(
        lab, (30.0, 33.0), (20.0, 25.0), (40.0, 24.0), 0.8, "manual", "abc12345", ctrl
    )
    path = be.save_edit(tmp_path, "stress", 1, seg)
    assert path == tmp_path / "edits" / "stress_slice1.npz"
    back = be.load_edit(path)
    assert np.array_equal(back.labels, lab)
    assert back.rv_insertion_anterior == (20.0, 25.0) and back.parent_hash == "abc12345"
    assert back.source == "manual"
    assert back.contours["epi"] == pytest.approx(ctrl["epi"])
    assert be.list_edits(tmp_path) == {("stress", 1): path}
    be.save_review(tmp_path, {("rest", 2): "rejected"})
    assert be.load_review(tmp_path) == {("rest", 2): "rejected"}


def test_sample_exam_is_consistent():
    exam, truth = sample_exam(n_frames=20, shape=(64, 64))
    assert set(exam.conditions) == {"stress", "rest"}
    for cond in exam.conditions.values():
        assert [s.position for s in cond.slices] == ["basal", "mid", "apical"]
        assert cond.slices[0].images.shape == (20, 64, 64)
    aha = truth["stress"]["slices"][1]["aha"]
    assert set(np.unique(aha)) == {0, *range(7, 13)}


def test_side_by_side_pairs_slices_by_position_not_index(qapp, tmp_path):
    """Stress with 3 slices beside rest with 2 (its basal slice missing): stress mid pairs
    with rest mid (index 0 there), stress apical with the nearest rest slice, never by index."""
    from qperf_viewer.dicom import load_exam, scan_folder
    from qperf_viewer.dicom.synth import write_tiny_exam
    from qperf_viewer.gui.session import Session

    write_tiny_exam(tmp_path / "exam", n_frames=8, aif=False)
    exam = load_exam(scan_folder(tmp_path / "exam"))
    rest = exam.conditions["rest"]
    rest.slices = rest.slices[1:]  # mid, apical remain
    rest.slices[0].position, rest.slices[1].position = "mid", None
    s = Session(backend=object())
    s.exam = exam
    s.set_selection(condition="stress", slice_index=1)  # stress mid
    assert s.paired_index("rest") == 0 and s.paired_index("stress") == 1
    s.set_selection(slice_index=2)  # stress apical: no rest 'apical', nearest location
    assert s.paired_index("rest") == 1
    s.set_selection(slice_index=0)  # stress basal: nearest rest slice is the mid one
    assert s.paired_index("rest") == 0
