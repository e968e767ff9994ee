"""Segmentation review and editing: run, review slice by slice, edit, undo/redo.

Edits arrive from the canvas (drag a control point, brush, drag an RV insertion point) or
through this panel's API (``move_control_point``, ``paint``, ``move_rv_point``: what tests and
scripts use). Each edit becomes a new manual Segmentation pushed to the session's undo stack;
the session re-aggregates sectors and segment MBF and autosaves the edit.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QButtonGroup,
    QDoubleSpinBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from qperf_viewer.exam import LABEL_LV
from qperf_viewer.gui import contours as ct
from qperf_viewer.gui.session import Session

TOOL_LABELS = {
    "navigate": "Navigate",
    "contour": "Move contour points",
    "brush_add": "Brush: add myocardium",
    "brush_erase": "Brush: erase myocardium",
    "rv": "Move RV insertion points",
}
STATE_COLORS = {"accepted": "#2e7d32", "rejected": "#c62828", "edited": "#ef6c00"}


class SegmentationPanel(QWidget):
    tool_changed = Signal(str)
    brush_changed = Signal(float)

    def __init__(self, session: Session, parent=None) -> None:
        super().__init__(parent)
        self.session = session
        self.run_btn = QPushButton("Run analysis")
        self.run_btn.setToolTip("Motion correction, segmentation, sectors and MBF")
        self.run_btn.clicked.connect(lambda: session.analyze())
        self.seg_btn = QPushButton("Segment only")
        self.seg_btn.setToolTip("Motion correction, segmentation and sectors, no MBF (faster)")
        self.seg_btn.clicked.connect(session.segment_only)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.clicked.connect(session.cancel)
        self.cancel_btn.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress_label = QLabel("")
        self.progress_label.setWordWrap(True)
        self.progress_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.table = QTableWidget(0, 5)
        self.table.setHorizontalHeaderLabels(["Slice", "Position", "Confidence", "Status", "Flags"])
        head = self.table.horizontalHeader()
        for col in range(4):
            head.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        head.setSectionResizeMode(4, QHeaderView.ResizeMode.Interactive)  # long flags: tooltip
        head.setStretchLastSection(True)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QTableWidget.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.itemSelectionChanged.connect(self._row_selected)
        self.accept_btn = QPushButton("Accept slice")
        self.accept_btn.clicked.connect(lambda: self._review("accepted"))
        self.reject_btn = QPushButton("Reject slice")
        self.reject_btn.setToolTip("Leave this slice out of the segment values")
        self.reject_btn.clicked.connect(lambda: self._review("rejected"))
        self.revert_btn = QPushButton("Revert to automatic")
        self.revert_btn.clicked.connect(
            lambda: session.revert_to_automatic(session.condition, session.slice_index)
        )
        self.tool_group = QButtonGroup(self)
        tools = QGroupBox("Edit tool")
        tl = QVBoxLayout(tools)
        for i, (key, label) in enumerate(TOOL_LABELS.items()):
            rb = QRadioButton(label)
            rb.setProperty("tool", key)
            rb.setChecked(key == "navigate")
            self.tool_group.addButton(rb, i)
            tl.addWidget(rb)
        self.tool_group.buttonToggled.connect(self._tool_toggled)
        self.brush = QDoubleSpinBox(
            minimum=0.5, maximum=10.0, singleStep=0.5, value=2.0, suffix=" px"
        )
        self.brush.valueChanged.connect(self.brush_changed)
        bl = QHBoxLayout()
        bl.addWidget(QLabel("Brush radius"))
        bl.addWidget(self.brush)
        tl.addLayout(bl)
        self.undo_btn = QToolButton()
        self.undo_btn.setDefaultAction(session.undo_stack.createUndoAction(self, "Undo"))
        self.redo_btn = QToolButton()
        self.redo_btn.setDefaultAction(session.undo_stack.createRedoAction(self, "Redo"))
        self.info = QLabel("")
        self.info.setWordWrap(True)
        grid = QGridLayout()
        grid.addWidget(self.run_btn, 0, 0)
        grid.addWidget(self.seg_btn, 0, 1)
        grid.addWidget(self.cancel_btn, 0, 2)
        grid.addWidget(self.progress, 1, 0, 1, 3)
        grid.addWidget(self.progress_label, 2, 0, 1, 3)
        review = QHBoxLayout()
        for b in (self.accept_btn, self.reject_btn, self.revert_btn):
            review.addWidget(b)
        undo = QHBoxLayout()
        undo.addWidget(self.undo_btn)
        undo.addWidget(self.redo_btn)
        undo.addStretch(1)
        lay = QVBoxLayout(self)
        lay.addLayout(grid)
        lay.addWidget(self.table, 1)
        lay.addLayout(review)
        lay.addWidget(tools)
        lay.addLayout(undo)
        lay.addWidget(self.info)
        session.busy_changed.connect(self._busy)
        session.progress.connect(self._progress)
        session.status.connect(self.progress_label.setText)
        session.result_changed.connect(lambda _: session.update_view(self.refresh))
        session.exam_changed.connect(lambda _: session.update_view(self.refresh))
        session.review_changed.connect(lambda: session.update_view(self.refresh))
        session.selection_changed.connect(self._select_current)
        self.refresh()

    # --- state ---------------------------------------------------------------------------------
    def _busy(self, busy: bool) -> None:
        self.cancel_btn.setEnabled(busy)
        self.run_btn.setEnabled(not busy)
        self.seg_btn.setEnabled(not busy)
        if not busy:
            self.progress.setValue(self.progress.maximum() if self.session.result else 0)

    def _progress(self, frac: float, msg: str) -> None:
        if frac < 0:
            self.progress.setRange(0, 0)
        else:
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(frac * 1000))
        self.progress_label.setText(msg)

    def rows(self) -> list[tuple[str, int]]:
        s = self.session
        return [(c, k) for c in s.conditions() for k in range(s.n_slices(c))]

    def refresh(self) -> None:
        s = self.session
        rows = self.rows()
        with QSignalBlocker(self.table):
            self.table.setRowCount(len(rows))
            for i, (c, k) in enumerate(rows):
                ss = s.series(c, k)
                sr = s.slice_result(c, k)
                state = s.review_state(c, k)
                if sr is None:
                    state = "not analysed"
                seg = sr.segmentation if sr is not None else None
                conf = "" if seg is None else f"{seg.confidence:.2f}"
                flags = [] if sr is None else list(sr.flags) + list(seg.flags if seg else ())
                vals = [f"{c} {k + 1}", ss.position or "extra", conf, state, "; ".join(flags)]
                for j, v in enumerate(vals):
                    item = QTableWidgetItem(v)
                    item.setToolTip(v)
                    if j == 3 and state in STATE_COLORS:
                        item.setForeground(QBrush(QColor(STATE_COLORS[state])))
                    self.table.setItem(i, j, item)
        self._select_current()
        has = s.slice_result() is not None
        for b in (self.accept_btn, self.reject_btn, self.revert_btn):
            b.setEnabled(has)
        sr = s.slice_result()
        if sr is None:
            self.info.setText("Run the analysis to segment the slices." if s.exam else "")
        else:
            seg = sr.segmentation
            src = "rejected" if seg is None else seg.source
            self.info.setText(
                f"{s.condition} slice {s.slice_index + 1}: segmentation {src}. "
                "Right-drag: window/level; wheel: zoom; middle-drag: pan."
            )

    def _select_current(self) -> None:
        key = (self.session.condition, self.session.slice_index)
        rows = self.rows()
        if key in rows:
            with QSignalBlocker(self.table):
                self.table.selectRow(rows.index(key))

    def _row_selected(self) -> None:
        sel = self.table.selectionModel().selectedRows()
        if sel:
            c, k = self.rows()[sel[0].row()]
            self.session.set_selection(condition=c, slice_index=k)

    def _review(self, state: str) -> None:
        self.session.set_review(self.session.condition, self.session.slice_index, state)

    def _tool_toggled(self, button, checked: bool) -> None:
        if checked:
            self.tool_changed.emit(button.property("tool"))

    def set_tool(self, tool: str) -> None:
        for b in self.tool_group.buttons():
            if b.property("tool") == tool:
                b.setChecked(True)

    @property
    def tool(self) -> str:
        b = self.tool_group.checkedButton()
        return b.property("tool") if b else "navigate"

    # --- edits (API used by the canvas and by tests) ---------------------------------------------
    def current_control_points(self, condition: str | None = None, k: int | None = None):
        sr = self.session.slice_result(condition, k)
        seg = sr.segmentation if sr is not None else None
        if seg is None:
            return None
        cc = seg.contours or {}
        if "endo" in cc and "epi" in cc and len(cc["endo"]) >= 3:
            return {"endo": np.asarray(cc["endo"], float), "epi": np.asarray(cc["epi"], float)}
        return ct.control_points(seg.labels, seg.lv_centre)

    def _edit(self, labels=None, contours=None, text="Edit", **extra) -> None:
        s = self.session
        c, k = s.condition, s.slice_index
        changes = dict(extra)
        if labels is not None:
            changes["labels"] = labels.astype(np.uint8)
            centre = ct.centroid(labels == LABEL_LV)
            if centre is not None:
                changes["lv_centre"] = centre
            changes["contours"] = contours
        seg = s.make_manual(c, k, **changes)
        if seg is not None:
            s.edit_segmentation(c, k, seg, f"{text} ({c} slice {k + 1})")

    def set_contours(self, endo: np.ndarray, epi: np.ndarray) -> None:
        """New endo/epi control points (same counts as the current ones): the labels change
        between the old and new curves next to the moved points only."""
        sr = self.session.slice_result()
        old = self.current_control_points()
        if sr is None or sr.segmentation is None or old is None:
            return
        new = {"endo": np.asarray(endo, float), "epi": np.asarray(epi, float)}
        if all(old[k].shape == new[k].shape for k in new):
            labels = ct.edit_contours(sr.segmentation.labels, old, new)
        else:
            labels = ct.labels_from_contours(sr.segmentation.labels, endo, epi)
        self._edit(
            labels,
            {"endo": np.asarray(endo, float), "epi": np.asarray(epi, float)},
            "Move contour point",
        )

    def move_control_point(self, which: str, index: int, new_rc) -> None:
        """Move control point ``index`` of the 'endo' or 'epi' curve to (row, col)."""
        ctrl = self.current_control_points()
        if ctrl is None:
            return
        ctrl = {k: v.copy() for k, v in ctrl.items()}
        ctrl[which][index] = np.asarray(new_rc, float)
        self.set_contours(ctrl["endo"], ctrl["epi"])

    def set_labels(self, labels: np.ndarray, text: str = "Brush") -> None:
        self._edit(np.asarray(labels), None, text)

    def paint(self, centre_rc, add: bool = True, radius_px: float | None = None) -> None:
        sr = self.session.slice_result()
        if sr is None or sr.segmentation is None:
            return
        r = self.brush.value() if radius_px is None else radius_px
        self.set_labels(
            ct.brush(sr.segmentation.labels, tuple(centre_rc), r, add),
            "Brush add" if add else "Brush erase",
        )

    def set_rv_points(self, anterior, inferior) -> None:
        def pt(p):
            return None if p is None else (float(p[0]), float(p[1]))

        self._edit(
            text="Move RV insertion point",
            rv_insertion_anterior=pt(anterior),
            rv_insertion_inferior=pt(inferior),
        )

    def move_rv_point(self, which: str, new_rc) -> None:
        """Move the 'anterior' or 'inferior' RV insertion point to (row, col)."""
        sr = self.session.slice_result()
        if sr is None or sr.segmentation is None:
            return
        ant, inf = sr.segmentation.rv_insertion_anterior, sr.segmentation.rv_insertion_inferior
        if which.startswith("ant"):
            ant = new_rc
        else:
            inf = new_rc
        self.set_rv_points(ant, inf)
