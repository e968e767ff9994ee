"""The whole reading session on a synthetic exam with the real core (issue 6, Tests): open a
phantom's DICOM folder the way a drop does, run the analysis, check the browser's tree and
roles, play frames, move a contour point through the segmentation panel and check the report
pane against the pixel map, undo, export the PDF, reopen and find the edit restored.

Segmentation: the shipped ONNX model when present, else the phantom's truth masks moved to the
motion-correction reference frame (as tests/test_pipeline.py does)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from qperf_viewer import config
from qperf_viewer.exam import LABEL_MYO
from qperf_viewer.gui.backend import CoreBackend
from qperf_viewer.gui.main_window import MainWindow
from qperf_viewer.gui.session import Session
from qperf_viewer.phantom.truth_segmenter import TruthSegmenter

pytestmark = pytest.mark.slow

SEED, VARIANT = 1, "two_slices"
HAVE_MODEL = (config.models_dir() / "qperf_seg.onnx").is_file()


@pytest.fixture(scope="module")
def phantom_dir(tmp_path_factory) -> Path:
    from qperf_viewer.phantom.cli import write_phantom

    out = tmp_path_factory.mktemp("gui_phantom")
    write_phantom(out, SEED, VARIANT)
    return out


@pytest.fixture
def backend(phantom_dir):
    return CoreBackend(segmenter=None if HAVE_MODEL else TruthSegmenter(phantom_dir))


def window(qtbot, backend) -> MainWindow:
    w = MainWindow(Session(backend))
    qtbot.addWidget(w)
    w.curves.checks["fit"].setChecked(False)
    w.resize(1500, 950)
    w.show()
    return w


def drop(w: MainWindow, folder: Path) -> None:
    """Open a folder the way a user does: drop it on the window."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(folder))])
    w.dropEvent(
        QDropEvent(
            QPointF(20, 20),
            Qt.DropAction.CopyAction,
            mime,
            Qt.MouseButton.LeftButton,
            Qt.KeyboardModifier.NoModifier,
        )
    )


def drop_and_analyze(qtbot, w: MainWindow, folder: Path) -> None:
    drop(w, folder)
    s = w.session
    qtbot.waitUntil(lambda: s.exam is not None and not s.busy, timeout=60000)
    s.analyze()
    qtbot.waitUntil(lambda: s.result is not None and not s.busy, timeout=120000)


def test_full_reading_session(qtbot, tmp_path, monkeypatch, phantom_dir, backend, artifacts_dir):
    monkeypatch.setenv("QPERF_HOME", str(tmp_path / "home"))
    truth = json.loads((phantom_dir / "truth" / "truth.json").read_text())
    dicom = phantom_dir / "dicom"
    w = window(qtbot, backend)
    drop_and_analyze(qtbot, w, dicom)
    s = w.session
    # browser: one patient > one study > its series with the detected roles
    roles = w.browser.roles()
    doc = s.index_json
    series = doc["studies"][0]["series"]
    assert roles == {se["series_instance_uid"]: se["role"] for se in series}
    assert {"stress", "rest"} <= set(roles.values())
    assert w.browser.tree.topLevelItemCount() == 1
    assert set(s.result.conditions) == {"stress", "rest"}
    assert [sr.position for sr in s.result.conditions["stress"].slices] == ["basal", "mid"]
    # outputs beside the analysis, never inside the DICOM folder
    assert (s.output_dir / "results.json").is_file()
    assert not s.output_dir.resolve().is_relative_to(dicom.resolve())
    # play a few frames
    c = w.compare
    c.set_frame(0)
    c.fps.setValue(50.0)
    c.toggle_play()
    qtbot.waitUntil(lambda: c.viewers["stress"].frame >= 4, timeout=10000)
    c.toggle_play()
    c.set_overlay("mbf", True)
    c.set_frame(int(np.argmax(c.viewers["stress"].times_s >= c.viewers["stress"].arrival_s + 8)))
    w.save_screenshots(artifacts_dir, prefix="gui_flow_")
    # move an epicardial control point of the stress mid slice outwards
    s.set_selection(condition="stress", slice_index=1)
    rep = w.report
    before = {k: rep.segment_value("stress", k) for k in range(1, 17)}
    sr0 = s.slice_result()
    ctrl = w.seg_panel.current_control_points()
    centre = np.asarray(sr0.segmentation.lv_centre)
    w.seg_panel.move_control_point("epi", 3, centre + 1.3 * (ctrl["epi"][3] - centre))
    sr1 = s.slice_result()
    labels, aha = sr1.segmentation.labels, sr1.aha
    assert np.array_equal(sr1.mbf, sr0.mbf)  # no re-fit
    changed = {
        k
        for k in range(7, 13)
        if not np.array_equal(
            (sr0.aha == k) & (sr0.segmentation.labels == LABEL_MYO),
            (aha == k) & (labels == LABEL_MYO),
        )
    }
    assert changed
    for k in changed:
        sel = (aha == k) & (labels == LABEL_MYO) & sr1.mbf_valid
        assert rep.segment_value("stress", k) == pytest.approx(float(np.median(sr1.mbf[sel])))
    for k in set(range(1, 17)) - changed:
        assert rep.segment_value("stress", k) == before[k]
    edited = {k: rep.segment_value("stress", k) for k in changed}
    w.tabs.setCurrentWidget(rep)
    rep.grab().save(str(artifacts_dir / "gui_flow_report_edited.png"))
    # undo restores, redo re-applies
    s.undo_stack.undo()
    assert {k: rep.segment_value("stress", k) for k in range(1, 17)} == before
    s.undo_stack.redo()
    assert {k: rep.segment_value("stress", k) for k in changed} == edited
    # the PDF is the CLI's report, with the edited values and the edit noted
    pdf = rep.export_pdf(tmp_path / "report.pdf")
    assert pdf.stat().st_size > 20000
    data = rep.report_data()
    assert data.edited
    assert all(data.stress.segment(k).mbf == v for k, v in edited.items())
    import pypdfium2

    doc = pypdfium2.PdfDocument(str(pdf))
    text = doc[0].get_textpage().get_text_range()
    doc.close()
    assert "edit" in text.lower()  # the report says the segmentation was edited
    assert f"{edited[min(edited)]:.2f}" in text
    # the results saved beside the analysis use the thresholds set in the report pane
    rep.thr_mbf.setValue(1.65)
    s.save_outputs()
    qtbot.waitUntil(lambda: not s.busy, timeout=60000)
    saved = json.loads((s.output_dir / "results.json").read_text())
    assert saved["thresholds"]["stress_mbf_ml_min_g"] == pytest.approx(1.65)
    assert saved["qc"]["edited"] is True
    # truth sanity: the segments the phantom covers have values
    assert truth["conditions"]["stress"]["global_mbf"] > 1.0
    w.close()
    # reopen: the edit comes back from the autosave
    w2 = window(qtbot, backend)
    w2.session.auto_save_outputs = False
    drop(w2, dicom)  # no 'Analyze' click: saved edits make the app re-analyse by itself
    s2 = w2.session
    qtbot.waitUntil(lambda: s2.result is not None and not s2.busy, timeout=120000)
    assert s2.restored_edits == [("stress", 1)]
    assert np.array_equal(s2.slice_result("stress", 1).segmentation.labels, labels)
    assert {k: w2.report.segment_value("stress", k) for k in changed} == edited
    # a hand-drawn AIF region on the LV blood pool re-fits that condition, edits kept
    from scipy import ndimage

    lv = s2.slice_result("rest", 0).segmentation.labels == 1
    s2.set_manual_aif("rest", 0, ndimage.binary_erosion(lv, iterations=2))
    qtbot.waitUntil(
        lambda: s2.result.conditions["rest"].aif_source == "manual" and not s2.busy, timeout=120000
    )
    assert s2.result.conditions["rest"].global_mbf is not None
    assert s2.slice_result("stress", 1).segmentation.source == "manual"
    assert "manual" in w2.report.globals.text()
    # the AIF region is saved beside the analysis and comes back when the exam is reopened
    assert (s2.output_dir / "edits" / "aif_rest.npz").is_file()
    rest_mbf = s2.result.conditions["rest"].global_mbf
    w2.close()
    w3 = window(qtbot, backend)
    w3.session.auto_save_outputs = False
    drop(w3, dicom)
    s3 = w3.session
    qtbot.waitUntil(
        lambda: (
            s3.result is not None
            and s3.result.conditions["rest"].aif_source == "manual"
            and not s3.busy
        ),
        timeout=120000,
    )
    assert s3.restored_aif == ["rest"]
    assert s3.result.conditions["rest"].global_mbf == pytest.approx(rest_mbf, rel=1e-6)
    assert s3.slice_result("stress", 1).segmentation.source == "manual"
    # back to the automatic AIF: the saved region is removed
    s3.set_manual_aif("rest", 0, None)
    qtbot.waitUntil(lambda: not s3.busy, timeout=120000)
    assert not (s3.output_dir / "edits" / "aif_rest.npz").exists()
    assert s3.result.conditions["rest"].aif_source != "manual"
    w3.close()


def test_aif_region_drawn_on_the_aif_series(
    qtbot, tmp_path, monkeypatch, phantom_dir, backend, artifacts_dir
):
    """'Draw on AIF series…' shows the condition's AIF series; a circle dragged there (here the
    automatic LV region) re-fits that condition with a manual AIF, saved for reopening."""
    from qperf_viewer.pipeline.aif import aif_series_images
    from qperf_viewer.pipeline.edits import load_aif_regions
    from qperf_viewer.quant.aif import detect_aif

    monkeypatch.setenv("QPERF_HOME", str(tmp_path / "home"))
    w = window(qtbot, backend)
    drop_and_analyze(qtbot, w, phantom_dir / "dicom")
    s = w.session
    s.set_selection(condition="rest")
    auto_mbf = s.result.conditions["rest"].global_mbf
    dlg = w.curves.open_aif_series_dialog()
    assert dlg is not None and dlg.viewer.n_frames == len(s.exam.conditions["rest"].aif.times_s)
    dlg.grab().save(str(artifacts_dir / "gui_aif_series_dialog.png"))
    aif = s.exam.conditions["rest"].aif
    # the dialog shows the series motion-corrected, as the AIF is taken from it
    images = aif_series_images(aif)[0]
    np.testing.assert_allclose(dlg.viewer.canvas.stack, images, rtol=1e-6)
    assert dlg.viewer.kind == "moco"  # the header says "motion-corrected"
    region = detect_aif(images, aif.times_s, skip_frames=aif.pd_frames).region
    dlg.viewer.canvas.aif_region.emit(region)  # what a drag on the canvas emits
    qtbot.waitUntil(
        lambda: s.result.conditions["rest"].aif_source == "manual" and not s.busy, timeout=120000
    )
    assert s.result.conditions["rest"].global_mbf == pytest.approx(auto_mbf, rel=1e-6)
    saved = load_aif_regions(s.output_dir / "edits")
    assert saved["rest"][0] == -1 and np.array_equal(saved["rest"][1], region)
    w.close()


def test_segment_only_then_full_analysis(qtbot, tmp_path, monkeypatch, phantom_dir, backend):
    """'Segment only' runs motion correction, segmentation and sectors without MBF (masks and
    segmentation.json saved, no report); 'Run analysis' then adds the MBF values."""
    monkeypatch.setenv("QPERF_HOME", str(tmp_path / "home"))
    w = window(qtbot, backend)
    drop(w, phantom_dir / "dicom")
    s = w.session
    qtbot.waitUntil(lambda: s.exam is not None and not s.busy, timeout=60000)
    w.seg_panel.seg_btn.click()
    qtbot.waitUntil(lambda: s.result is not None and not s.busy, timeout=120000)
    assert s.result.model == "none"
    sr = s.slice_result("stress", 0)
    assert sr.segmentation is not None and sr.aha is not None and sr.mbf is None
    assert s.result.conditions["stress"].global_mbf is None
    assert w.report.segment_value("stress", 1) is None
    assert (s.output_dir / "segmentation.json").is_file()
    assert not (s.output_dir / "results.json").exists()
    w.seg_panel.run_btn.click()
    qtbot.waitUntil(lambda: s.result.model != "none" and not s.busy, timeout=120000)
    assert s.result.conditions["stress"].global_mbf is not None
    qtbot.waitUntil(lambda: (s.output_dir / "results.json").is_file(), timeout=60000)
    w.close()
