"""Writing an analysis: masks, segmentation.json, curves.csv, report.pdf, DICOM exports and
results.json, staged and moved into the output folder.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from qperf_viewer.exam import (
    CONDITIONS,
)
from qperf_viewer.pipeline.analyze import partial_notes
from qperf_viewer.pipeline.common import (
    Progress,
    StageClock,
    as_point,
    finite_or_none,
    report_progress,
)
from qperf_viewer.results import (
    AnalysisResult,
)

# -------------------------------------------------------------------------------- outputs
SEGMENTATION_SCHEMA = "qperf-viewer/segmentation/1"


def _pt_json(p) -> list[float] | None:
    p = as_point(p)
    return None if p is None else [p[0], p[1]]


def segmentation_document(result: AnalysisResult) -> dict:
    """``segmentation.json`` (issue 4's format): per condition and slice the frame SOP
    instance UIDs, position, reference frame (0-based into ``sop_instance_uids``, PD frames
    included), LV centre and RV insertion points (row, col), confidence and flags."""
    import datetime as _dt

    conds: dict[str, list[dict] | None] = {}
    for name in CONDITIONS:
        cr = result.conditions.get(name)
        if cr is None:
            conds[name] = None
            continue
        rows = []
        for sr in cr.slices:
            seg = sr.segmentation
            rows.append(
                {
                    "slice_index": int(sr.slice_index),
                    "series_instance_uid": sr.series.series_instance_uid,
                    "sop_instance_uids": list(sr.series.sop_instance_uids),
                    "position": sr.position,
                    "reference_frame": int(sr.reference_frame),
                    "lv_centre": None if seg is None else _pt_json(seg.lv_centre),
                    "rv_insertion_anterior": None
                    if seg is None
                    else _pt_json(seg.rv_insertion_anterior),
                    "rv_insertion_inferior": None
                    if seg is None
                    else _pt_json(seg.rv_insertion_inferior),
                    "confidence": None if seg is None else finite_or_none(seg.confidence),
                    "source": None if seg is None else seg.source,
                    "mask": None if seg is None else f"masks/{name}_slice{sr.slice_index}.npz",
                    "flags": list(sr.flags) + ([] if seg is None else list(seg.flags)),
                }
            )
        conds[name] = rows
    return {
        "schema": SEGMENTATION_SCHEMA,
        "study_instance_uid": result.exam.study_instance_uid,
        "segmentation_model": result.versions.get("segmentation model", ""),
        "created": _dt.datetime.now().isoformat(timespec="seconds"),
        "conditions": conds,
    }


def _write_masks(result: AnalysisResult, folder: Path, with_maps: bool) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, cr in result.conditions.items():
        for sr in cr.slices:
            if sr.segmentation is None:
                continue
            labels = np.asarray(sr.segmentation.labels, dtype=np.uint8)
            arrays = {
                "labels": labels,
                "aha": np.zeros_like(labels) if sr.aha is None else sr.aha.astype(np.uint8),
            }
            if with_maps:
                mbf = np.zeros(labels.shape, np.float32) if sr.mbf is None else sr.mbf
                valid = np.zeros(labels.shape, bool) if sr.mbf_valid is None else sr.mbf_valid
                arrays["mbf_ml_min_g"] = np.nan_to_num(np.asarray(mbf, np.float32))
                arrays["mbf_valid"] = np.asarray(valid, dtype=bool)
            p = folder / f"{name}_slice{sr.slice_index}.npz"
            np.savez_compressed(p, **arrays)
            out.append(p)
    return out


def _commit(stage: Path, out: Path, names: list[str]) -> None:
    """Move the staged outputs into ``out``: files by atomic rename, folders by renaming the
    old one aside first; a failure before this point leaves the previous outputs intact."""
    import os
    import shutil
    import uuid

    for n in names:
        src, dst = stage / n, out / n
        if not src.exists():
            continue
        if src.is_dir():
            old = None
            if dst.exists():
                old = out / f".old-{n}-{uuid.uuid4().hex[:8]}"
                os.replace(dst, old)
            os.replace(src, dst)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(src, dst)


def report_data(result: AnalysisResult, thresholds=None):
    """:class:`qperf_viewer.report.data.ReportData` of a result, partial-exam notes added;
    ``thresholds`` (a :class:`~qperf_viewer.report.thresholds.ThresholdSet`) default to the
    literature set."""
    from qperf_viewer.report.build import report_data_from_result
    from qperf_viewer.report.thresholds import DEFAULT_THRESHOLDS

    rd = report_data_from_result(result, thresholds or DEFAULT_THRESHOLDS)
    rd.notes = list(dict.fromkeys(list(rd.notes) + partial_notes(result)))
    return rd


def write_outputs(
    result: AnalysisResult,
    out_dir: str | Path,
    *,
    quantified: bool = True,
    pdf: bool = True,
    dicom: bool = True,
    progress: Progress | None = None,
    started: float | None = None,
    thresholds=None,
) -> dict[str, Path]:
    """Write the outputs of a result into ``out_dir``, all staged in a temporary folder first
    and then moved in (files atomically): ``masks/<condition>_slice<k>.npz``,
    ``segmentation.json`` and, when ``quantified``, ``curves.csv``, ``report.pdf`` (``pdf``),
    ``dicom/`` (Encapsulated PDF + Secondary Captures of the bulls-eye page and the MBF maps,
    each read back; ``dicom``) and ``results.json`` (validated). ``edits/`` is never touched.
    Returns name -> path of what was written; timings go into ``result.timings_s`` (with
    ``total`` = time since ``started``, a ``time.perf_counter()`` value, when given).
    thresholds: the :class:`~qperf_viewer.report.thresholds.ThresholdSet` the report and
    results.json use and print (default: the literature set)."""
    import json
    import shutil
    import tempfile

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".partial-", dir=out))
    clock = StageClock()
    names: list[str] = []
    try:
        with clock("write_masks"):
            _write_masks(result, stage / "masks", with_maps=quantified)
            (stage / "segmentation.json").write_text(
                json.dumps(segmentation_document(result), indent=1, allow_nan=False) + "\n",
                encoding="utf-8",
            )
        names += ["masks", "segmentation.json"]
        if quantified:
            from qperf_viewer.report.curves_csv import write_curves_csv
            from qperf_viewer.report.results_json import results_document, write_results

            rd = report_data(result, thresholds)
            with clock("write_curves"):
                write_curves_csv(stage / "curves.csv", rd)
            names.append("curves.csv")
            if pdf or dicom:
                report_progress(progress, 0.3, "writing the report (PDF)")
                from qperf_viewer.report import pdf as report_pdf

                with clock("report_pdf"):
                    report_pdf.write_pdf(stage / "report.pdf", rd)
                names.append("report.pdf")
            if dicom:
                report_progress(progress, 0.6, "writing DICOM exports")
                from qperf_viewer.report.dicom_export import export_report_dicom

                with clock("dicom_export"):
                    pictures = [
                        (
                            "report_page1_sc",
                            "qperf-viewer report: bulls-eye page",
                            report_pdf.render_page_image(rd, 1, dpi=150.0),
                        ),
                        (
                            "mbf_maps_sc",
                            "qperf-viewer MBF maps with contours",
                            report_pdf.render_maps_image(rd),
                        ),
                    ]
                    export_report_dicom(
                        stage / "dicom", rd, (stage / "report.pdf").read_bytes(), pictures
                    )
                names.append("dicom")
            result.timings_s.update({k: round(v, 4) for k, v in clock.t.items()})
            if started is not None:
                result.timings_s["total"] = round(time.perf_counter() - started, 4)
            rd.timings_s = dict(result.timings_s)
            write_results(stage / "results.json", results_document(rd))
            names.append("results.json")
        _commit(stage, out, names)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    result.timings_s.update({k: round(v, 4) for k, v in clock.t.items()})
    return {n: out / n for n in names}
