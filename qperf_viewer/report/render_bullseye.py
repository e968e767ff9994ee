"""QPainter drawing of the AHA 16-segment bulls-eye and its colour bar (geometry in
:mod:`.bullseye`)."""

from __future__ import annotations

import math
from collections.abc import Mapping

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QLinearGradient, QPainterPath

from qperf_viewer.sectors import TERRITORIES

from .bullseye import (
    APEX_RADIUS,
    LUT,
    TERRITORY_LABEL_ANGLES,
    WEDGES,
    colour_of,
    territory_edges,
    text_colour_on,
)
from .render import (
    ALERT,
    INK,
    MUTED,
    NOT_COVERED_FILL,
    UNRELIABLE_FILL,
    Canvas,
    qcolor,
)
from .text import NOT_COVERED, OK, UNRELIABLE

A = Qt.AlignmentFlag
CENTRE = A.AlignHCenter | A.AlignVCenter


def wedge_path(c: Canvas, cx: float, cy: float, radius: float, segment: int) -> QPainterPath:
    """Closed path (device px) of a segment's wedge; centre and radius in mm."""
    w = WEDGES[segment]
    outer = c.rectf(
        cx - radius * w.r_outer, cy - radius * w.r_outer, *(2 * radius * w.r_outer,) * 2
    )
    inner = c.rectf(
        cx - radius * w.r_inner, cy - radius * w.r_inner, *(2 * radius * w.r_inner,) * 2
    )
    path = QPainterPath()
    path.arcMoveTo(outer, w.start_deg)
    path.arcTo(outer, w.start_deg, w.span_deg)
    path.arcTo(inner, w.start_deg + w.span_deg, -w.span_deg)
    path.closeSubpath()
    return path


def _polar(cx, cy, r, deg):
    t = math.radians(deg)
    return cx + r * math.cos(t), cy - r * math.sin(t)


def draw_bullseye(
    c: Canvas,
    cx: float,
    cy: float,
    radius: float,
    values: Mapping[int, float | None],
    texts: Mapping[int, str],
    status: Mapping[int, str],
    vmin: float,
    vmax: float,
    highlight: set[int] | frozenset[int] = frozenset(),
    territories: bool = True,
    segment_numbers: bool = True,
    value_pt: float = 7.4,
) -> dict[int, tuple[float, float, float, float]]:
    """Draw a 16-segment bulls-eye centred at (cx, cy) mm with ``radius`` mm.

    values: segment -> number for the fill colour (None: no colour); texts: what is written in
    each segment; status: 'ok' | 'unreliable' | 'not covered' (fills for the latter two);
    highlight: segments outlined in red (below threshold). Returns segment -> the bounding box
    (x, y, w, h) in mm of the value written there (tests read the text back from the PDF).
    """
    boxes = {}
    for s, w in WEDGES.items():
        path = wedge_path(c, cx, cy, radius, s)
        st = status.get(s, NOT_COVERED)
        v = values.get(s)
        if st == OK and v is not None:
            fill = colour_of(v, vmin, vmax)
            c.path(path, fill=fill)
        elif st == UNRELIABLE:
            c.path(path, fill=UNRELIABLE_FILL)
            c.path(path, fill=(150, 150, 150), pattern=Qt.BrushStyle.BDiagPattern)
            fill = UNRELIABLE_FILL
        else:
            c.path(path, fill=NOT_COVERED_FILL)
            fill = NOT_COVERED_FILL
        c.path(path, stroke=(255, 255, 255), width_mm=0.35)
        if s in highlight:
            c.p.save()
            c.p.setClipPath(path)
            c.path(path, stroke=ALERT, width_mm=1.4)
            c.p.restore()
        # text: small segment number above the value
        ux, uy = w.centre()
        tx, ty = cx + radius * ux, cy - radius * uy
        ink = text_colour_on(fill)
        bw = radius * (0.5 if w.span_deg < 80 else 0.45)
        if segment_numbers:
            c.text(tx - bw / 2, ty - 3.0, bw, 2.2, str(s), 4.8, rgb=_soft(ink), align=CENTRE)
            vy = ty - 0.9
        else:
            vy = ty - 1.5
        bold = s in highlight
        pt = value_pt if w.span_deg < 80 else value_pt - 0.8
        br = c.text(
            tx - bw / 2, vy, bw, 3.0, texts.get(s, ""), pt, bold=bold, rgb=ink, align=CENTRE
        )
        boxes[s] = (br.x(), br.y(), br.width(), br.height())
    # apex (17) not measured: plain disc
    ar = radius * APEX_RADIUS
    apex = QPainterPath()
    apex.addEllipse(c.rectf(cx - ar, cy - ar, 2 * ar, 2 * ar))
    c.path(apex, fill=(255, 255, 255), stroke=(200, 200, 200), width_mm=0.25)
    if territories:
        draw_territory_edges(c, cx, cy, radius)
    outline = QPainterPath()
    outline.addEllipse(c.rectf(cx - radius, cy - radius, 2 * radius, 2 * radius))
    c.path(outline, stroke=INK, width_mm=0.3)
    return boxes


def _soft(rgb):
    return (70, 70, 70) if rgb == (0, 0, 0) else (235, 235, 235)


def draw_territory_edges(c: Canvas, cx: float, cy: float, radius: float, labels: bool = True):
    """Thick lines between the LAD, RCA and LCX territories, and their names outside."""
    radials, arcs = territory_edges()
    pen_w = 0.55
    for ang, r0, r1 in radials:
        x0, y0 = _polar(cx, cy, radius * r0, ang)
        x1, y1 = _polar(cx, cy, radius * r1, ang)
        c.line(x0, y0, x1, y1, rgb=INK, width_mm=pen_w)
    for r, start, span in arcs:
        rr = radius * r
        path = QPainterPath()
        rect = c.rectf(cx - rr, cy - rr, 2 * rr, 2 * rr)
        path.arcMoveTo(rect, start)
        path.arcTo(rect, start, span)
        c.path(path, stroke=INK, width_mm=pen_w)
    if labels:
        for terr in TERRITORIES:
            x, y = _polar(cx, cy, radius + 3.2, TERRITORY_LABEL_ANGLES[terr])
            c.text(x - 5, y - 1.6, 10, 3.2, terr, 6.0, bold=True, rgb=MUTED, align=CENTRE)


def draw_colour_bar(
    c: Canvas,
    x: float,
    y: float,
    w: float,
    h: float,
    vmin: float,
    vmax: float,
    unit: str,
    ticks: list[float] | None = None,
    threshold: float | None = None,
    vertical: bool = False,
    ink=INK,
):
    """Colour scale with ticks (and an optional threshold mark), box in mm."""
    rect = c.rectf(x, y, w, h)
    if vertical:
        grad = QLinearGradient(rect.bottomLeft(), rect.topLeft())
    else:
        grad = QLinearGradient(rect.topLeft(), rect.topRight())
    n = len(LUT)
    for k in range(0, n, 16):
        grad.setColorAt(k / (n - 1), qcolor(LUT[k]))
    grad.setColorAt(1.0, qcolor(LUT[-1]))
    c.p.setPen(c.pen((120, 120, 120), 0.15))
    c.p.setBrush(grad)
    c.p.drawRect(rect)
    ticks = ticks if ticks is not None else _ticks(vmin, vmax)
    for t in ticks:
        f = (t - vmin) / (vmax - vmin)
        if vertical:
            ty = y + h - f * h
            c.line(x + w, ty, x + w + 0.8, ty, rgb=ink, width_mm=0.15)
            c.text(x + w + 1.0, ty - 1.5, 10, 3, f"{t:g}", 5.8, rgb=ink)
        else:
            tx = x + f * w
            c.line(tx, y + h, tx, y + h + 0.8, rgb=ink, width_mm=0.15)
            c.text(tx - 5, y + h + 0.8, 10, 2.6, f"{t:g}", 5.8, rgb=ink, align=CENTRE)
    if threshold is not None and vmin < threshold < vmax:
        f = (threshold - vmin) / (vmax - vmin)
        if vertical:
            ty = y + h - f * h
            c.line(x - 0.8, ty, x + w, ty, rgb=ALERT, width_mm=0.4)
        else:
            tx = x + f * w
            c.line(tx, y - 0.8, tx, y + h, rgb=ALERT, width_mm=0.4)
    if unit:
        soft = MUTED if ink == INK else ink
        if vertical:
            c.text(x - 2, y - 4.0, w + 12, 3, unit, 5.8, rgb=soft)
        else:
            c.text(x + w + 1.0, y - 0.3, 18, h + 0.6, unit, 5.8, rgb=soft)


def _ticks(vmin: float, vmax: float) -> list[float]:
    span = vmax - vmin
    step = 10 ** math.floor(math.log10(span / 4)) if span > 0 else 1.0
    for m in (1, 2, 5, 10):
        if span / (m * step) <= 5:
            step *= m
            break
    first = math.ceil(vmin / step) * step
    out, t = [], first
    while t <= vmax + 1e-9:
        out.append(round(t, 10))
        t += step
    return out


def nice_ticks(vmin: float, vmax: float) -> list[float]:
    """About 4-6 round tick values covering [vmin, vmax]."""
    return _ticks(vmin, vmax)


def text_box_rect(box: tuple[float, float, float, float]) -> QRectF:
    return QRectF(*box)
