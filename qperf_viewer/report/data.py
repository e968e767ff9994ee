"""What the report shows: one :class:`ReportData` per exam (Qt-free).

Filled by the pipeline (see :func:`qperf_viewer.report.build.report_data_from_result`) and
consumed by the PDF, results.json, curves.csv and DICOM writers. Arrays are ``(Y, X)`` in the
slice's DICOM pixel grid; points ``(row, col)``; MBF in mL/min/g; times in seconds since the
condition's first acquired frame (PD included), as everywhere in the project, with
``ConditionReport.t0_s`` the time of the condition's first non-PD frame (the zero of the
report's curve plots and of curves.csv).
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field

import numpy as np

from qperf_viewer.geometry import SliceGeometry
from qperf_viewer.results import Curve, SegmentValue
from qperf_viewer.sectors import N_SEGMENTS, TERRITORIES

from .thresholds import DEFAULT_THRESHOLDS, Applicability, ThresholdSet, applicability

#: MPR is reported for a segment only where rest MBF is at least this (mL/min/g).
MPR_MIN_REST_ML_MIN_G = 0.3

INTENDED_USE = "Research use only. Not a medical device; not for diagnostic use."


@dataclass
class ExamHeader:
    """Patient and exam identity; dates as DICOM DA strings ('YYYYMMDD') or ''."""

    patient_name: str = ""
    patient_id: str = ""
    patient_birth_date: str = ""
    patient_sex: str = ""
    study_date: str = ""
    study_time: str = ""
    study_instance_uid: str = ""
    accession_number: str = ""
    study_id: str = ""
    study_description: str = ""
    referring_physician: str = ""
    institution: str = ""
    manufacturer: str = ""
    field_strength_t: float | None = None
    stress_agent: str | None = None


@dataclass
class SliceReport:
    """One slice of one condition as the report shows it.

    peak_image: (Y, X) float32 signal (motion-corrected) at peak myocardial enhancement.
    labels: (Y, X) uint8 (0 bg, 1 LV, 2 myo, 3 RV); aha: (Y, X) uint8 segments 1-16.
    mbf_ml_min_g: (Y, X) float32 (0 where invalid); mbf_valid: (Y, X) bool.
    curves: per-slice curves (e.g. 'lv_blood', 'myocardium', 'segment_7'); times as the module
        docstring says.
    """

    slice_index: int
    position: str | None
    peak_image: np.ndarray | None = None
    peak_frame: int | None = None
    labels: np.ndarray | None = None
    aha: np.ndarray | None = None
    mbf_ml_min_g: np.ndarray | None = None
    mbf_valid: np.ndarray | None = None
    geometry: SliceGeometry | None = None
    lv_centre: tuple[float, float] | None = None
    rv_insertion_anterior: tuple[float, float] | None = None
    rv_insertion_inferior: tuple[float, float] | None = None
    location_mm: float | None = None
    series_instance_uid: str = ""
    sop_instance_uids: tuple[str, ...] = ()
    reference_frame: int | None = None
    confidence: float | None = None
    curves: list[Curve] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    edited: bool = False
    map_delay_s: float | None = None


@dataclass
class ConditionReport:
    """Stress or rest.

    segments: AHA segment 1-16 -> SegmentValue (``mbf`` None = not covered or unreliable;
        ``n_pixels == 0`` = not covered).
    aif_source: 'dual-sequence' | 'blood-pool' | '' (none); aif: the AIF curve (Gd, mmol/L).
    semiquant: index name -> segment -> value (e.g. 'upslope').
    """

    name: str
    segments: dict[int, SegmentValue]
    global_mbf: float | None
    heart_rate_bpm: float | None = None
    aif_source: str = ""
    aif: Curve | None = None
    t0_s: float = 0.0
    slices: list[SliceReport] = field(default_factory=list)
    series_instance_uids: list[str] = field(default_factory=list)
    semiquant: dict[str, dict[int, float | None]] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)

    def segment(self, s: int) -> SegmentValue:
        return self.segments.get(s) or SegmentValue(segment=s, mbf=None)

    def mbf_list(self) -> list[float | None]:
        return [self.segment(s).mbf for s in range(1, N_SEGMENTS + 1)]


@dataclass
class ReportData:
    """Everything the report, results.json, curves.csv and the DICOM exports need.

    conditions: 'stress' and/or 'rest' (a missing one is absent and noted in ``notes``).
    mpr_segments: segment -> MPR or None (only where stress and rest are reliable and rest
        >= 0.3 mL/min/g). thresholds: the set used for highlighting (None: no highlights).
    versions: e.g. {'qperf-viewer': '0.1.0', 'segmentation model': 'unet-r16 (2026-11)'}.
    created: ISO 8601 time the results were made. edited: a manual segmentation edit was used.
    """

    header: ExamHeader
    conditions: dict[str, ConditionReport]
    quant_model: str = "BTEX"
    mpr_global: float | None = None
    mpr_segments: dict[int, float | None] = field(default_factory=dict)
    thresholds: ThresholdSet | None = DEFAULT_THRESHOLDS
    qc_flags: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    alignment_mm: dict[str, float] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    created: str = ""
    edited: bool = False
    timings_s: dict[str, float] = field(default_factory=dict)
    #: physics settings of the analysis (:meth:`qperf_viewer.results.QuantOptions.to_dict`)
    quant_options: dict = field(default_factory=dict)

    @property
    def stress(self) -> ConditionReport | None:
        return self.conditions.get("stress")

    @property
    def rest(self) -> ConditionReport | None:
        return self.conditions.get("rest")

    def mpr(self, s: int) -> float | None:
        return self.mpr_segments.get(s)

    def threshold_applicability(self) -> Applicability:
        """Whether the thresholds apply (model and AIF source of the stress exam match)."""
        cond = self.stress or self.rest
        return applicability(
            self.thresholds,
            self.quant_model,
            cond.aif_source if cond else None,
            self.header.field_strength_t,
        )

    def highlighted(self) -> tuple[set[int], set[int]]:
        """Segments below the stress-MBF cut-off and below the MPR cut-off (both empty when the
        thresholds do not apply to this exam). Unreliable segments are never highlighted."""
        thr = self.thresholds
        if thr is None or not self.threshold_applicability().applies:
            return set(), set()
        low_mbf, low_mpr = set(), set()
        st = self.stress
        for s in range(1, N_SEGMENTS + 1):
            if st is not None and thr.stress_mbf_ml_min_g is not None:
                sv = st.segment(s)
                if sv.reliable and sv.mbf is not None and sv.mbf < thr.stress_mbf_ml_min_g:
                    low_mbf.add(s)
            m = self.mpr(s)
            if thr.mpr is not None and m is not None and m < thr.mpr:
                low_mpr.add(s)
        return low_mbf, low_mpr

    def territory_values(self) -> dict[str, dict[str, float | None]]:
        """Per territory: mean stress and rest MBF of segments with values; MPR = their ratio."""
        out = {}
        for terr, segs in TERRITORIES.items():
            row: dict[str, float | None] = {}
            for name in ("stress", "rest"):
                c = self.conditions.get(name)
                vals = [c.segment(s).mbf for s in segs] if c else []
                vals = [v for v in vals if v is not None]
                row[name] = float(np.mean(vals)) if vals else None
            ok = row["stress"] is not None and row["rest"] and row["rest"] >= MPR_MIN_REST_ML_MIN_G
            row["mpr"] = row["stress"] / row["rest"] if ok else None
            out[terr] = row
        return out


def mpr_from_conditions(
    stress: ConditionReport | None, rest: ConditionReport | None
) -> tuple[float | None, dict[int, float | None]]:
    """Global MPR = global stress / global rest; segment MPR where both are reliable and rest
    >= :data:`MPR_MIN_REST_ML_MIN_G`."""
    if stress is None or rest is None:
        return None, {s: None for s in range(1, N_SEGMENTS + 1)}
    seg: dict[int, float | None] = {}
    for s in range(1, N_SEGMENTS + 1):
        a, b = stress.segment(s), rest.segment(s)
        ok = a.mbf is not None and b.mbf is not None and a.reliable and b.reliable
        seg[s] = a.mbf / b.mbf if ok and b.mbf >= MPR_MIN_REST_ML_MIN_G else None
    g = None
    if stress.global_mbf is not None and rest.global_mbf and rest.global_mbf > 0:
        g = stress.global_mbf / rest.global_mbf
    return g, seg


# --------------------------------------------------------------------------- example
def _example_geometry(shape=(128, 112)) -> SliceGeometry:
    return SliceGeometry(
        orientation=(0.70, 0.71, 0.0, -0.38, 0.38, -0.84),
        origin_mm=(-60.0, -140.0, 80.0),
        pixel_spacing_mm=(1.9, 1.9),
        shape=shape,
        slice_thickness_mm=8.0,
    )


def _example_slice(
    rng: np.random.Generator,
    cond: str,
    k: int,
    position: str,
    seg_truth: dict[int, float],
    times_s: np.ndarray,
    aif: np.ndarray,
) -> SliceReport:
    from qperf_viewer.sectors import aha_segments

    g = _example_geometry()
    shift = np.asarray(g.origin_mm) + k * 10.0 * np.cross(g.row_dir, g.col_dir)
    g = SliceGeometry(g.orientation, tuple(float(v) for v in shift), g.pixel_spacing_mm, g.shape)
    Y, X = g.shape
    cy, cx = 60.0 + 1.5 * k, 54.0
    rr, cc = np.indices((Y, X))
    dy, dx = (rr - cy) * g.pixel_spacing_mm[0], (cc - cx) * g.pixel_spacing_mm[1]
    r = np.hypot(dy, dx)
    r_in = 22.0 - 4.0 * k
    r_out = r_in + 9.0
    labels = np.zeros((Y, X), np.uint8)
    labels[r < r_in] = 1
    labels[(r >= r_in) & (r < r_out)] = 2
    # RV: crescent on the image left (patient right) of the LV
    rv_r = np.hypot(dy - 2.0, dx + 24.0 - 2 * k)
    labels[(labels == 0) & (rv_r < 34.0 - 4 * k) & (dx < -r_out + 12)] = 3
    # insertion points where RV meets the ring, above and below the septum
    a_ant, a_inf = np.radians(-125.0), np.radians(125.0)
    ant = (cy + r_out / 1.9 * np.sin(a_ant), cx + r_out / 1.9 * np.cos(a_ant))
    inf = (cy + r_out / 1.9 * np.sin(a_inf), cx + r_out / 1.9 * np.cos(a_inf))
    from qperf_viewer.sectors import orient_insertion_points

    rv_c = tuple(np.argwhere(labels == 3).mean(axis=0))
    ant, inf = orient_insertion_points(g, (cy, cx), ant, inf, rv_c)
    aha = aha_segments(labels, g, (cy, cx), ant, inf, position)
    mbf = np.zeros((Y, X), np.float32)
    near = r < r_out + 5.0
    for s, v in seg_truth.items():
        sel = aha == s
        mbf[sel] = v * (1.0 + 0.08 * rng.standard_normal(int(sel.sum())))
    # subendocardial gradient: the inner half a bit lower at stress
    depth = np.clip((r - r_in) / (r_out - r_in), 0, 1)
    if cond == "stress":
        mbf *= (0.9 + 0.2 * depth).astype(np.float32)
    fill = (labels != 2) & near & (labels != 1)
    mbf[fill] = float(np.mean(list(seg_truth.values()))) * 0.9
    valid = near & (labels != 1) & (rng.random((Y, X)) > 0.03)
    if cond == "stress" and position == "apical":
        valid[(aha == 16)] = rng.random(int((aha == 16).sum())) > 0.8  # unreliable segment
    mbf[~valid] = 0.0
    # image at peak myocardial enhancement
    img = 80.0 + 20.0 * rng.standard_normal((Y, X))
    img += 300.0 * np.exp(-((r / 85.0) ** 2))
    img[labels == 1] = 900.0
    img[labels == 3] = 700.0
    img[labels == 2] = 380.0 + 60.0 * mbf[labels == 2] / 3.0
    img = np.clip(img + 25.0 * rng.standard_normal((Y, X)), 0, None).astype(np.float32)
    # curves: blood pool and myocardium (Gd, mmol/L)
    seg_ids = sorted(seg_truth)
    lv_curve = 0.55 * aif + 0.02 * rng.standard_normal(aif.size)
    myo = np.convolve(aif, np.exp(-times_s / 12.0))[: times_s.size] * 0.0045
    myo *= float(np.mean([seg_truth[s] for s in seg_ids]))
    curves = [
        Curve("lv_blood", times_s, lv_curve.astype(float), "mmol/L"),
        Curve("myocardium", times_s, myo + 0.003 * rng.standard_normal(myo.size), "mmol/L"),
    ]
    for s in seg_ids:
        cs = myo * seg_truth[s] / np.mean([seg_truth[t] for t in seg_ids])
        curves.append(Curve(f"segment_{s}", times_s, cs, "mmol/L"))
    uid = f"1.2.826.0.1.3680043.10.999.{1 if cond == 'stress' else 2}.{k + 1}"
    return SliceReport(
        slice_index=k,
        position=position,
        peak_image=img,
        peak_frame=24,
        labels=labels,
        aha=aha,
        mbf_ml_min_g=mbf,
        mbf_valid=valid,
        geometry=g,
        lv_centre=(cy, cx),
        rv_insertion_anterior=ant,
        rv_insertion_inferior=inf,
        location_mm=10.0 * k,
        series_instance_uid=uid,
        sop_instance_uids=tuple(f"{uid}.{t + 1}" for t in range(times_s.size)),
        reference_frame=24,
        confidence=0.93 - 0.02 * k,
        curves=curves,
    )


def example_report_data(seed: int = 7) -> ReportData:
    """A plausible stress/rest exam with an LAD-territory stress defect, for tests and previews.

    Synthetic: ring-shaped myocardium on oblique short-axis slices, segment MBF with noise,
    a subendocardial gradient at stress, one unreliable apical segment at stress, curves from a
    gamma-variate AIF.
    """
    from qperf_viewer import __version__
    from qperf_viewer.sectors import POSITION_SEGMENTS, global_mbf, segment_values

    rng = np.random.default_rng(seed)
    header = ExamHeader(
        patient_name="DOE^JANE",
        patient_id="QP-000123",
        patient_birth_date="19580314",
        patient_sex="F",
        study_date="20260115",
        study_time="093000",
        study_instance_uid="1.2.826.0.1.3680043.10.999.1",
        accession_number="ACC-42",
        study_id="1",
        study_description="CMR stress perfusion",
        institution="Synthetic Heart Centre",
        manufacturer="SIEMENS",
        field_strength_t=1.5,
        stress_agent="Adenosine 140 µg/kg/min",
    )
    defect = {1: 0.5, 2: 0.56, 7: 0.44, 8: 0.6, 13: 0.5, 14: 0.62}
    conditions: dict[str, ConditionReport] = {}
    for cond, base, hr in (("stress", 2.9, 96.0), ("rest", 0.95, 64.0)):
        times = np.arange(60, dtype=float) * (60.0 / hr) + 1.2
        tt = np.clip(times - 8.0, 0, None)
        aif = 6.5 * (tt / 4.0) ** 2.5 * np.exp(-(tt - 4.0) / 1.6) / 1.0
        aif = aif / aif.max() * (6.0 if cond == "stress" else 5.5)
        aif = aif + 0.45 * (1.0 - np.exp(-tt / 5.0)) * np.exp(-tt / 60.0)
        slices = []
        for k, pos in enumerate(("basal", "mid", "apical")):
            truth = {
                s: base
                * (defect.get(s, 1.0) if cond == "stress" else 1.0)
                * (1 + 0.05 * rng.random())
                for s in POSITION_SEGMENTS[pos]
            }
            slices.append(_example_slice(rng, cond, k, pos, truth, times, aif))
        segs = segment_values(
            [s.mbf_ml_min_g for s in slices],
            [s.mbf_valid for s in slices],
            [s.aha for s in slices],
            [s.labels for s in slices],
            [s.geometry.pixel_spacing_mm for s in slices],
        )
        upslope = {s: (v.mbf * 0.11 if v.mbf is not None else None) for s, v in segs.items()}
        conditions[cond] = ConditionReport(
            name=cond,
            segments=segs,
            global_mbf=global_mbf(segs),
            heart_rate_bpm=hr,
            aif_source="dual-sequence",
            aif=Curve("aif", times, aif, "mmol/L"),
            t0_s=float(times[3]),
            slices=slices,
            series_instance_uids=[s.series_instance_uid for s in slices],
            semiquant={"upslope_per_s": upslope},
        )
    mpr_g, mpr_s = mpr_from_conditions(conditions["stress"], conditions["rest"])
    return ReportData(
        header=header,
        conditions=conditions,
        quant_model="BTEX",
        mpr_global=mpr_g,
        mpr_segments=mpr_s,
        qc_flags=[
            "stress slice 3 (apical): segment 16 unreliable (few reliable pixels)",
            "dark-rim artefact suspected: basal inferoseptal, stress",
        ],
        alignment_mm={"basal": 1.2, "mid": 0.8, "apical": 2.1},
        versions={
            "qperf-viewer": __version__,
            "segmentation model": "unet-resnet r16 (synthetic training, 2026-11)",
            "kinetic model": "BTEX (2-compartment exchange, Fermi optional)",
        },
        created=_dt.datetime(2026, 1, 15, 10, 12, 0).isoformat(timespec="seconds"),
        edited=False,
        timings_s={"total": 3.1},
    )
