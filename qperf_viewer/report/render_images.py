"""Slice tiles (peak-enhancement image, MBF map with contours and sector lines) and curve plots
for the report (QtGui)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QPainterPath
from scipy import ndimage

from qperf_viewer.exam import LABEL_LV, LABEL_MYO, LABEL_RV
from qperf_viewer.sectors import sector_lines, segment_label_points

from .bullseye import apply_lut
from .data import SliceReport
from .render import INK, MUTED, RULE, Canvas, gray_to_qimage, qcolor, rgb_to_qimage
from .render_bullseye import nice_ticks

A = Qt.AlignmentFlag
ENDO_RGB = (235, 50, 50)
EPI_RGB = (60, 210, 90)
RV_RGB = (240, 200, 40)
SECTOR_RGB = (255, 255, 255)
UPSAMPLE = 4


@dataclass(frozen=True)
class Crop:
    """Square crop (mm) around the LV: pixel rows r0:r1, cols c0:c1 (may exceed the image)."""

    r0: int
    r1: int
    c0: int
    c1: int

    def to_tile(self, x, y, w, h, row, col):
        """Pixel-centre (row, col) -> tile mm."""
        fx = (col - (self.c0 - 0.5)) / (self.c1 - self.c0)
        fy = (row - (self.r0 - 0.5)) / (self.r1 - self.r0)
        return x + fx * w, y + fy * h


def heart_crop(sl: SliceReport, min_half_mm: float = 32.0) -> Crop:
    """Square field of view (in mm) centred on the LV, wide enough for the myocardium and RV."""
    shape = sl.peak_image.shape if sl.peak_image is not None else sl.labels.shape
    dy, dx = sl.geometry.pixel_spacing_mm if sl.geometry else (1.0, 1.0)
    if sl.lv_centre is not None:
        cy, cx = sl.lv_centre
    elif sl.labels is not None and (sl.labels == LABEL_MYO).any():
        cy, cx = np.argwhere(sl.labels == LABEL_MYO).mean(axis=0)
    else:
        cy, cx = (shape[0] - 1) / 2, (shape[1] - 1) / 2
    half = min_half_mm
    if sl.labels is not None and (sl.labels == LABEL_MYO).any():
        rr, cc = np.nonzero(sl.labels == LABEL_MYO)
        ext = np.sqrt(((rr - cy) * dy) ** 2 + ((cc - cx) * dx) ** 2).max()
        half = max(half, 1.45 * ext)
    hr, hc = half / dy, half / dx
    r0, c0 = int(round(cy - hr)), int(round(cx - hc))
    return Crop(r0, r0 + max(int(round(2 * hr)), 2), c0, c0 + max(int(round(2 * hc)), 2))


def _cut(a: np.ndarray, crop: Crop, fill=0) -> np.ndarray:
    out = np.full((crop.r1 - crop.r0, crop.c1 - crop.c0) + a.shape[2:], fill, dtype=a.dtype)
    r0, r1 = max(crop.r0, 0), min(crop.r1, a.shape[0])
    c0, c1 = max(crop.c0, 0), min(crop.c1, a.shape[1])
    if r1 > r0 and c1 > c0:
        out[r0 - crop.r0 : r1 - crop.r0, c0 - crop.c0 : c1 - crop.c0] = a[r0:r1, c0:c1]
    return out


def _window(img: np.ndarray) -> np.ndarray:
    finite = img[np.isfinite(img)]
    if finite.size == 0:
        return np.zeros(img.shape, np.uint8)
    lo, hi = np.percentile(finite, (1.0, 99.5))
    if hi <= lo:
        hi = lo + 1.0
    g = np.clip((np.nan_to_num(img, nan=lo) - lo) / (hi - lo), 0, 1)
    return np.round(255 * g).astype(np.uint8)


def _upsample_smooth(a: np.ndarray, k: int = UPSAMPLE) -> np.ndarray:
    """Bilinear upsampling by k with pixel-centre alignment."""
    h, w = a.shape
    rr = (np.arange(h * k) + 0.5) / k - 0.5
    cc = (np.arange(w * k) + 0.5) / k - 0.5
    R, C = np.meshgrid(rr, cc, indexing="ij")
    return ndimage.map_coordinates(a.astype(float), [R, C], order=1, mode="nearest")


def _boundary_path(c: Canvas, mask: np.ndarray, crop: Crop, x, y, w, h) -> QPainterPath:
    """Outline of a binary mask (smoothed by bilinear upsampling) as tile line segments."""
    m = _upsample_smooth(mask.astype(float)) > 0.5
    k = UPSAMPLE
    path = QPainterPath()
    if not m.any():
        return path
    mp = np.pad(m, 1)
    # horizontal edges (between row a-1 and a) and vertical ones (between col b-1 and b)
    hz = np.argwhere(mp[1:, 1:-1] != mp[:-1, 1:-1])
    vt = np.argwhere(mp[1:-1, 1:] != mp[1:-1, :-1])

    def tile(ra, cb):  # upsampled corner -> original pixel-centre coords -> tile mm
        row = crop.r0 + ra / k - 0.5
        col = crop.c0 + cb / k - 0.5
        return crop.to_tile(x, y, w, h, row, col)

    for a, b in hz:
        x0, y0 = tile(a, b)
        x1, y1 = tile(a, b + 1)
        path.moveTo(c.pt(x0, y0))
        path.lineTo(c.pt(x1, y1))
    for a, b in vt:
        x0, y0 = tile(a, b)
        x1, y1 = tile(a + 1, b)
        path.moveTo(c.pt(x0, y0))
        path.lineTo(c.pt(x1, y1))
    return path


def draw_peak_tile(c: Canvas, sl: SliceReport, x, y, size, crop: Crop | None = None):
    """Peak-enhancement image of the slice in a square tile (mm)."""
    crop = crop or heart_crop(sl)
    c.rect(x, y, size, size, fill=(0, 0, 0))
    if sl.peak_image is None:
        c.text(x, y, size, size, "no image", 6.5, rgb=(200, 200, 200), align=A.AlignCenter)
        return crop
    img = _cut(np.asarray(sl.peak_image, dtype=float), crop, fill=np.nan)
    g = _window(img)
    g = np.clip(_upsample_smooth(g), 0, 255).astype(np.uint8)
    c.image(x, y, size, size, gray_to_qimage(g))
    return crop


def draw_map_tile(
    c: Canvas,
    sl: SliceReport,
    x,
    y,
    size,
    vmin: float,
    vmax: float,
    crop: Crop | None = None,
    sectors: bool = True,
):
    """MBF map over the dimmed image, endo/epi contours, RV outline, insertion points, sector
    lines and segment numbers, in a square tile (mm)."""
    crop = crop or heart_crop(sl)
    c.rect(x, y, size, size, fill=(0, 0, 0))
    base = np.zeros((crop.r1 - crop.r0, crop.c1 - crop.c0, 3), np.uint8)
    if sl.peak_image is not None:
        g = _window(_cut(np.asarray(sl.peak_image, dtype=float), crop, fill=np.nan))
        base[:] = (0.45 * g)[..., None].astype(np.uint8)
    if sl.mbf_ml_min_g is not None and sl.labels is not None:
        mbf = _cut(np.asarray(sl.mbf_ml_min_g, dtype=float), crop, fill=0.0)
        valid = _cut(np.asarray(sl.mbf_valid if sl.mbf_valid is not None else mbf > 0), crop, 0)
        lab = _cut(np.asarray(sl.labels), crop, 0)
        myo = lab == LABEL_MYO
        col = apply_lut(mbf, vmin, vmax)
        show = myo & valid.astype(bool)
        base[show] = col[show]
        base[myo & ~valid.astype(bool)] = (90, 90, 90)
    big = np.repeat(np.repeat(base, UPSAMPLE, axis=0), UPSAMPLE, axis=1)
    c.image(x, y, size, size, rgb_to_qimage(big))
    if sl.labels is not None:
        lab = _cut(np.asarray(sl.labels), crop, 0)
        c.p.save()
        c.p.setClipRect(c.rectf(x, y, size, size))
        c.path(
            _boundary_path(c, lab == LABEL_RV, crop, x, y, size, size), stroke=RV_RGB, width_mm=0.2
        )
        c.path(
            _boundary_path(c, lab == LABEL_LV, crop, x, y, size, size),
            stroke=ENDO_RGB,
            width_mm=0.3,
        )
        c.path(
            _boundary_path(c, (lab == LABEL_LV) | (lab == LABEL_MYO), crop, x, y, size, size),
            stroke=EPI_RGB,
            width_mm=0.3,
        )
        if sectors:
            _draw_sectors(c, sl, crop, x, y, size)
        c.p.restore()
    return crop


def _draw_sectors(c: Canvas, sl: SliceReport, crop: Crop, x, y, size):
    pts = (sl.lv_centre, sl.rv_insertion_anterior, sl.rv_insertion_inferior)
    if sl.geometry is None or sl.position is None or any(p is None for p in pts):
        return
    lab = sl.labels
    dy, dx = sl.geometry.pixel_spacing_mm
    rr, cc = np.nonzero(lab == LABEL_MYO)
    if rr.size == 0:
        return
    cy, cx = sl.lv_centre
    rad = np.sqrt(((rr - cy) * dy) ** 2 + ((cc - cx) * dx) ** 2)
    r_in, r_out = float(np.percentile(rad, 2)), float(np.percentile(rad, 98))
    try:
        lines = sector_lines(sl.geometry, *pts, sl.position)
        labels = segment_label_points(sl.geometry, *pts, sl.position, r_out + 4.5)
    except Exception:  # implausible points: no sectors drawn (flagged elsewhere)
        return
    for ln in lines:
        p0 = ln.end_point(sl.lv_centre, max(r_in - 2.0, 0.0), (dy, dx))
        p1 = ln.end_point(sl.lv_centre, r_out + 2.0, (dy, dx))
        x0, y0 = crop.to_tile(x, y, size, size, *p0)
        x1, y1 = crop.to_tile(x, y, size, size, *p1)
        c.line(x0, y0, x1, y1, rgb=SECTOR_RGB, width_mm=0.25)
    for seg, (r, col) in labels.items():
        tx, ty = crop.to_tile(x, y, size, size, r, col)
        c.text(
            tx - 3,
            ty - 1.4,
            6,
            2.8,
            str(seg),
            5.2,
            bold=True,
            rgb=(255, 255, 255),
            align=A.AlignCenter,
        )
    for p in pts[1:]:
        tx, ty = crop.to_tile(x, y, size, size, *p)
        path = QPainterPath()
        path.addEllipse(c.pt(tx, ty), 0.7 * c.s, 0.7 * c.s)
        c.path(path, fill=RV_RGB, stroke=(0, 0, 0), width_mm=0.15)


# --------------------------------------------------------------------------- plots
@dataclass
class Series:
    """One line of a plot: x (s), y, colour, legend label, dashed."""

    x: np.ndarray
    y: np.ndarray
    rgb: tuple[int, int, int]
    label: str = ""
    dashed: bool = False
    width_mm: float = 0.35


def draw_plot(
    c: Canvas,
    x,
    y,
    w,
    h,
    series: list[Series],
    title: str,
    xlabel: str,
    ylabel: str,
    legend: bool = True,
):
    """A small line plot with axes, ticks and legend in the box (mm)."""
    c.text(x, y, w, 3.4, title, 7.0, bold=True, rgb=INK)
    px, py = x + 9.0, y + 4.5
    pw, ph = w - 10.5, h - 4.5 - 8.0
    c.rect(px, py, pw, ph, fill=(255, 255, 255), stroke=RULE, width_mm=0.2)
    good = [s for s in series if np.size(s.x) > 1 and np.isfinite(s.y).any()]
    if not good:
        c.text(px, py, pw, ph, "no curve", 6.5, rgb=MUTED, align=A.AlignCenter)
        return
    xs = np.concatenate([np.asarray(s.x, float)[np.isfinite(s.y)] for s in good])
    ys = np.concatenate([np.asarray(s.y, float)[np.isfinite(s.y)] for s in good])
    x0, x1 = float(xs.min()), float(xs.max())
    y0, y1 = min(0.0, float(ys.min())), float(ys.max())
    if x1 <= x0:
        x1 = x0 + 1.0
    if y1 <= y0:
        y1 = y0 + 1.0
    y1 += 0.05 * (y1 - y0)

    def fx(v):
        return px + (v - x0) / (x1 - x0) * pw

    def fy(v):
        return py + ph - (v - y0) / (y1 - y0) * ph

    for t in nice_ticks(x0, x1):
        if x0 <= t <= x1:
            c.line(fx(t), py + ph, fx(t), py + ph + 0.7, rgb=INK, width_mm=0.15)
            c.line(fx(t), py, fx(t), py + ph, rgb=(235, 235, 235), width_mm=0.1)
            c.text(
                fx(t) - 5,
                py + ph + 0.7,
                10,
                2.6,
                f"{t:g}",
                5.5,
                rgb=INK,
                align=A.AlignHCenter | A.AlignTop,
            )
    for t in nice_ticks(y0, y1):
        if y0 <= t <= y1:
            c.line(px - 0.7, fy(t), px, fy(t), rgb=INK, width_mm=0.15)
            c.line(px, fy(t), px + pw, fy(t), rgb=(235, 235, 235), width_mm=0.1)
            c.text(
                px - 9.0,
                fy(t) - 1.3,
                8.0,
                2.6,
                f"{t:g}",
                5.5,
                rgb=INK,
                align=A.AlignRight | A.AlignVCenter,
            )
    c.text(px, py + ph + 3.4, pw, 2.8, xlabel, 5.8, rgb=MUTED, align=A.AlignHCenter | A.AlignTop)
    c.p.save()
    c.p.translate(c.pt(x + 0.6, py + ph / 2))
    c.p.rotate(-90)
    c.p.setFont(c.font(5.8))
    c.p.setPen(qcolor(MUTED))
    fm_w = c.text_width(ylabel, 5.8)
    c.p.drawText(QPointF(-fm_w / 2 * c.s, 1.6 * c.s), ylabel)
    c.p.restore()
    c.p.save()
    c.p.setClipRect(c.rectf(px, py, pw, ph))
    for s in good:
        path = QPainterPath()
        first = True
        for xv, yv in zip(np.asarray(s.x, float), np.asarray(s.y, float), strict=False):
            if not (math.isfinite(xv) and math.isfinite(yv)):
                first = True
                continue
            p = c.pt(fx(xv), fy(yv))
            if first:
                path.moveTo(p)
                first = False
            else:
                path.lineTo(p)
        c.p.setPen(
            c.pen(s.rgb, s.width_mm, Qt.PenStyle.DashLine if s.dashed else Qt.PenStyle.SolidLine)
        )
        c.p.setBrush(Qt.BrushStyle.NoBrush)
        c.p.drawPath(path)
    c.p.restore()
    if legend:
        ly = py + 1.0
        for s in good:
            if not s.label:
                continue
            lx = px + pw - 17.0
            c.line(
                lx,
                ly + 1.2,
                lx + 3.0,
                ly + 1.2,
                rgb=s.rgb,
                width_mm=0.5,
                style=Qt.PenStyle.DashLine if s.dashed else Qt.PenStyle.SolidLine,
            )
            c.text(lx + 3.6, ly, 14.0, 2.4, s.label, 5.3, rgb=INK)
            ly += 2.6
