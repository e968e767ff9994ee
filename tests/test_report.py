"""The PDF report: renders, its bulls-eye values match the data and results.json, partial
exams, printing, page images. Page PNGs are kept in tests/artifacts for human review."""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pytest

pdfium = pytest.importorskip("pypdfium2")

from qperf_viewer.report.data import (  # noqa: E402
    ReportData,
    example_report_data,
    mpr_from_conditions,
)
from qperf_viewer.report.results_json import results_document, validate_results  # noqa: E402
from qperf_viewer.report.text import DASH, fmt_mpr, fmt_segment  # noqa: E402

MM_TO_PT = 72.0 / 25.4


@pytest.fixture(scope="module")
def data() -> ReportData:
    return example_report_data()


@pytest.fixture(scope="module")
def rendered(qapp, data, tmp_path_factory):
    from qperf_viewer.report.pdf import write_pdf

    path = tmp_path_factory.mktemp("report") / "report.pdf"
    layouts = write_pdf(path, data)
    return path, layouts


def _page_text(pdf, k: int) -> str:
    return pdf[k].get_textpage().get_text_range()


def _save_png(page, path, dpi=110):
    from PySide6.QtGui import QImage

    bm = page.render(scale=dpi / 72.0)
    a = np.ascontiguousarray(bm.to_numpy()[..., :3])
    fmt = QImage.Format.Format_BGR888 if bm.mode == "BGR" else QImage.Format.Format_RGB888
    img = QImage(a.data, a.shape[1], a.shape[0], a.shape[1] * 3, fmt)
    assert img.save(str(path))
    return a


def _text_in_box(page, box_mm, inset=0.25) -> str:
    x, y, w, h = box_mm
    x, y, w, h = x + inset, y + inset, w - 2 * inset, h - 2 * inset
    _, height = page.get_size()
    tp = page.get_textpage()
    return tp.get_text_bounded(
        left=x * MM_TO_PT,
        bottom=height - (y + h) * MM_TO_PT,
        right=(x + w) * MM_TO_PT,
        top=height - y * MM_TO_PT,
    ).strip()


def test_pdf_renders_two_a4_pages(rendered, artifacts_dir):
    path, layouts = rendered
    pdf = pdfium.PdfDocument(str(path))
    assert len(pdf) == 2 and len(layouts) == 2
    for k in range(2):
        w, h = pdf[k].get_size()
        assert abs(w - 595.3) < 1.5 and abs(h - 841.9) < 1.5  # A4 in points
        a = _save_png(pdf[k], artifacts_dir / f"report_page{k + 1}.png")
        assert a.shape[0] > a.shape[1]
        assert (a < 250).mean() > 0.05  # something is drawn
    raw = path.read_bytes()
    assert b"/FontFile2" in raw and b"DejaVuSans" in raw  # TTF embedded


def test_bullseye_values_match_data_and_results_json(rendered, data):
    path, layouts = rendered
    page = pdfium.PdfDocument(str(path))[0]
    doc = results_document(data)
    boxes = layouts[0].bullseye_text
    assert len(boxes) == 48
    for s in range(1, 17):
        for panel in ("stress", "rest"):
            got = _text_in_box(page, boxes[(panel, s)])
            sv = data.conditions[panel].segment(s)
            assert got == fmt_segment(sv), (panel, s)
            js = doc["conditions"][panel]["segment_mbf_ml_min_g"][s - 1]
            if js is None:
                assert got.startswith(DASH)
            else:
                assert float(got) == pytest.approx(js, abs=0.005)
        got = _text_in_box(page, boxes[("mpr", s)])
        exp = fmt_mpr(data.mpr(s), data.stress.segment(s), data.rest.segment(s))
        assert got == exp, ("mpr", s)
        js = doc["mpr"]["segments"][s - 1]
        assert (got.startswith(DASH) and js is None) or float(got) == pytest.approx(js, abs=0.005)


def test_page_text_header_thresholds_and_no_nan(rendered, data):
    path, _ = rendered
    pdf = pdfium.PdfDocument(str(path))
    p1, p2 = _page_text(pdf, 0), _page_text(pdf, 1)
    for needle in (
        "DOE, JANE",
        "QP-000123",
        "1958-03-14",
        "2026-01-15",
        "1.5 T",
        "Adenosine",
        "Kotecha",
        "1.94",
        "1.49",
        "JACC Cardiovasc Imaging 2019",
        "Applied to this exam",
        "LAD",
        "RCA",
        "LCX",
        "endo",
        "epi",
        "Research use only",
        "qperf-viewer",
        "Page 1 of 2",
        "not covered",
        "unreliable",
    ):
        assert needle in p1, needle
    for needle in (
        "Images and curves",
        "Arterial input",
        "Myocardium",
        "Page 2 of 2",
        "basal",
        "mid",
        "apical",
    ):
        assert needle in p2, needle
    for text in (p1, p2):
        assert not re.search(r"\bnan\b|\binf\b", text, re.IGNORECASE)
    # global values printed as in the data
    assert f"{data.stress.global_mbf:.2f}" in p1 and f"{data.mpr_global:.2f}" in p1
    # the example's stress segment 16 is unreliable: flagged, not a number
    assert data.stress.segment(16).mbf is None and data.stress.segment(16).n_pixels > 0


def test_highlights_follow_threshold_applicability(qapp, data):
    low_mbf, low_mpr = data.highlighted()
    assert low_mbf == {1, 2, 7, 8, 13, 14}  # the example's LAD defect
    assert all(data.mpr(s) < 1.49 for s in low_mpr)
    fermi = dataclasses.replace(data, quant_model="Fermi")
    assert fermi.highlighted() == (set(), set())
    app = fermi.threshold_applicability()
    assert not app.applies and "Fermi" in app.reason
    from qperf_viewer.report.pdf import render_page_image

    img = render_page_image(fermi, 1, dpi=60)
    assert img.shape == (702, 496, 3)


def test_partial_exam_only_rest(qapp, data, tmp_path, artifacts_dir):
    from qperf_viewer.report.pdf import write_pdf

    rest_only = dataclasses.replace(
        data,
        conditions={"rest": data.rest},
        mpr_global=None,
        mpr_segments=mpr_from_conditions(None, data.rest)[1],
        notes=["Stress perfusion not available: no stress values."],
    )
    path = tmp_path / "rest_only.pdf"
    write_pdf(path, rest_only)
    pdf = pdfium.PdfDocument(str(path))
    p1 = _page_text(pdf, 0)
    assert "Stress not acquired" in p1 and "MPR needs stress and rest" in p1
    assert "Stress perfusion not available" in p1
    assert not re.search(r"\bnan\b", p1, re.IGNORECASE)
    _save_png(pdf[0], artifacts_dir / "report_rest_only_page1.png", dpi=60)
    doc = results_document(rest_only)
    assert validate_results(doc) == []
    assert doc["conditions"]["stress"] is None and doc["mpr"]["global"] is None
    assert doc["mpr"]["segments"] == [None] * 16
    json.dumps(doc, allow_nan=False)


def test_print_through_qprinter_uses_same_painter(qapp, data, tmp_path):
    from PySide6.QtPrintSupport import QPrinter

    from qperf_viewer.report.pdf import print_report

    printer = QPrinter(QPrinter.PrinterMode.HighResolution)
    printer.setOutputFormat(QPrinter.OutputFormat.PdfFormat)
    out = tmp_path / "printed.pdf"
    printer.setOutputFileName(str(out))
    layouts = print_report(printer, data)
    assert len(layouts) == 2
    pdf = pdfium.PdfDocument(str(out))
    assert len(pdf) == 2
    assert "Stress MBF" in _page_text(pdf, 0)


def test_page_and_maps_images(qapp, data):
    from qperf_viewer.report.pdf import render_maps_image, render_page_image

    page = render_page_image(data, 1, dpi=100)
    assert page.dtype == np.uint8 and page.shape == (1169, 827, 3)
    assert (page < 200).mean() > 0.05
    maps = render_maps_image(data, dpi=100)
    assert maps.ndim == 3 and maps.shape[2] == 3 and maps.shape[1] > maps.shape[0]
    # colour (the MBF map) on a dark panel
    spread = maps.max(axis=2).astype(int) - maps.min(axis=2).astype(int)
    assert (spread > 60).mean() > 0.02


def test_convention_figure(qapp, tmp_path):
    from qperf_viewer.report.render_convention import render_convention_png

    p = render_convention_png(tmp_path / "aha.png", dpi=60)
    from PySide6.QtGui import QImage

    img = QImage(str(p))
    assert img.width() > img.height() > 100
