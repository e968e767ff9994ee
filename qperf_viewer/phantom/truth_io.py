"""Ground truth of a phantom exam on disk (docs/CONVENTIONS.md, 'Phantom files on disk').

``OUT/truth/truth.json`` holds the exam-level truth; ``OUT/truth/<condition>_slice<k>.npz``
(k 0-based, basal -> apical) the per-slice maps (``labels``, ``mbf_ml_min_g``, ``aha``,
``displacement_px``, ``times_s``) and ``OUT/truth/<condition>_aif.npz`` the true AIF
(``times_s``, ``gd_mmol_l``). Write the truth after the DICOM writer, which may renumber
SOP instance UIDs and frame numbers.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from qperf_viewer.phantom.model import PhantomExam

SCHEMA = "qperf-viewer/phantom-truth/1"


def _jsonable(v):
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items() if not isinstance(x, np.ndarray)}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (np.floating, float)):
        return float(v)
    if isinstance(v, (np.integer, int)) and not isinstance(v, bool):
        return int(v)
    if isinstance(v, (np.bool_, bool)):
        return bool(v)
    return v


def _geometry(g) -> dict:
    return {
        "orientation": list(g.orientation),
        "origin_mm": list(g.origin_mm),
        "pixel_spacing_mm": list(g.pixel_spacing_mm),
        "shape": list(g.shape),
        "slice_thickness_mm": g.slice_thickness_mm,
    }


def _truth_dir(out_dir: str | Path) -> Path:
    p = Path(out_dir)
    return p if p.name == "truth" or (p / "truth.json").is_file() else p / "truth"


def is_current(out_dir: str | Path) -> bool:
    """Whether ``out_dir`` holds a phantom written by this generator version (its truth.json
    records ``generator_version``); cached benchmark exams are regenerated otherwise."""
    from qperf_viewer.phantom.generate import GENERATOR_VERSION

    path = _truth_dir(out_dir) / "truth.json"
    try:
        return json.loads(path.read_text()).get("generator_version") == GENERATOR_VERSION
    except (OSError, ValueError):
        return False


def save_truth(phantom: PhantomExam, out_dir: str | Path) -> Path:
    """Write the truth of ``phantom`` into ``out_dir/truth`` (``out_dir`` is the phantom's
    OUT folder; a folder named 'truth' is used as is). Returns the truth.json path."""
    from qperf_viewer.phantom.generate import GENERATOR_VERSION

    tdir = _truth_dir(out_dir)
    tdir.mkdir(parents=True, exist_ok=True)
    exam = phantom.exam
    doc: dict = {
        "schema": SCHEMA,
        "generator_version": GENERATOR_VERSION,
        "variant": phantom.variant,
        "seed": phantom.seed,
        "study_instance_uid": exam.study_instance_uid,
        "patient_id": exam.patient_id,
        "manufacturer": exam.manufacturer,
        "field_strength_t": exam.field_strength_t,
        "stress_agent": exam.stress_agent,
        "style": _jsonable(vars(phantom.style)),
        "mpr_segment": {str(k): float(v) for k, v in phantom.mpr_segment.items()},
        "mpr_global": phantom.mpr_global,
        "conditions": {},
    }
    for cond, tr in phantom.truth.items():
        cd = exam.conditions[cond]
        slices = []
        for k, (ss, st) in enumerate(zip(cd.slices, tr.slices, strict=True)):
            np.savez_compressed(
                tdir / f"{cond}_slice{k}.npz",
                labels=st.labels.astype(np.uint8),
                mbf_ml_min_g=st.mbf_ml_min_g.astype(np.float32),
                aha=st.aha.astype(np.uint8),
                displacement_px=np.asarray(st.displacement_px, dtype=np.float64),
                times_s=np.asarray(ss.times_s, dtype=np.float64),
            )
            slices.append(
                {
                    "slice_index": k,
                    "position": st.position,
                    "rv_insertion_anterior": list(st.rv_insertion_anterior),
                    "rv_insertion_inferior": list(st.rv_insertion_inferior),
                    "lv_centre": list(st.lv_centre),
                    "reference_frames": list(st.reference_frames),
                    "series_instance_uid": ss.series_instance_uid,
                    "sop_instance_uids": list(ss.sop_instance_uids),
                    "frame_numbers": list(ss.frame_numbers),
                    "pd_frames": list(ss.pd_frames),
                    "ts_ms": ss.ts_ms,
                    "trigger_time_ms": ss.trigger_time_ms,
                    "location_mm": ss.location_mm,
                    "geometry": _geometry(ss.geometry),
                    "extra": _jsonable(st.extra),
                }
            )
        np.savez_compressed(
            tdir / f"{cond}_aif.npz",
            times_s=np.asarray(tr.aif_times_s, dtype=np.float64),
            gd_mmol_l=np.asarray(tr.aif_gd_mmol_l, dtype=np.float64),
        )
        aif = None
        if cd.aif is not None:
            aif = {
                "series_instance_uid": cd.aif.series_instance_uid,
                "sop_instance_uids": list(cd.aif.sop_instance_uids),
                "frame_numbers": list(cd.aif.frame_numbers),
                "pd_frames": list(cd.aif.pd_frames),
                "ts_ms": cd.aif.ts_ms,
                "geometry": _geometry(cd.aif.geometry),
            }
        doc["conditions"][cond] = {
            "heart_rate_bpm": tr.heart_rate_bpm,
            "segment_mbf": {str(s): float(v) for s, v in tr.segment_mbf.items()},
            "global_mbf": tr.global_mbf,
            "hematocrit": tr.hematocrit,
            "r1_l_per_mmol_s": tr.r1_l_per_mmol_s,
            "series_descriptions": list(cd.series_descriptions),
            "params": _jsonable(tr.params),
            "aif_series": aif,
            "slices": slices,
        }
    path = tdir / "truth.json"
    path.write_text(json.dumps(_jsonable(doc), indent=1))
    return path


def load_truth(out_dir: str | Path) -> dict:
    """Read the truth written by :func:`save_truth` (``out_dir`` = OUT or OUT/truth).

    Returns the truth.json content with segment keys as ints and, per condition,
    ``aif`` = {'times_s', 'gd_mmol_l'} and per slice the npz arrays added to its dict
    (``labels``, ``mbf_ml_min_g``, ``aha``, ``displacement_px``, ``times_s``).
    """
    tdir = _truth_dir(out_dir)
    doc = json.loads((tdir / "truth.json").read_text())
    doc["mpr_segment"] = {int(k): v for k, v in doc.get("mpr_segment", {}).items()}
    for cond, c in doc["conditions"].items():
        c["segment_mbf"] = {int(k): v for k, v in c["segment_mbf"].items()}
        with np.load(tdir / f"{cond}_aif.npz") as z:
            c["aif"] = {k: z[k] for k in z.files}
        for k, s in enumerate(c["slices"]):
            with np.load(tdir / f"{cond}_slice{k}.npz") as z:
                s.update({name: z[name] for name in z.files})
            s["rv_insertion_anterior"] = tuple(s["rv_insertion_anterior"])
            s["rv_insertion_inferior"] = tuple(s["rv_insertion_inferior"])
            s["lv_centre"] = tuple(s["lv_centre"])
    return doc
