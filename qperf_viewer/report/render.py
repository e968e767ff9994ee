"""Qt drawing helpers for the report (QtGui only, no widgets).

:class:`Canvas` wraps a QPainter on any paint device (QPdfWriter, QPrinter, QImage) and takes
all coordinates in millimetres from the page's top-left corner, font sizes in points; it
converts with the device's resolution, so the same page code makes the PDF, the printout and
the Secondary Capture images.
"""

from __future__ import annotations

import functools
import os

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import (
    QBrush,
    QColor,
    QFont,
    QFontDatabase,
    QFontMetricsF,
    QGuiApplication,
    QImage,
    QPainter,
    QPainterPath,
    QPen,
)

from qperf_viewer.config import resources_dir

FONT_FILES = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf")
FALLBACK_FAMILY = "DejaVu Sans"

# Palette of the report (RGB).
INK = (25, 30, 40)
MUTED = (95, 105, 120)
RULE = (170, 178, 190)
BAND = (232, 238, 246)
ACCENT = (20, 60, 120)
ALERT = (180, 20, 30)
ALERT_FILL = (252, 226, 226)
NOT_COVERED_FILL = (225, 225, 225)
UNRELIABLE_FILL = (245, 245, 245)


def ensure_app() -> QGuiApplication:
    """The running Qt GUI application, or a new offscreen one (CLI and batch runs)."""
    app = QGuiApplication.instance()
    if app is None:
        platform = os.environ.get("QT_QPA_PLATFORM") or "offscreen"
        app = QGuiApplication(["qperf-viewer", "-platform", platform])
    elif not isinstance(app, QGuiApplication):
        raise RuntimeError("A QCoreApplication without GUI support is running; cannot draw.")
    return app


@functools.lru_cache(maxsize=1)
def font_family() -> str:
    """Register the bundled TTF fonts (once) and return their family name."""
    ensure_app()
    family = None
    folder = resources_dir() / "fonts"
    for name in FONT_FILES:
        fid = QFontDatabase.addApplicationFont(str(folder / name))
        fams = QFontDatabase.applicationFontFamilies(fid) if fid >= 0 else []
        if fams and family is None:
            family = fams[0]
    return family or FALLBACK_FAMILY


def qcolor(rgb, alpha: int = 255) -> QColor:
    if isinstance(rgb, QColor):
        return rgb
    return QColor(int(rgb[0]), int(rgb[1]), int(rgb[2]), alpha)


def rgb_to_qimage(rgb: np.ndarray) -> QImage:
    """(Y, X, 3) uint8 -> QImage (a deep copy, safe after the array goes)."""
    a = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w = a.shape[:2]
    img = QImage(a.data, w, h, 3 * w, QImage.Format.Format_RGB888)
    return img.copy()


def gray_to_qimage(g: np.ndarray) -> QImage:
    a = np.ascontiguousarray(g, dtype=np.uint8)
    h, w = a.shape
    return QImage(a.data, w, h, w, QImage.Format.Format_Grayscale8).copy()


def qimage_to_rgb(img: QImage) -> np.ndarray:
    """QImage -> (Y, X, 3) uint8 RGB."""
    img = img.convertToFormat(QImage.Format.Format_RGB888)
    h, w = img.height(), img.width()
    buf = np.frombuffer(img.constBits(), dtype=np.uint8, count=img.sizeInBytes())
    return buf.reshape(h, img.bytesPerLine())[:, : 3 * w].reshape(h, w, 3).copy()


class Canvas:
    """Millimetre drawing on a QPainter. ``dpi`` is the device resolution (px per inch)."""

    def __init__(self, painter: QPainter, dpi: float):
        self.p = painter
        self.dpi = float(dpi)
        self.s = self.dpi / 25.4  # device px per mm
        self.family = font_family()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setRenderHint(QPainter.RenderHint.TextAntialiasing, True)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)

    # -- units
    def pt(self, x: float, y: float) -> QPointF:
        return QPointF(x * self.s, y * self.s)

    def rectf(self, x: float, y: float, w: float, h: float) -> QRectF:
        return QRectF(x * self.s, y * self.s, w * self.s, h * self.s)

    def font(self, size_pt: float, bold: bool = False, italic: bool = False) -> QFont:
        f = QFont(self.family)
        f.setPointSizeF(size_pt)
        f.setBold(bold)
        f.setItalic(italic)
        f.setHintingPreference(QFont.HintingPreference.PreferNoHinting)
        f.setKerning(True)
        return f

    def pen(self, rgb=INK, width_mm: float = 0.25, style=Qt.PenStyle.SolidLine) -> QPen:
        pen = QPen(qcolor(rgb))
        pen.setWidthF(max(width_mm * self.s, 0.5))
        pen.setStyle(style)
        pen.setCapStyle(Qt.PenCapStyle.FlatCap)
        pen.setJoinStyle(Qt.PenJoinStyle.MiterJoin)
        return pen

    # -- shapes
    def line(self, x0, y0, x1, y1, rgb=RULE, width_mm=0.25, style=Qt.PenStyle.SolidLine):
        self.p.setPen(self.pen(rgb, width_mm, style))
        self.p.drawLine(self.pt(x0, y0), self.pt(x1, y1))

    def rect(self, x, y, w, h, fill=None, stroke=None, width_mm=0.25, pattern=None):
        self.p.setPen(self.pen(stroke, width_mm) if stroke is not None else Qt.PenStyle.NoPen)
        if fill is None:
            self.p.setBrush(Qt.BrushStyle.NoBrush)
        else:
            self.p.setBrush(QBrush(qcolor(fill), pattern or Qt.BrushStyle.SolidPattern))
        self.p.drawRect(self.rectf(x, y, w, h))

    def path(self, path: QPainterPath, fill=None, stroke=None, width_mm=0.25, pattern=None):
        """Draw a path already in device px."""
        self.p.setPen(self.pen(stroke, width_mm) if stroke is not None else Qt.PenStyle.NoPen)
        if fill is None:
            self.p.setBrush(Qt.BrushStyle.NoBrush)
        else:
            self.p.setBrush(QBrush(qcolor(fill), pattern or Qt.BrushStyle.SolidPattern))
        self.p.drawPath(path)

    # -- text
    def text_width(self, s: str, size_pt: float, bold: bool = False) -> float:
        fm = QFontMetricsF(self.font(size_pt, bold), self.p.device())
        return fm.horizontalAdvance(s) / self.s

    def elide(self, s: str, w: float, size_pt: float, bold: bool = False) -> str:
        """``s`` shortened with an ellipsis to fit ``w`` mm."""
        fm = QFontMetricsF(self.font(size_pt, bold), self.p.device())
        return fm.elidedText(s, Qt.TextElideMode.ElideRight, w * self.s)

    def line_height(self, size_pt: float) -> float:
        return size_pt * 25.4 / 72.0 * 1.25

    def text(
        self,
        x: float,
        y: float,
        w: float,
        h: float,
        s: str,
        size_pt: float = 8.0,
        bold: bool = False,
        rgb=INK,
        align=Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
        italic: bool = False,
        wrap: bool = False,
    ) -> QRectF:
        """Text in the box (mm); returns the bounding box used, in mm."""
        self.p.setFont(self.font(size_pt, bold, italic))
        self.p.setPen(qcolor(rgb))
        flags = int(align) | (int(Qt.TextFlag.TextWordWrap) if wrap else 0)
        br = self.p.drawText(self.rectf(x, y, w, h), flags, s)
        return QRectF(br.x() / self.s, br.y() / self.s, br.width() / self.s, br.height() / self.s)

    def wrapped_height(self, s: str, w: float, size_pt: float, bold: bool = False) -> float:
        fm = QFontMetricsF(self.font(size_pt, bold), self.p.device())
        r = fm.boundingRect(QRectF(0, 0, w * self.s, 1e6), int(Qt.TextFlag.TextWordWrap), s)
        return r.height() / self.s

    def image(self, x, y, w, h, img: QImage):
        self.p.drawImage(self.rectf(x, y, w, h), img)
