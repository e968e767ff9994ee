"""results.json: the machine-readable results, schema ``qperf-viewer/results/1`` (Qt-free).

:data:`SCHEMA` is a JSON Schema (draft 2020-12, a subset: type, enum, required, properties,
additionalProperties, items, minItems, maxItems, minimum, maximum) and :func:`validate_results`
checks a document against it without third-party packages; numbers must be finite (no NaN).
``docs/results_schema.md`` describes every field. ``python -m qperf_viewer.report.results_json
--schema`` prints the schema as JSON.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

from qperf_viewer.errors import InputError
from qperf_viewer.sectors import N_SEGMENTS, SEGMENT_NAMES, TERRITORIES, TERRITORY_OF_SEGMENT

from ._atomic import atomic_write_text
from .data import MPR_MIN_REST_ML_MIN_G, ConditionReport, ReportData, SliceReport
from .text import segment_status

SCHEMA_ID = "qperf-viewer/results/1"


class ResultsSchemaError(InputError):
    """A results document does not follow the schema; ``errors`` lists every problem."""

    def __init__(self, errors: list[str], path: str | None = None):
        self.errors = list(errors)
        shown = "; ".join(errors[:5]) + (f" (+{len(errors) - 5} more)" if len(errors) > 5 else "")
        super().__init__(f"Results document does not follow {SCHEMA_ID}: {shown}.", path=path)


# --------------------------------------------------------------------------- schema
def _t(*types: str) -> dict:
    return {"type": list(types) if len(types) > 1 else types[0]}


NUM, NUM_N = _t("number"), _t("number", "null")
STR, STR_N = _t("string"), _t("string", "null")
INT, INT_N = _t("integer"), _t("integer", "null")
BOOL = _t("boolean")
STRS = {"type": "array", "items": STR}
NUMS = {"type": "array", "items": NUM}
POINT = {"type": ["array", "null"], "items": NUM, "minItems": 2, "maxItems": 2}
SEG16 = {"type": "array", "items": NUM_N, "minItems": N_SEGMENTS, "maxItems": N_SEGMENTS}


def _obj(props: dict, required: list[str] | None = None, nullable: bool = False, extra=False):
    return {
        "type": ["object", "null"] if nullable else "object",
        "required": list(props) if required is None else required,
        "properties": props,
        "additionalProperties": extra,
    }


CURVE = _obj({"name": STR, "times_s": NUMS, "values": NUMS, "unit": STR})
SEGMENT = _obj(
    {
        "segment": {"type": "integer", "minimum": 1, "maximum": N_SEGMENTS},
        "name": STR,
        "territory": {"enum": list(TERRITORIES)},
        "status": {"enum": ["ok", "unreliable", "not covered"]},
        "mbf_ml_min_g": NUM_N,
        "endo_ml_min_g": NUM_N,
        "epi_ml_min_g": NUM_N,
        "n_pixels": {"type": "integer", "minimum": 0},
        "n_reliable": {"type": "integer", "minimum": 0},
    }
)
_SLICE_PROPS = {
    "slice_index": {"type": "integer", "minimum": 0},
    "position": {"enum": ["basal", "mid", "apical", None]},
    "location_mm": NUM_N,
    "series_instance_uid": STR,
    "sop_instance_uids": STRS,
    "reference_frame": INT_N,
    "lv_centre": POINT,
    "rv_insertion_anterior": POINT,
    "rv_insertion_inferior": POINT,
    "confidence": NUM_N,
    "edited": BOOL,
    "flags": STRS,
    "map_delay_s": NUM_N,
}
# map_delay_s is optional: files written before 2026-12-02 lack it
SLICE = _obj(_SLICE_PROPS, required=[k for k in _SLICE_PROPS if k != "map_delay_s"])
CONDITION = _obj(
    {
        "series_instance_uids": STRS,
        "heart_rate_bpm": NUM_N,
        "t0_s": NUM,
        "aif": _obj({"source": STR, "curve": {**CURVE, "type": ["object", "null"]}}),
        "global_mbf_ml_min_g": NUM_N,
        "segment_mbf_ml_min_g": SEG16,
        "segments": {"type": "array", "items": SEGMENT, "minItems": 16, "maxItems": 16},
        "slices": {"type": "array", "items": SLICE},
        "semiquant": {"type": "object", "additionalProperties": SEG16},
        "flags": STRS,
    },
    nullable=True,
)
THRESHOLDS = _obj(
    {
        "name": STR,
        "stress_mbf_ml_min_g": NUM_N,
        "mpr": NUM_N,
        "global_stress_mbf_ml_min_g": NUM_N,
        "citation": STR,
        "doi": STR,
        "quant_model": STR,
        "aif_source": STR,
        "field_strengths_t": NUMS,
        "endpoint": STR,
        "applied": BOOL,
        "reason": STR,
        "caution": STR,
        "highlighted_stress_mbf": {"type": "array", "items": INT},
        "highlighted_mpr": {"type": "array", "items": INT},
    },
    nullable=True,
)
TERRITORY = _obj(
    {
        "segments": {"type": "array", "items": INT},
        "stress_mbf_ml_min_g": NUM_N,
        "rest_mbf_ml_min_g": NUM_N,
        "mpr": NUM_N,
    }
)

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": SCHEMA_ID,
    "title": "qperf-viewer results",
    **_obj(
        {
            "schema": {"const": SCHEMA_ID},
            "software": _obj({"name": STR, "version": STR}),
            "versions": {"type": "object", "additionalProperties": STR},
            "created": STR,
            "study": _obj(
                {
                    "study_instance_uid": STR,
                    "patient_name": STR,
                    "patient_id": STR,
                    "patient_birth_date": STR,
                    "patient_sex": STR,
                    "study_date": STR,
                    "study_time": STR,
                    "accession_number": STR,
                    "study_description": STR,
                    "institution": STR,
                    "manufacturer": STR,
                    "field_strength_t": NUM_N,
                    "stress_agent": STR_N,
                }
            ),
            "quantification": _obj(
                {
                    "model": STR,
                    "mbf_unit": {"const": "mL/min/g"},
                    "segment_value": STR,
                    "global_value": STR,
                    "mpr_rule": STR,
                    "hematocrit": NUM_N,
                    "r1_l_per_mmol_s": NUM_N,
                    "default_ts_ms": NUM_N,
                    "gd_input": STR,
                }
            ),
            "conditions": _obj({"stress": CONDITION, "rest": CONDITION}),
            "mpr": _obj({"global": NUM_N, "segments": SEG16}),
            "territories": _obj({t: TERRITORY for t in TERRITORIES}),
            "thresholds": THRESHOLDS,
            "alignment_mm": {"type": "object", "additionalProperties": NUM},
            "qc": _obj({"flags": STRS, "notes": STRS, "edited": BOOL}),
            "timings_s": {"type": "object", "additionalProperties": NUM},
        }
    ),
}


# --------------------------------------------------------------------------- validation
_PY_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
}


def _check(value, schema: dict, where: str, errors: list[str]):
    if isinstance(value, float) and not math.isfinite(value):
        errors.append(f"{where}: {value} is not a finite number")
        return
    if "const" in schema and value != schema["const"]:
        errors.append(f"{where}: must be {schema['const']!r}, got {value!r}")
        return
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: {value!r} is not one of {schema['enum']}")
        return
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_PY_TYPES[t](value) for t in types):
            errors.append(f"{where}: expected {' or '.join(types)}, got {type(value).__name__}")
            return
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{where}: {value} < minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{where}: {value} > maximum {schema['maximum']}")
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                errors.append(f"{where}: missing key {key!r}")
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, v in value.items():
            if key in props:
                _check(v, props[key], f"{where}.{key}", errors)
            elif extra is False:
                errors.append(f"{where}: unexpected key {key!r}")
            elif isinstance(extra, dict):
                _check(v, extra, f"{where}.{key}", errors)
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            errors.append(f"{where}: {len(value)} items < {schema['minItems']}")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append(f"{where}: {len(value)} items > {schema['maxItems']}")
        if "items" in schema:
            for k, v in enumerate(value):
                _check(v, schema["items"], f"{where}[{k}]", errors)


def validate_results(doc: Any) -> list[str]:
    """Problems of a results document (empty list: valid)."""
    errors: list[str] = []
    _check(doc, SCHEMA, "$", errors)
    if isinstance(doc, dict) and isinstance(doc.get("conditions"), dict):
        for name, cond in doc["conditions"].items():
            if isinstance(cond, dict) and isinstance(cond.get("segments"), list):
                nums = [s.get("segment") for s in cond["segments"] if isinstance(s, dict)]
                if nums != list(range(1, N_SEGMENTS + 1)):
                    errors.append(f"$.conditions.{name}.segments: must list segments 1-16 in order")
    return errors


# --------------------------------------------------------------------------- building
def _f(v) -> float | None:
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def _point(p) -> list[float] | None:
    return None if p is None else [float(p[0]), float(p[1])]


def _curve(cv) -> dict | None:
    if cv is None:
        return None
    t = [float(x) for x in cv.times_s]
    v = [float(x) for x in cv.values]
    keep = [k for k in range(min(len(t), len(v))) if math.isfinite(t[k]) and math.isfinite(v[k])]
    return {
        "name": cv.name,
        "times_s": [t[k] for k in keep],
        "values": [v[k] for k in keep],
        "unit": cv.unit,
    }


def _slice(sl: SliceReport) -> dict:
    return {
        "slice_index": int(sl.slice_index),
        "position": sl.position,
        "location_mm": _f(sl.location_mm),
        "series_instance_uid": sl.series_instance_uid,
        "sop_instance_uids": list(sl.sop_instance_uids),
        "reference_frame": None if sl.reference_frame is None else int(sl.reference_frame),
        "lv_centre": _point(sl.lv_centre),
        "rv_insertion_anterior": _point(sl.rv_insertion_anterior),
        "rv_insertion_inferior": _point(sl.rv_insertion_inferior),
        "confidence": _f(sl.confidence),
        "edited": bool(sl.edited),
        "flags": list(sl.flags),
        "map_delay_s": _f(sl.map_delay_s),
    }


def _condition(c: ConditionReport | None) -> dict | None:
    if c is None:
        return None
    segs = []
    for s in range(1, N_SEGMENTS + 1):
        sv = c.segment(s)
        ok = segment_status(sv) == "ok"
        segs.append(
            {
                "segment": s,
                "name": SEGMENT_NAMES[s],
                "territory": TERRITORY_OF_SEGMENT[s],
                "status": segment_status(sv),
                "mbf_ml_min_g": _f(sv.mbf) if ok else None,
                "endo_ml_min_g": _f(sv.endo) if ok else None,
                "epi_ml_min_g": _f(sv.epi) if ok else None,
                "n_pixels": int(sv.n_pixels),
                "n_reliable": int(sv.n_reliable),
            }
        )
    return {
        "series_instance_uids": list(c.series_instance_uids),
        "heart_rate_bpm": _f(c.heart_rate_bpm),
        "t0_s": float(c.t0_s),
        "aif": {"source": c.aif_source or "none", "curve": _curve(c.aif)},
        "global_mbf_ml_min_g": _f(c.global_mbf),
        "segment_mbf_ml_min_g": [s["mbf_ml_min_g"] for s in segs],
        "segments": segs,
        "slices": [_slice(sl) for sl in sorted(c.slices, key=lambda s: s.slice_index)],
        "semiquant": {
            name: [_f(vals.get(s)) for s in range(1, N_SEGMENTS + 1)]
            for name, vals in c.semiquant.items()
        },
        "flags": list(c.flags),
    }


def results_document(data: ReportData) -> dict:
    """The results.json document of a report (valid against :data:`SCHEMA`)."""
    from qperf_viewer import __version__

    opts = dict(getattr(data, "quant_options", {}) or {})
    h = data.header
    thr = data.thresholds
    thr_doc = None
    if thr is not None:
        app = data.threshold_applicability()
        low_mbf, low_mpr = data.highlighted()
        thr_doc = {
            "name": thr.name,
            "stress_mbf_ml_min_g": thr.stress_mbf_ml_min_g,
            "mpr": thr.mpr,
            "global_stress_mbf_ml_min_g": thr.global_stress_mbf_ml_min_g,
            "citation": thr.citation,
            "doi": thr.doi,
            "quant_model": thr.quant_model,
            "aif_source": thr.aif_source,
            "field_strengths_t": [float(f) for f in thr.field_strengths_t],
            "endpoint": thr.endpoint,
            "applied": app.applies,
            "reason": app.reason,
            "caution": app.caution,
            "highlighted_stress_mbf": sorted(low_mbf),
            "highlighted_mpr": sorted(low_mpr),
        }
    terr = {
        t: {
            "segments": list(TERRITORIES[t]),
            "stress_mbf_ml_min_g": _f(v["stress"]),
            "rest_mbf_ml_min_g": _f(v["rest"]),
            "mpr": _f(v["mpr"]),
        }
        for t, v in data.territory_values().items()
    }
    return {
        "schema": SCHEMA_ID,
        "software": {
            "name": "qperf-viewer",
            "version": data.versions.get("qperf-viewer", __version__),
        },
        "versions": {str(k): str(v) for k, v in data.versions.items()},
        "created": data.created,
        "study": {
            "study_instance_uid": h.study_instance_uid,
            "patient_name": h.patient_name,
            "patient_id": h.patient_id,
            "patient_birth_date": h.patient_birth_date,
            "patient_sex": h.patient_sex,
            "study_date": h.study_date,
            "study_time": h.study_time,
            "accession_number": h.accession_number,
            "study_description": h.study_description,
            "institution": h.institution,
            "manufacturer": h.manufacturer,
            "field_strength_t": _f(h.field_strength_t),
            "stress_agent": h.stress_agent,
        },
        "quantification": {
            "model": data.quant_model,
            "mbf_unit": "mL/min/g",
            "segment_value": "median of the reliable pixel values in the segment",
            "global_value": "mean of the segments with a value",
            "mpr_rule": "global stress / global rest; per segment only where both are reliable "
            f"and rest >= {MPR_MIN_REST_ML_MIN_G:g} mL/min/g",
            "hematocrit": _f(opts.get("hematocrit", 0.42)),
            "r1_l_per_mmol_s": _f(opts.get("r1_l_per_mmol_s", 4.5)),
            "default_ts_ms": _f(opts.get("default_ts_ms")),
            "gd_input": "declared Gd by the user (no signal conversion)"
            if opts.get("already_gd")
            else "signal converted to Gd unless a series header marks it as Gd (see flags)",
        },
        "conditions": {n: _condition(data.conditions.get(n)) for n in ("stress", "rest")},
        "mpr": {
            "global": _f(data.mpr_global),
            "segments": [_f(data.mpr(s)) for s in range(1, N_SEGMENTS + 1)],
        },
        "territories": terr,
        "thresholds": thr_doc,
        "alignment_mm": {k: float(v) for k, v in data.alignment_mm.items()},
        "qc": {"flags": list(data.qc_flags), "notes": list(data.notes), "edited": data.edited},
        "timings_s": {k: float(v) for k, v in data.timings_s.items()},
    }


def dumps_results(doc: dict) -> str:
    return json.dumps(doc, indent=1, allow_nan=False, ensure_ascii=False) + "\n"


def write_results(path: str | Path, doc_or_data: dict | ReportData) -> Path:
    """Validate and write results.json atomically; raises :class:`ResultsSchemaError`."""
    doc = results_document(doc_or_data) if isinstance(doc_or_data, ReportData) else doc_or_data
    errors = validate_results(doc)
    if errors:
        raise ResultsSchemaError(errors, path=str(path))
    return atomic_write_text(path, dumps_results(doc))


def load_results(path: str | Path) -> dict:
    """Read and validate a results.json."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"Cannot read results: {exc}.", path=str(p)) from exc
    errors = validate_results(doc)
    if errors:
        raise ResultsSchemaError(errors, path=str(p))
    return doc


if __name__ == "__main__":  # pragma: no cover
    if "--schema" in sys.argv:
        print(json.dumps(SCHEMA, indent=1))
    else:
        print(__doc__)
