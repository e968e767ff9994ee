"""One short-axis slice on screen: image, overlays, window/level, zoom/pan and edit tools.

The image is drawn with a transform from the slice geometry so that the view is the standard
short-axis display (anterior up, RV on the left, seen from the apex; see ``gui/display.py``).
Overlays (contours, RV insertion points, AHA sector lines, MBF map) are computed in the DICOM
pixel grid at the motion-correction reference frame; on raw frames they follow the heart by
the frame's shift. Mouse: wheel zoom, middle-drag pan (left-drag too in navigate mode),
right-drag window/level; the edit tools use the left button. Edits are emitted, never applied
here: the session owns the data.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QColor, QPen, QTransform
from PySide6.QtWidgets import QGraphicsItem

from qperf_viewer.exam import LABEL_LV, LABEL_MYO, LABEL_RV
from qperf_viewer.geometry import SliceGeometry
from qperf_viewer.gui import contours as ct
from qperf_viewer.gui.display import display_matrix, pixel_to_screen, screen_to_pixel

TOOLS = ("navigate", "contour", "brush_add", "brush_erase", "rv", "aif")
ENDO_COLOR, EPI_COLOR, RV_COLOR = (255, 70, 70), (70, 230, 90), (255, 220, 40)
ANT_COLOR, INF_COLOR = (255, 90, 255), (60, 200, 255)


class CanvasViewBox(pg.ViewBox):
    """ViewBox whose drags go to the canvas first (edit tools, window/level)."""

    def __init__(self, canvas: SliceCanvas) -> None:
        super().__init__(lockAspect=True, invertY=True, enableMenu=False)
        self.canvas = canvas

    def mouseDragEvent(self, ev, axis=None):  # noqa: N802 - Qt naming
        if ev.button() == Qt.MouseButton.RightButton:
            self.canvas._window_level_drag(ev)
            return
        if ev.button() == Qt.MouseButton.LeftButton and self.canvas._tool_drag(ev):
            return
        super().mouseDragEvent(ev, axis)

    def mouseClickEvent(self, ev):  # noqa: N802
        self.canvas.activated.emit()
        if ev.button() == Qt.MouseButton.LeftButton and self.canvas._tool_click(ev):
            ev.accept()
            return
        ev.accept()


class SliceCanvas(pg.GraphicsLayoutWidget):
    activated = Signal()
    cursor_moved = Signal(float, float)  # row, col in the raw frame grid (NaN outside)
    levels_changed = Signal(float, float)
    contour_edited = Signal(object, object)  # endo (N,2), epi (M,2) control points
    labels_edited = Signal(object)  # new label map (Y, X)
    rv_edited = Signal(object, object)  # anterior, inferior (row, col)
    aif_region = Signal(object)  # boolean mask (Y, X) in the reference grid

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setBackground("k")
        self.ci.layout.setContentsMargins(0, 0, 0, 0)
        self.vb = CanvasViewBox(self)
        self.addItem(self.vb, row=0, col=0)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.vb.addItem(self.image)
        self.overlay = pg.ItemGroup()
        self.vb.addItem(self.overlay, ignoreBounds=True)
        self.mbf_item = pg.ImageItem(axisOrder="row-major")
        self.mbf_item.setOpacity(0.8)
        self.mbf_item.setParentItem(self.overlay)
        self.label_item = pg.ImageItem(axisOrder="row-major")
        self.label_item.setParentItem(self.overlay)
        self.endo_curve = self._curve(ENDO_COLOR, 2)
        self.epi_curve = self._curve(EPI_COLOR, 2)
        self.sector_lines = self._curve((255, 255, 255), 1, style=Qt.PenStyle.DashLine)
        self.handles = pg.ScatterPlotItem(size=9, pen=pg.mkPen("w"), brush=pg.mkBrush(None))
        self.handles.setParentItem(self.overlay)
        self.points = pg.ScatterPlotItem(size=12, pxMode=True)
        self.points.setParentItem(self.overlay)
        self.brush_cursor = self._curve((255, 255, 255), 1)
        self.aif_curve = self._curve((0, 255, 255), 2)
        self.texts: list[pg.TextItem] = []  # the segment numbers shown
        self._text_pool: list[pg.TextItem] = []  # reused: creating TextItems is slow
        self._hold = 0  # > 0: overlay drawing deferred to the end of batch()
        self._held_draw = False
        self.orient_texts = [
            pg.TextItem(t, color=(200, 200, 200), anchor=a)
            for t, a in (
                ("Ant", (0.5, 0)),
                ("Inf", (0.5, 1)),
                ("Sept", (0, 0.5)),
                ("Lat", (1, 0.5)),
            )
        ]
        for t in self.orient_texts:
            self.vb.addItem(t, ignoreBounds=True)
        self.colorbar: pg.ColorBarItem | None = None
        self.cmap_name = "inferno"
        self.mbf_max = 4.0
        # state
        self.geom: SliceGeometry | None = None
        self.A = np.eye(2)
        self.stack: np.ndarray | None = None
        self.frame = 0
        self.levels = (0.0, 1.0)
        self.shifts: np.ndarray | None = None
        self.seg = None
        self.position: str | None = None
        self.labels: np.ndarray | None = None
        self.ctrl: dict[str, np.ndarray] | None = None
        self.mbf: np.ndarray | None = None
        self.overlay_flags = {"contours": True, "rv_points": True, "sectors": True, "mbf": False}
        self.tool = "navigate"
        self.brush_radius_px = 2.0
        self._drag: tuple | None = None
        self.scene().sigMouseMoved.connect(self._mouse_moved)
        # Overlays change rarely; cache their rendering so a new frame repaints the image only.
        cache = QGraphicsItem.CacheMode.DeviceCoordinateCache
        for item in (
            self.mbf_item,
            self.label_item,
            self.endo_curve,
            self.epi_curve,
            self.sector_lines,
            self.handles,
            self.points,
            *self.orient_texts,
        ):
            item.setCacheMode(cache)

    def _curve(self, color, width, style=Qt.PenStyle.SolidLine) -> pg.PlotCurveItem:
        pen = QPen(QColor(*color))
        pen.setWidthF(width)
        pen.setCosmetic(True)
        pen.setStyle(style)
        c = pg.PlotCurveItem(pen=pen)
        c.setParentItem(self.overlay)
        return c

    # --- data ----------------------------------------------------------------------------------
    def set_geometry(self, geom: SliceGeometry | None) -> None:
        self.geom = geom
        self.A = display_matrix(geom) if geom is not None else np.eye(2)
        a = self.A
        tr = QTransform(a[0, 0], a[1, 0], a[0, 1], a[1, 1], 0.0, 0.0)
        for item in (self.image, self.mbf_item, self.label_item):
            item.setTransform(tr)
        self.reset_view()

    def reset_view(self) -> None:
        if self.stack is None:
            return
        h, w = self.stack.shape[1:]
        c = pixel_to_screen(
            self.A, np.array([[-0.5, -0.5], [-0.5, w - 0.5], [h - 0.5, -0.5], [h - 0.5, w - 0.5]])
        )
        x0, y0 = c.min(axis=0)
        x1, y1 = c.max(axis=0)
        self.vb.setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0.02)
        mx, my = (x0 + x1) / 2, (y0 + y1) / 2
        for t, (x, y) in zip(
            self.orient_texts, ((mx, y0), (mx, y1), (x0, my), (x1, my)), strict=True
        ):
            t.setPos(x, y)

    def zoom_to_heart(self, half_size_mm: float = 60.0) -> bool:
        """Frame the heart (a square of 2 x ``half_size_mm`` around the LV centre); False
        without a segmentation."""
        if self.seg is None or self.seg.lv_centre is None:
            return False
        x, y = self._xy([self.seg.lv_centre])
        h = half_size_mm
        self.vb.setRange(xRange=(x[0] - h, x[0] + h), yRange=(y[0] - h, y[0] + h), padding=0)
        return True

    def set_stack(
        self,
        images: np.ndarray | None,
        levels: tuple[float, float] | None = None,
        keep_view: bool = False,
    ) -> None:
        """Show a (T, Y, X) stack; keeps the frame index when possible."""
        new_shape = None if images is None else images.shape[1:]
        old_shape = None if self.stack is None else self.stack.shape[1:]
        self.stack = images
        if images is None:
            self.image.clear()
            return
        if levels is not None:
            self.levels = levels
        self.frame = int(np.clip(self.frame, 0, images.shape[0] - 1))
        self.image.setImage(images[self.frame], autoLevels=False, levels=self.levels)
        if not keep_view or new_shape != old_shape:
            self.reset_view()
        self._apply_shift()

    def set_frame(self, t: int) -> None:
        if self.stack is None:
            return
        self.frame = int(np.clip(t, 0, self.stack.shape[0] - 1))
        self.image.setImage(self.stack[self.frame], autoLevels=False, levels=self.levels)
        self._apply_shift()

    def set_levels(self, lo: float, hi: float, emit: bool = False) -> None:
        self.levels = (float(lo), float(max(hi, lo + 1e-6)))
        self.image.setLevels(self.levels)
        if emit:
            self.levels_changed.emit(*self.levels)

    def set_shifts(self, shifts: np.ndarray | None) -> None:
        """Per-frame (drow, dcol) of the heart relative to the reference (raw frames)."""
        self.shifts = shifts
        self._apply_shift()

    def _apply_shift(self) -> None:
        if self.shifts is None or self.stack is None or self.frame >= len(self.shifts):
            self.overlay.setPos(0.0, 0.0)
            return
        d = self.shifts[self.frame]
        x, y = self.A @ np.array([d[1], d[0]])
        self.overlay.setPos(float(x), float(y))

    def set_segmentation(self, seg, position: str | None, aha: np.ndarray | None = None) -> None:
        """Overlay a Segmentation (labels, LV centre, RV insertion points; None clears)."""
        self.seg = seg
        self.position = position
        self.labels = None if seg is None else np.asarray(seg.labels)
        self.ctrl = None
        if seg is not None:
            cc = seg.contours or {}
            if "endo" in cc and "epi" in cc and len(cc["endo"]) >= 3:
                self.ctrl = {"endo": np.asarray(cc["endo"]), "epi": np.asarray(cc["epi"])}
            else:
                self.ctrl = ct.control_points(self.labels, seg.lv_centre)
        self._draw_overlays()

    def set_mbf(self, mbf: np.ndarray | None, valid: np.ndarray | None = None) -> None:
        """MBF map (Y, X) in mL/min/g; pixels not valid (or 0) are transparent."""
        if mbf is None:
            self.mbf = None
            self.mbf_item.clear()
        else:
            m = np.asarray(mbf, dtype=np.float32).copy()
            keep = (m > 0) if valid is None else (np.asarray(valid, bool) & (m > 0))
            m[~keep] = np.nan
            self.mbf = m
            self.mbf_item.setImage(m, autoLevels=False, levels=(0.0, self.mbf_max))
            self.mbf_item.setLookupTable(pg.colormap.get(self.cmap_name).getLookupTable(nPts=256))
        self._update_colorbar()
        self._draw_overlays()

    def set_colormap(self, name: str, vmax: float | None = None) -> None:
        self.cmap_name = name
        if vmax:
            self.mbf_max = float(vmax)
        if self.colorbar is not None:
            self.removeItem(self.colorbar)
            self.colorbar = None
        if self.mbf is not None:
            self.set_mbf(np.nan_to_num(self.mbf), None)
        self._update_colorbar()

    def _update_colorbar(self) -> None:
        want = self.overlay_flags["mbf"] and self.mbf is not None
        if want and self.colorbar is None:
            self.colorbar = pg.ColorBarItem(
                values=(0.0, self.mbf_max),
                colorMap=self.cmap_name,
                label="MBF (mL/min/g)",
                interactive=False,
                width=12,
            )
            self.colorbar.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
            self.colorbar.axis.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
            self.addItem(self.colorbar, row=0, col=1)
        if self.colorbar is not None:
            self.colorbar.setVisible(want)
            self.ci.layout.setColumnMaximumWidth(1, 70 if want else 0)

    def set_visible_overlays(self, **flags: bool) -> None:
        self.overlay_flags.update(flags)
        self._update_colorbar()
        self._draw_overlays()

    def set_tool(self, tool: str) -> None:
        tool = tool if tool in TOOLS else "navigate"
        if tool != self.tool:
            self.tool = tool
            self._draw_overlays()

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Set several things (segmentation, MBF map, ...) and draw the overlays once."""
        self._hold += 1
        try:
            yield
        finally:
            self._hold -= 1
            if not self._hold and self._held_draw:
                self._draw_overlays()

    # --- drawing -------------------------------------------------------------------------------
    def _xy(self, pts_rc) -> tuple[np.ndarray, np.ndarray]:
        s = pixel_to_screen(self.A, np.asarray(pts_rc, float).reshape(-1, 2))
        return s[:, 0], s[:, 1]

    def _draw_overlays(self) -> None:
        if self._hold:
            self._held_draw = True
            return
        self._held_draw = False
        for t in self.texts:
            t.setVisible(False)
        self.texts = []
        self.mbf_item.setVisible(self.overlay_flags["mbf"] and self.mbf is not None)
        has = self.labels is not None and self.ctrl is not None
        vis = self.overlay_flags["contours"] and has
        for c in (self.endo_curve, self.epi_curve):
            c.setVisible(vis)
        if vis:
            self._draw_contours()
        self._draw_label_fill()
        self._draw_points()
        self._draw_sectors()
        self.handles.setVisible(self.tool == "contour" and has)

    def _draw_contours(self, ctrl: dict | None = None) -> None:
        ctrl = ctrl or self.ctrl
        for name, item in (("endo", self.endo_curve), ("epi", self.epi_curve)):
            pts = ct.smooth_closed_curve(ctrl[name], 160)
            pts = np.vstack([pts, pts[:1]])
            item.setData(*self._xy(pts))
        allc = np.vstack([ctrl["endo"], ctrl["epi"]])
        x, y = self._xy(allc)
        n = len(ctrl["endo"])
        brushes = [pg.mkBrush(*ENDO_COLOR)] * n + [pg.mkBrush(*EPI_COLOR)] * (len(allc) - n)
        self.handles.setData(x=x, y=y, brush=brushes)

    def _draw_label_fill(self) -> None:
        if self.labels is None or not self.overlay_flags["contours"]:
            self.label_item.setVisible(False)
            return
        rgba = np.zeros((*self.labels.shape, 4), np.uint8)
        rgba[self.labels == LABEL_RV] = (*RV_COLOR, 70)
        if self.tool in ("brush_add", "brush_erase"):
            rgba[self.labels == LABEL_MYO] = (*EPI_COLOR, 90)
        if self.tool == "aif":
            rgba[self.labels == LABEL_LV] = (0, 200, 255, 50)
        self.label_item.setImage(rgba, autoLevels=False)
        self.label_item.setVisible(True)

    def _draw_points(self) -> None:
        seg = self.seg
        if seg is None or not self.overlay_flags["rv_points"]:
            self.points.setVisible(False)
            return
        spots = []
        for p, col, sym in (
            (seg.rv_insertion_anterior, ANT_COLOR, "o"),
            (seg.rv_insertion_inferior, INF_COLOR, "o"),
            (seg.lv_centre, (255, 255, 255), "+"),
        ):
            if p is not None:
                x, y = self._xy([p])
                spots.append(
                    {
                        "pos": (x[0], y[0]),
                        "brush": pg.mkBrush(*col),
                        "symbol": sym,
                        "pen": pg.mkPen("k"),
                    }
                )
        self.points.setData(spots)
        self.points.setVisible(True)

    def _draw_sectors(self) -> None:
        """AHA sector boundaries and segment numbers (qperf_viewer.sectors' convention)."""
        from qperf_viewer import sectors

        seg = self.seg
        ok = (
            seg is not None
            and self.geom is not None
            and self.overlay_flags["sectors"]
            and self.position in sectors.POSITION_SEGMENTS
            and self.ctrl is not None
            and None not in (seg.lv_centre, seg.rv_insertion_anterior, seg.rv_insertion_inferior)
        )
        self.sector_lines.setVisible(bool(ok))
        if not ok:
            return
        c = np.asarray(seg.lv_centre)
        sp = self.geom.pixel_spacing_mm
        mm = float(np.sqrt(sp[0] * sp[1]))
        r_in = 0.5 * mm * float(np.mean(np.linalg.norm(self.ctrl["endo"] - c, axis=1)))
        r_out = mm * (float(np.max(np.linalg.norm(self.ctrl["epi"] - c, axis=1))) + 3.0)
        args = (
            self.geom,
            seg.lv_centre,
            seg.rv_insertion_anterior,
            seg.rv_insertion_inferior,
            self.position,
        )
        try:
            lines = sectors.sector_lines(*args)
            labels = sectors.segment_label_points(*args, radius_mm=r_out + 2.5 * mm)
        except Exception:  # noqa: BLE001 - degenerate points: no sectors drawn
            self.sector_lines.setVisible(False)
            return
        pts = []
        for ln in lines:
            pts += [ln.end_point(seg.lv_centre, r_in, sp), ln.end_point(seg.lv_centre, r_out, sp)]
        x, y = self._xy(np.array(pts))
        self.sector_lines.setData(x, y, connect="pairs")
        for i, (s, rc) in enumerate(labels.items()):
            x, y = self._xy([rc])
            if i == len(self._text_pool):
                t = pg.TextItem(str(s), color=(255, 255, 255), anchor=(0.5, 0.5))
                t.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
                t.setParentItem(self.overlay)
                self._text_pool.append(t)
            t = self._text_pool[i]
            if t.toPlainText() != str(s):
                t.setText(str(s))
            t.setPos(x[0], y[0])
            t.setVisible(True)
            self.texts.append(t)

    # --- mouse ---------------------------------------------------------------------------------
    def view_to_pixel(self, scene_pos: QPointF, raw: bool = False) -> np.ndarray:
        """(row, col) of a scene position in the reference grid (``raw``: in the frame grid)."""
        p = self.vb.mapSceneToView(scene_pos)
        rc = screen_to_pixel(self.A, np.array([[p.x(), p.y()]]))[0]
        if not raw and self.shifts is not None and self.frame < len(self.shifts):
            rc = rc - self.shifts[self.frame]
        return rc

    def _mouse_moved(self, scene_pos: QPointF) -> None:
        if self.stack is None:
            return
        rc = self.view_to_pixel(scene_pos, raw=True)
        h, w = self.stack.shape[1:]
        inside = -0.5 <= rc[0] < h - 0.5 and -0.5 <= rc[1] < w - 0.5
        self.cursor_moved.emit(
            float(rc[0]) if inside else np.nan, float(rc[1]) if inside else np.nan
        )
        if self.tool in ("brush_add", "brush_erase"):
            self._draw_brush_cursor(self.view_to_pixel(scene_pos))
        else:
            self.brush_cursor.setData([], [])

    def _draw_brush_cursor(self, rc: np.ndarray) -> None:
        t = np.linspace(0, 2 * np.pi, 33)
        pts = rc + self.brush_radius_px * np.stack([np.sin(t), np.cos(t)], axis=1)
        self.brush_cursor.setData(*self._xy(pts))

    def _window_level_drag(self, ev) -> None:
        ev.accept()
        if ev.isStart():
            self._wl0 = self.levels
        lo, hi = getattr(self, "_wl0", self.levels)
        width, centre = hi - lo, (hi + lo) / 2
        d = ev.screenPos() - ev.buttonDownScreenPos()
        width = max(width * float(np.exp(d.x() / 200.0)), 1e-6)
        centre = centre - d.y() * width / 300.0
        self.set_levels(centre - width / 2, centre + width / 2, emit=True)

    def _pick_handle(self, rc: np.ndarray, names: list[str], pts: list[np.ndarray]):
        tol = 10.0 * max(self.vb.viewPixelSize()) / max(np.abs(self.A).max(), 1e-9)
        best, best_d = None, tol
        for name, arr in zip(names, pts, strict=True):
            for i, p in enumerate(np.asarray(arr).reshape(-1, 2)):
                d = float(np.hypot(*(p - rc)))
                if d < best_d:
                    best, best_d = (name, i), d
        return best

    def _tool_drag(self, ev) -> bool:
        if self.tool == "navigate" or self.labels is None and self.tool != "aif":
            return False
        rc = self.view_to_pixel(ev.scenePos())
        if ev.isStart():
            self._drag = None
            start = self.view_to_pixel(ev.buttonDownScenePos())
            if self.tool == "contour" and self.ctrl is not None:
                hit = self._pick_handle(
                    start, ["endo", "epi"], [self.ctrl["endo"], self.ctrl["epi"]]
                )
                if hit is None:
                    return False
                self._drag = ("contour", hit, {k: v.copy() for k, v in self.ctrl.items()})
            elif self.tool == "rv" and self.seg is not None:
                pts = [self.seg.rv_insertion_anterior, self.seg.rv_insertion_inferior]
                names = [n for n, p in zip(("ant", "inf"), pts, strict=True) if p is not None]
                hit = self._pick_handle(start, names, [np.asarray(p) for p in pts if p is not None])
                if hit is None:
                    return False
                self._drag = (
                    "rv",
                    hit[0],
                    [self.seg.rv_insertion_anterior, self.seg.rv_insertion_inferior],
                )
            elif self.tool in ("brush_add", "brush_erase"):
                self._drag = ("brush", None, self.labels.copy())
            elif self.tool == "aif":
                self._drag = ("aif", start, None)
            else:
                return False
        if self._drag is None:
            return False
        ev.accept()
        kind, what, data = self._drag
        if kind == "contour":
            data[what[0]][what[1]] = rc
            self._draw_contours(data)
            if ev.isFinish():
                self.contour_edited.emit(data["endo"].copy(), data["epi"].copy())
        elif kind == "rv":
            data[0 if what == "ant" else 1] = (float(rc[0]), float(rc[1]))
            x, y = self._xy([p for p in data if p is not None])
            self.points.setData(x=x, y=y)
            if ev.isFinish():
                self.rv_edited.emit(data[0], data[1])
        elif kind == "brush":
            data[...] = ct.brush(data, tuple(rc), self.brush_radius_px, self.tool == "brush_add")
            self._draw_brush_cursor(rc)
            self.labels = data
            self._draw_label_fill()
            if ev.isFinish():
                self.labels_edited.emit(data.copy())
        elif kind == "aif":
            r = max(float(np.hypot(*(rc - what))), 1.0)
            t = np.linspace(0, 2 * np.pi, 49)
            self.aif_curve.setData(*self._xy(what + r * np.stack([np.sin(t), np.cos(t)], 1)))
            if ev.isFinish():
                self.aif_region.emit(self.disc_mask(what, r))
        if ev.isFinish():
            self._drag = None
        return True

    def _tool_click(self, ev) -> bool:
        if self.tool in ("brush_add", "brush_erase") and self.labels is not None:
            rc = self.view_to_pixel(ev.scenePos())
            new = ct.brush(self.labels, tuple(rc), self.brush_radius_px, self.tool == "brush_add")
            self.labels_edited.emit(new)
            return True
        return False

    def disc_mask(self, centre_rc, radius_px: float) -> np.ndarray:
        h, w = self.stack.shape[1:] if self.stack is not None else self.labels.shape
        rr, cc = np.ogrid[:h, :w]
        return (rr - centre_rc[0]) ** 2 + (cc - centre_rc[1]) ** 2 <= radius_px**2
