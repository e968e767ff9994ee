"""A small constructed exam and analysis result with known values (numpy only, no Qt).

For the GUI's tests and benchmarks, and for developing the views without the core: a
stress/rest exam of ring-shaped hearts on an oblique short-axis plane, an
:class:`~qperf_viewer.results.AnalysisResult` whose segment values are exactly the median of
its pixel maps, and :class:`SampleBackend`, a stand-in for the core calls the session makes
(index, load, analyze, apply_edit). Not a phantom: the real synthetic exams come from
``qperf_viewer.phantom``. Axes (T, Y, X); points (row, col); s, mmol/L, mL/min/g.
"""

from __future__ import annotations

import dataclasses
import functools
import time

import numpy as np
from scipy import ndimage

from qperf_viewer import sectors
from qperf_viewer.exam import (
    LABEL_LV,
    LABEL_MYO,
    LABEL_RV,
    POSITIONS,
    ConditionData,
    PerfusionExam,
    SliceSeries,
)
from qperf_viewer.geometry import SliceGeometry, angle_about_normal_deg, base_to_apex_normal
from qperf_viewer.gui.display import patient_to_pixel_dir, pixel_to_patient_dir
from qperf_viewer.results import (
    AnalysisResult,
    ConditionResult,
    Curve,
    Segmentation,
    SegmentValue,
    SliceResult,
)

APEX = np.array([1.0, -1.0, -1.0]) / np.sqrt(3.0)
STRESS_MBF = {s: 2.6 for s in range(1, 17)} | {4: 1.2, 10: 1.3, 15: 1.4}
REST_MBF = {s: 1.0 for s in range(1, 17)}
SEGMENTS_OF = {"basal": range(1, 7), "mid": range(7, 13), "apical": range(13, 17)}


def sample_geometry(
    k: int, shape: tuple[int, int] = (96, 96), spacing_mm: float = 2.0, rotation_deg: float = 35.0
) -> SliceGeometry:
    """Oblique short-axis plane k (0 basal) 10 mm apart along the base-to-apex normal."""
    e1 = np.cross(APEX, [0.0, 0.0, 1.0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(APEX, e1)
    t = np.radians(rotation_deg)
    row_dir = np.cos(t) * e1 + np.sin(t) * e2
    col_dir = np.cross(APEX, row_dir)
    centre = np.array([10.0, -20.0, 30.0]) + 10.0 * k * APEX
    rows, cols = shape
    origin = centre - (cols - 1) / 2 * spacing_mm * row_dir - (rows - 1) / 2 * spacing_mm * col_dir
    return SliceGeometry(
        orientation=tuple(float(v) for v in (*row_dir, *col_dir)),
        origin_mm=tuple(float(v) for v in origin),
        pixel_spacing_mm=(spacing_mm, spacing_mm),
        shape=shape,
        slice_thickness_mm=8.0,
    )


def _circle_intersections(c0, r0, c1, r1):
    d = np.linalg.norm(c1 - c0)
    a = (r0**2 - r1**2 + d**2) / (2 * d)
    h = np.sqrt(max(r0**2 - a**2, 0.0))
    mid = c0 + a * (c1 - c0) / d
    perp = np.array([-(c1 - c0)[1], (c1 - c0)[0]]) / d
    return mid + h * perp, mid - h * perp


def aha_map(seg: Segmentation, geom: SliceGeometry, position: str | None) -> np.ndarray:
    """(Y, X) uint8 AHA segment per myocardial pixel (``qperf_viewer.sectors``), 0 elsewhere."""
    if position not in SEGMENTS_OF or None in (
        seg.lv_centre,
        seg.rv_insertion_anterior,
        seg.rv_insertion_inferior,
    ):
        return np.zeros(seg.labels.shape, np.uint8)
    return sectors.aha_segments(
        seg.labels,
        geom,
        seg.lv_centre,
        seg.rv_insertion_anterior,
        seg.rv_insertion_inferior,
        position,
    )


def _anatomy(geom: SliceGeometry, k: int) -> Segmentation:
    rows, cols = geom.shape
    c = np.array([rows / 2 - 2.0, cols / 2 + 3.0])
    r_endo = [10.0, 9.0, 6.5][min(k, 2)]
    r_epi = r_endo + 5.0
    rv_dir = patient_to_pixel_dir(geom, np.array([-1.0, -0.35, 0.0]))
    rv_dir /= np.linalg.norm(rv_dir)
    rv_c, rv_r = c + rv_dir * (r_epi + 3.0), r_epi + 2.0
    rr, cc = np.mgrid[:rows, :cols]
    dist = np.hypot(rr - c[0], cc - c[1])
    labels = np.zeros(geom.shape, np.uint8)
    labels[(np.hypot(rr - rv_c[0], cc - rv_c[1]) <= rv_r) & (dist > r_epi + 1.0)] = LABEL_RV
    labels[dist <= r_epi] = LABEL_MYO
    labels[dist <= r_endo] = LABEL_LV
    p1, p2 = _circle_intersections(c, r_epi, rv_c, rv_r)
    n = base_to_apex_normal(geom)
    v1, v2 = (pixel_to_patient_dir(geom, p - c) for p in (p1, p2))
    vr = pixel_to_patient_dir(geom, rv_dir)
    a_rv = float(angle_about_normal_deg(v1, vr[None], n)[0])
    a_p2 = float(angle_about_normal_deg(v1, v2[None], n)[0])
    ant, inf = (p1, p2) if a_rv < a_p2 else (p2, p1)
    return Segmentation(
        labels=labels,
        lv_centre=(float(c[0]), float(c[1])),
        rv_insertion_anterior=(float(ant[0]), float(ant[1])),
        rv_insertion_inferior=(float(inf[0]), float(inf[1])),
        confidence=0.93,
        source="automatic",
    )


def _aif(times_s: np.ndarray, t0: float, peak: float = 5.0) -> np.ndarray:
    x = np.clip(times_s - t0, 0.0, None) / 3.0
    g = x**2 * np.exp(-x)
    g = g / max(float(g.max()), 1e-12) * peak
    recirc = 0.6 * (1 - np.exp(-np.clip(times_s - t0 - 10, 0, None) / 6.0))
    return (g + recirc).astype(np.float64)


def _tissue(times_s: np.ndarray, aif: np.ndarray, mbf: float) -> np.ndarray:
    """Tissue Gd = F * (AIF conv exp(-t/8 s)), F = MBF x 1.05 / 60 per s."""
    dt = np.diff(times_s, prepend=times_s[0])
    f = mbf * 1.05 / 60.0
    out = np.zeros_like(aif)
    for i in range(len(times_s)):
        out[i] = f * np.sum(
            aif[: i + 1] * np.exp(-(times_s[i] - times_s[: i + 1]) / 8.0) * dt[: i + 1]
        )
    return out


@functools.lru_cache(maxsize=4)
def sample_exam(
    n_frames: int = 40, shape: tuple[int, int] = (96, 96), seed: int = 0
) -> tuple[PerfusionExam, dict]:
    """A stress/rest exam with three slices; returns (exam, truth) where truth holds per
    condition and slice the Segmentation, Gd stack and MBF truth per segment. Cached: treat
    the arrays as read-only."""
    rng = np.random.default_rng(seed)
    exam = PerfusionExam(
        study_instance_uid="1.2.826.0.1.3680043.8.498.1",
        patient_name="SAMPLE^GUI",
        patient_id="GUI-0001",
        patient_birth_date="19600101",
        study_date="20260115",
        manufacturer="SAMPLE",
        field_strength_t=1.5,
        stress_agent="adenosine",
    )
    truth: dict = {}
    for cond, rr_s, t0, seg_mbf in (
        ("stress", 0.62, 7.0, STRESS_MBF),
        ("rest", 0.95, 10.0, REST_MBF),
    ):
        times = np.cumsum(np.full(n_frames, rr_s) + rng.normal(0, 0.02, n_frames))
        times -= times[0]
        aif = _aif(times, t0)
        slices, tr = [], []
        for k, pos in enumerate(POSITIONS):
            geom = sample_geometry(k, shape)
            seg = _anatomy(geom, k)
            aha = aha_map(seg, geom, pos)
            gd = np.zeros((n_frames, *shape), np.float32)
            gd[:, seg.labels == LABEL_LV] = aif[:, None]
            rv_curve = _aif(times, t0 - 2.0, 6.0)
            gd[:, seg.labels == LABEL_RV] = rv_curve[:, None]
            for s in SEGMENTS_OF[pos]:
                gd[:, aha == s] = _tissue(times, aif, seg_mbf[s])[:, None]
            r1 = 1.0 / 1.0 + 4.5 * gd  # R10 = 1/s, r1 = 4.5 L/(mmol s)
            yy, xx = np.mgrid[: shape[0], : shape[1]]
            m0 = 900.0 * (1.0 - 0.3 * (xx / shape[1])) * (1 + 0.2 * (yy / shape[0]))
            tissue = np.where(seg.labels > 0, 1.0, 0.55)
            ts = 0.1
            sig = m0 * tissue * (1.0 - np.exp(-ts * r1))
            sig[:2] = m0 * tissue  # PD frames
            sig = sig + rng.normal(0, 4.0, sig.shape)
            slices.append(
                SliceSeries(
                    images=sig.astype(np.float32),
                    times_s=times.copy(),
                    geometry=geom,
                    pd_frames=(0, 1),
                    ts_ms=100.0,
                    series_instance_uid=f"1.2.826.0.1.3680043.8.498.{10 + k}{len(cond)}",
                    position=pos,
                    slice_index=k,
                    location_mm=10.0 * k,
                )
            )
            tr.append({"segmentation": seg, "gd": gd, "aha": aha})
        exam.conditions[cond] = ConditionData(
            name=cond, slices=slices, heart_rate_bpm=60.0 / rr_s, series_descriptions=(cond,)
        )
        truth[cond] = {"slices": tr, "aif": aif, "segment_mbf": seg_mbf}
    return exam, truth


def _pixel_mbf(seg: Segmentation, aha: np.ndarray, seg_mbf: dict[int, float], seed: int):
    """MBF map over the myocardium dilated by 2 px: nearest segment's value + a gentle ramp."""
    wall = seg.labels == LABEL_MYO
    region = ndimage.binary_dilation(wall, iterations=2)
    idx = ndimage.distance_transform_edt(aha == 0, return_distances=False, return_indices=True)
    nearest = aha[idx[0], idx[1]]
    base = np.vectorize(lambda s: seg_mbf.get(int(s), 0.0), otypes=[float])(nearest)
    yy, xx = np.mgrid[: aha.shape[0], : aha.shape[1]]
    ramp = 0.15 * np.sin(xx / 5.0 + seed) * np.cos(yy / 7.0)
    mbf = np.where(region, base + ramp, 0.0).astype(np.float32)
    return mbf, region


def _segment_values(slices: list[SliceResult]) -> dict[int, SegmentValue]:
    """Segment values pooled over the slices with a segmentation (``sectors.segment_values``:
    median of reliable pixels, endo/epi halves)."""
    use = [
        sr
        for sr in slices
        if sr.segmentation is not None and sr.aha is not None and sr.mbf is not None
    ]
    if not use:
        return {s: SegmentValue(segment=s, mbf=None) for s in range(1, 17)}
    return sectors.segment_values(
        [sr.mbf for sr in use],
        [sr.mbf_valid for sr in use],
        [sr.aha for sr in use],
        [sr.segmentation.labels for sr in use],
        [sr.series.geometry.pixel_spacing_mm for sr in use],
    )


def _global(segments: dict[int, SegmentValue]) -> float | None:
    return sectors.global_mbf(segments)


def _mpr(stress: ConditionResult | None, rest: ConditionResult | None):
    if stress is None or rest is None:
        return None, {s: None for s in range(1, 17)}
    seg = {}
    for s in range(1, 17):
        a, b = stress.segments[s].mbf, rest.segments[s].mbf
        seg[s] = a / b if a is not None and b is not None and b >= 0.3 else None
    g = (
        stress.global_mbf / rest.global_mbf
        if stress.global_mbf is not None and rest.global_mbf
        else None
    )
    return g, seg


def sample_result(exam: PerfusionExam, truth: dict, model: str = "btex") -> AnalysisResult:
    """AnalysisResult of :func:`sample_exam`: exact segmentations, Gd, and MBF maps."""
    conds: dict[str, ConditionResult] = {}
    for cond, cd in exam.conditions.items():
        tr = truth[cond]
        srs = []
        for k, ss in enumerate(cd.slices):
            seg = tr["slices"][k]["segmentation"]
            aha = tr["slices"][k]["aha"]
            mbf, valid = _pixel_mbf(seg, aha, tr["segment_mbf"], k)
            lv = tr["slices"][k]["gd"][:, seg.labels == LABEL_LV].mean(axis=1)
            curves = [Curve("LV blood pool (fit input)", ss.times_s, lv, "mmol/L")]
            srs.append(
                SliceResult(
                    condition=cond,
                    slice_index=k,
                    position=ss.position,
                    series=ss,
                    reference_frame=int(ss.n_frames // 2),
                    corrected=ss.images,
                    shifts_px=np.zeros((ss.n_frames, 2)),
                    gd=tr["slices"][k]["gd"],
                    segmentation=seg,
                    aha=aha,
                    mbf=mbf,
                    mbf_valid=valid,
                    curves=curves,
                    automatic=seg,
                )
            )
        segments = _segment_values(srs)
        conds[cond] = ConditionResult(
            name=cond,
            slices=srs,
            aif=Curve("AIF", cd.slices[0].times_s, tr["aif"], "mmol/L"),
            aif_source="dual-sequence AIF series",
            heart_rate_bpm=cd.heart_rate_bpm,
            segments=segments,
            global_mbf=_global(segments),
        )
    g, seg = _mpr(conds.get("stress"), conds.get("rest"))
    return AnalysisResult(exam=exam, conditions=conds, model=model, mpr_global=g, mpr_segments=seg)


def sample_apply_edit(
    result: AnalysisResult, condition: str, slice_index: int, segmentation: Segmentation | None
) -> AnalysisResult:
    """Stand-in for ``pipeline.apply_edit``: new sectors and segment values of the edited
    slice from the unchanged pixel maps; nothing is mutated."""
    cr = result.conditions[condition]
    sr = cr.slices[slice_index]
    aha = None if segmentation is None else aha_map(segmentation, sr.series.geometry, sr.position)
    new_sr = dataclasses.replace(sr, segmentation=segmentation, aha=aha)
    slices = list(cr.slices)
    slices[slice_index] = new_sr
    segments = _segment_values(slices)
    new_cr = dataclasses.replace(cr, slices=slices, segments=segments, global_mbf=_global(segments))
    conds = dict(result.conditions)
    conds[condition] = new_cr
    g, seg = _mpr(conds.get("stress"), conds.get("rest"))
    return dataclasses.replace(result, conditions=conds, mpr_global=g, mpr_segments=seg)


def sample_index_json(exam: PerfusionExam) -> dict:
    """An index document (schema qperf-viewer/index/1 subset) describing :func:`sample_exam`."""
    series = []
    for cond, cd in exam.conditions.items():
        for ss in cd.slices:
            series.append(
                {
                    "series_instance_uid": ss.series_instance_uid,
                    "series_description": f"perf {cond} {ss.position}",
                    "role": cond,
                    "role_reason": "description keyword",
                    "n_instances": ss.n_frames,
                }
            )
    series.append(
        {
            "series_instance_uid": "1.2.3.999",
            "series_description": "localizer",
            "role": "other",
            "role_reason": "not a perfusion series",
            "n_instances": 3,
        }
    )
    return {
        "schema": "qperf-viewer/index/1",
        "studies": [
            {
                "study_instance_uid": exam.study_instance_uid,
                "patient_id": exam.patient_id,
                "patient_name": exam.patient_name,
                "study_date": exam.study_date,
                "series": series,
            }
        ],
        "problems": [
            {"path": "junk/readme.txt", "reason": "not a DICOM file"},
            {"path": "junk/broken.dcm", "reason": "truncated file: pixel data incomplete"},
        ],
    }


class SampleBackend:
    """The session's core calls answered with the constructed exam (tests, benchmarks).

    ``delay_s`` makes analyze() slow, in small cancellable steps, to exercise the workers.
    """

    def __init__(self, n_frames: int = 40, shape: tuple[int, int] = (96, 96), delay_s: float = 0.0):
        self.exam, self.truth = sample_exam(n_frames, shape)
        self.delay_s = delay_s
        self.role_overrides: dict[str, str] = {}
        self.calls: list[str] = []

    def scan_folder(self, path, progress=None, cancel=None):
        self.calls.append("scan")
        if progress:
            progress(1.0, "indexed")
        return {"path": str(path)}

    def index_to_json(self, index) -> dict:
        doc = sample_index_json(self.exam)
        for s in doc["studies"][0]["series"]:
            s["role"] = self.role_overrides.get(s["series_instance_uid"], s["role"])
        return doc

    def load_exam(self, index, study_uid=None, roles=None, progress=None, cancel=None):
        self.calls.append("load")
        self.role_overrides = dict(roles or {})
        return self.exam

    def analyze_exam(self, exam, *, model="btex", progress=None, cancel=None):
        self.calls.append("analyze")
        steps = 10
        for i in range(steps):
            if cancel is not None and cancel():
                from qperf_viewer.errors import CancelledError

                raise CancelledError("Analysis cancelled.")
            if self.delay_s:
                time.sleep(self.delay_s / steps)
            if progress:
                progress((i + 1) / steps, f"step {i + 1}/{steps}")
        return sample_result(exam, self.truth, model)

    def apply_edit(self, result, condition, slice_index, segmentation):
        self.calls.append("apply_edit")
        return sample_apply_edit(result, condition, slice_index, segmentation)

    def manual_aif(self, result, condition, slice_index, mask, progress=None, cancel=None):
        """Stand-in re-fit: MBF scales with 1 / (AIF area) (as for any linear model)."""
        self.calls.append("manual_aif")
        cr = result.conditions[condition]
        auto = Curve("AIF", cr.slices[0].series.times_s, self.truth[condition]["aif"], "mmol/L")
        if mask is None:
            aif, source = auto, "dual-sequence AIF series"
        else:
            gd = cr.slices[slice_index].gd
            aif = Curve(
                "AIF",
                cr.slices[slice_index].series.times_s,
                gd[:, np.asarray(mask, bool)].mean(axis=1),
                "mmol/L",
            )
            source = f"manual region ({int(np.sum(mask))} px, slice {slice_index + 1})"
        scale = float(
            np.trapezoid(auto.values, auto.times_s)
            / max(np.trapezoid(aif.values, aif.times_s), 1e-9)
        )
        base = sample_result(result.exam, self.truth, result.model).conditions[condition]
        slices = [
            dataclasses.replace(sr, mbf=(b.mbf * scale).astype(np.float32))
            for sr, b in zip(cr.slices, base.slices, strict=True)
        ]
        segments = _segment_values(slices)
        new_cr = dataclasses.replace(
            cr,
            slices=slices,
            segments=segments,
            aif=aif,
            aif_source=source,
            global_mbf=_global(segments),
        )
        conds = dict(result.conditions)
        conds[condition] = new_cr
        g, seg = _mpr(conds.get("stress"), conds.get("rest"))
        return dataclasses.replace(result, conditions=conds, mpr_global=g, mpr_segments=seg)
