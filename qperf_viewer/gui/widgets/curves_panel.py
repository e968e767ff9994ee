"""Intensity-time curves of the shown slice: AIF, blood pools, AHA segments, the pixel under
the cursor and fitted model curves (segments and pixel re-fitted in the background with the
analysis' model, see ``gui/fits.py``), with the current frame marked.

Region curves are means over the slice's labels in the motion-corrected grid (or Gd when Gd
is shown); the pixel curve comes from the stack on screen. The AIF is in mmol/L and gets its
own right-hand axis when the images are in signal units. CSV export writes the long table of
``analyze``'s curves.csv: condition, slice, curve, time_s, value, unit, with t = 0 at the
condition's first non-PD frame.
"""

from __future__ import annotations

import csv
import re
import time
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QGraphicsItem,
    QHBoxLayout,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from qperf_viewer.exam import LABEL_LV, LABEL_MYO, LABEL_RV
from qperf_viewer.gui.errors import error_dialog
from qperf_viewer.gui.fits import fit_model_curves, map_delay_s
from qperf_viewer.gui.session import Session
from qperf_viewer.gui.workers import Task, TaskRunner
from qperf_viewer.results import Curve

#: Shortest interval between moves of the current-frame marker during playback (s).
MARKER_INTERVAL_S = 0.08
SEGMENT_COLORS = [pg.intColor(i, hues=6, values=1, maxValue=230) for i in range(6)]


def _role(name: str) -> str:
    """What a curve is, for re-using its plot item: its name without the pixel position."""
    return re.sub(r" \(\d+, \d+\)$", "", name)


class CurvesPanel(QWidget):
    aif_tool_requested = Signal(bool)

    def __init__(self, session: Session, parent=None) -> None:
        super().__init__(parent)
        self.session = session
        self.plot = pg.PlotWidget()
        self.plot.setBackground("w")
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.plot.setLabel("bottom", "Time", units="s")
        self.legend = self.plot.addLegend(
            offset=(-5, 5),
            labelTextSize="8pt",
            labelTextColor=(20, 20, 20),
            brush=pg.mkBrush(255, 255, 255, 200),
            pen=pg.mkPen(200, 200, 200),
            colCount=2,
        )
        self.right = pg.ViewBox()
        pi = self.plot.getPlotItem()
        pi.scene().addItem(self.right)
        pi.getAxis("right").linkToView(self.right)
        self.right.setXLink(pi)
        pi.vb.sigResized.connect(self._sync_right)
        self.marker = pg.InfiniteLine(angle=90, pen=pg.mkPen((120, 120, 120), width=1))
        self.plot.addItem(self.marker, ignoreBounds=True)
        self._marker_t, self._marker_last = 0.0, 0.0
        self._marker_timer = QTimer(self)
        self._marker_timer.setSingleShot(True)
        self._marker_timer.timeout.connect(self._marker_flush)
        self._fits: dict[tuple, list[Curve]] = {}
        self._fitting: set[tuple] = set()
        self._fit_runner = TaskRunner(self, max_threads=1)
        self._pixel_timer = QTimer(self)
        self._pixel_timer.setSingleShot(True)
        self._pixel_timer.setInterval(400)
        self._pixel_timer.timeout.connect(self._fit_pixel)
        self.legend.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        for name in ("left", "bottom", "right"):  # axis text is slow to draw: cache it
            pi.getAxis(name).setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
            pi.getAxis(name).enableAutoSIPrefix(False)  # "a.u.", not "ka.u."
        self.shown: list[Curve] = []
        # plot items are kept and re-used (hidden when unused): creating them, and rebuilding
        # the legend, is most of the cost of a refresh
        self._items: dict[tuple[str, bool], pg.PlotDataItem] = {}  # (role, right axis)
        self._legend: list[tuple[tuple[str, bool], str]] = []  # (item key, label) shown
        self.cursor_rc: tuple[float, float] | None = None
        self.checks = {}
        row = QHBoxLayout()
        for key, label in (
            ("aif", "AIF"),
            ("pools", "LV/RV"),
            ("segments", "Segments"),
            ("pixel", "Pixel"),
            ("fit", "Fitted (Gd)"),
        ):
            cb = QCheckBox(label, checked=True)
            cb.toggled.connect(lambda _: self.refresh())
            self.checks[key] = cb
            row.addWidget(cb)
        row.addStretch(1)
        self.aif_btn = QPushButton("Draw AIF region", checkable=True)
        self.aif_btn.setToolTip("Drag a circle on the LV blood pool to define the AIF by hand")
        self.aif_btn.toggled.connect(self.aif_tool_requested)
        self.aif_series_btn = QPushButton("Draw on AIF series…")
        self.aif_series_btn.setToolTip(
            "Draw the AIF region on the dual-sequence AIF series of this condition"
        )
        self.aif_series_btn.clicked.connect(self.open_aif_series_dialog)
        self.auto_aif_btn = QPushButton("Automatic AIF")
        self.auto_aif_btn.setToolTip("Drop the manual AIF region and re-fit")
        self.auto_aif_btn.clicked.connect(self.session.reset_manual_aif)
        self.csv_btn = QPushButton("Export CSV…")
        self.csv_btn.clicked.connect(self._export_dialog)
        for b in (self.aif_btn, self.aif_series_btn, self.auto_aif_btn, self.csv_btn):
            row.addWidget(b)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addLayout(row)
        lay.addWidget(self.plot, 1)
        session.result_changed.connect(lambda _: session.update_view(self.refresh))
        session.exam_changed.connect(lambda _: session.update_view(self.refresh))
        session.selection_changed.connect(self.refresh)

    def _sync_right(self) -> None:
        pi = self.plot.getPlotItem()
        self.right.setGeometry(pi.vb.sceneBoundingRect())
        self.right.linkedViewChanged(pi.vb, self.right.XAxis)

    # --- content -------------------------------------------------------------------------------
    def compute_curves(self) -> tuple[list[Curve], list[Curve]]:
        """(curves on the left axis, curves on the right axis) for the current selection."""
        s = self.session
        ss = s.series()
        if ss is None:
            return [], []
        sr = s.slice_result()
        kind = s.image_kind
        left: list[Curve] = []
        right: list[Curve] = []
        region_stack, unit, _ = s.stack(kind="moco" if kind == "raw" else kind)
        seg = sr.segmentation if sr is not None else None
        if seg is not None and region_stack is not None and self.checks["pools"].isChecked():
            for lab, name in ((LABEL_LV, "LV blood pool"), (LABEL_RV, "RV blood pool")):
                m = seg.labels == lab
                if m.any():
                    left.append(Curve(name, ss.times_s, region_stack[:, m].mean(axis=1), unit))
        if (
            sr is not None
            and sr.aha is not None
            and seg is not None
            and region_stack is not None
            and self.checks["segments"].isChecked()
        ):
            for seg_no in np.unique(sr.aha[sr.aha > 0]):
                m = (sr.aha == seg_no) & (seg.labels == LABEL_MYO)
                if m.any():
                    left.append(
                        Curve(
                            f"segment {int(seg_no)}",
                            ss.times_s,
                            region_stack[:, m].mean(axis=1),
                            unit,
                        )
                    )
        stack, unit_shown, _ = s.stack()
        if self.cursor_rc is not None and stack is not None and self.checks["pixel"].isChecked():
            r, c = (int(round(v)) for v in self.cursor_rc)
            if 0 <= r < stack.shape[1] and 0 <= c < stack.shape[2]:
                left.append(Curve(f"pixel ({r}, {c})", ss.times_s, stack[:, r, c], unit_shown))
        res = s.result.conditions.get(s.condition) if s.result is not None else None
        if res is not None and res.aif is not None and self.checks["aif"].isChecked():
            name = f"AIF ({res.aif_source})" if res.aif_source else "AIF"
            aif = Curve(name, res.aif.times_s, res.aif.values, res.aif.unit)
            (left if aif.unit == unit else right).append(aif)
        if self.checks["fit"].isChecked():
            for cv in self._fitted(sr, res):
                (left if cv.unit == unit else right).append(cv)
        return left, right

    # --- fitted model curves (computed in the background, cached per result and slice) ---------
    def _fit_key(self, pixel: bool = False):
        s = self.session
        key = (id(s.result), s.condition, s.slice_index)
        if pixel and self.cursor_rc is not None:
            key += tuple(int(round(v)) for v in self.cursor_rc)
        return key

    def _fitted(self, sr, res) -> list[Curve]:
        """Fitted curves ready for the current slice (segments, and the pixel under the
        cursor); starts the fits that are missing."""
        if sr is None or res is None or res.aif is None or sr.gd is None or sr.aha is None:
            return []
        out = list(self._fits.get(self._fit_key(), []))
        if self._fit_key() not in self._fits:
            self._start_fit(self._fit_key(), sr, res, None)
        if self.cursor_rc is not None:
            pk = self._fit_key(pixel=True)
            if pk in self._fits:
                out += self._fits[pk]
            else:
                self._pixel_timer.start()
        return out

    def _start_fit(self, key, sr, res, pixel: tuple[int, int] | None) -> None:
        if key in self._fitting:
            return
        dyn = sr.series.dynamic_frames
        if dyn.size < 5:
            return
        gd = sr.gd[dyn]
        if pixel is None:
            seg = sr.segmentation
            segs = [int(k) for k in np.unique(sr.aha[sr.aha > 0])]
            curves = [gd[:, (sr.aha == k) & (seg.labels == LABEL_MYO)].mean(axis=1) for k in segs]
            names = [f"fit segment {k}" for k in segs]
        else:
            r, c = pixel
            if not (0 <= r < gd.shape[1] and 0 <= c < gd.shape[2]):
                return
            curves, names = [gd[:, r, c]], [f"fit pixel ({r}, {c})"]
        if not curves:
            return
        times = sr.series.times_s[dyn]
        model = self.session.result.model if self.session.result is not None else "btex"

        delay = map_delay_s(sr)  # the model behind the map's values, not a new fit

        def work():
            fitted, _, ok = fit_model_curves(res.aif, np.stack(curves), times, model, delay_s=delay)
            return [
                Curve(n, times, f, "mmol/L")
                for n, f, good in zip(names, fitted, ok, strict=True)
                if good
            ]

        task = Task("Curve fit", work)
        self._fitting.add(key)
        task.signals.finished.connect(lambda cv, k=key: self._fit_done(k, cv))
        task.signals.failed.connect(lambda *_, k=key: self._fit_done(k, []))
        task.signals.cancelled.connect(lambda k=key: self._fitting.discard(k))
        # after the other views have shown a new result: the fit competes for the CPU
        self.session.after_views(lambda: self._fit_runner.start(task))

    def _fit_done(self, key, curves: list[Curve]) -> None:
        self._fitting.discard(key)
        if len(self._fits) > 64:
            self._fits.clear()
        self._fits[key] = curves
        if key[:3] == self._fit_key():
            self.refresh()

    def _fit_pixel(self) -> None:
        s = self.session
        sr, res = s.slice_result(), s.result.conditions.get(s.condition) if s.result else None
        if self.cursor_rc is None or sr is None or res is None or sr.gd is None:
            return
        if res.aif is None or not self.checks["fit"].isChecked():
            return
        pix = tuple(int(round(v)) for v in self.cursor_rc)
        self._start_fit(self._fit_key(pixel=True), sr, res, pix)

    def refresh(self) -> None:
        left, right = self.compute_curves()
        pi = self.plot.getPlotItem()
        want = [(cv, False) for cv in left] + [(cv, True) for cv in right]
        legend = []
        for cv, on_right in want:
            key = (_role(cv.name), on_right)
            item = self._items.get(key)
            if item is None:
                item = pg.PlotDataItem(pen=self._pen(cv.name))
                item.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
                (self.right if on_right else pi).addItem(item)
                self._items[key] = item
            item.setData(cv.times_s, cv.values)
            item.setVisible(True)
            legend.append((key, f"{cv.name} [{cv.unit}, right]" if on_right else cv.name))
        used = {key for key, _ in legend}
        for key, item in self._items.items():
            if key not in used and item.isVisible():
                item.setVisible(False)
                item.setData([], [])
        self._set_legend(legend)
        unit = left[0].unit if left else ""
        self.plot.setLabel("left", "Signal" if unit == "a.u." else "Gd", units=unit or None)
        pi.showAxis("right", bool(right))
        if right:
            pi.getAxis("right").setLabel("AIF", units=right[0].unit)
            self.right.enableAutoRange()
        self.shown = left + right
        self._sync_right()

    def _set_legend(self, entries: list[tuple[tuple[str, bool], str]]) -> None:
        """Legend rows (item key, label) in order; rows already shown are kept when the new
        list only adds rows at the end, and the legend is sized once."""
        lg = self.legend
        if entries == self._legend:
            return
        keep = len(self._legend) if entries[: len(self._legend)] == self._legend else 0
        lg.updateSize = lambda: None  # once at the end, not per row
        try:
            if not keep:
                lg.clear()
            for key, label in entries[keep:]:
                lg.addItem(self._items[key], label)
        finally:
            del lg.updateSize
        lg.updateSize()
        self._legend = list(entries)

    @staticmethod
    def _pen(name: str):
        n = name.lower()
        dash = pg.QtCore.Qt.PenStyle.DashLine
        if n.startswith("aif"):
            return pg.mkPen((200, 0, 0), width=2)
        if n.startswith("lv"):
            return pg.mkPen((220, 60, 60), width=2, style=pg.QtCore.Qt.PenStyle.DotLine)
        if n.startswith("rv"):
            return pg.mkPen((40, 90, 220), width=2, style=pg.QtCore.Qt.PenStyle.DotLine)
        if n.startswith("pixel"):
            return pg.mkPen((0, 0, 0), width=1.5)
        if n.startswith("fit pixel"):
            return pg.mkPen((0, 0, 0), width=1.5, style=dash)
        digits = "".join(ch for ch in n.split("segment")[-1] if ch.isdigit())
        color = SEGMENT_COLORS[(int(digits) - 1) % len(SEGMENT_COLORS)] if digits else (0, 150, 0)
        return pg.mkPen(
            color, width=1.5, style=dash if n.startswith("fit") else pg.QtCore.Qt.PenStyle.SolidLine
        )

    def set_cursor(self, condition: str, row: float, col: float) -> None:
        if condition != self.session.condition:
            return
        rc = None if np.isnan(row) or np.isnan(col) else (row, col)
        if (
            rc is None
            or self.cursor_rc is None
            or np.round(rc).tolist() != np.round(self.cursor_rc).tolist()
        ):
            self.cursor_rc = rc
            if self.checks["pixel"].isChecked():
                self.refresh()

    def set_frame(self, condition: str, frame: int, time_s: float) -> None:
        """Move the current-frame marker; during playback at most ~12 times a second (the
        plot's repaint is the costliest part of a cine frame)."""
        if condition != self.session.condition:
            return
        self._marker_t = time_s
        now = time.monotonic()
        if now - self._marker_last >= MARKER_INTERVAL_S:
            self._marker_last = now
            self.marker.setValue(time_s)
        elif not self._marker_timer.isActive():
            self._marker_timer.start(int(MARKER_INTERVAL_S * 1000))

    def _marker_flush(self) -> None:
        self._marker_last = time.monotonic()
        self.marker.setValue(self._marker_t)

    # --- AIF series ----------------------------------------------------------------------------
    def open_aif_series_dialog(self):
        """Open the dialog to draw the AIF region on the current condition's AIF series;
        None (and a status message) when there is no analysis or no AIF series."""
        from qperf_viewer.gui.widgets.aif_series_dialog import AifSeriesDialog

        s = self.session
        cd = s.exam.conditions.get(s.condition) if s.exam is not None else None
        if s.result is None or cd is None or cd.aif is None:
            s.status.emit(
                f"No dual-sequence AIF series for {s.condition}: draw the AIF region on the "
                "LV blood pool instead."
                if s.result is not None
                else "Run the analysis first."
            )
            return None
        self.aif_dialog = AifSeriesDialog(s, s.condition, self)
        self.aif_dialog.show()
        return self.aif_dialog

    # --- export --------------------------------------------------------------------------------
    def export_csv(self, path: str | Path) -> Path:
        """Write the shown curves as condition,slice,curve,time_s,value,unit."""
        s = self.session
        ss = s.series()
        t0 = 0.0
        if ss is not None and ss.dynamic_frames.size:
            t0 = float(ss.times_s[ss.dynamic_frames[0]])
        path = Path(path)
        tmp = path.with_suffix(path.suffix + ".tmp")
        with open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["condition", "slice", "curve", "time_s", "value", "unit"])
            for cv in self.shown:
                for t, v in zip(cv.times_s, cv.values, strict=True):
                    w.writerow(
                        [
                            s.condition,
                            s.slice_index,
                            cv.name,
                            f"{t - t0:.4f}",
                            f"{float(v):.6g}",
                            cv.unit,
                        ]
                    )
        tmp.replace(path)
        return path

    def _export_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export curves", "curves.csv", "CSV (*.csv)")
        if path:
            with error_dialog(self, "Could not export the curves"):
                self.export_csv(path)
