"""Stress and rest side by side for the same slice, with shared cine controls.

Playback drives the active condition's frames; the other viewer follows, aligned on bolus
arrival (or frame by frame when synchronisation is off). Slice, image kind, overlays and
window/level presets apply to both viewers.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSignalBlocker, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QSlider,
    QSplitter,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from qperf_viewer.exam import CONDITIONS
from qperf_viewer.gui import settings
from qperf_viewer.gui.display import synced_frame
from qperf_viewer.gui.session import IMAGE_KINDS, Session
from qperf_viewer.gui.widgets.cine_viewer import CineViewer

#: Frame shown when an exam opens: this long after bolus arrival (s), myocardial enhancement.
ENHANCEMENT_DELAY_S = 8.0
LAYOUTS = {"both": "Stress | Rest", "active": "Active only"}


class CompareView(QWidget):
    frame_changed = Signal(str, int, float)  # condition, frame, time s
    cursor_moved = Signal(str, float, float)

    def __init__(self, session: Session, parent=None) -> None:
        super().__init__(parent)
        self.session = session
        self.viewers = {c: CineViewer(c) for c in CONDITIONS}
        self.timer = QTimer(self)
        self.timer.timeout.connect(self._tick)
        self._build()
        for v in self.viewers.values():
            v.canvas.cmap_name = str(settings.get("view/mbf_colormap"))
            v.canvas.mbf_max = float(settings.get("view/mbf_max"))
            v.activated.connect(lambda c: self.session.set_selection(condition=c))
            v.cursor_moved.connect(self.cursor_moved)
            v.frame_changed.connect(self._viewer_frame)
        session.exam_changed.connect(lambda _: session.update_view(self.refresh))
        session.result_changed.connect(lambda _: session.update_view(self.refresh))
        session.selection_changed.connect(self.refresh)

    # --- layout --------------------------------------------------------------------------------
    def _build(self) -> None:
        self.play_btn = QToolButton(text="▶")
        self.play_btn.setToolTip("Play / pause (Space)")
        self.play_btn.setCheckable(True)
        self.play_btn.toggled.connect(self.set_playing)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setToolTip("Frame (Left / Right)")
        self.slider.valueChanged.connect(self.set_frame)
        self.fps = QDoubleSpinBox(minimum=1.0, maximum=60.0, singleStep=1.0, suffix=" fps")
        self.fps.setValue(settings.get("view/fps"))
        self.fps.valueChanged.connect(self._fps_changed)
        self.loop = QCheckBox("Loop", checked=settings.get("view/loop"))
        self.loop.toggled.connect(lambda v: settings.put("view/loop", v))
        self.sync = QCheckBox("Sync on bolus", checked=settings.get("view/sync_bolus"))
        self.sync.setToolTip("Align stress and rest on contrast arrival")
        self.sync.toggled.connect(lambda v: (settings.put("view/sync_bolus", v), self._follow()))
        self.cond_combo = QComboBox()
        self.cond_combo.setToolTip("Condition shown as active (S toggles stress / rest)")
        self.cond_combo.activated.connect(
            lambda i: self.session.set_selection(condition=self.cond_combo.itemData(i))
        )
        self.slice_combo = QComboBox()
        self.slice_combo.setToolTip("Slice (Up / Down)")
        self.slice_combo.activated.connect(lambda i: self.session.set_selection(slice_index=i))
        self.kind_combo = QComboBox()
        for k, label in IMAGE_KINDS.items():
            self.kind_combo.addItem(label, k)
        self.kind_combo.activated.connect(
            lambda i: self.session.set_selection(kind=self.kind_combo.itemData(i))
        )
        self.preset = QComboBox()
        self.preset.addItems(["Auto", "Blood pool", "Myocardium", "Full range"])
        self.preset.setToolTip("Window/level preset (right-drag on the image to adjust)")
        self.preset.activated.connect(lambda i: self.apply_preset(self.preset.itemText(i)))
        self.layout_combo = QComboBox()
        for k, label in LAYOUTS.items():
            self.layout_combo.addItem(label, k)
        self.layout_combo.activated.connect(lambda _: self._apply_layout())
        self.overlay_boxes = {}
        for key, label in (
            ("contours", "Contours"),
            ("rv_points", "RV points"),
            ("sectors", "Sectors"),
            ("mbf", "MBF map"),
        ):
            cb = QCheckBox(label, checked=key != "mbf")
            cb.toggled.connect(lambda v, k=key: self.set_overlay(k, v))
            self.overlay_boxes[key] = cb
        top = QHBoxLayout()
        for w in (
            QLabel("Condition"),
            self.cond_combo,
            QLabel("Slice"),
            self.slice_combo,
            QLabel("Images"),
            self.kind_combo,
            QLabel("W/L"),
            self.preset,
            *self.overlay_boxes.values(),
        ):
            top.addWidget(w)
        top.addStretch(1)
        top.addWidget(self.layout_combo)
        bottom = QHBoxLayout()
        for w in (self.play_btn, self.slider, self.fps, self.loop, self.sync):
            bottom.addWidget(w, 1 if w is self.slider else 0)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        for v in self.viewers.values():
            self.splitter.addWidget(v)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addLayout(top)
        lay.addWidget(self.splitter, 1)
        lay.addLayout(bottom)

    def _apply_layout(self) -> None:
        mode = self.layout_combo.currentData()
        for c, v in self.viewers.items():
            has = c in self.session.conditions()
            v.setVisible(has and (mode == "both" or c == self.session.condition))

    # --- content -------------------------------------------------------------------------------
    @property
    def active(self) -> CineViewer:
        return self.viewers.get(self.session.condition, self.viewers["stress"])

    def refresh(self, keep_frame: bool = True) -> None:
        s = self.session
        n = s.n_slices()
        with QSignalBlocker(self.cond_combo):
            self.cond_combo.clear()
            for c in s.conditions():
                self.cond_combo.addItem(c.capitalize(), c)
            self.cond_combo.setCurrentIndex(max(self.cond_combo.findData(s.condition), 0))
        with QSignalBlocker(self.slice_combo):
            self.slice_combo.clear()
            ser = s.exam.conditions[s.condition].slices if n else []
            for k, ss in enumerate(ser):
                self.slice_combo.addItem(f"{k + 1}: {ss.position or 'extra'}")
            self.slice_combo.setCurrentIndex(s.slice_index)
        with QSignalBlocker(self.kind_combo):
            self.kind_combo.setCurrentIndex(list(IMAGE_KINDS).index(s.image_kind))
        for c, v in self.viewers.items():
            v.set_active(c == s.condition)
            self._load_viewer(c, v)
        self._apply_layout()
        a = self.active
        if getattr(self, "_exam_id", None) != id(s.exam) and a.n_frames:
            # a new exam opens on myocardial enhancement, not on a proton-density frame
            self._exam_id = id(s.exam)
            a.set_frame(int(np.argmin(np.abs(a.times_s - (a.arrival_s + ENHANCEMENT_DELAY_S)))))
        with QSignalBlocker(self.slider):
            self.slider.setRange(0, max(a.n_frames - 1, 0))
            self.slider.setValue(a.frame)
        self._follow()

    def _load_viewer(self, cond: str, v: CineViewer) -> None:
        s = self.session
        k = s.paired_index(cond)
        ss = s.series(cond, k)
        if ss is None:
            v.set_content(None, None, "raw", "", "")
            return
        stack, unit, kind = s.stack(cond, k)
        label = f"{ss.position or 'slice'} ({ss.slice_index + 1}/{s.n_slices(cond)})"
        res = s.result.conditions.get(cond) if s.result is not None else None
        aif = res.aif if res is not None else None
        if v.canvas.geom != ss.geometry:
            v.canvas.set_geometry(ss.geometry)
        v.set_content(
            stack,
            ss.times_s,
            kind,
            unit,
            label,
            self.preset.currentText(),
            arrival_curve=None if aif is None else aif.values,
            arrival_times=None if aif is None else aif.times_s,
            pd_frames=ss.pd_frames,
        )
        sr = s.slice_result(cond, k)
        c = v.canvas
        with c.batch():  # overlays drawn once for all of these
            c.set_shifts(sr.shifts_px if (sr is not None and kind == "raw") else None)
            c.set_segmentation(sr.segmentation if sr else None, ss.position, sr.aha if sr else None)
            c.mbf_max = float(settings.get("view/mbf_max"))
            c.cmap_name = str(settings.get("view/mbf_colormap"))
            c.set_mbf(sr.mbf if sr else None, sr.mbf_valid if sr else None)
        # frame the heart once per slice (after that the user's zoom is kept)
        key = (cond, k, id(s.exam), sr is not None)
        if getattr(v, "zoom_key", None) != key:
            v.zoom_key = key
            if not c.zoom_to_heart():
                c.reset_view()

    def set_overlay(self, key: str, on: bool) -> None:
        with QSignalBlocker(self.overlay_boxes[key]):
            self.overlay_boxes[key].setChecked(on)
        for v in self.viewers.values():
            v.canvas.set_visible_overlays(**{key: on})

    def apply_preset(self, name: str) -> None:
        for v in self.viewers.values():
            v.apply_preset(name)

    def set_tool(self, tool: str) -> None:
        for c, v in self.viewers.items():
            v.canvas.set_tool(tool if c == self.session.condition else "navigate")

    # --- playback ------------------------------------------------------------------------------
    def set_playing(self, on: bool) -> None:
        with QSignalBlocker(self.play_btn):
            self.play_btn.setChecked(on)
        self.play_btn.setText("⏸" if on else "▶")
        if on:
            self.timer.start(int(round(1000.0 / self.fps.value())))
        else:
            self.timer.stop()

    @property
    def playing(self) -> bool:
        return self.timer.isActive()

    def toggle_play(self) -> None:
        self.set_playing(not self.playing)

    def _fps_changed(self, v: float) -> None:
        settings.put("view/fps", v)
        if self.playing:
            self.timer.setInterval(int(round(1000.0 / v)))

    def _tick(self) -> None:
        a = self.active
        if a.n_frames == 0:
            return
        nxt = a.frame + 1
        if nxt >= a.n_frames:
            if not self.loop.isChecked():
                self.set_playing(False)
                return
            nxt = 0
        self.set_frame(nxt)

    def step_frame(self, delta: int) -> None:
        self.set_frame(self.active.frame + delta)

    def set_frame(self, t: int) -> None:
        a = self.active
        a.set_frame(t)
        with QSignalBlocker(self.slider):
            self.slider.setValue(a.frame)
        self._follow()

    def _follow(self) -> None:
        a = self.active
        for v in self.viewers.values():
            if v is a or v.n_frames == 0 or a.n_frames == 0:
                continue
            if self.sync.isChecked():
                f = synced_frame(a.times_s, a.arrival_s, a.frame, v.times_s, v.arrival_s)
            else:
                f = a.frame
            v.set_frame(f)

    def _viewer_frame(self, cond: str, frame: int) -> None:
        v = self.viewers[cond]
        self.frame_changed.emit(cond, frame, v.time_s())

    def frames(self) -> dict[str, int]:
        return {c: v.frame for c, v in self.viewers.items() if v.n_frames}
