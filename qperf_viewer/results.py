"""Results of the one analysis pipeline (Qt-free data only).

Produced by :func:`qperf_viewer.pipeline.analyze_exam`, consumed by the CLI writers, the report
and the GUI. Nothing here is mutated after creation by the pipeline: a manual edit produces a new
:class:`Segmentation` whose ``parent_hash`` points to the automatic one, and
:func:`qperf_viewer.pipeline.apply_edit` returns a new :class:`AnalysisResult` with segment values
re-aggregated from the unchanged pixel maps.

Axes: images (T, Y, X); maps (Y, X) in the slice's DICOM pixel grid at the motion-correction
reference frame; points (row, col). Units: s, mmol/L, mL/min/g.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from qperf_viewer.exam import PerfusionExam, SliceSeries


@dataclass(frozen=True)
class QuantOptions:
    """Physics settings of one analysis (recorded in results.json).

    r1_l_per_mmol_s: longitudinal relaxivity of the agent, L/(mmol s) (MBF does not depend on
        it: AIF and tissue share it; Gd values do). default_ts_ms: saturation time (ms) used
        for series without an InversionTime (flagged); None: such series get no Gd and no MBF.
    hematocrit: large-vessel hematocrit (BTEX plasma input; reported MBF is blood flow).
    already_gd: the user declares the perfusion and AIF pixel values to be Gd (mmol/L)
        (a header marker does the same per series, see ``quant.gd.header_marks_gd``).
    """

    r1_l_per_mmol_s: float = 4.5
    default_ts_ms: float | None = None
    hematocrit: float = 0.42
    already_gd: bool = False

    def __post_init__(self) -> None:
        from qperf_viewer.errors import InputError

        if not (0.1 <= float(self.r1_l_per_mmol_s) <= 50.0):
            raise InputError(
                f"r1 must lie in 0.1-50 L/(mmol s), not {self.r1_l_per_mmol_s}.",
                hint="Gadobutrol at 1.5 T is about 4.5-5.2 L/(mmol s).",
            )
        if self.default_ts_ms is not None and not (1.0 <= float(self.default_ts_ms) <= 2000.0):
            raise InputError(f"the default TS must lie in 1-2000 ms, not {self.default_ts_ms}.")
        if not (0.2 <= float(self.hematocrit) <= 0.7):
            raise InputError(f"the hematocrit must lie in 0.2-0.7, not {self.hematocrit}.")

    def to_dict(self) -> dict:
        return {
            "r1_l_per_mmol_s": float(self.r1_l_per_mmol_s),
            "default_ts_ms": None if self.default_ts_ms is None else float(self.default_ts_ms),
            "hematocrit": float(self.hematocrit),
            "already_gd": bool(self.already_gd),
        }


@dataclass(frozen=True)
class Curve:
    """A named time curve: times_s (T,), values (T,), unit ('mmol/L', 'a.u.', ...)."""

    name: str
    times_s: np.ndarray
    values: np.ndarray
    unit: str


@dataclass(frozen=True)
class Segmentation:
    """Label map (0 bg, 1 LV, 2 myo, 3 RV) with landmarks; source 'automatic' or 'manual'.

    parent_hash: content hash of the automatic segmentation a manual one derives from.
    contours: optional control points {'endo': (N,2), 'epi': (M,2)} (row, col) of manual edits.
    """

    labels: np.ndarray
    lv_centre: tuple[float, float] | None
    rv_insertion_anterior: tuple[float, float] | None
    rv_insertion_inferior: tuple[float, float] | None
    confidence: float = 0.0
    source: str = "automatic"
    parent_hash: str | None = None
    contours: dict | None = None
    flags: tuple[str, ...] = ()

    def content_hash(self) -> str:
        """:func:`segmentation_hash` of this label map and its RV insertion points."""
        return segmentation_hash(
            self.labels, self.rv_insertion_anterior, self.rv_insertion_inferior
        )


def segmentation_hash(labels: np.ndarray, rv_ant=None, rv_inf=None) -> str:
    """The one hash that ties an edit to the automatic result it derives from: SHA-256 (hex,
    first 16 characters) of the label map (shape + uint8 bytes) and the RV insertion points
    (row, col) rounded to 0.001 px. The LV centre is not hashed: it follows from the labels."""
    import hashlib

    h = hashlib.sha256()
    lab = np.ascontiguousarray(labels, dtype=np.uint8)
    h.update(str(lab.shape).encode())
    h.update(lab.tobytes())
    for p in (rv_ant, rv_inf):
        h.update(b"none" if p is None else np.asarray(p, dtype=np.float64).round(3).tobytes())
    return h.hexdigest()[:16]


@dataclass
class SegmentValue:
    """MBF summary of one AHA segment (mL/min/g); ``None`` where not covered or unreliable."""

    segment: int
    mbf: float | None
    endo: float | None = None
    epi: float | None = None
    n_pixels: int = 0
    n_reliable: int = 0
    reliable: bool = False


@dataclass
class SliceResult:
    """Everything computed for one slice of one condition.

    corrected: motion-corrected images (T, Y, X), same units as the series.
    shifts_px: (T, 2) transform reference -> frame (drow, dcol).
    gd: (T, Y, X) mmol/L or None when Gd conversion was impossible.
    mbf / mbf_valid: (Y, X) float32 mL/min/g (0 where invalid) and bool reliability, covering the
        myocardium dilated by 5 mm.
    aha: (Y, X) uint8 segment numbers on myocardial pixels.
    map_delay_s: bolus-arrival delay (s) of the tissue after the AIF used for the MBF map
        (None without a map).
    """

    condition: str
    slice_index: int
    position: str | None
    series: SliceSeries
    reference_frame: int
    corrected: np.ndarray
    shifts_px: np.ndarray
    gd: np.ndarray | None
    segmentation: Segmentation | None
    aha: np.ndarray | None
    mbf: np.ndarray | None = None
    mbf_valid: np.ndarray | None = None
    maps: dict[str, np.ndarray] = field(default_factory=dict)
    curves: list[Curve] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    automatic: Segmentation | None = None
    map_delay_s: float | None = None


@dataclass
class ConditionResult:
    name: str
    slices: list[SliceResult]
    aif: Curve | None
    aif_source: str
    heart_rate_bpm: float | None
    segments: dict[int, SegmentValue]
    global_mbf: float | None
    semiquant: dict[str, dict[int, float | None]] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)


@dataclass
class AnalysisResult:
    exam: PerfusionExam
    conditions: dict[str, ConditionResult]
    model: str
    mpr_global: float | None
    mpr_segments: dict[int, float | None]
    timings_s: dict[str, float] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    options: QuantOptions = field(default_factory=QuantOptions)
