"""Dialog to draw the AIF region on a condition's dual-sequence AIF series.

Shows the low-resolution AIF series as the AIF is taken from it (motion-corrected:
:func:`qperf_viewer.pipeline.aif.aif_series_images`; frame slider, opening on the LV blood
pool's peak as the automatic detection finds it); dragging a circle inside the LV blood pool
sets a manual AIF region, which the session re-fits with
(``Session.set_manual_aif(condition, -1, mask)``).
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QLabel, QSlider, QVBoxLayout

from qperf_viewer.gui.widgets.cine_viewer import CineViewer
from qperf_viewer.pipeline import aif as aif_step
from qperf_viewer.pipeline.aif import AIF_SERIES_INDEX, aif_series_images


class AifSeriesDialog(QDialog):
    """Draw the AIF region of ``condition`` on its AIF series (non-modal)."""

    def __init__(self, session, condition: str, parent=None) -> None:
        super().__init__(parent)
        self.session, self.condition = session, condition
        self.setWindowTitle(f"AIF series ({condition}): drag a circle inside the LV blood pool")
        aif = session.exam.conditions[condition].aif
        self.viewer = CineViewer(condition, self)
        self.viewer.canvas.set_geometry(aif.geometry)
        images, moco_flags = aif_series_images(aif)
        stack = np.asarray(images, dtype=np.float32)
        corrected = aif_step.AIF_MOTION_CORRECTION and not any(
            "not corrected" in f or "not motion-corrected" in f for f in moco_flags
        )
        self.viewer.set_content(
            stack, aif.times_s, "moco" if corrected else "raw", "a.u.", "AIF series", "Auto",
            pd_frames=aif.pd_frames,
        )  # fmt: skip
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, stack.shape[0] - 1)
        self.slider.valueChanged.connect(self.viewer.set_frame)
        peak = _lv_peak_frame(aif, stack)
        self.slider.setValue(int(peak))
        self.viewer.set_frame(int(peak))
        self.viewer.canvas.set_tool("aif")
        self.viewer.canvas.aif_region.connect(self.set_region)
        hint = QLabel(
            "The automatic AIF uses the LV blood pool found from the contrast dynamics. "
            "Drag a circle inside the LV blood pool (not the RV, not the aorta) to replace it; "
            "MBF of this condition is re-fitted."
        )
        hint.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.addWidget(self.viewer, 1)
        lay.addWidget(self.slider)
        lay.addWidget(hint)
        self.resize(600, 620)
        self.region: np.ndarray | None = None

    def set_region(self, mask) -> None:
        """Use ``mask`` (Y, X) bool of the AIF series as the AIF region and close."""
        self.region = np.asarray(mask, dtype=bool)
        self.session.set_manual_aif(self.condition, AIF_SERIES_INDEX, self.region)
        self.accept()


def _lv_peak_frame(aif, stack: np.ndarray) -> int:
    """Frame where the automatically found LV blood pool of ``stack`` (the series' images,
    (T, Y, X)) peaks (else the brightest frame)."""
    from qperf_viewer.errors import InputError
    from qperf_viewer.quant.aif import detect_aif

    try:
        return int(detect_aif(stack, aif.times_s, skip_frames=aif.pd_frames).peak_frame)
    except (InputError, ValueError):
        dyn = [i for i in range(stack.shape[0]) if i not in set(aif.pd_frames)] or [0]
        return int(max(dyn, key=lambda i: float(np.percentile(stack[i], 99))))
