"""The picture of the project's AHA convention for the docs (``docs/aha_convention.png``),
drawn with the report's own painter code (QtGui).

``python -m qperf_viewer.report.render_convention docs/aha_convention.png``
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPainter, QPainterPath, QPolygonF

from qperf_viewer.sectors import TERRITORY_OF_SEGMENT

from .bullseye import WEDGES
from .render import ACCENT, ALERT, INK, MUTED, Canvas, ensure_app
from .render_bullseye import draw_territory_edges, wedge_path

A = Qt.AlignmentFlag
W_MM, H_MM = 250.0, 118.0
TERR_RGB = {"LAD": (198, 219, 239), "RCA": (199, 233, 192), "LCX": (253, 208, 162)}
MYO_RGB = (236, 170, 160)
RV_RGB = (205, 222, 245)
LV_RGB = (250, 245, 245)


def _polar(cx, cy, r, deg):
    t = math.radians(deg)
    return cx + r * math.cos(t), cy - r * math.sin(t)


def _arrow_head(c: Canvas, x, y, deg_dir, rgb, size=1.6):
    """Filled arrow head at (x, y) pointing along display direction ``deg_dir``."""
    t = math.radians(deg_dir)
    ux, uy = math.cos(t), -math.sin(t)
    px, py = -uy, ux
    pts = [
        (x, y),
        (x - size * ux + 0.5 * size * px, y - size * uy + 0.5 * size * py),
        (x - size * ux - 0.5 * size * px, y - size * uy - 0.5 * size * py),
    ]
    poly = QPolygonF([c.pt(a, b) for a, b in pts])
    path = QPainterPath()
    path.addPolygon(poly)
    path.closeSubpath()
    c.path(path, fill=rgb)


def _arc_arrow(c: Canvas, cx, cy, r, a0, a1, rgb, width=0.35, head=True):
    path = QPainterPath()
    rect = c.rectf(cx - r, cy - r, 2 * r, 2 * r)
    path.arcMoveTo(rect, a0)
    path.arcTo(rect, a0, a1 - a0)
    c.path(path, stroke=rgb, width_mm=width)
    if head:
        x, y = _polar(cx, cy, r, a1)
        _arrow_head(c, x, y, a1 + (90 if a1 > a0 else -90), rgb)


def _bullseye_key(c: Canvas, cx, cy, r):
    for s in WEDGES:
        path = wedge_path(c, cx, cy, r, s)
        c.path(path, fill=TERR_RGB[TERRITORY_OF_SEGMENT[s]], stroke=(255, 255, 255), width_mm=0.4)
        ux, uy = WEDGES[s].centre()
        c.text(
            cx + r * ux - 5,
            cy - r * uy - 2.2,
            10,
            4.4,
            str(s),
            9.5,
            bold=True,
            rgb=INK,
            align=A.AlignCenter,
        )
    apex = QPainterPath()
    apex.addEllipse(c.pt(cx, cy), 0.25 * r * c.s, 0.25 * r * c.s)
    c.path(apex, fill=(255, 255, 255), stroke=(190, 190, 190), width_mm=0.3)
    c.text(cx - 6, cy - 2, 12, 4, "(17)", 6.5, rgb=MUTED, align=A.AlignCenter)
    draw_territory_edges(c, cx, cy, r, labels=False)
    ring = QPainterPath()
    ring.addEllipse(c.pt(cx, cy), r * c.s, r * c.s)
    c.path(ring, stroke=INK, width_mm=0.35)
    for txt, ang in (("anterior", 90), ("inferior", 270)):
        x, y = _polar(cx, cy, r + 3.2, ang)
        c.text(x - 12, y - 1.8, 24, 3.6, txt, 6.5, rgb=MUTED, align=A.AlignCenter)
    for txt, ang in (("septal", 180), ("lateral", 0)):
        x, y = _polar(cx, cy, r + 6.0, ang)
        c.text(x - 6, y - 1.8, 12, 3.6, txt, 6.5, rgb=MUTED, align=A.AlignCenter)
    x = cx - 27.0
    for terr, rgb in TERR_RGB.items():
        c.rect(x, cy + r + 6.0, 3.2, 3.2, fill=rgb, stroke=(150, 150, 150), width_mm=0.15)
        c.text(x + 4.0, cy + r + 5.8, 12, 3.6, terr, 7.0, bold=True, rgb=INK)
        x += 19.0


def _sax(c: Canvas, cx, cy, apical: bool):
    """Short-axis sketch seen from the apex: RV on the left, insertion points, sectors."""
    r_in, r_out = 11.0, 17.5
    a_ant, a_inf = 122.0, 238.0  # display angles of the insertion points (CCW, y up)
    # RV: ellipse through both insertion points
    xa, ya = _polar(cx, cy, r_out, a_ant)
    ecx = cx - 12.0
    rx = 15.0
    ry = abs(ya - cy) / math.sqrt(max(1 - ((xa - ecx) / rx) ** 2, 1e-3))
    rv = QPainterPath()
    rv.addEllipse(c.pt(ecx, cy), rx * c.s, ry * c.s)
    c.path(rv, fill=RV_RGB, stroke=(120, 150, 200), width_mm=0.3)
    c.text(ecx - 0.8 * rx, cy + 0.3 * ry, 10, 4, "RV", 8.0, bold=True, rgb=(70, 100, 160))
    ring = QPainterPath()
    ring.addEllipse(c.pt(cx, cy), r_out * c.s, r_out * c.s)
    c.path(ring, fill=MYO_RGB, stroke=(150, 80, 70), width_mm=0.3)
    lv = QPainterPath()
    lv.addEllipse(c.pt(cx, cy), r_in * c.s, r_in * c.s)
    c.path(lv, fill=LV_RGB, stroke=(150, 80, 70), width_mm=0.3)
    if apical:
        bis = 0.5 * (a_ant + a_inf)
        starts = [bis - 45 + 90 * k for k in range(4)]
        segs = [14, 15, 16, 13]
        width = 90.0
    else:
        starts = [a_ant + 60 * k for k in range(6)]
        segs = [8, 9, 10, 11, 12, 7]
        width = 60.0
    for a in starts:
        x0, y0 = _polar(cx, cy, r_in, a)
        x1, y1 = _polar(cx, cy, r_out + 1.5, a)
        c.line(x0, y0, x1, y1, rgb=INK, width_mm=0.3)
    for a, s in zip(starts, segs, strict=True):
        x, y = _polar(cx, cy, 0.5 * (r_in + r_out), a + width / 2)
        c.text(x - 4, y - 2, 8, 4, str(s), 8.0, bold=True, rgb=INK, align=A.AlignCenter)
    if apical:
        bx, by = _polar(cx, cy, r_out + 14.0, bis)
        c.line(cx, cy, bx, by, rgb=ALERT, width_mm=0.3, style=Qt.PenStyle.DashLine)
        c.text(bx - 8, by + 0.8, 30, 3.4, "bisector (\u03b8 = \u03c3/2)", 6.3, rgb=ALERT)
    # insertion points and the septal angle
    for a, name in ((a_ant, "anterior insertion"), (a_inf, "inferior insertion")):
        x, y = _polar(cx, cy, r_out, a)
        dot = QPainterPath()
        dot.addEllipse(c.pt(x, y), 1.0 * c.s, 1.0 * c.s)
        c.path(dot, fill=(250, 200, 40), stroke=INK, width_mm=0.25)
        dy = -5.2 if a < 180 else 1.8
        c.text(x - 18, y + dy, 26, 3.4, name, 6.3, rgb=INK, align=A.AlignCenter)
    _arc_arrow(c, cx, cy, 5.5, a_ant, a_inf, ALERT, 0.3)
    c.text(cx - 9.2, cy - 1.8, 6, 3.6, "\u03c3", 8.0, bold=True, rgb=ALERT, align=A.AlignCenter)
    # direction of increasing angle
    _arc_arrow(c, cx, cy, r_out + 3.0, a_ant + 6.0, a_ant + 42.0, ACCENT, 0.45)
    x, y = _polar(cx, cy, r_out + 6.0, a_ant + 30.0)
    c.text(x - 8, y - 1.7, 8, 3.4, "+\u03b8", 7.0, bold=True, rgb=ACCENT, align=A.AlignRight)
    x0, y0 = _polar(cx, cy, r_out + 1.5, a_ant)
    c.text(x0 - 3.5, y0 - 9.5, 10, 3.4, "\u03b8 = 0", 6.5, bold=True, rgb=ACCENT)
    # normal towards the viewer
    nx, ny = cx + 8.0, cy + r_out + 7.0
    ring = QPainterPath()
    ring.addEllipse(c.pt(nx, ny), 1.6 * c.s, 1.6 * c.s)
    c.path(ring, stroke=INK, width_mm=0.3)
    dot = QPainterPath()
    dot.addEllipse(c.pt(nx, ny), 0.45 * c.s, 0.45 * c.s)
    c.path(dot, fill=INK)
    c.text(nx + 2.4, ny - 1.8, 30, 3.6, "n: base \u2192 apex", 6.3, rgb=INK)


def paint_convention(c: Canvas):
    c.rect(0, 0, W_MM, H_MM, fill=(255, 255, 255))
    c.text(
        6, 3, W_MM - 12, 6, "AHA 16-segment convention of qperf-viewer", 12.0, bold=True, rgb=ACCENT
    )
    cols = [(6, 76), (88, 78), (170, 78)]
    titles = [
        "Bulls-eye (Cerqueira et al. 2002)",
        "Basal / mid slice (mid shown)",
        "Apical slice",
    ]
    for (x, w), t in zip(cols, titles, strict=True):
        c.text(x, 11, w, 5, t, 9.0, bold=True, rgb=INK, align=A.AlignHCenter | A.AlignTop)
    _bullseye_key(c, cols[0][0] + 38, 52, 28)
    _sax(c, cols[1][0] + 42, 52, apical=False)
    _sax(c, cols[2][0] + 42, 52, apical=True)
    texts = [
        "Segments 1-6 basal, 7-12 mid, 13-16 apical (17, the apex, is not measured). Shaded: "
        "usual territories LAD (blue), RCA (green), LCX (orange).",
        "Angles \u03b8 are right-handed about n, the slice normal pointing base \u2192 apex "
        "(counter-clockwise seen from the apex), in patient coordinates. 60\u00b0 sectors "
        "from the anterior RV insertion: 8 = [0\u00b0, 60\u00b0), 9, 10, 11, 12, 7.",
        "90\u00b0 sectors; 14 is centred on the bisector of the septal angle \u03c3 from the "
        "anterior to the inferior insertion; then 15, 16, 13 with increasing \u03b8.",
    ]
    for (x, w), t in zip(cols, texts, strict=True):
        c.text(x, 96, w, 20, t, 6.8, rgb=INK, wrap=True, align=A.AlignLeft | A.AlignTop)


def render_convention_png(path: str | Path, dpi: float = 200.0) -> Path:
    ensure_app()
    w, h = int(round(W_MM / 25.4 * dpi)), int(round(H_MM / 25.4 * dpi))
    img = QImage(w, h, QImage.Format.Format_RGB888)
    dpm = int(round(dpi / 0.0254))
    img.setDotsPerMeterX(dpm)
    img.setDotsPerMeterY(dpm)
    img.fill(0xFFFFFF)
    painter = QPainter(img)
    try:
        paint_convention(Canvas(painter, dpi))
    finally:
        painter.end()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not img.save(str(path)):
        raise OSError(f"Cannot write {path}")
    return path


if __name__ == "__main__":  # pragma: no cover
    out = sys.argv[1] if len(sys.argv) > 1 else "docs/aha_convention.png"
    print(render_convention_png(out))
