"""The desktop application on constructed data (``gui.sample_data``): every view built for
real with pytest-qt, offscreen; the core calls answered by ``SampleBackend``. Screenshots of
each view go to the artifacts folder for human review."""

from __future__ import annotations

import csv
import sys

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from qperf_viewer import sectors
from qperf_viewer.exam import LABEL_MYO
from qperf_viewer.gui import backend as be
from qperf_viewer.gui import contours as ct
from qperf_viewer.gui import errors as gui_errors
from qperf_viewer.gui import settings
from qperf_viewer.gui.display import synced_frame
from qperf_viewer.gui.main_window import MainWindow
from qperf_viewer.gui.sample_data import SampleBackend
from qperf_viewer.gui.session import Session
from qperf_viewer.gui.workers import GUI_SWITCH_INTERVAL_S


@pytest.fixture
def home(tmp_path, monkeypatch):
    """Fresh user folders (settings, output, logs) for each test."""
    monkeypatch.setenv("QPERF_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def exam_dir(tmp_path):
    d = tmp_path / "dicom"
    d.mkdir()
    return d


def make_window(qtbot, backend=None) -> MainWindow:
    session = Session(backend or SampleBackend())
    w = MainWindow(session)
    qtbot.addWidget(w)
    w.curves.checks["fit"].setChecked(False)  # background curve fits: only where tested
    w.resize(1500, 950)
    w.show()
    return w


def drop_folder(w: MainWindow, folder) -> None:
    """Open a folder the way a user does: drop it on the window."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(folder))])
    ev = QDropEvent(
        QPointF(20, 20),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    w.dropEvent(ev)


def open_and_analyze(qtbot, w: MainWindow, folder) -> None:
    drop_folder(w, folder)
    qtbot.waitUntil(lambda: w.session.exam is not None and not w.session.busy, timeout=60000)
    w.session.analyze()
    qtbot.waitUntil(lambda: w.session.result is not None and not w.session.busy, timeout=60000)


@pytest.fixture
def win(qtbot, home, exam_dir) -> MainWindow:
    w = make_window(qtbot)
    open_and_analyze(qtbot, w, exam_dir)
    return w


def median_over(sr, labels, aha, segment: int) -> float:
    m = (aha == segment) & (labels == LABEL_MYO) & sr.mbf_valid
    return float(np.median(sr.mbf[m]))


def test_drop_opens_indexes_and_shows_roles(qtbot, home, exam_dir, artifacts_dir):
    w = make_window(qtbot)
    drop_folder(w, exam_dir)
    qtbot.waitUntil(lambda: w.session.exam is not None and not w.session.busy, timeout=60000)
    assert w.session.folder == exam_dir
    assert settings.recent_folders()[0] == str(exam_dir)
    tree = w.browser.tree
    assert tree.topLevelItemCount() == 1  # one patient
    study = tree.topLevelItem(0).child(0)
    assert study.childCount() == 7
    roles = w.browser.roles()
    assert sorted(roles.values()) == ["other"] + ["rest"] * 3 + ["stress"] * 3
    assert w.browser.problems.topLevelItemCount() == 2
    assert "2 file(s)" in w.browser.problems_label.text()
    # the cine shows raw images before any analysis; the report waits for it
    assert w.compare.viewers["stress"].n_frames == 40
    assert not w.report.pdf_btn.isEnabled()
    w.browser.grab().save(str(artifacts_dir / "gui_browser.png"))


def test_role_override_reassembles(qtbot, win):
    uid = next(u for u, r in win.browser.roles().items() if r == "other")
    backend = win.session.backend
    n_loads = backend.calls.count("load")
    win.browser.set_role(uid, "aif")
    qtbot.waitUntil(
        lambda: backend.calls.count("load") == n_loads + 1 and not win.session.busy, timeout=60000
    )
    assert backend.role_overrides == {uid: "aif"}
    assert win.browser.roles()[uid] == "aif"
    # the exam had been analysed, so it is analysed again after the reload
    qtbot.waitUntil(lambda: win.session.result is not None, timeout=60000)


def test_cine_playback_and_bolus_sync(qtbot, win, artifacts_dir):
    c = win.compare
    st, rs = c.viewers["stress"], c.viewers["rest"]
    c.fps.setValue(60.0)
    c.set_frame(0)
    c.toggle_play()
    assert c.playing
    qtbot.waitUntil(lambda: st.frame >= 5, timeout=5000)
    c.toggle_play()
    assert not c.playing
    c.set_frame(20)
    assert st.frame == 20 and c.slider.value() == 20
    assert rs.frame == synced_frame(st.times_s, st.arrival_s, 20, rs.times_s, rs.arrival_s)
    # stress arrives earlier in time (faster heart rate, earlier injection) than rest
    assert st.arrival_s < rs.arrival_s
    c.sync.setChecked(False)
    c.step_frame(1)
    assert rs.frame == st.frame == 21
    c.loop.setChecked(False)
    c.set_frame(st.n_frames - 1)
    c.toggle_play()
    qtbot.waitUntil(lambda: not c.playing, timeout=2000)  # stops at the end without loop
    c.loop.setChecked(True)
    c.sync.setChecked(True)
    c.set_overlay("mbf", True)
    c.set_frame(25)
    win.session.set_selection(slice_index=1)
    assert st.canvas.mbf is not None and st.canvas.colorbar is not None
    c.grab().save(str(artifacts_dir / "gui_cine_mbf.png"))
    win.session.set_selection(kind="gd")
    assert st.kind == "gd" and "Gd" in st.header.text()
    c.apply_preset("Blood pool")
    assert st.canvas.levels == st.presets["Blood pool"]


def test_overlays_follow_display_orientation(win):
    """RV on the left of the LV, sector numbers where the slice's segments are."""
    cv = win.compare.viewers["stress"].canvas
    seg = cv.seg
    x_lv = cv._xy([seg.lv_centre])[0][0]
    rv_rc = np.argwhere(seg.labels == 3).mean(axis=0)
    assert cv._xy([rv_rc])[0][0] < x_lv - 5
    numbers = sorted(int(t.toPlainText()) for t in cv.texts)
    assert numbers == [1, 2, 3, 4, 5, 6]
    assert cv.sector_lines.isVisible()


def test_contour_edit_updates_report_and_undo(qtbot, win, artifacts_dir):
    s, panel, rep = win.session, win.seg_panel, win.report
    s.set_selection(condition="stress", slice_index=1)
    before = {k: rep.segment_value("stress", k) for k in range(1, 17)}
    mpr_before = {k: rep.segment_value("mpr", k) for k in range(1, 17)}
    sr0 = s.slice_result()
    ctrl = panel.current_control_points()
    c = np.asarray(sr0.segmentation.lv_centre)
    i = 5
    target = c + 1.45 * (ctrl["epi"][i] - c)
    panel.move_control_point("epi", i, target)
    sr1 = s.slice_result()
    assert sr1.segmentation.source == "manual"
    assert sr1.segmentation.parent_hash == sr0.segmentation.content_hash()
    labels, aha = sr1.segmentation.labels, sr1.aha
    # expected labels: computed independently from the moved control point
    new_ctrl = {"endo": ctrl["endo"], "epi": ctrl["epi"].copy()}
    new_ctrl["epi"][i] = target
    assert np.array_equal(labels, ct.edit_contours(sr0.segmentation.labels, ctrl, new_ctrl))
    geo = sr1.series.geometry
    assert np.array_equal(
        aha,
        sectors.aha_segments(
            labels,
            geo,
            sr1.segmentation.lv_centre,
            sr1.segmentation.rv_insertion_anterior,
            sr1.segmentation.rv_insertion_inferior,
            "mid",
        ),
    )
    changed = set()
    for k in range(7, 13):
        m0 = (sr0.aha == k) & (sr0.segmentation.labels == LABEL_MYO)
        m1 = (aha == k) & (labels == LABEL_MYO)
        if not np.array_equal(m0, m1):
            changed.add(k)
    assert changed, "the edit changed no segment"
    after = {k: rep.segment_value("stress", k) for k in range(1, 17)}
    for k in changed:
        assert after[k] == pytest.approx(median_over(sr1, labels, aha, k), abs=1e-9)
        assert after[k] != before[k]
    for k in set(range(1, 17)) - changed:
        assert after[k] == before[k]
    assert "\u270e" in rep.table.item(min(changed) - 1, 1).text()  # marked as edited
    assert s.review_state("stress", 1) == "edited"
    edit_file = s.output_dir / "edits" / "stress_slice1.npz"
    assert edit_file.is_file()
    assert not edit_file.resolve().is_relative_to(s.folder.resolve())
    win.tabs.setCurrentWidget(win.report)
    win.report.grab().save(str(artifacts_dir / "gui_report_edited.png"))
    win.tabs.setCurrentWidget(win.compare)
    # undo restores every value and removes the autosaved edit; redo brings it back
    s.undo_stack.undo()
    assert {k: rep.segment_value("stress", k) for k in range(1, 17)} == before
    assert {k: rep.segment_value("mpr", k) for k in range(1, 17)} == mpr_before
    assert not edit_file.exists()
    s.undo_stack.redo()
    assert rep.segment_value("stress", min(changed)) == after[min(changed)]
    assert edit_file.is_file()


def test_brush_rv_points_reject(qtbot, win, artifacts_dir):
    s, panel, rep = win.session, win.seg_panel, win.report
    s.set_selection(condition="stress", slice_index=0)
    sr0 = s.slice_result()
    n_myo = int((sr0.segmentation.labels == LABEL_MYO).sum())
    c = np.asarray(sr0.segmentation.lv_centre)
    epi = panel.current_control_points()["epi"]
    panel.paint(c + 1.15 * (epi[0] - c), add=True, radius_px=2.5)
    assert (s.slice_result().segmentation.labels == LABEL_MYO).sum() > n_myo
    # rotating the anterior insertion point moves the sectors
    ant = np.asarray(sr0.segmentation.rv_insertion_anterior)
    rot = c + np.array([[0.94, -0.34], [0.34, 0.94]]) @ (ant - c)
    aha_before = s.slice_result().aha.copy()
    panel.move_rv_point("anterior", rot)
    assert s.slice_result().segmentation.rv_insertion_anterior == pytest.approx(tuple(rot))
    assert not np.array_equal(s.slice_result().aha, aha_before)
    win.compare.grab().save(str(artifacts_dir / "gui_cine_edited.png"))
    # reject the slice: its segments leave the report; undo brings them back
    panel._review("rejected")
    assert s.review_state("stress", 0) == "rejected"
    assert all(rep.segment_value("stress", k) is None for k in range(1, 7))
    assert rep.segment_value("stress", 7) is not None
    assert "Rejected slices" in rep.notes.text()
    panel._review("accepted")
    assert s.review_state("stress", 0) == "accepted"
    assert rep.segment_value("stress", 1) is not None
    for _ in range(4):
        s.undo_stack.undo()
    assert np.array_equal(s.slice_result().segmentation.labels, sr0.segmentation.labels)
    assert s.slice_result().segmentation.source == "automatic"
    win.seg_panel.grab().save(str(artifacts_dir / "gui_segmentation_panel.png"))


class FakeDrag:
    """The parts of pyqtgraph's MouseDragEvent the canvas reads."""

    def __init__(self, start: QPointF, pos: QPointF, phase: str):
        self.start, self.pos, self.phase = start, pos, phase

    def button(self):
        return Qt.MouseButton.LeftButton

    def scenePos(self):  # noqa: N802
        return self.pos

    def buttonDownScenePos(self):  # noqa: N802
        return self.start

    def isStart(self):  # noqa: N802
        return self.phase == "start"

    def isFinish(self):  # noqa: N802
        return self.phase == "finish"

    def accept(self):
        pass


class FakeRightDrag(FakeDrag):
    def __init__(self, dx: float, dy: float, phase: str):
        super().__init__(QPointF(0, 0), QPointF(dx, dy), phase)

    def button(self):
        return Qt.MouseButton.RightButton

    def screenPos(self):  # noqa: N802
        return self.pos

    def buttonDownScreenPos(self):  # noqa: N802
        return self.start


def test_window_level_drag(qtbot, win):
    v = win.compare.viewers["stress"]
    cv = v.canvas
    lo, hi = cv.levels
    seen = []
    cv.levels_changed.connect(lambda a, b: seen.append((a, b)))
    for phase, dx in (("start", 0.0), ("move", 50.0), ("finish", 100.0)):
        cv.vb.mouseDragEvent(FakeRightDrag(dx, 0.0, phase))
    assert cv.levels[1] - cv.levels[0] == pytest.approx((hi - lo) * np.exp(0.5))
    assert sum(cv.levels) / 2 == pytest.approx((lo + hi) / 2)  # horizontal: window only
    for phase, dy in (("start", 0.0), ("finish", -60.0)):
        cv.vb.mouseDragEvent(FakeRightDrag(0.0, dy, phase))
    assert sum(cv.levels) / 2 > (lo + hi) / 2  # dragging up raises the level
    assert seen and win.compare.viewers["rest"].canvas.levels != cv.levels
    win.compare.apply_preset("Auto")
    assert cv.levels == v.presets["Auto"]


def test_mouse_drag_of_a_contour_point(qtbot, win):
    s = win.session
    s.set_selection(condition="rest", slice_index=1)
    win.seg_panel.set_tool("contour")
    cv = win.compare.viewers["rest"].canvas
    assert cv.tool == "contour" and win.compare.viewers["stress"].canvas.tool == "navigate"
    ctrl = win.seg_panel.current_control_points()
    c = np.asarray(s.slice_result().segmentation.lv_centre)
    p0, p1 = ctrl["endo"][3], c + 0.7 * (ctrl["endo"][3] - c)

    def scene(rc):
        x, y = cv._xy([rc])
        return cv.vb.mapViewToScene(QPointF(x[0], y[0]))

    a, b = scene(p0), scene(p1)
    for phase, pos in (("start", a), ("move", (a + b) / 2), ("finish", b)):
        assert cv.vb.mouseDragEvent(FakeDrag(a, pos, phase)) is None
    seg = s.slice_result().segmentation
    assert seg.source == "manual"
    assert seg.contours["endo"][3] == pytest.approx(p1, abs=1e-6)
    # the canvas shows the new control point
    assert cv.ctrl["endo"][3] == pytest.approx(p1, abs=1e-6)
    win.seg_panel.set_tool("navigate")


def test_curves_panel_and_csv(qtbot, win, tmp_path, artifacts_dir):
    s, cp = win.session, win.curves
    s.set_selection(condition="stress", slice_index=2)
    names = [c.name for c in cp.shown]
    assert "LV blood pool" in names and "RV blood pool" in names
    assert {f"segment {k}" for k in range(13, 17)} <= set(names)
    assert any(n.startswith("AIF") for n in names)
    lv = next(c for c in cp.shown if c.name == "LV blood pool")
    assert lv.unit == "a.u."
    cp.set_cursor("stress", 40.0, 51.0)
    pix = next(c for c in cp.shown if c.name.startswith("pixel"))
    assert np.array_equal(pix.values, s.series().images[:, 40, 51])
    win.compare.set_frame(12)
    # the marker is throttled during playback (at most ~12 moves a second): wait for it
    t12 = s.series().times_s[12]
    qtbot.waitUntil(lambda: cp.marker.value() == pytest.approx(t12), timeout=2000)
    s.set_selection(kind="gd")
    assert next(c for c in cp.shown if c.name == "LV blood pool").unit == "mmol/L"
    out = cp.export_csv(tmp_path / "curves.csv")
    rows = list(csv.DictReader(open(out)))
    assert set(rows[0]) == {"condition", "slice", "curve", "time_s", "value", "unit"}
    assert {r["curve"] for r in rows} == {c.name for c in cp.shown}
    t0 = s.series().times_s[s.series().dynamic_frames[0]]
    first = [float(r["time_s"]) for r in rows if r["curve"] == "LV blood pool"][0]
    assert first == pytest.approx(s.series().times_s[0] - t0, abs=1e-3)
    cp.grab().save(str(artifacts_dir / "gui_curves.png"))


def test_fitted_curves(qtbot, win):
    """Segment and pixel curves are re-fitted in the background and drawn in mmol/L."""
    s, cp = win.session, win.curves
    s.set_selection(condition="stress", slice_index=1, kind="gd")
    cp.checks["fit"].setChecked(True)
    qtbot.waitUntil(lambda: any(c.name == "fit segment 10" for c in cp.shown), timeout=60000)
    seg = next(c for c in cp.shown if c.name == "segment 10")
    fit = next(c for c in cp.shown if c.name == "fit segment 10")
    assert fit.unit == "mmol/L" and fit.times_s.size == s.series().dynamic_frames.size
    dyn = s.series().dynamic_frames
    # the sample's tissue curves are smooth: the fitted model follows them closely
    assert np.max(np.abs(fit.values - seg.values[dyn])) < 0.05 * np.max(seg.values)
    cp.set_cursor("stress", *np.argwhere(s.slice_result().aha == 8)[0].astype(float))
    qtbot.waitUntil(lambda: any(c.name.startswith("fit pixel") for c in cp.shown), timeout=60000)


def test_manual_aif_refits(qtbot, win):
    s = win.session
    s.set_selection(condition="rest", slice_index=1)
    before = s.result.conditions["rest"].global_mbf
    win.curves.aif_btn.setChecked(True)
    cv = win.compare.viewers["rest"].canvas
    assert cv.tool == "aif"
    lv = s.slice_result().segmentation.labels == 1
    # a region on the LV blood pool that includes some myocardium: a lower AIF, higher MBF
    mask = cv.disc_mask(s.slice_result().segmentation.lv_centre, 12.0)
    assert (mask & ~lv).any()
    cv.aif_region.emit(mask)
    qtbot.waitUntil(
        lambda: s.result.conditions["rest"].aif_source.startswith("manual") and not s.busy,
        timeout=60000,
    )
    assert not win.curves.aif_btn.isChecked()
    assert s.result.conditions["rest"].global_mbf > before
    win.curves.auto_aif_btn.click()
    qtbot.waitUntil(
        lambda: not s.result.conditions["rest"].aif_source.startswith("manual") and not s.busy,
        timeout=60000,
    )
    assert s.result.conditions["rest"].global_mbf == pytest.approx(before)


def test_reopen_restores_edits(qtbot, home, exam_dir):
    w = make_window(qtbot)
    open_and_analyze(qtbot, w, exam_dir)
    s = w.session
    s.set_selection(condition="rest", slice_index=2)
    ctrl = w.seg_panel.current_control_points()
    c = np.asarray(s.slice_result().segmentation.lv_centre)
    w.seg_panel.move_control_point("epi", 2, c + 1.4 * (ctrl["epi"][2] - c))
    edited = {k: w.report.segment_value("rest", k) for k in range(13, 17)}
    labels = s.slice_result().segmentation.labels.copy()
    s.set_review("stress", 0, "rejected")
    w.close()
    w2 = make_window(qtbot)
    open_and_analyze(qtbot, w2, exam_dir)
    s2 = w2.session
    assert s2.restored_edits == [("rest", 2)]
    sr = s2.slice_result("rest", 2)
    assert sr.segmentation.source == "manual"
    assert np.array_equal(sr.segmentation.labels, labels)
    assert {k: w2.report.segment_value("rest", k) for k in range(13, 17)} == edited
    assert s2.review_state("stress", 0) == "rejected"
    assert s2.slice_result("stress", 0).segmentation is None
    assert w2.report.segment_value("stress", 1) is None


def test_background_result_reaches_the_views_one_at_a_time(qtbot, win, monkeypatch):
    """A result from a worker reaches the views one refresh per event-loop turn (issue 6: no
    long event-loop gaps), the saving starts after them, and the session is busy until then;
    changes made on the GUI thread refresh the views at once."""
    s = win.session
    order = []
    views = {
        "compare": win.compare,
        "curves": win.curves,
        "segmentation": win.seg_panel,
        "report": win.report,
    }
    for name, view in views.items():
        refresh = view.refresh
        monkeypatch.setattr(view, "refresh", lambda n=name, f=refresh: (order.append(n), f()))
    monkeypatch.setattr(s, "save_outputs", lambda: order.append("save"))
    busy = []
    s.busy_changed.connect(busy.append)
    s._analyzed(s.result)  # what the analysis task's finished signal calls
    assert order == [] and s.busy and busy == [True]
    qtbot.waitUntil(lambda: not s.busy, timeout=10000)
    assert order == ["compare", "curves", "segmentation", "report", "save"]
    assert busy == [True, False]
    order.clear()
    s.set_review("stress", 0, "accepted")
    assert order == ["segmentation", "report"]
    # the GUI thread gets the GIL back from busy tasks within a millisecond
    assert sys.getswitchinterval() <= GUI_SWITCH_INTERVAL_S


def test_cancel_keeps_window_responsive(qtbot, home, exam_dir):
    w = make_window(qtbot, SampleBackend(delay_s=5.0))
    drop_folder(w, exam_dir)
    qtbot.waitUntil(lambda: w.session.exam is not None and not w.session.busy, timeout=60000)
    w.session.analyze()
    qtbot.waitUntil(lambda: w.cancel_btn.isVisible(), timeout=5000)
    w.compare.step_frame(1)  # the GUI thread is free while the analysis runs
    w.cancel_btn.click()
    qtbot.waitUntil(lambda: not w.session.busy, timeout=10000)
    assert w.session.result is None
    assert "cancelled" in w.status_label.text()
    assert not w.cancel_btn.isVisible()


def test_errors_show_a_dialog_and_are_logged(qtbot, home, tmp_path):
    gui_errors.setup_logging()
    w = make_window(qtbot)
    n = len(gui_errors.SHOWN)
    w.open_folder(tmp_path / "does-not-exist")
    assert len(gui_errors.SHOWN) == n + 1
    msg, _ = gui_errors.SHOWN[-1]
    assert "not a folder" in msg
    box = w.findChild(gui_errors.QMessageBox)
    assert box is not None and "log file" in box.informativeText()
    box.close()
    assert "not a folder" in gui_errors.log_path().read_text()
    with gui_errors.error_dialog(w, "Could not do it"):
        raise RuntimeError("boom")
    assert "boom" in gui_errors.SHOWN[-1][0] and "RuntimeError" in gui_errors.SHOWN[-1][1]


def test_keyboard_shortcuts(qtbot, win):
    s = win.session
    win.activateWindow()
    win.compare.viewers["stress"].canvas.setFocus()
    s.set_selection(condition="stress", slice_index=0)
    f0 = win.compare.viewers["stress"].frame
    win.compare.set_frame(f0)
    qtbot.keyClick(win, Qt.Key.Key_Period)
    assert win.compare.viewers["stress"].frame == f0 + 1
    qtbot.keyClick(win, Qt.Key.Key_Comma)
    assert win.compare.viewers["stress"].frame == f0
    qtbot.keyClick(win, Qt.Key.Key_PageDown)
    assert s.slice_index == 1
    qtbot.keyClick(win, Qt.Key.Key_PageUp)
    assert s.slice_index == 0
    qtbot.keyClick(win, Qt.Key.Key_S)
    assert s.condition == "rest"
    qtbot.keyClick(win, Qt.Key.Key_Space)
    assert win.compare.playing
    qtbot.keyClick(win, Qt.Key.Key_Space)
    assert not win.compare.playing
    s.set_review("rest", 0, "rejected")
    assert s.slice_result("rest", 0).segmentation is None
    qtbot.keyClick(win, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert s.slice_result("rest", 0).segmentation is not None
    qtbot.keyClick(win, Qt.Key.Key_Y, Qt.KeyboardModifier.ControlModifier)  # redo
    assert s.slice_result("rest", 0).segmentation is None
    qtbot.keyClick(win, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    # the arrow keys step frames and slices, also with the frame slider focused
    win.compare.slider.setFocus()
    f1 = win.compare.viewers["rest"].frame
    qtbot.keyClick(win, Qt.Key.Key_Right)
    assert win.compare.viewers["rest"].frame == f1 + 1
    qtbot.keyClick(win, Qt.Key.Key_Left)
    assert win.compare.viewers["rest"].frame == f1
    qtbot.keyClick(win, Qt.Key.Key_Down)
    assert s.slice_index == 1
    qtbot.keyClick(win, Qt.Key.Key_Up)
    assert s.slice_index == 0
    # the condition selector follows and drives the selection
    c = win.compare.cond_combo
    assert c.currentData() == "rest" and [c.itemData(i) for i in range(c.count())] == [
        "stress",
        "rest",
    ]
    c.activated.emit(0)
    assert s.condition == "stress"


def test_settings_persist(qtbot, home, exam_dir):
    w = make_window(qtbot)
    w.report.thr_mbf.setValue(2.1)
    w.compare.fps.setValue(17.0)
    w.docks["curves"].hide()
    w.close()
    assert settings.get("thresholds/stress_mbf") == pytest.approx(2.1)
    w2 = make_window(qtbot)
    assert w2.report.thr_mbf.value() == pytest.approx(2.1)
    assert w2.compare.fps.value() == pytest.approx(17.0)
    assert not w2.docks["curves"].isVisible()
    assert w2.report.threshold_set().stress_mbf_ml_min_g == pytest.approx(2.1)
    w2.set_mbf_colormap("viridis")
    w2.set_model("fermi")
    assert w2.session.model == "fermi"
    w2.close()
    w3 = make_window(qtbot)
    assert w3.session.model == "fermi"
    assert w3.compare.viewers["stress"].canvas.cmap_name == "viridis"
    w3.session.set_exam(w3.session.backend.exam)
    assert w3.compare.viewers["stress"].canvas.cmap_name == "viridis"


def test_thresholds_highlight_and_applicability(qtbot, win, artifacts_dir):
    rep = win.report
    assert rep.applies and rep.low_mbf == {4, 10, 15}
    rep.thr_mbf.setValue(1.3)
    assert rep.low_mbf == {4}
    item = rep.table.item(3, 3)
    assert item.background().color().red() == 255
    win.tabs.setCurrentWidget(rep)
    rep.grab().save(str(artifacts_dir / "gui_report.png"))
    win.save_screenshots(artifacts_dir, prefix="gui_window_")


def test_run_gui_screenshot(qtbot, home, exam_dir, tmp_path, monkeypatch):
    """``gui --open DIR --analyze --screenshot PNG`` opens, analyses, saves and quits."""
    from qperf_viewer.gui.app import run_gui

    monkeypatch.setattr(be, "CoreBackend", SampleBackend)
    out = tmp_path / "shot.png"
    rc = run_gui(["--open", str(exam_dir), "--analyze", "--screenshot", str(out)])
    assert rc == 0
    assert out.is_file() and out.stat().st_size > 20000


def test_export_pdf_print_and_dicom(qtbot, win, tmp_path, artifacts_dir):
    """The report pane exports the CLI's report (with the pane's thresholds and the edit)."""
    pdfium = pytest.importorskip("pypdfium2")
    import pydicom
    from PySide6.QtGui import QImage
    from PySide6.QtPrintSupport import QPrinter

    s, rep = win.session, win.report
    s.set_selection(condition="stress", slice_index=1)
    ctrl = win.seg_panel.current_control_points()
    c = np.asarray(s.slice_result().segmentation.lv_centre)
    win.seg_panel.move_control_point("epi", 1, c + 1.4 * (ctrl["epi"][1] - c))
    rep.thr_mbf.setValue(1.5)
    data = rep.report_data()
    assert data.edited and data.thresholds.stress_mbf_ml_min_g == pytest.approx(1.5)
    assert data.stress.segment(8).mbf == rep.segment_value("stress", 8)
    pdf = rep.export_pdf(tmp_path / "report.pdf")
    doc = pdfium.PdfDocument(str(pdf))
    assert len(doc) >= 1
    text = doc[0].get_textpage().get_text_range()
    assert f"{rep.segment_value('stress', 8):.2f}" in text
    arr = np.ascontiguousarray(doc[0].render(scale=100 / 72).to_numpy()[..., :3])
    img = QImage(
        arr.data, arr.shape[1], arr.shape[0], 3 * arr.shape[1], QImage.Format.Format_RGB888
    )
    img.save(str(artifacts_dir / "gui_report_pdf_page1.png"))
    doc.close()
    printer = QPrinter(QPrinter.PrinterMode.HighResolution)
    printer.setOutputFormat(QPrinter.OutputFormat.PdfFormat)
    printer.setOutputFileName(str(tmp_path / "printed.pdf"))
    rep.print_to(printer)
    assert (tmp_path / "printed.pdf").stat().st_size > 10000
    files = rep.export_dicom(tmp_path / "dcm")
    assert len(files) == 3
    modalities = {pydicom.dcmread(f).SOPClassUID.name for f in files}
    assert any("Encapsulated PDF" in m for m in modalities)
    for f in files:
        assert pydicom.dcmread(f).StudyInstanceUID == s.exam.study_instance_uid
    # the menu's exports run off the GUI thread and report in the status bar
    seen = []
    s.status.connect(seen.append)
    rep.export_pdf_in_background(tmp_path / "bg.pdf")
    rep.export_dicom_in_background(tmp_path / "bg_dcm")
    qtbot.waitUntil(lambda: not s.busy and len(seen) >= 2, timeout=60000)
    assert (tmp_path / "bg.pdf").stat().st_size > 20000
    assert len(list((tmp_path / "bg_dcm").rglob("*.dcm"))) == 3
    assert any("Report written to" in m for m in seen)
    assert any("Wrote 3 DICOM file(s)" in m for m in seen)
