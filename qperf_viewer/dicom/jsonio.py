"""The index as versioned JSON (``"schema": "qperf-viewer/index/1"``); documented in
``docs/index_schema.md``. Only plain JSON types; times in s, TS in ms, spacing in mm."""

from __future__ import annotations

import math
from typing import Any

from qperf_viewer.dicom.model import ConditionIndex, Problem, Series, SliceIndex, Study, StudyIndex

SCHEMA = "qperf-viewer/index/1"


def _num(v: float | None, nd: int = 6) -> float | None:
    if v is None or not math.isfinite(v):
        return None
    return round(float(v), nd)


def problem_to_json(p: Problem) -> dict[str, Any]:
    return {"path": p.path, "reason": p.reason, "hint": p.hint, "severity": p.severity}


def _series(se: Series) -> dict[str, Any]:
    return {
        "series_instance_uid": se.series_instance_uid,
        "series_number": se.series_number,
        "series_description": se.description,
        "protocol_name": se.protocol_name,
        "modality": se.modality,
        "image_type": list(se.image_type),
        "role": se.role,
        "role_reason": se.role_reason,
        "role_set_by_user": se.role_set_by_user,
        "condition": se.condition,
        "n_instances": len(se.instances),
        "n_frames": se.n_frames,
        "n_positions": se.n_positions,
        "heart_rate_bpm": _num(se.heart_rate_bpm, 2),
    }


def _slice(sl: SliceIndex, with_position: bool = True) -> dict[str, Any]:
    g = sl.geometry
    out: dict[str, Any] = {"series_instance_uid": sl.series_instance_uid}
    if with_position:
        out.update(
            position=sl.position, slice_index=sl.slice_index, location_mm=_num(sl.location_mm, 3)
        )
    out.update(
        sop_instance_uids=list(sl.sop_instance_uids),
        frame_numbers=list(sl.frame_numbers),
        times_s=[_num(t) for t in sl.times_s],
        pd_frames=list(sl.pd_frames),
        ts_ms=_num(sl.ts_ms, 3),
        trigger_time_ms=_num(sl.trigger_time_ms, 3),
        rows=g.shape[0],
        columns=g.shape[1],
        pixel_spacing_mm=[_num(x) for x in g.pixel_spacing_mm],
        slice_thickness_mm=_num(g.slice_thickness_mm, 3),
        image_orientation_patient=[_num(x) for x in g.orientation],
        image_position_patient=[_num(x) for x in g.origin_mm],
        units=sl.units,
        flags=list(dict.fromkeys(sl.flags)),
    )
    return out


def _condition(c: ConditionIndex) -> dict[str, Any]:
    return {
        "series_instance_uids": list(c.series_instance_uids),
        "series_descriptions": list(c.series_descriptions),
        "heart_rate_bpm": _num(c.heart_rate_bpm, 2),
        "flags": list(c.flags),
        "slices": [_slice(sl) for sl in c.slices],
        "aif": None if c.aif is None else _slice(c.aif, with_position=False),
    }


def study_to_json(st: Study) -> dict[str, Any]:
    return {
        "study_instance_uid": st.study_instance_uid,
        "patient_id": st.patient_id,
        "patient_name": st.patient_name,
        "patient_birth_date": st.patient_birth_date,
        "study_date": st.study_date,
        "study_time": st.study_time,
        "study_description": st.study_description,
        "accession_number": st.accession_number,
        "manufacturer": st.manufacturer,
        "field_strength_t": _num(st.field_strength_t, 3),
        "series": [_series(se) for se in st.series],
        "conditions": {name: _condition(c) for name, c in st.conditions.items()},
        "problems": [problem_to_json(p) for p in st.all_problems],
    }


def index_to_json(index: StudyIndex) -> dict[str, Any]:
    """The whole index as a JSON-serialisable dict (schema :data:`SCHEMA`)."""
    return {
        "schema": SCHEMA,
        "root": index.root,
        "n_files": index.n_files,
        "n_instances": index.n_instances,
        "n_from_cache": index.n_from_cache,
        "studies": [study_to_json(st) for st in index.studies],
        "problems": [problem_to_json(p) for p in index.all_problems],
    }
