"""Qt-free parts of the report: thresholds, text formatting, bulls-eye geometry, results.json,
curves.csv, DICOM exports, building ReportData from an AnalysisResult, atomic writes."""

from __future__ import annotations

import copy
import csv
import dataclasses
import io
import json
import math
import subprocess
import sys

import numpy as np
import pydicom
import pytest

from qperf_viewer.errors import InputError
from qperf_viewer.report import bullseye
from qperf_viewer.report._atomic import atomic_write, atomic_write_text
from qperf_viewer.report.curves_csv import HEADER, curves_csv_text, write_curves_csv
from qperf_viewer.report.data import ReportData, example_report_data
from qperf_viewer.report.dicom_export import (
    ENCAPSULATED_PDF_STORAGE,
    SECONDARY_CAPTURE_STORAGE,
    DicomExportError,
    export_report_dicom,
    secondary_capture,
)
from qperf_viewer.report.results_json import (
    SCHEMA,
    SCHEMA_ID,
    ResultsSchemaError,
    load_results,
    results_document,
    validate_results,
    write_results,
)
from qperf_viewer.report.text import (
    DASH,
    NOT_COVERED,
    OK,
    UNRELIABLE,
    fmt_date,
    fmt_name,
    fmt_number,
    fmt_segment,
    segment_status,
)
from qperf_viewer.report.thresholds import (
    DEFAULT_THRESHOLDS,
    applicability,
    load_thresholds,
    normalise_aif_source,
)
from qperf_viewer.results import SegmentValue

QT_FREE = [
    "qperf_viewer.sectors",
    "qperf_viewer.report",
    "qperf_viewer.report.data",
    "qperf_viewer.report.thresholds",
    "qperf_viewer.report.text",
    "qperf_viewer.report.bullseye",
    "qperf_viewer.report.results_json",
    "qperf_viewer.report.curves_csv",
    "qperf_viewer.report.dicom_export",
    "qperf_viewer.report.build",
]


@pytest.fixture(scope="module")
def data() -> ReportData:
    return example_report_data()


def test_data_modules_are_qt_free():
    code = (
        "import importlib, sys\n"
        f"for m in {QT_FREE!r}: importlib.import_module(m)\n"
        "bad = [m for m in sys.modules if m.startswith(('PySide6', 'pyqtgraph'))]\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


# --------------------------------------------------------------------------- thresholds
def test_threshold_applicability():
    thr = DEFAULT_THRESHOLDS
    assert thr.stress_mbf_ml_min_g == 1.94 and thr.mpr == 1.49
    assert "JACC Cardiovasc Imaging 2019" in thr.citation and thr.doi
    ok = applicability(thr, "btex", "Dual-sequence AIF series", 1.5)
    assert ok.applies and not ok.caution
    assert applicability(thr, "BTEX", "dual-sequence", 3.0).caution.startswith("cut-offs derived")
    assert not applicability(thr, "Fermi", "dual-sequence", 1.5).applies
    assert not applicability(thr, "BTEX", "blood-pool", 1.5).applies
    assert not applicability(None, "BTEX", "dual-sequence", 1.5).applies
    assert normalise_aif_source("LV blood pool") == "blood-pool"
    assert normalise_aif_source(None) is None


def test_load_thresholds(tmp_path):
    d = DEFAULT_THRESHOLDS.to_dict()
    d.update(name="site", stress_mbf_ml_min_g=2.0)
    p = tmp_path / "thr.json"
    p.write_text(json.dumps(d))
    thr = load_thresholds(p)
    assert thr.name == "site" and thr.stress_mbf_ml_min_g == 2.0 and thr.mpr == 1.49
    p.write_text("{not json")
    with pytest.raises(InputError):
        load_thresholds(p)
    p.write_text(json.dumps({"stress_mbf_ml_min_g": 2}))
    with pytest.raises(InputError):
        load_thresholds(p)


# --------------------------------------------------------------------------- text
def test_formatting_never_prints_nan():
    ok = SegmentValue(1, 2.345, n_pixels=40, n_reliable=40, reliable=True)
    bad = SegmentValue(2, None, n_pixels=40, n_reliable=3, reliable=False)
    nan = SegmentValue(3, float("nan"), n_pixels=40, n_reliable=40, reliable=True)
    none = SegmentValue(4, None)
    assert [segment_status(s) for s in (ok, bad, nan, none)] == [
        OK,
        UNRELIABLE,
        UNRELIABLE,
        NOT_COVERED,
    ]
    assert fmt_segment(ok) == "2.35" and fmt_segment(none) == DASH
    assert fmt_segment(bad) == fmt_segment(nan) == DASH + "*"
    assert fmt_number(float("nan")) == fmt_number(float("inf")) == fmt_number(None) == DASH
    assert fmt_name("DOE^JANE^M") == "DOE, JANE M" and fmt_name("") == DASH
    assert fmt_date("20260115") == "2026-01-15" and fmt_date("") == DASH


# --------------------------------------------------------------------------- bulls-eye
def test_bullseye_geometry():
    # anterior at the top, septum on the left, numbers increasing counter-clockwise
    assert bullseye.segment_at(0.9, 90) == 1 and bullseye.segment_at(0.9, 150) == 2
    assert bullseye.segment_at(0.6, 270) == 10 and bullseye.segment_at(0.3, 180) == 14
    assert bullseye.segment_at(0.3, 0) == 16 and bullseye.segment_at(0.1, 0) is None
    for ring, segs in (("basal", range(1, 7)), ("mid", range(7, 13)), ("apical", range(13, 17))):
        assert sum(bullseye.WEDGES[s].span_deg for s in segs) == 360.0
        r = sum(bullseye.RINGS[ring]) / 2
        hits = {bullseye.segment_at(r, a) for a in range(0, 360, 5)}
        assert hits == set(segs)
    radials, arcs = bullseye.territory_edges()
    assert (60.0, 0.75, 1.0) in radials and (45.0, 0.25, 0.5) in radials
    assert (0.5, 180.0, 45.0) in arcs
    rgb = bullseye.apply_lut(np.array([[0.0, 4.0, np.nan]]), 0, 4)
    assert rgb.shape == (1, 3, 3) and tuple(rgb[0, 2]) == tuple(rgb[0, 0])
    assert bullseye.text_colour_on((255, 255, 255)) == (0, 0, 0)


# --------------------------------------------------------------------------- results.json
def test_results_json_round_trip(tmp_path, data):
    doc = results_document(data)
    assert doc["schema"] == SCHEMA_ID and validate_results(doc) == []
    p = write_results(tmp_path / "out" / "results.json", data)
    back = load_results(p)
    assert back == json.loads(json.dumps(doc))
    st = back["conditions"]["stress"]
    assert len(st["segment_mbf_ml_min_g"]) == 16
    for s in range(1, 17):
        sv = data.stress.segment(s)
        got = st["segment_mbf_ml_min_g"][s - 1]
        assert got == (sv.mbf if sv.reliable else None)
    assert st["segments"][15]["status"] == "unreliable"
    assert st["slices"][0]["position"] == "basal"
    assert st["slices"][0]["lv_centre"] == list(data.stress.slices[0].lv_centre)
    assert back["thresholds"]["applied"] is True
    assert back["thresholds"]["highlighted_stress_mbf"] == [1, 2, 7, 8, 13, 14]
    assert back["mpr"]["global"] == pytest.approx(data.mpr_global)
    assert "NaN" not in p.read_text()
    assert not list(p.parent.glob(".*tmp"))


def test_schema_is_valid_json_schema(data):
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    jsonschema.validate(results_document(data), SCHEMA, cls=jsonschema.Draft202012Validator)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.pop("study"), "missing key 'study'"),
        (lambda d: d.update(schema="qperf-viewer/results/0"), "must be"),
        (lambda d: d.update(extra=1), "unexpected key 'extra'"),
        (lambda d: d["conditions"]["stress"].update(global_mbf_ml_min_g="2.1"), "expected number"),
        (
            lambda d: d["conditions"]["stress"].update(global_mbf_ml_min_g=float("nan")),
            "not a finite number",
        ),
        (lambda d: d["mpr"]["segments"].pop(), "15 items < 16"),
        (lambda d: d["conditions"]["rest"]["segments"].reverse(), "segments 1-16 in order"),
        (lambda d: d["conditions"]["rest"]["slices"][0].update(position="apex"), "is not one of"),
        (lambda d: d["conditions"]["rest"]["slices"][0].update(lv_centre=[1.0]), "1 items < 2"),
        (lambda d: d["conditions"]["rest"]["segments"][0].update(n_pixels=-1), "minimum"),
        (lambda d: d["qc"].update(edited="no"), "expected boolean"),
    ],
)
def test_results_validation_errors(data, mutate, message, tmp_path):
    doc = copy.deepcopy(results_document(data))
    mutate(doc)
    errors = validate_results(doc)
    assert any(message in e for e in errors), errors
    with pytest.raises(ResultsSchemaError) as exc:
        write_results(tmp_path / "results.json", doc)
    assert message in str(exc.value) or len(exc.value.errors) > 5
    assert not (tmp_path / "results.json").exists()
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(doc).replace("NaN", "null") if "finite" not in message else "{}")
    with pytest.raises(ResultsSchemaError):
        load_results(p)


# --------------------------------------------------------------------------- curves.csv
def test_curves_csv(tmp_path, data):
    d = copy.deepcopy(data)
    sl = d.stress.slices[0]
    cv = sl.curves[0]
    vals = np.array(cv.values, dtype=float)
    vals[5] = np.nan
    sl.curves[0] = dataclasses.replace(cv, values=vals)
    p = write_curves_csv(tmp_path / "curves.csv", d)
    rows = list(csv.reader(io.StringIO(p.read_text())))
    assert tuple(rows[0]) == HEADER
    body = rows[1:]
    assert all(len(r) == 6 for r in body)
    assert not any("nan" in ",".join(r).lower() for r in body)
    aif = [r for r in body if r[0] == "stress" and r[2] == "aif"]
    assert aif and all(r[1] == "" and r[5] == "mmol/L" for r in aif)
    t_aif = d.stress.aif.times_s
    assert float(aif[0][3]) == pytest.approx(t_aif[0] - d.stress.t0_s, abs=1e-4)
    assert float(aif[3][3]) == pytest.approx(0.0, abs=1e-4)  # t = 0 at the first non-PD frame
    lv0 = [r for r in body if r[0] == "stress" and r[1] == "0" and r[2] == "lv_blood"]
    assert len(lv0) == len(cv.times_s) - 1  # the NaN sample is left out
    n = sum(
        len(c.times_s) for cond in d.conditions.values() for s in cond.slices for c in s.curves
    ) + sum(len(c.aif.times_s) for c in d.conditions.values())
    assert len(body) == n - 1
    assert {r[2] for r in body} >= {"aif", "lv_blood", "myocardium", "segment_7"}
    assert curves_csv_text(d) == p.read_text()


# --------------------------------------------------------------------------- DICOM
def _fake_pdf() -> bytes:
    return b"%PDF-1.4\n% test\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"  # odd length


def test_dicom_exports_read_back(tmp_path, data):
    rng = np.random.default_rng(1)
    page = rng.integers(0, 255, (60, 43, 3), dtype=np.uint8)
    maps = rng.integers(0, 255, (30, 50, 3), dtype=np.uint8)
    pdf = _fake_pdf()
    out = export_report_dicom(
        tmp_path / "dicom",
        data,
        pdf,
        [("report_page1_sc", "bulls-eye page", page), ("mbf_maps_sc", "MBF maps", maps)],
    )
    assert [o.sop_class_uid for o in out] == [
        ENCAPSULATED_PDF_STORAGE,
        SECONDARY_CAPTURE_STORAGE,
        SECONDARY_CAPTURE_STORAGE,
    ]
    assert out[1].series_instance_uid == out[2].series_instance_uid != out[0].series_instance_uid
    for o in out:
        ds = pydicom.dcmread(o.path)
        assert ds.StudyInstanceUID == data.header.study_instance_uid
        assert ds.PatientID == data.header.patient_id and str(ds.PatientName) == "DOE^JANE"
        assert ds.BurnedInAnnotation == "YES"
        assert ds.SOPInstanceUID == o.sop_instance_uid
        assert ds.file_meta.MediaStorageSOPClassUID == o.sop_class_uid
    ds = pydicom.dcmread(out[0].path)
    assert ds.Modality == "DOC" and ds.MIMETypeOfEncapsulatedDocument == "application/pdf"
    assert bytes(ds.EncapsulatedDocument)[: ds.EncapsulatedDocumentLength] == pdf
    for o, img in zip(out[1:], (page, maps), strict=True):
        ds = pydicom.dcmread(o.path)
        assert ds.PhotometricInterpretation == "RGB" and ds.SamplesPerPixel == 3
        assert np.array_equal(ds.pixel_array, img)
    assert not list((tmp_path / "dicom").glob(".*"))  # no temporary files left


def test_dicom_export_rejects_bad_input(data):
    with pytest.raises(DicomExportError):
        secondary_capture(np.zeros((4, 4), np.uint8), data.header, "x")
    with pytest.raises(DicomExportError):
        export_report_dicom("/nonexistent-dir-qperf/x", data, b"not a pdf", [])


# --------------------------------------------------------------------------- build
def test_report_data_from_analysis_result(data):
    from qperf_viewer.exam import PerfusionExam, SliceSeries
    from qperf_viewer.report.build import report_data_from_result
    from qperf_viewer.results import AnalysisResult, ConditionResult, Segmentation, SliceResult

    conds = {}
    for name, cr in data.conditions.items():
        srs = []
        for sl in cr.slices:
            T = len(sl.curves[0].times_s)
            imgs = (
                np.repeat(sl.peak_image[None], T, axis=0) * np.linspace(0.5, 1.0, T)[:, None, None]
            )
            imgs[-1] *= 0.5  # peak is not the last frame
            series = SliceSeries(
                images=imgs.astype(np.float32),
                times_s=sl.curves[0].times_s,
                geometry=sl.geometry,
                pd_frames=(0, 1, 2),
                series_instance_uid=sl.series_instance_uid,
                position=sl.position,
                slice_index=sl.slice_index,
                location_mm=sl.location_mm,
            )
            seg = Segmentation(
                labels=sl.labels,
                lv_centre=sl.lv_centre,
                rv_insertion_anterior=sl.rv_insertion_anterior,
                rv_insertion_inferior=sl.rv_insertion_inferior,
                confidence=0.9,
                source="manual" if (name, sl.slice_index) == ("rest", 1) else "automatic",
            )
            srs.append(
                SliceResult(
                    condition=name,
                    slice_index=sl.slice_index,
                    position=sl.position,
                    series=series,
                    reference_frame=5,
                    corrected=series.images,
                    shifts_px=np.zeros((T, 2)),
                    gd=None,
                    segmentation=seg,
                    aha=sl.aha,
                    mbf=sl.mbf_ml_min_g,
                    mbf_valid=sl.mbf_valid,
                    curves=sl.curves,
                )
            )
        conds[name] = ConditionResult(
            name=name,
            slices=srs,
            aif=cr.aif,
            aif_source=cr.aif_source,
            heart_rate_bpm=cr.heart_rate_bpm,
            segments=cr.segments,
            global_mbf=cr.global_mbf,
        )
    exam = PerfusionExam(
        study_instance_uid="1.2.3", patient_name="X^Y", patient_id="P1", field_strength_t=1.5
    )
    result = AnalysisResult(
        exam=exam,
        conditions=conds,
        model="BTEX",
        mpr_global=data.mpr_global,
        mpr_segments=data.mpr_segments,
        versions={"qperf-viewer": "0.1.0"},
    )
    rd = report_data_from_result(result, created="2026-01-15T10:00:00")
    assert rd.header.patient_id == "P1" and rd.edited
    assert rd.stress.t0_s == pytest.approx(data.stress.slices[0].curves[0].times_s[3])
    sl = rd.stress.slices[0]
    assert sl.peak_frame == len(sl.curves[0].times_s) - 2
    assert set(rd.alignment_mm) == {"basal", "mid", "apical"}
    assert rd.alignment_mm["basal"] < 5.0
    assert rd.notes == []
    assert validate_results(results_document(rd)) == []
    only_stress = dataclasses.replace(result, conditions={"stress": conds["stress"]})
    rd2 = report_data_from_result(only_stress)
    assert any("Rest perfusion not available" in n for n in rd2.notes)


# --------------------------------------------------------------------------- atomic
def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    p = tmp_path / "f.txt"
    atomic_write_text(p, "old")

    def boom(tmp):
        tmp.write_text("half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        atomic_write(p, boom)
    assert p.read_text() == "old"
    assert [q.name for q in tmp_path.iterdir()] == ["f.txt"]
    assert math.isclose(p.stat().st_mode & 0o777, 0o644) or p.stat().st_mode & 0o004
