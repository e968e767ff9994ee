"""Live AHA 16-segment bulls-eye drawn by the report's own QPainter code.

``qperf_viewer.report.render_bullseye.draw_bullseye`` draws in millimetres on a
``report.render.Canvas``; this widget scales the painter so that a bulls-eye of
:data:`RADIUS_MM` fills it, so the screen and the PDF show the same picture (colours, value
texts, unreliable / not-covered fills, highlighted segments, territories).
"""

from __future__ import annotations

from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import QSizePolicy, QWidget

from qperf_viewer.report.render import Canvas
from qperf_viewer.report.render_bullseye import draw_bullseye, draw_colour_bar
from qperf_viewer.report.text import NOT_COVERED

RADIUS_MM = 24.0
SCREEN_DPI = 96.0


class BullseyeView(QWidget):
    """One bulls-eye; :meth:`set_data` redraws it."""

    def __init__(self, title: str, unit: str, vmin: float, vmax: float, parent=None) -> None:
        super().__init__(parent)
        self.title, self.unit, self.vmin, self.vmax = title, unit, vmin, vmax
        self.values: dict[int, float | None] = {}
        self.texts: dict[int, str] = {}
        self.status: dict[int, str] = {}
        self.highlight: set[int] = set()
        self.threshold: float | None = None
        self.message = "No values"
        self.setMinimumSize(170, 200)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def set_data(
        self,
        values: dict[int, float | None],
        texts: dict[int, str],
        status: dict[int, str],
        highlight: set[int] | None = None,
        threshold: float | None = None,
        message: str = "",
    ) -> None:
        """values: colour per segment; texts: written in the segments; status: 'ok' |
        'unreliable' | 'not covered'; highlight: outlined in red; threshold: marked on the
        colour bar. Empty ``values`` with a ``message`` shows the message instead."""
        self.values, self.texts, self.status = dict(values), dict(texts), dict(status)
        self.highlight = set(highlight or ())
        self.threshold = threshold
        self.message = message
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt naming
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(255, 255, 255))
        px_per_mm = SCREEN_DPI / 25.4
        # drawing extent in mm: title 6, bulls-eye 2R, colour bar and unit 12
        need_w, need_h = 2 * RADIUS_MM + 8, 2 * RADIUS_MM + 20
        k = min(self.width() / (need_w * px_per_mm), self.height() / (need_h * px_per_mm))
        p.scale(k, k)
        c = Canvas(p, SCREEN_DPI)
        w_mm = self.width() / (k * px_per_mm)
        cx, cy = w_mm / 2, 6 + RADIUS_MM + 1
        c.text(0, 0.5, w_mm, 5, self.title, 9.0, bold=True, align=_centre())
        if not self.status or all(s == NOT_COVERED for s in self.status.values()):
            c.rect(
                cx - RADIUS_MM,
                cy - RADIUS_MM,
                2 * RADIUS_MM,
                2 * RADIUS_MM,
                fill=(248, 248, 248),
                stroke=(210, 210, 210),
            )
            c.text(
                cx - RADIUS_MM,
                cy - 4,
                2 * RADIUS_MM,
                8,
                self.message or "No values",
                7.0,
                rgb=(120, 120, 120),
                align=_centre(),
                wrap=True,
            )
        else:
            draw_bullseye(
                c,
                cx,
                cy,
                RADIUS_MM,
                self.values,
                self.texts,
                self.status,
                self.vmin,
                self.vmax,
                self.highlight,
            )
        draw_colour_bar(
            c,
            cx - 20,
            cy + RADIUS_MM + 3.0,
            40,
            2.4,
            self.vmin,
            self.vmax,
            "",
            threshold=self.threshold,
        )
        c.text(
            cx - 30,
            cy + RADIUS_MM + 8.4,
            60,
            2.8,
            self.unit,
            5.8,
            rgb=(110, 110, 110),
            align=_centre(),
        )
        p.end()


def _centre():
    from PySide6.QtCore import Qt

    return Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignVCenter
