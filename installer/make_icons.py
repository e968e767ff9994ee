"""Draw the application icon: ``resources/icons/qperf-viewer.svg`` and its PNG/ICO/ICNS renderings.

The icon is a stylised AHA 16-segment bulls-eye (basal and mid rings of six segments, an apical
ring of four) coloured with an inferno-like MBF scale, with a perfusion defect in the lateral
wall, on a dark rounded square. Run once after changing the drawing (the outputs are committed):

    QT_QPA_PLATFORM=offscreen python installer/make_icons.py

Outputs in ``resources/icons/``: ``qperf-viewer.svg`` (256 x 256 user units),
``qperf-viewer-<N>.png`` for N in :data:`PNG_SIZES` (N x N pixels, RGBA), ``qperf-viewer.png``
(256 px), ``qperf-viewer.ico`` (Windows, PNG-compressed entries) and ``qperf-viewer.icns``
(macOS, PNG entries).
"""

from __future__ import annotations

import math
import os
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ICON_DIR = ROOT / "resources" / "icons"
NAME = "qperf-viewer"

#: Square PNG sizes (px) written as separate files (hicolor theme sizes).
PNG_SIZES = (16, 32, 48, 64, 128, 256, 512)
#: Sizes (px) packed into the Windows .ico.
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)
#: macOS .icns entry type -> size (px).
ICNS_TYPES = {
    "icp4": 16,
    "icp5": 32,
    "icp6": 64,
    "ic07": 128,
    "ic08": 256,
    "ic09": 512,
    "ic10": 1024,
}

#: Inferno-like colour stops (value in [0, 1], hex colour).
_STOPS = [
    (0.0, "#000004"),
    (0.1, "#160b39"),
    (0.2, "#420a68"),
    (0.3, "#6a176e"),
    (0.4, "#932667"),
    (0.5, "#bc3754"),
    (0.6, "#dd513a"),
    (0.7, "#f37819"),
    (0.8, "#fca50a"),
    (0.9, "#f6d746"),
    (1.0, "#fcffa4"),
]

#: Normalised MBF per AHA segment 1..16 (lateral/LCX territory reduced: a perfusion defect).
SEGMENT_VALUES = {
    1: 0.86, 2: 0.92, 3: 0.88, 4: 0.80, 5: 0.42, 6: 0.55,
    7: 0.90, 8: 0.95, 9: 0.86, 10: 0.78, 11: 0.30, 12: 0.40,
    13: 0.84, 14: 0.93, 15: 0.76, 16: 0.28,
}  # fmt: skip


def colour(v: float) -> str:
    """Hex colour of value ``v`` in [0, 1] on the inferno-like scale."""
    v = min(max(v, 0.0), 1.0)
    for (v0, c0), (v1, c1) in zip(_STOPS, _STOPS[1:], strict=False):
        if v <= v1:
            t = (v - v0) / (v1 - v0)
            a = [int(c0[i : i + 2], 16) for i in (1, 3, 5)]
            b = [int(c1[i : i + 2], 16) for i in (1, 3, 5)]
            return "#" + "".join(f"{round(x + t * (y - x)):02x}" for x, y in zip(a, b, strict=True))
    return _STOPS[-1][1]


def _point(cx: float, cy: float, r: float, deg: float) -> tuple[float, float]:
    """Point at radius r and angle deg (counter-clockwise from +x, screen y down)."""
    a = math.radians(deg)
    return cx + r * math.cos(a), cy - r * math.sin(a)


def _sector(cx: float, cy: float, r0: float, r1: float, a0: float, a1: float) -> str:
    """SVG path of the annular sector r0..r1 between angles a0 < a1 (degrees, CCW)."""
    large = 1 if (a1 - a0) > 180 else 0
    p = [_point(cx, cy, r1, a0), _point(cx, cy, r1, a1)]
    q = [_point(cx, cy, r0, a1), _point(cx, cy, r0, a0)]
    return (
        f"M{p[0][0]:.2f},{p[0][1]:.2f} A{r1},{r1} 0 {large} 0 {p[1][0]:.2f},{p[1][1]:.2f} "
        f"L{q[0][0]:.2f},{q[0][1]:.2f} A{r0},{r0} 0 {large} 1 {q[1][0]:.2f},{q[1][1]:.2f} Z"
    )


def svg_text() -> str:
    """The icon as an SVG document (viewBox 0 0 256 256)."""
    cx = cy = 128.0
    rings = [(76.0, 104.0), (50.0, 76.0), (24.0, 50.0)]  # basal, mid, apical (radii)
    paths = []
    # AHA display: segment 1 (basal anterior) centred at the top, numbering counter-clockwise
    # (2 anteroseptal upper left ... 6 anterolateral upper right); apical 13 anterior at top.
    for ring, (r0, r1) in enumerate(rings[:2]):
        for k in range(6):
            seg = 1 + 6 * ring + k
            a0 = 60.0 + 60.0 * k
            paths.append((seg, _sector(cx, cy, r0, r1, a0, a0 + 60.0)))
    r0, r1 = rings[2]
    for k in range(4):
        a0 = 45.0 + 90.0 * k
        paths.append((13 + k, _sector(cx, cy, r0, r1, a0, a0 + 90.0)))
    body = "\n".join(f'    <path d="{d}" fill="{colour(SEGMENT_VALUES[s])}"/>' for s, d in paths)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="256" height="256" viewBox="0 0 256 256">
  <title>qperf-viewer</title>
  <defs>
    <linearGradient id="bg" x1="0" y1="0" x2="0" y2="1">
      <stop offset="0" stop-color="#1d2b4f"/>
      <stop offset="1" stop-color="#0a0f1f"/>
    </linearGradient>
  </defs>
  <rect x="8" y="8" width="240" height="240" rx="52" ry="52" fill="url(#bg)"/>
  <g stroke="#0a0f1f" stroke-width="4" stroke-linejoin="round">
{body}
  </g>
  <circle cx="{cx:g}" cy="{cy:g}" r="22" fill="#f6d746" stroke="#0a0f1f" stroke-width="4"/>
</svg>
"""


def render_png(svg: bytes, size: int) -> bytes:
    """PNG bytes of the SVG rendered at size x size pixels (Qt's SVG renderer)."""
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    renderer = QSvgRenderer(QByteArray(svg))
    if not renderer.isValid():
        raise ValueError("the icon SVG is not valid")
    img = QImage(size, size, QImage.Format.Format_ARGB32)
    img.fill(0)
    p = QPainter(img)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(p)
    p.end()
    buf = QBuffer()
    buf.open(QIODevice.OpenModeFlag.WriteOnly)
    img.save(buf, "PNG")
    return bytes(buf.data())


def ico_bytes(pngs: dict[int, bytes]) -> bytes:
    """A Windows .ico holding the PNGs (size px -> PNG bytes) as PNG-compressed entries."""
    sizes = sorted(pngs)
    head = struct.pack("<HHH", 0, 1, len(sizes))
    offset = 6 + 16 * len(sizes)
    entries, blobs = b"", b""
    for s in sizes:
        data = pngs[s]
        dim = 0 if s >= 256 else s
        entries += struct.pack("<BBBBHHII", dim, dim, 0, 0, 1, 32, len(data), offset)
        offset += len(data)
        blobs += data
    return head + entries + blobs


def icns_bytes(pngs: dict[str, bytes]) -> bytes:
    """A macOS .icns holding PNG entries (type code -> PNG bytes)."""
    body = b"".join(t.encode("ascii") + struct.pack(">I", 8 + len(d)) + d for t, d in pngs.items())
    return b"icns" + struct.pack(">I", 8 + len(body)) + body


def main() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtGui import QGuiApplication

    _app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
    ICON_DIR.mkdir(parents=True, exist_ok=True)
    svg = svg_text()
    (ICON_DIR / f"{NAME}.svg").write_text(svg)
    data = svg.encode()
    cache: dict[int, bytes] = {}

    def png(size: int) -> bytes:
        if size not in cache:
            cache[size] = render_png(data, size)
        return cache[size]

    for s in PNG_SIZES:
        (ICON_DIR / f"{NAME}-{s}.png").write_bytes(png(s))
    (ICON_DIR / f"{NAME}.png").write_bytes(png(256))
    (ICON_DIR / f"{NAME}.ico").write_bytes(ico_bytes({s: png(s) for s in ICO_SIZES}))
    (ICON_DIR / f"{NAME}.icns").write_bytes(icns_bytes({t: png(s) for t, s in ICNS_TYPES.items()}))
    total = sum(p.stat().st_size for p in ICON_DIR.iterdir() if p.is_file())
    print(f"{ICON_DIR}: {len(list(ICON_DIR.iterdir()))} files, {total / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
