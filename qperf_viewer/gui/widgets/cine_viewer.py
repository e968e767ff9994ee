"""Cine viewer of one condition: a header line and a :class:`SliceCanvas` for one slice.

The viewer shows what it is given (a stack, its times, overlays); the compare view decides
which slice, image kind and frame. Axes (T, Y, X); times in s.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFrame, QLabel, QSizePolicy, QVBoxLayout

from qperf_viewer.gui.display import bolus_arrival_s, stack_arrival_s, stack_presets
from qperf_viewer.gui.widgets.slice_canvas import SliceCanvas


class CineViewer(QFrame):
    activated = Signal(str)
    cursor_moved = Signal(str, float, float)  # condition, row, col
    frame_changed = Signal(str, int)

    def __init__(self, condition: str, parent=None) -> None:
        super().__init__(parent)
        self.condition = condition
        self.setFrameShape(QFrame.Shape.Box)
        self.setLineWidth(2)
        self.header = QLabel(condition.capitalize())
        self.header.setStyleSheet("font-weight: bold; padding: 2px;")
        # a changing text must not re-layout the window at every frame
        self.header.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.canvas = SliceCanvas(self)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.setSpacing(1)
        lay.addWidget(self.header)
        lay.addWidget(self.canvas, 1)
        self.times_s: np.ndarray = np.zeros(0)
        self.arrival_s = 0.0
        self.kind = "raw"
        self.unit = ""
        self.slice_label = ""
        self.presets: dict[str, tuple[float, float]] = {}
        self.frame = 0
        self.canvas.activated.connect(lambda: self.activated.emit(self.condition))
        self.canvas.cursor_moved.connect(lambda r, c: self.cursor_moved.emit(self.condition, r, c))
        self.set_active(False)

    @property
    def n_frames(self) -> int:
        return int(self.times_s.size)

    def set_active(self, active: bool) -> None:
        color = "#3daee9" if active else "#444"
        self.setStyleSheet(f"CineViewer {{ border: 2px solid {color}; }}")

    def set_content(
        self,
        stack,
        times_s,
        kind: str,
        unit: str,
        slice_label: str,
        preset: str = "Auto",
        arrival_curve=None,
        arrival_times=None,
        pd_frames=(),
    ) -> None:
        """Show a new stack (T, Y, X). ``arrival_curve``: a blood curve for bolus arrival
        (e.g. the AIF); without it the frames' brightness is used."""
        self.kind, self.unit, self.slice_label = kind, unit, slice_label
        if stack is None:
            self.times_s = np.zeros(0)
            self.canvas.set_stack(None)
            self._update_header()
            return
        self.times_s = np.asarray(times_s, dtype=float)
        self.presets = stack_presets(stack, gd=(kind == "gd"))  # once per stack
        same = self.canvas.stack is not None and self.canvas.stack.shape == stack.shape
        self.canvas.set_stack(stack, self.presets.get(preset, self.presets["Auto"]), keep_view=same)
        if arrival_curve is not None:
            self.arrival_s = bolus_arrival_s(np.asarray(arrival_times), np.asarray(arrival_curve))
        else:
            self.arrival_s = stack_arrival_s(stack, self.times_s, pd_frames)
        self.set_frame(min(self.frame, self.n_frames - 1))

    def apply_preset(self, name: str) -> None:
        if name in self.presets:
            self.canvas.set_levels(*self.presets[name])

    def set_frame(self, t: int) -> None:
        if self.n_frames == 0:
            return
        self.frame = int(np.clip(t, 0, self.n_frames - 1))
        self.canvas.set_frame(self.frame)
        self._update_header()
        self.frame_changed.emit(self.condition, self.frame)

    def time_s(self) -> float:
        return float(self.times_s[self.frame]) if self.n_frames else 0.0

    def _update_header(self) -> None:
        if self.n_frames == 0:
            self.header.setText(f"{self.condition.capitalize()}: no images")
            return
        kind = {"raw": "raw", "moco": "motion-corrected", "gd": "Gd"}[self.kind]
        self.header.setText(
            f"{self.condition.capitalize()} · {self.slice_label} · {kind} · frame "
            f"{self.frame + 1}/{self.n_frames} · t = {self.time_s():.1f} s "
            f"(bolus {self.time_s() - self.arrival_s:+.1f} s)"
        )
