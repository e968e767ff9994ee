"""Assembled perfusion exam: the core data every step after the DICOM index works on.

Arrays are numpy, time first: images ``(T, Y, X)`` float32 with Y = DICOM rows, X = columns,
modality LUT (RescaleSlope/Intercept) already applied. Times are seconds (float64) since the
first acquired frame of the condition (any slice, PD frames included). Points are
``(row, col)`` in the slice's DICOM pixel grid.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from qperf_viewer.geometry import SliceGeometry

CONDITIONS = ("stress", "rest")
POSITIONS = ("basal", "mid", "apical")

#: Label values used everywhere (masks, truth, model output).
LABEL_BACKGROUND, LABEL_LV, LABEL_MYO, LABEL_RV = 0, 1, 2, 3


@dataclass
class SliceSeries:
    """One short-axis slice of one condition as a 2D+T series.

    images: (T, Y, X) float32 signal (or Gd in mmol/L when ``units == 'gd'``).
    times_s: (T,) seconds since the condition's first frame.
    pd_frames: 0-based indices of proton-density frames (leading frames, usually 0-3).
    ts_ms: saturation time TS in ms (from InversionTime), None when unknown.
    sop_instance_uids / frame_numbers: source of each frame, in frame order; frame_numbers are
        1-based frame numbers inside multi-frame files (1 for single-frame files).
    position: 'basal' | 'mid' | 'apical' | None (extra slices of a 4+ slice exam).
    slice_index: 0-based, basal to apical within the condition.
    location_mm: position of the plane along the base-to-apex normal (mm).
    flags: data-quality notes (e.g. 'timing approximate', 'no PD frames: T1 assumed').
    """

    images: np.ndarray
    times_s: np.ndarray
    geometry: SliceGeometry
    pd_frames: tuple[int, ...] = ()
    ts_ms: float | None = None
    sop_instance_uids: tuple[str, ...] = ()
    frame_numbers: tuple[int, ...] = ()
    series_instance_uid: str = ""
    position: str | None = None
    slice_index: int = 0
    location_mm: float = 0.0
    trigger_time_ms: float | None = None
    units: str = "signal"
    flags: list[str] = field(default_factory=list)

    @property
    def n_frames(self) -> int:
        return int(self.images.shape[0])

    @property
    def dynamic_frames(self) -> np.ndarray:
        """Indices of the saturation-recovery (non-PD) frames."""
        pd = set(self.pd_frames)
        return np.array([i for i in range(self.n_frames) if i not in pd], dtype=int)


@dataclass
class AifSeries:
    """Low-resolution dual-sequence AIF series of one condition (same conventions)."""

    images: np.ndarray
    times_s: np.ndarray
    geometry: SliceGeometry
    pd_frames: tuple[int, ...] = ()
    ts_ms: float | None = None
    sop_instance_uids: tuple[str, ...] = ()
    frame_numbers: tuple[int, ...] = ()
    series_instance_uid: str = ""
    units: str = "signal"
    flags: list[str] = field(default_factory=list)


@dataclass
class ConditionData:
    """All slices of stress or rest, ordered basal to apical."""

    name: str
    slices: list[SliceSeries]
    aif: AifSeries | None = None
    heart_rate_bpm: float | None = None
    series_descriptions: tuple[str, ...] = ()
    flags: list[str] = field(default_factory=list)


@dataclass
class PerfusionExam:
    """A stress/rest perfusion exam of one study; either condition may be missing."""

    study_instance_uid: str
    patient_name: str = ""
    patient_id: str = ""
    patient_birth_date: str = ""
    study_date: str = ""
    manufacturer: str = ""
    field_strength_t: float | None = None
    stress_agent: str | None = None
    conditions: dict[str, ConditionData] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
