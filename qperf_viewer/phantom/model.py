"""Data model of a synthetic exam: what the generator produces and the DICOM writer consumes.

The acquired data is a :class:`qperf_viewer.exam.PerfusionExam` in signal units (exactly what
the DICOM index should assemble back from the written files, up to integer quantisation);
the ground truth sits beside it in :class:`ExamTruth`. Axis order (T, Y, X); points (row, col)
in the slice's DICOM pixel grid; times in s; Gd in mmol/L; MBF in mL/min/g.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from qperf_viewer.exam import PerfusionExam


@dataclass
class SliceTruth:
    """Ground truth of one slice (index k, basal to apical), at the reference position.

    labels: (Y, X) uint8, 0 background, 1 LV blood pool incl. papillary muscles,
        2 myocardium, 3 RV blood pool.
    mbf_ml_min_g: (Y, X) float32 true MBF in myocardium, 0 elsewhere.
    aha: (Y, X) uint8 AHA segment 1-16 on myocardial pixels, 0 elsewhere.
    displacement_px: (T, 2) heart displacement (drow, dcol) of each frame relative to the
        reference position, pixels.
    reference_frames: frames whose displacement is zero (breath-hold), 0-based.
    gd_mmol_l: (T, Y, X) float32 noiseless tissue/blood Gd including motion.
    """

    labels: np.ndarray
    mbf_ml_min_g: np.ndarray
    aha: np.ndarray
    displacement_px: np.ndarray
    reference_frames: tuple[int, ...]
    rv_insertion_anterior: tuple[float, float]
    rv_insertion_inferior: tuple[float, float]
    lv_centre: tuple[float, float]
    position: str | None
    gd_mmol_l: np.ndarray | None = None
    extra: dict = field(default_factory=dict)


@dataclass
class ConditionTruth:
    """Ground truth of stress or rest.

    aif_times_s / aif_gd_mmol_l: true whole-blood AIF on a fine grid (s, mmol/L), same time
        origin as the slices' times_s.
    segment_mbf: AHA segment (1-16) -> mean true MBF over that segment's myocardium (mL/min/g),
        only for covered segments.
    """

    slices: list[SliceTruth]
    aif_times_s: np.ndarray
    aif_gd_mmol_l: np.ndarray
    segment_mbf: dict[int, float]
    global_mbf: float
    heart_rate_bpm: float
    hematocrit: float
    r1_l_per_mmol_s: float
    params: dict = field(default_factory=dict)


@dataclass
class DicomStyle:
    """How the writer stores the exam (the reader must cope with all of these).

    vendor: 'SIEMENS' | 'Philips' | 'GE'  (Philips uses non-trivial RescaleSlope/Intercept).
    storage: 'classic' (MR Image Storage, one file per frame) | 'enhanced' (one multi-frame
        Enhanced MR file per series).
    series_per_slice: True: one series per slice; False: all slices of a condition in one series.
    instance_order: 'base_to_apex' | 'apex_to_base' (InstanceNumber / file order of slices).
    pd_comment: write ImageComments 'PD' on proton-density frames.
    descriptions: condition -> SeriesDescription (stress first in acquisition order).
    start_clock_s: condition -> clock time of day (s since midnight, may exceed 86400 when the
        exam crosses midnight) of the condition's first frame.
    junk: write non-DICOM files, a truncated DICOM, a localizer and a duplicate instance.
    """

    vendor: str = "SIEMENS"
    storage: str = "classic"
    series_per_slice: bool = True
    instance_order: str = "base_to_apex"
    pd_comment: bool = True
    descriptions: dict[str, str] = field(default_factory=dict)
    aif_descriptions: dict[str, str] = field(default_factory=dict)
    start_clock_s: dict[str, float] = field(default_factory=dict)
    junk: bool = False
    flip_angle_deg: float = 50.0
    readout: str = "bSSFP"
    study_date: str = "20260115"


@dataclass
class PhantomExam:
    """A generated exam: acquired data, truth and how to write it."""

    seed: int
    variant: str
    exam: PerfusionExam
    truth: dict[str, ConditionTruth]
    style: DicomStyle
    mpr_segment: dict[int, float] = field(default_factory=dict)
    mpr_global: float | None = None
