"""Main window of the reading workstation: the views around one :class:`Session`.

Layout: study browser (left dock), stress/rest cine views and the report (central tabs),
segmentation review (right dock), curves (bottom dock). Drop a folder anywhere on the window
to open it. Layout, folders and preferences persist through ``gui/settings.py``.
"""

from __future__ import annotations

import gc
from pathlib import Path

from PySide6.QtCore import QByteArray, Qt, QUrl
from PySide6.QtGui import QAction, QActionGroup, QDesktopServices, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QTabWidget,
    QWidget,
)

from qperf_viewer import __version__
from qperf_viewer.gui import settings
from qperf_viewer.gui.errors import error_dialog, log_path, show_exception
from qperf_viewer.gui.session import Session
from qperf_viewer.gui.widgets.compare_view import CompareView
from qperf_viewer.gui.widgets.curves_panel import CurvesPanel
from qperf_viewer.gui.widgets.report_pane import ReportPane
from qperf_viewer.gui.widgets.segmentation_panel import SegmentationPanel
from qperf_viewer.gui.widgets.study_browser import StudyBrowser

#: Colour maps offered for the MBF overlay (pyqtgraph names).
MBF_COLORMAPS = ("inferno", "viridis", "plasma", "magma", "CET-L4", "CET-R4")


class MainWindow(QMainWindow):
    def __init__(self, session: Session | None = None) -> None:
        super().__init__()
        self.session = session or Session(parent=self)
        self.setWindowTitle(f"qperf-viewer {__version__}")
        self.setObjectName("MainWindow")
        self.setAcceptDrops(True)
        s = self.session
        self.browser = StudyBrowser()
        self.compare = CompareView(s)
        self.curves = CurvesPanel(s)
        self.seg_panel = SegmentationPanel(s)
        self.report = ReportPane(s)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.compare, "Images")
        self.tabs.addTab(self.report, "Report")
        self.setCentralWidget(self.tabs)
        self.docks = {
            "browser": self._dock(
                "Study browser", self.browser, Qt.DockWidgetArea.LeftDockWidgetArea
            ),
            "segmentation": self._dock(
                "Segmentation", self.seg_panel, Qt.DockWidgetArea.RightDockWidgetArea
            ),
            "curves": self._dock("Curves", self.curves, Qt.DockWidgetArea.BottomDockWidgetArea),
        }
        self._status_bar()
        self._menus()
        self._wire()
        self._restore()
        # What is alive now (modules, classes, the window) stays alive: keep it out of the
        # cyclic collector's full passes, which scan every object holding the GIL (70 ms in a
        # task thread mid-analysis, a frozen window). Collected first: no garbage is kept.
        gc.collect()
        gc.freeze()

    def _dock(self, title: str, widget: QWidget, area) -> QDockWidget:
        d = QDockWidget(title, self)
        d.setObjectName(f"dock_{title.replace(' ', '_').lower()}")
        d.setWidget(widget)
        self.addDockWidget(area, d)
        return d

    def _status_bar(self) -> None:
        sb = self.statusBar()
        self.status_label = QLabel("Drop a perfusion exam folder on the window, or File > Open.")
        self.status_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setMaximumWidth(220)
        self.progress.hide()
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.hide()
        self.cancel_btn.clicked.connect(self.session.cancel)
        sb.addWidget(self.status_label, 1)
        sb.addPermanentWidget(self.progress)
        sb.addPermanentWidget(self.cancel_btn)

    def _action(self, menu, text: str, slot, shortcut=None, tip: str = "") -> QAction:
        a = QAction(text, self)
        if shortcut is not None:
            keys = shortcut if isinstance(shortcut, list) else [shortcut]
            a.setShortcuts([QKeySequence(k) for k in keys])
            a.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        if tip:
            a.setStatusTip(tip)
        a.triggered.connect(slot)
        menu.addAction(a)
        self.addAction(a)
        return a

    def _menus(self) -> None:
        mb = self.menuBar()
        f = mb.addMenu("&File")
        self._action(f, "&Open folder…", self.open_dialog, QKeySequence.StandardKey.Open)
        self.recent_menu = f.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        f.addSeparator()
        self._action(
            f,
            "&Save results",
            self.session.save_outputs,
            QKeySequence.StandardKey.Save,
            "Write results.json, report.pdf, masks and DICOM to the study's output folder",
        )
        self._action(f, "Open &output folder", self._open_output)
        self._action(f, "Export report &PDF…", self.report._pdf_dialog, "Ctrl+E")
        self._action(f, "&Print report…", self.report.print_dialog, QKeySequence.StandardKey.Print)
        self._action(f, "Export report as &DICOM…", self.report._dicom_dialog)
        self._action(f, "Export &curves CSV…", self.curves._export_dialog)
        f.addSeparator()
        self._action(f, "&Quit", self.close, QKeySequence.StandardKey.Quit)
        e = mb.addMenu("&Edit")
        undo = self.session.undo_stack.createUndoAction(self, "&Undo")
        undo.setShortcuts([QKeySequence(QKeySequence.StandardKey.Undo)])
        redo = self.session.undo_stack.createRedoAction(self, "&Redo")
        redo.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        for a in (undo, redo):
            e.addAction(a)
            self.addAction(a)
        v = mb.addMenu("&View")
        c = self.compare
        self.play_action = self._action(v, "Play / pause", c.toggle_play, "Space")
        self._action(v, "Next frame", lambda: c.step_frame(1), ["Right", "."])
        self._action(v, "Previous frame", lambda: c.step_frame(-1), ["Left", ","])
        self._action(
            v, "Next slice (apical)", lambda: self.session.step_slice(1), ["Down", "PgDown"]
        )
        self._action(
            v, "Previous slice (basal)", lambda: self.session.step_slice(-1), ["Up", "PgUp"]
        )
        self._action(v, "Toggle stress / rest", self.session.toggle_condition, "S")
        self._action(v, "Images", lambda: self.tabs.setCurrentIndex(0), "Ctrl+1")
        self._action(v, "Report", lambda: self.tabs.setCurrentIndex(1), "Ctrl+2")
        cmaps = v.addMenu("MBF colour map")
        group = QActionGroup(self)
        current = str(settings.get("view/mbf_colormap"))
        for name in MBF_COLORMAPS:
            a = cmaps.addAction(name, lambda n=name: self.set_mbf_colormap(n))
            a.setCheckable(True)
            a.setChecked(name == current)
            group.addAction(a)
        v.addSeparator()
        for d in self.docks.values():
            v.addAction(d.toggleViewAction())
        an = mb.addMenu("&Analysis")
        self._action(an, "&Run analysis", self.session.analyze, "Ctrl+R")
        self._action(an, "&Cancel", self.session.cancel, "Esc")
        an.addSeparator()
        models = QActionGroup(self)
        self.session.model = str(settings.get("analysis/model"))
        for key, label in (
            ("btex", "Model: BTEX (blood-tissue exchange)"),
            ("fermi", "Model: Fermi deconvolution"),
        ):
            a = an.addAction(label, lambda k=key: self.set_model(k))
            a.setCheckable(True)
            a.setChecked(key == self.session.model)
            models.addAction(a)
        h = mb.addMenu("&Help")
        self._action(
            h,
            "Open log folder",
            lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(str(log_path().parent))),
        )
        self._action(h, "&About", self._about)

    def _wire(self) -> None:
        s = self.session
        s.failed.connect(lambda title, exc, tb: show_exception(self, title, exc, tb))
        s.status.connect(self.status_label.setText)
        s.progress.connect(self._progress)
        s.busy_changed.connect(self._busy)
        s.index_changed.connect(self.browser.set_index)
        s.folder_changed.connect(self._folder_changed)
        self.browser.open_requested.connect(self.open_dialog)
        self.browser.role_changed.connect(s.set_role)
        self.browser.study_selected.connect(s.load_study)
        self.compare.cursor_moved.connect(self.curves.set_cursor)
        self.compare.frame_changed.connect(self.curves.set_frame)
        self.seg_panel.tool_changed.connect(self._tool_changed)
        self.seg_panel.brush_changed.connect(self._brush_changed)
        self.curves.aif_tool_requested.connect(self._aif_tool)
        s.selection_changed.connect(lambda: self.compare.set_tool(self._current_tool()))
        for v in self.compare.viewers.values():
            cv = v.canvas
            cv.contour_edited.connect(self.seg_panel.set_contours)
            cv.labels_edited.connect(self.seg_panel.set_labels)
            cv.rv_edited.connect(self.seg_panel.set_rv_points)
            cv.aif_region.connect(self._aif_region)

    # --- settings ------------------------------------------------------------------------------
    def _restore(self) -> None:
        st = settings.settings()
        geo, state = st.value("window/geometry"), st.value("window/state")
        if isinstance(geo, QByteArray | bytes):
            self.restoreGeometry(geo)
        else:
            self.resize(1500, 950)
        if isinstance(state, QByteArray | bytes):
            self.restoreState(state)
        else:
            self.resizeDocks(
                [self.docks["browser"], self.docks["segmentation"]],
                [300, 330],
                Qt.Orientation.Horizontal,
            )
            self.resizeDocks([self.docks["curves"]], [260], Qt.Orientation.Vertical)

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt naming
        settings.put("window/geometry", self.saveGeometry())
        settings.put("window/state", self.saveState())
        self.compare.set_playing(False)
        self.session.drop_view_updates()
        self.session.cancel()
        self.session.wait_idle(5000)
        super().closeEvent(event)

    # --- opening -------------------------------------------------------------------------------
    def open_folder(self, path: str | Path, analyze: bool = False) -> None:
        """The one entry for File > Open, recent folders, drops and ``--open``."""
        with error_dialog(self, "Could not open the folder"):
            self.session.open_folder(path, analyze=analyze)

    def open_dialog(self) -> None:
        start = settings.get("files/last_folder", str(Path.home()))
        path = QFileDialog.getExistingDirectory(self, "Open exam folder", str(start))
        if path:
            self.open_folder(path)

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for p in settings.recent_folders():
            self.recent_menu.addAction(p, lambda p=p: self.open_folder(p))
        if self.recent_menu.isEmpty():
            self.recent_menu.addAction("(none)").setEnabled(False)

    def _folder_changed(self, path: str) -> None:
        self.browser.set_folder(path)
        settings.add_recent_folder(path)
        self.setWindowTitle(f"qperf-viewer {__version__} — {path}")

    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if self._dropped_folder(event.mimeData()) is not None:
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        path = self._dropped_folder(event.mimeData())
        if path is not None:
            event.acceptProposedAction()
            self.open_folder(path)

    @staticmethod
    def _dropped_folder(mime) -> str | None:
        if not mime.hasUrls():
            return None
        for url in mime.urls():
            p = Path(url.toLocalFile())
            if p.is_dir():
                return str(p)
            if p.is_file():
                return str(p.parent)
        return None

    # --- status --------------------------------------------------------------------------------
    def _progress(self, frac: float, msg: str) -> None:
        if frac < 0:
            self.progress.setRange(0, 0)
        else:
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(frac * 1000))
        if msg:
            self.status_label.setText(msg)

    def _busy(self, busy: bool) -> None:
        self.progress.setVisible(busy)
        self.cancel_btn.setVisible(busy)
        if busy:
            self.progress.setValue(0)

    # --- tools ---------------------------------------------------------------------------------
    def _current_tool(self) -> str:
        return "aif" if self.curves.aif_btn.isChecked() else self.seg_panel.tool

    def _tool_changed(self, tool: str) -> None:
        if tool != "navigate" and self.curves.aif_btn.isChecked():
            self.curves.aif_btn.setChecked(False)
        self.compare.set_tool(self._current_tool())

    def _brush_changed(self, r: float) -> None:
        for v in self.compare.viewers.values():
            v.canvas.brush_radius_px = r

    def _aif_tool(self, on: bool) -> None:
        self.compare.set_tool(self._current_tool())
        if on:
            self.status_label.setText("Drag a circle inside the LV blood pool to set the AIF.")

    def _aif_region(self, mask) -> None:
        self.curves.aif_btn.setChecked(False)
        s = self.session
        s.set_manual_aif(s.condition, s.slice_index, mask)

    def set_mbf_colormap(self, name: str) -> None:
        settings.put("view/mbf_colormap", name)
        for v in self.compare.viewers.values():
            v.canvas.set_colormap(name)

    def set_model(self, key: str) -> None:
        """Kinetic model of the next analysis (the report says which was used)."""
        settings.put("analysis/model", key)
        self.session.model = key
        if self.session.result is not None and self.session.result.model != key:
            self.status_label.setText(f"Model {key.upper()} is used from the next analysis.")

    def _open_output(self) -> None:
        out = self.session.output_dir
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(out)))

    def _about(self) -> None:
        QMessageBox.about(
            self,
            "About qperf-viewer",
            f"qperf-viewer {__version__}\nQuantitative myocardial perfusion MRI "
            "review and reporting.\nResearch use only; not a medical device.\n"
            f"Log file: {log_path()}",
        )

    # --- pictures ------------------------------------------------------------------------------
    def save_screenshots(self, folder: str | Path, prefix: str = "") -> dict[str, Path]:
        """PNG of the window and of each view, for documentation and test review."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.session.flush_views()
        views = {
            "main_window": self,
            "browser": self.browser,
            "cine": self.compare,
            "curves": self.curves,
            "segmentation": self.seg_panel,
            "report": self.report,
        }
        out = {}
        for name, w in views.items():
            if name == "report" and not w.isVisible():
                self.tabs.setCurrentWidget(self.report)
            p = folder / f"{prefix}{name}.png"
            w.grab().save(str(p))
            out[name] = p
        self.tabs.setCurrentWidget(self.compare)
        return out
