"""Report pane: live bulls-eyes (stress, rest, MPR), global values, per-segment table,
thresholds, QC notes; Export PDF, Print and DICOM export of the report.

Values are the session's current AnalysisResult, so edits show at once. Thresholds persist in
the settings; segments below them are highlighted (stress MBF and MPR), and the exports print
the thresholds they used. PDF/DICOM go through ``qperf_viewer.report`` (the same report as the
CLI) when it is available.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from qperf_viewer import __version__
from qperf_viewer.gui import settings
from qperf_viewer.gui.backend import report_data_of
from qperf_viewer.gui.errors import error_dialog
from qperf_viewer.gui.session import Session
from qperf_viewer.gui.widgets.bullseye_view import BullseyeView
from qperf_viewer.report.data import INTENDED_USE
from qperf_viewer.report.text import LAYER_NOTE, fmt_layer, fmt_mpr, fmt_segment, segment_status
from qperf_viewer.report.thresholds import DEFAULT_THRESHOLDS, ThresholdSet, applicability
from qperf_viewer.sectors import POSITION_SEGMENTS, SEGMENT_NAMES, TERRITORY_OF_SEGMENT

log = logging.getLogger(__name__)

COLUMNS = ["Seg", "Name", "Territory", "Stress", "Rest", "MPR", "Stress endo/epi", "Rest endo/epi"]
MBF_RANGE, MPR_RANGE = (0.0, 4.0), (0.0, 4.0)


def _fmt(v, nd: int = 2) -> str:
    return "\u2014" if v is None else f"{v:.{nd}f}"


class ReportPane(QWidget):
    def __init__(self, session: Session, parent=None) -> None:
        super().__init__(parent)
        self.session = session
        self.header = QLabel("No analysis yet.")
        self.header.setWordWrap(True)
        self.header.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.bulls = {
            "stress": BullseyeView("Stress MBF", "mL/min/g", *MBF_RANGE),
            "rest": BullseyeView("Rest MBF", "mL/min/g", *MBF_RANGE),
            "mpr": BullseyeView("MPR", "stress / rest", *MPR_RANGE),
        }
        self.thr_mbf = QDoubleSpinBox(
            minimum=0.0, maximum=6.0, singleStep=0.05, decimals=2, suffix=" mL/min/g"
        )
        self.thr_mbf.setValue(settings.get("thresholds/stress_mbf"))
        self.thr_mpr = QDoubleSpinBox(minimum=0.0, maximum=6.0, singleStep=0.05, decimals=2)
        self.thr_mpr.setValue(settings.get("thresholds/mpr"))
        for w, key in ((self.thr_mbf, "thresholds/stress_mbf"), (self.thr_mpr, "thresholds/mpr")):
            w.valueChanged.connect(lambda v, k=key: (settings.put(k, v), self._thresholds_set()))
        # the report saved with the results prints the thresholds set here
        session.thresholds = self.threshold_set()
        self.thr_source = QLabel(
            f"Defaults: {DEFAULT_THRESHOLDS.short_citation()} ({DEFAULT_THRESHOLDS.method_text()})."
        )
        self.thr_source.setToolTip(DEFAULT_THRESHOLDS.citation)
        self.thr_applies = QLabel("")
        self.thr_applies.setWordWrap(True)
        self.thr_source.setWordWrap(True)
        self.globals = QLabel("")
        self.globals.setWordWrap(True)
        self.globals.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.table = QTableWidget(16, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        for k, name in enumerate(COLUMNS):
            if "endo/epi" in name:
                self.table.horizontalHeaderItem(k).setToolTip(LAYER_NOTE)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.notes = QLabel("")
        self.notes.setWordWrap(True)
        self.pdf_btn = QPushButton("Export PDF…")
        self.pdf_btn.clicked.connect(self._pdf_dialog)
        self.print_btn = QPushButton("Print…")
        self.print_btn.clicked.connect(self.print_dialog)
        self.dicom_btn = QPushButton("Export DICOM…")
        self.dicom_btn.clicked.connect(self._dicom_dialog)
        bulls = QHBoxLayout()
        for b in self.bulls.values():
            bulls.addWidget(b)
        thr = QGroupBox("Thresholds (highlighted below)")
        form = QFormLayout(thr)
        form.addRow("Stress MBF", self.thr_mbf)
        form.addRow("MPR", self.thr_mpr)
        form.addRow(self.thr_source)
        form.addRow(self.thr_applies)
        side_w = QWidget()
        side_w.setMaximumWidth(330)
        side = QVBoxLayout(side_w)
        side.setContentsMargins(0, 0, 0, 0)
        side.addWidget(self.globals)
        side.addWidget(thr)
        for b in (self.pdf_btn, self.print_btn, self.dicom_btn):
            side.addWidget(b)
        side.addStretch(1)
        grid = QGridLayout(self)
        grid.addWidget(self.header, 0, 0, 1, 2)
        grid.addLayout(bulls, 1, 0)
        grid.addWidget(side_w, 1, 1, 2, 1)
        grid.addWidget(self.table, 2, 0)
        grid.addWidget(self.notes, 3, 0, 1, 2)
        grid.setRowStretch(1, 3)
        grid.setRowStretch(2, 2)
        grid.setColumnStretch(0, 1)
        session.result_changed.connect(lambda _: session.update_view(self.refresh))
        session.exam_changed.connect(lambda _: session.update_view(self.refresh))
        session.review_changed.connect(lambda: session.update_view(self.refresh))
        self.values: dict[tuple[str, int], float | None] = {}
        self.low_mbf: set[int] = set()
        self.low_mpr: set[int] = set()
        self.applies = False
        self.refresh()

    # --- content -------------------------------------------------------------------------------
    def _thresholds_set(self) -> None:
        self.session.thresholds = self.threshold_set()
        self.refresh()

    def thresholds(self) -> dict[str, float]:
        return {"stress_mbf": self.thr_mbf.value(), "mpr": self.thr_mpr.value()}

    def threshold_set(self) -> ThresholdSet:
        """The default set with the user's cut-offs (renamed when they differ)."""
        d = DEFAULT_THRESHOLDS
        mbf, mpr = round(self.thr_mbf.value(), 4), round(self.thr_mpr.value(), 4)
        if mbf == d.stress_mbf_ml_min_g and mpr == d.mpr:
            return d
        return dataclasses.replace(
            d, name=f"user setting (method of {d.name})", stress_mbf_ml_min_g=mbf, mpr=mpr
        )

    def edited_slices(self) -> list[tuple[str, int, str | None]]:
        res = self.session.result
        out = []
        for cond, cr in res.conditions.items() if res else []:
            for sr in cr.slices:
                seg = sr.segmentation
                if seg is None or seg.source == "manual":
                    out.append((cond, sr.slice_index, sr.position))
        return out

    def refresh(self) -> None:
        s = self.session
        res = s.result
        ex = s.exam
        self.values = {}
        if ex is not None:
            self.header.setText(
                f"<b>{ex.patient_name or 'Anonymous'}</b> · ID {ex.patient_id or '–'} · "
                f"born {ex.patient_birth_date or '–'} · exam {ex.study_date or '–'} · "
                f"{ex.field_strength_t or '–'} T · stress agent {ex.stress_agent or 'unknown'}"
            )
        if res is None:
            for b in self.bulls.values():
                b.set_data({}, {}, {}, message="Run the analysis")
            self.globals.setText("Run the analysis to fill the report.")
            self.table.clearContents()
            self.notes.setText("")
            for b in (self.pdf_btn, self.print_btn, self.dicom_btn):
                b.setEnabled(False)
            return
        for b in (self.pdf_btn, self.print_btn, self.dicom_btn):
            b.setEnabled(True)
        thr = self.thresholds()
        edited = self.edited_slices()
        edited_segs = {g for _, _, pos in edited for g in POSITION_SEGMENTS.get(pos or "", ())}
        st, rs = res.conditions.get("stress"), res.conditions.get("rest")
        ref = st or rs
        app = applicability(
            self.threshold_set(),
            res.model,
            ref.aif_source if ref else None,
            s.exam.field_strength_t if s.exam else None,
        )
        self.applies = app.applies
        self.thr_applies.setText(("Applied. " + app.caution) if app.applies else app.reason)
        self.low_mbf, self.low_mpr = set(), set()
        for cond, cr in (("stress", st), ("rest", rs)):
            segs = cr.segments if cr else {}
            vals = {k: (segs[k].mbf if k in segs else None) for k in range(1, 17)}
            self.values.update({(cond, k): v for k, v in vals.items()})
            if cr is None:
                self.bulls[cond].set_data({}, {}, {}, message=f"No {cond} acquisition")
                continue
            status = {k: segment_status(segs.get(k)) for k in range(1, 17)}
            texts = {k: fmt_segment(segs.get(k)) for k in range(1, 17)}
            low = set()
            if cond == "stress" and app.applies:
                low = {
                    k
                    for k, v in vals.items()
                    if v is not None and status[k] == "ok" and v < thr["stress_mbf"]
                }
                self.low_mbf = low
            self.bulls[cond].set_data(
                vals,
                texts,
                status,
                low,
                thr["stress_mbf"] if cond == "stress" and app.applies else None,
            )
        mpr = {k: res.mpr_segments.get(k) for k in range(1, 17)}
        self.values.update({("mpr", k): v for k, v in mpr.items()})
        if st is None or rs is None:
            self.bulls["mpr"].set_data({}, {}, {}, message="MPR needs stress and rest")
        else:
            texts = {
                k: fmt_mpr(mpr[k], st.segments.get(k), rs.segments.get(k)) for k in range(1, 17)
            }
            status = {
                k: (
                    "ok"
                    if mpr[k] is not None
                    else ("unreliable" if texts[k].endswith("*") else "not covered")
                )
                for k in range(1, 17)
            }
            self.low_mpr = {
                k for k, v in mpr.items() if app.applies and v is not None and v < thr["mpr"]
            }
            self.bulls["mpr"].set_data(
                mpr, texts, status, self.low_mpr, thr["mpr"] if app.applies else None
            )
        self._fill_table(res, edited_segs)

        def hr(cr):
            return "–" if cr is None or cr.heart_rate_bpm is None else f"{cr.heart_rate_bpm:.0f}"

        self.globals.setText(
            f"<b>Global stress MBF</b> {_fmt(st.global_mbf if st else None)} mL/min/g<br>"
            f"<b>Global rest MBF</b> {_fmt(rs.global_mbf if rs else None)} mL/min/g<br>"
            f"<b>Global MPR</b> {_fmt(res.mpr_global)}<br>"
            f"Heart rate stress {hr(st)} / rest {hr(rs)} bpm<br>"
            f"Model: {res.model.upper()}<br>"
            f"AIF: stress {st.aif_source if st else '–'}; rest {rs.aif_source if rs else '–'}"
        )
        notes = []
        if edited:
            notes.append(
                "Manual edits: "
                + ", ".join(f"{c} slice {k + 1} ({p or 'extra'})" for c, k, p in edited)
            )
        rej = [f"{c} {k + 1}" for (c, k), v in s.review.items() if v == "rejected"]
        if rej:
            notes.append("Rejected slices (not in the values): " + ", ".join(rej))
        flags = list(res.flags)
        for cr in res.conditions.values():
            flags += [f"{cr.name}: {f}" for f in cr.flags]
            for sr in cr.slices:
                flags += [f"{cr.name} slice {sr.slice_index + 1}: {f}" for f in sr.flags]
        if flags:
            notes.append("QC: " + "; ".join(flags))
        notes.append(
            f"Thresholds: stress MBF < {thr['stress_mbf']:.2f} mL/min/g, "
            f"MPR < {thr['mpr']:.2f}. qperf-viewer {__version__}. {INTENDED_USE}"
        )
        self.notes.setText("\n".join(notes))

    def _fill_table(self, res, edited_segs: set[int]) -> None:
        low = QBrush(QColor(255, 205, 205))
        for i, segno in enumerate(range(1, 17)):
            sv = {
                c: (res.conditions[c].segments.get(segno) if c in res.conditions else None)
                for c in ("stress", "rest")
            }
            mpr = res.mpr_segments.get(segno)
            row = [
                str(segno),
                SEGMENT_NAMES[segno] + (" \u270e" if segno in edited_segs else ""),
                TERRITORY_OF_SEGMENT[segno],
                fmt_segment(sv["stress"]),
                fmt_segment(sv["rest"]),
                fmt_mpr(mpr, sv["stress"], sv["rest"]),
            ]
            for c in ("stress", "rest"):
                v = sv[c]
                row.append(
                    "\u2014" if v is None else f"{fmt_layer(v.endo, v)} / {fmt_layer(v.epi, v)}"
                )
            for j, text in enumerate(row):
                item = QTableWidgetItem(text)
                if j >= 3:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                if (j == 3 and segno in self.low_mbf) or (j == 5 and segno in self.low_mpr):
                    item.setBackground(low)
                if j == 1 and segno in edited_segs:
                    item.setToolTip("From a manually edited segmentation")
                self.table.setItem(i, j, item)

    def segment_value(self, which: str, segment: int) -> float | None:
        """Value shown for 'stress' / 'rest' / 'mpr' and an AHA segment."""
        return self.values.get((which, segment))

    # --- export --------------------------------------------------------------------------------
    def report_data(self):
        """The report's ReportData for the current result (the pipeline's, as the CLI writes
        it) with this pane's thresholds."""
        data = report_data_of(self.session.backend, self.session.result)
        thr = self.threshold_set()
        if data.thresholds != thr:
            data = dataclasses.replace(data, thresholds=thr)
        return data

    def export_pdf(self, path: str | Path, data=None) -> Path:
        """Write the report PDF (the same report as ``qperf-viewer analyze``); ``data``:
        the ReportData to write (default: the current one)."""
        from qperf_viewer.report.pdf import write_pdf

        path = Path(path)
        write_pdf(path, data if data is not None else self.report_data())
        return path

    def print_to(self, printer) -> None:
        """Print the report on a configured QPrinter (the PDF's painter code)."""
        from qperf_viewer.report.pdf import print_report

        print_report(printer, self.report_data())

    def print_dialog(self) -> None:
        from PySide6.QtPrintSupport import QPrintDialog, QPrinter

        printer = QPrinter(QPrinter.PrinterMode.HighResolution)
        dlg = QPrintDialog(printer, self)
        dlg.setWindowTitle("Print report")
        if dlg.exec() == QPrintDialog.DialogCode.Accepted:
            with error_dialog(self, "Could not print the report"):
                self.print_to(printer)

    def export_dicom(self, folder: str | Path, data=None) -> list[Path]:
        """DICOM Encapsulated PDF of the report and Secondary Captures of the bulls-eye page
        and the MBF maps (as ``analyze`` writes them), each read back after writing."""
        from qperf_viewer.report.dicom_export import export_report_dicom
        from qperf_viewer.report.pdf import pdf_bytes, render_maps_image, render_page_image

        data = data if data is not None else self.report_data()
        pictures = [
            (
                "report_page1_sc",
                "qperf-viewer report: bulls-eye page",
                render_page_image(data, 1, dpi=150.0),
            ),
            ("mbf_maps_sc", "qperf-viewer MBF maps with contours", render_maps_image(data)),
        ]
        done = export_report_dicom(Path(folder), data, pdf_bytes(data), pictures)
        return [Path(d.path) for d in done]

    def _pdf_dialog(self) -> None:
        start = str((self.session.output_dir or Path.home()) / "report.pdf")
        path, _ = QFileDialog.getSaveFileName(self, "Export report PDF", start, "PDF (*.pdf)")
        if path:
            self.export_pdf_in_background(path)

    def export_pdf_in_background(self, path: str | Path):
        """Write the PDF off the GUI thread (the report data is taken now); returns the task."""
        from qperf_viewer.gui.workers import Task

        task = Task("Export PDF", self.export_pdf, Path(path), self.report_data())
        task.signals.finished.connect(lambda p: self.session.status.emit(f"Report written to {p}"))
        return self.session.run_task(task, "Could not export the PDF")

    def _dicom_dialog(self) -> None:
        start = str(self.session.output_dir or Path.home())
        folder = QFileDialog.getExistingDirectory(self, "Export DICOM report to", start)
        if folder:
            self.export_dicom_in_background(folder)

    def export_dicom_in_background(self, folder: str | Path):
        """Write the DICOM exports off the GUI thread; returns the task."""
        from qperf_viewer.gui.workers import Task

        task = Task("Export DICOM", self.export_dicom, Path(folder), self.report_data())
        task.signals.finished.connect(
            lambda files: self.session.status.emit(f"Wrote {len(files)} DICOM file(s) to {folder}")
        )
        return self.session.run_task(task, "Could not export DICOM")
