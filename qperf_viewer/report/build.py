"""ReportData from the pipeline's :class:`~qperf_viewer.results.AnalysisResult` (Qt-free)."""

from __future__ import annotations

import datetime as _dt

import numpy as np

from qperf_viewer.exam import CONDITIONS, LABEL_MYO
from qperf_viewer.results import AnalysisResult, ConditionResult, SliceResult
from qperf_viewer.sectors import check_stress_rest_alignment

from .data import ConditionReport, ExamHeader, ReportData, SliceReport
from .thresholds import DEFAULT_THRESHOLDS, ThresholdSet


def peak_frame(images: np.ndarray, mask: np.ndarray | None, frames: np.ndarray) -> int:
    """Frame (among ``frames``) of maximal mean signal in ``mask`` (whole image if None)."""
    if len(frames) == 0:
        frames = np.arange(images.shape[0])
    sel = mask if mask is not None and mask.any() else np.ones(images.shape[1:], bool)
    means = np.array([float(np.nanmean(images[f][sel])) for f in frames])
    return int(frames[int(np.nanargmax(means))]) if np.isfinite(means).any() else int(frames[0])


def _slice_report(sr: SliceResult) -> SliceReport:
    seg = sr.segmentation
    labels = None if seg is None else np.asarray(seg.labels)
    imgs = sr.corrected if sr.corrected is not None else sr.series.images
    myo = None if labels is None else labels == LABEL_MYO
    pk = peak_frame(np.asarray(imgs), myo, sr.series.dynamic_frames)
    return SliceReport(
        slice_index=sr.slice_index,
        position=sr.position,
        peak_image=np.asarray(imgs[pk], dtype=np.float32),
        peak_frame=pk,
        labels=labels,
        aha=sr.aha,
        mbf_ml_min_g=sr.mbf,
        mbf_valid=sr.mbf_valid,
        geometry=sr.series.geometry,
        lv_centre=None if seg is None else seg.lv_centre,
        rv_insertion_anterior=None if seg is None else seg.rv_insertion_anterior,
        rv_insertion_inferior=None if seg is None else seg.rv_insertion_inferior,
        location_mm=sr.series.location_mm,
        series_instance_uid=sr.series.series_instance_uid,
        sop_instance_uids=tuple(sr.series.sop_instance_uids),
        reference_frame=sr.reference_frame,
        confidence=None if seg is None else float(seg.confidence),
        curves=list(sr.curves),
        flags=list(sr.flags) + ([] if seg is None else list(seg.flags)),
        edited=seg is not None and seg.source == "manual",
        map_delay_s=sr.map_delay_s,
    )


def _t0(cr: ConditionResult) -> float:
    firsts = []
    for sr in cr.slices:
        dyn = sr.series.dynamic_frames
        if len(dyn):
            firsts.append(float(sr.series.times_s[dyn[0]]))
    return min(firsts) if firsts else 0.0


def _condition_report(cr: ConditionResult) -> ConditionReport:
    uids = []
    for sr in cr.slices:
        if sr.series.series_instance_uid and sr.series.series_instance_uid not in uids:
            uids.append(sr.series.series_instance_uid)
    return ConditionReport(
        name=cr.name,
        segments=dict(cr.segments),
        global_mbf=cr.global_mbf,
        heart_rate_bpm=cr.heart_rate_bpm,
        aif_source=cr.aif_source,
        aif=cr.aif,
        t0_s=_t0(cr),
        slices=[_slice_report(sr) for sr in cr.slices],
        series_instance_uids=uids,
        semiquant={k: dict(v) for k, v in cr.semiquant.items()},
        flags=list(cr.flags),
    )


def report_data_from_result(
    result: AnalysisResult,
    thresholds: ThresholdSet | None = DEFAULT_THRESHOLDS,
    created: str | None = None,
) -> ReportData:
    """Everything the report writers need, from one analysis result.

    Notes for a missing condition, stress/rest slice alignment (flags beyond 5 mm) and the
    'edited' mark (any manual segmentation) are added here.
    """
    ex = result.exam
    header = ExamHeader(
        patient_name=ex.patient_name,
        patient_id=ex.patient_id,
        patient_birth_date=ex.patient_birth_date,
        study_date=ex.study_date,
        study_instance_uid=ex.study_instance_uid,
        manufacturer=ex.manufacturer,
        field_strength_t=ex.field_strength_t,
        stress_agent=ex.stress_agent,
    )
    for key in (
        "patient_sex",
        "study_time",
        "accession_number",
        "study_id",
        "study_description",
        "referring_physician",
        "institution",
    ):
        v = getattr(ex, key, None)
        if isinstance(v, str):
            setattr(header, key, v)
    conditions = {n: _condition_report(c) for n, c in result.conditions.items()}
    notes = []
    for name in CONDITIONS:
        if name not in conditions:
            notes.append(
                f"{name.capitalize()} perfusion not available: "
                f"{'MPR cannot be computed' if name == 'rest' else 'no stress values'}."
            )
    qc = list(result.flags) + list(ex.flags)
    alignment: dict[str, float] = {}
    if "stress" in conditions and "rest" in conditions:
        st = {
            s.position: s.geometry
            for s in conditions["stress"].slices
            if s.position and s.geometry is not None
        }
        re = {
            s.position: s.geometry
            for s in conditions["rest"].slices
            if s.position and s.geometry is not None
        }
        pts = {
            s.position: s.lv_centre
            for s in conditions["rest"].slices
            if s.position and s.lv_centre is not None
        }
        alignment, flags = check_stress_rest_alignment(st, re, points_rc=pts)
        qc += flags
    edited = any(s.edited for c in conditions.values() for s in c.slices)
    return ReportData(
        header=header,
        conditions=conditions,
        quant_model=result.model,
        mpr_global=result.mpr_global,
        mpr_segments=dict(result.mpr_segments),
        thresholds=thresholds,
        qc_flags=qc,
        notes=notes,
        alignment_mm=alignment,
        versions=dict(result.versions),
        created=created or _dt.datetime.now().isoformat(timespec="seconds"),
        edited=edited,
        timings_s=dict(result.timings_s),
        quant_options=result.options.to_dict() if hasattr(result, "options") else {},
    )
