"""The report as PDF (QPdfWriter, A4, embedded DejaVu Sans), as a printout (any
QPagedPaintDevice, e.g. a QPrinter from the GUI's print dialog) and as RGB images for DICOM
Secondary Capture: one painter function draws all of them.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from PySide6.QtCore import QMarginsF
from PySide6.QtGui import (
    QImage,
    QPagedPaintDevice,
    QPageLayout,
    QPageSize,
    QPainter,
    QPdfWriter,
)

from ._atomic import atomic_write
from .data import ReportData
from .render import Canvas, ensure_app, font_family, qimage_to_rgb
from .render_pages import N_PAGES, PAGE_H, PAGE_W, PAINTERS, PageLayout

PDF_DPI = 300


def _a4_layout() -> QPageLayout:
    return QPageLayout(
        QPageSize(QPageSize.PageSizeId.A4),
        QPageLayout.Orientation.Portrait,
        QMarginsF(0, 0, 0, 0),
        QPageLayout.Unit.Millimeter,
    )


def paint_report(device: QPagedPaintDevice, data: ReportData, pages=None) -> list[PageLayout]:
    """Draw the report pages on a paged device (QPdfWriter or QPrinter set to A4 with zero
    margins / full page); returns what was drawn where."""
    ensure_app()
    font_family()
    pages = list(pages or range(1, N_PAGES + 1))
    painter = QPainter()
    if not painter.begin(device):
        raise OSError("Cannot start drawing on the output device (is the file writable?).")
    layouts = []
    try:
        dpi = device.logicalDpiY()
        for k, page in enumerate(pages):
            if k:
                device.newPage()
            layouts.append(PAINTERS[page](Canvas(painter, dpi), data))
    finally:
        painter.end()
    return layouts


def write_pdf(path: str | Path, data: ReportData) -> list[PageLayout]:
    """Write the report PDF atomically (temporary file in the same folder, then rename)."""
    ensure_app()
    layouts: list[PageLayout] = []

    def write(tmp: Path):
        writer = QPdfWriter(str(tmp))
        writer.setResolution(PDF_DPI)
        writer.setPageLayout(_a4_layout())
        writer.setTitle("Quantitative stress perfusion CMR report")
        writer.setCreator("qperf-viewer")
        layouts.extend(paint_report(writer, data))
        del writer  # flushes and closes the file

    atomic_write(path, write)
    return layouts


def pdf_bytes(data: ReportData) -> bytes:
    """The report PDF in memory (for the DICOM Encapsulated PDF)."""
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "report.pdf"
        write_pdf(p, data)
        return p.read_bytes()


def print_report(printer, data: ReportData) -> list[PageLayout]:
    """Print through Qt's print support: ``printer`` is a QPrinter (e.g. from a QPrintDialog);
    the page is set to A4 portrait, full page, and drawn by the same painter code."""
    printer.setFullPage(True)
    printer.setPageLayout(_a4_layout())
    return paint_report(printer, data)


def render_page_image(data: ReportData, page: int = 1, dpi: float = 150.0) -> np.ndarray:
    """One report page as an RGB image (Y, X, 3) uint8 at ``dpi`` (white background)."""
    ensure_app()
    w = int(round(PAGE_W / 25.4 * dpi))
    h = int(round(PAGE_H / 25.4 * dpi))
    img = QImage(w, h, QImage.Format.Format_RGB888)
    dpm = int(round(dpi / 0.0254))
    img.setDotsPerMeterX(dpm)
    img.setDotsPerMeterY(dpm)
    img.fill(0xFFFFFF)
    painter = QPainter(img)
    try:
        PAINTERS[page](Canvas(painter, dpi), data)
    finally:
        painter.end()
    return qimage_to_rgb(img)


def render_maps_image(data: ReportData, dpi: float = 200.0) -> np.ndarray:
    """The MBF maps with contours and sector lines (stress and rest rows) with patient
    identification burned in, as RGB (Y, X, 3) uint8 for a Secondary Capture."""
    from .render_maps import paint_maps_panel, panel_size_mm

    ensure_app()
    wmm, hmm = panel_size_mm(data)
    w, h = int(round(wmm / 25.4 * dpi)), int(round(hmm / 25.4 * dpi))
    img = QImage(w, h, QImage.Format.Format_RGB888)
    dpm = int(round(dpi / 0.0254))
    img.setDotsPerMeterX(dpm)
    img.setDotsPerMeterY(dpm)
    img.fill(0x000000)
    painter = QPainter(img)
    try:
        paint_maps_panel(Canvas(painter, dpi), data)
    finally:
        painter.end()
    return qimage_to_rgb(img)
