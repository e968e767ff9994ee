"""DICOM study index: clock times, keywords, and assembly of exams against known truth.

Truth comes from (a) tiny exams written here with pydicom (qperf_viewer.dicom.synth), (b) the
phantom's DICOM writer on tiny hand-made exams in the header layout of every phantom variant,
(c) a few fully generated phantom exams, (d) the real labelled exams in ../shared/data.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from qperf_viewer.dicom import index_to_json, load_exam, scan_folder, slice_positions
from qperf_viewer.dicom.classify import condition_keyword, stress_agent, tokens
from qperf_viewer.dicom.synth import write_tiny_exam
from qperf_viewer.dicom.timing import absolute_times, parse_da, parse_dt, parse_tm, unwrap_clock
from qperf_viewer.exam import AifSeries, ConditionData, PerfusionExam, SliceSeries
from qperf_viewer.geometry import APEX_DIRECTION_LPS, SliceGeometry


# --------------------------------------------------------------------------- clock times
def test_tm_is_a_clock_not_a_number():
    assert parse_tm("100117") - parse_tm("100000") == pytest.approx(77.0)
    assert parse_tm("235959.5") == pytest.approx(86399.5)
    assert parse_tm("10:01:17.25") == pytest.approx(36077.25)
    assert parse_tm("1001") == pytest.approx(36060.0)
    assert parse_tm("") is None and parse_tm("25xx") is None and parse_tm("990000") is None
    day, clock = parse_dt("20260115235959.000001+0100")
    assert day == parse_da("20260115") and clock == pytest.approx(86399.000001)


def test_midnight_unwrap_with_and_without_dates():
    clocks = [86390.0, 86395.0, 5.0, 10.0]
    assert unwrap_clock(clocks) == [86390.0, 86395.0, 86405.0, 86410.0]
    assert unwrap_clock([100.0, 50.0]) == [100.0, 50.0]  # no wrap: order kept by value
    d = parse_da("20260115")
    t = absolute_times([d, d, d + 1, d + 1], clocks)
    assert np.diff(t).tolist() == [5.0, 10.0, 5.0]
    # the series date on every image even after midnight: falls back to the unwrap
    t = absolute_times([d] * 4, clocks)
    assert np.diff(t).tolist() == [5.0, 10.0, 5.0]
    assert absolute_times([None, None], [None, 3.0]) == [None, 3.0]


# --------------------------------------------------------------------------- keywords
@pytest.mark.parametrize(
    ("text", "cond"),
    [
        ("Perfusion stress adenosine", "stress"),
        ("ADENOSINE PERF SAX", "stress"),
        ("tfl_perf_stress_regadenoson", "stress"),
        ("STRESS first pass MoCo off", "stress"),
        ("dipyridamole perf", "stress"),
        ("Perfusion rest", "rest"),
        ("REST PERF SAX", "rest"),
        ("PerfRest", "rest"),
        ("Perfusion SAX", None),
        ("SR_perf", None),
        ("interest perfusion", None),
    ],
)
def test_condition_keywords(text, cond):
    assert condition_keyword(text)[0] == cond


def test_tokens_and_agent():
    assert "moco" in tokens("fl2d_MoCo") and "aif" in tokens("PerfAIF")
    assert stress_agent("tfl perf Regadenoson") == "regadenoson"
    assert slice_positions(3) == ["basal", "mid", "apical"]
    assert slice_positions(2) == ["basal", "mid"]
    assert slice_positions(4) == ["basal", None, "mid", "apical"]


# --------------------------------------------------------------------------- helpers
def check_against(cond_index, truth_slices, times_tol=1e-3, check_times=True):
    """Index slices vs expected: SOPs in frame order, frame numbers, times, PD frames."""
    assert len(cond_index.slices) == len(truth_slices)
    for sl, tr in zip(cond_index.slices, truth_slices, strict=True):
        assert list(zip(sl.sop_instance_uids, sl.frame_numbers, strict=True)) == [
            tuple(x) for x in tr["sop"]
        ]
        if check_times:
            np.testing.assert_allclose(sl.times_s, tr["times_s"], atol=times_tol)
        assert sl.pd_frames == tuple(tr["pd_frames"])
    locs = [sl.location_mm for sl in cond_index.slices]
    assert locs == sorted(locs)
    assert [sl.position for sl in cond_index.slices] == slice_positions(len(truth_slices))


# --------------------------------------------------------------------------- tiny exams
TINY_LAYOUTS = {
    "classic": {},
    "single_series_apex_first": {"series_per_slice": False, "apex_first": True},
    "enhanced": {"enhanced": True},
    "enhanced_single_no_pd_comment": {
        "enhanced": True,
        "series_per_slice": False,
        "pd_comment": False,
        "apex_first": True,
    },
    "midnight_no_date_ambiguous": {
        "start_clock_s": {"stress": 86400.0 - 4.0, "rest": 86400.0 + 1200.0},
        "with_date": False,
        "descriptions": {"stress": "Perfusion SAX", "rest": "Perfusion SAX"},
    },
    "rescaled_two_slices_no_pd": {"n_slices": 2, "n_pd": 0, "slope": 0.5, "intercept": -10.0},
}


@pytest.mark.parametrize("name", list(TINY_LAYOUTS))
def test_tiny_exam_layouts(tmp_path, name):
    truth = write_tiny_exam(tmp_path / "exam", **TINY_LAYOUTS[name])
    index = scan_folder(tmp_path / "exam")
    assert not [p for p in index.all_problems if p.severity != "info"]
    study = index.study()
    assert study.study_instance_uid == truth.study_uid
    for cond in ("stress", "rest"):
        ci = study.conditions[cond]
        check_against(ci, truth.conditions[cond])
        assert ci.aif is not None
        assert (
            list(zip(ci.aif.sop_instance_uids, ci.aif.frame_numbers, strict=True))
            == (truth.aif_sops[cond])
        )
    for se in study.series:
        assert se.role == truth.series[se.series_instance_uid], se.role_reason
    hr = {c: study.conditions[c].heart_rate_bpm for c in ("stress", "rest")}
    assert hr["stress"] == pytest.approx(96.0, abs=2.0)
    assert hr["rest"] == pytest.approx(64.0, abs=2.0)


def test_tiny_exam_without_times_is_flagged(tmp_path):
    write_tiny_exam(tmp_path / "exam", with_times=False, apex_first=True)
    index = scan_folder(tmp_path / "exam")
    ci = index.study().conditions["stress"]
    assert "timing approximate" in ci.flags
    rr = 60.0 / 96.0
    for sl in ci.slices:
        assert "timing approximate" in sl.flags
        np.testing.assert_allclose(sl.times_s, np.arange(sl.n_frames) * rr, atol=1e-3)
    assert [sl.location_mm for sl in ci.slices] == sorted(sl.location_mm for sl in ci.slices)
    assert any("no per-frame acquisition times" in p.reason for p in index.all_problems)


def test_load_exam_and_json(tmp_path):
    truth = write_tiny_exam(tmp_path / "exam", slope=2.0, intercept=-50.0, series_per_slice=False)
    index = scan_folder(tmp_path / "exam")
    exam = load_exam(index)
    assert isinstance(exam, PerfusionExam) and exam.stress_agent == "adenosine"
    for cond in ("stress", "rest"):
        cd = exam.conditions[cond]
        assert [s.position for s in cd.slices] == ["basal", "mid", "apical"]
        for s, tr in zip(cd.slices, truth.conditions[cond], strict=True):
            assert s.images.dtype == np.float32 and s.images.shape == (14, 12, 16)
            assert s.pd_frames == (0, 1)
            # PD frames are 1000 after the modality LUT, pre-contrast frames near 80
            assert np.mean(s.images[0]) == pytest.approx(1000.0, abs=3.0)
            assert np.mean(s.images[2]) < 200.0
            assert s.sop_instance_uids == tuple(u for u, _ in tr["sop"])
            assert s.ts_ms == 100.0
        assert isinstance(cd.aif, AifSeries) and cd.aif.images.shape == (14, 6, 8)
        assert cd.heart_rate_bpm > 0
    doc = json.loads(json.dumps(index_to_json(index)))
    assert doc["schema"] == "qperf-viewer/index/1"
    st = doc["studies"][0]
    assert {"study_instance_uid", "patient_id", "series", "conditions"} <= set(st)
    assert {"series_instance_uid", "series_description", "role", "role_reason"} <= set(
        st["series"][0]
    )
    sl = st["conditions"]["stress"]["slices"][0]
    for key in (
        "position",
        "sop_instance_uids",
        "frame_numbers",
        "times_s",
        "pd_frames",
        "ts_ms",
        "rows",
        "columns",
        "pixel_spacing_mm",
    ):
        assert key in sl
    aif = st["conditions"]["stress"]["aif"]
    assert {"series_instance_uid", "sop_instance_uids", "times_s", "pd_frames", "ts_ms"} <= set(aif)
    assert "heart_rate_bpm" in st["conditions"]["rest"]


def test_role_override_reassembles(tmp_path):
    write_tiny_exam(
        tmp_path / "exam", descriptions={"stress": "Perfusion SAX", "rest": "Perfusion SAX"}
    )
    index = scan_folder(tmp_path / "exam")
    study = index.study()
    # no keywords: faster heart rate -> stress
    assert all("faster heart rate" in s.role_reason for s in study.series if s.role == "stress")
    swap = {
        s.series_instance_uid: {"stress": "rest", "rest": "stress"}[s.role]
        for s in study.series
        if s.role in ("stress", "rest")
    }
    exam = load_exam(index, overrides=swap)
    assert exam.conditions["stress"].heart_rate_bpm == pytest.approx(64.0, abs=2.0)
    assert exam.conditions["stress"].aif is not None  # AIF follows by acquisition time
    assert all(s.role_reason == "set by the user" for s in study.series if s.role_set_by_user)


def test_similar_heart_rates_fall_back_to_acquisition_order(tmp_path):
    """No keywords and heart rates too close to tell: the earlier acquisition is stress,
    whatever the file or series order, and the reason says so."""
    write_tiny_exam(
        tmp_path / "exam",
        descriptions={"stress": "Perfusion SAX", "rest": "Perfusion SAX"},
        heart_rate={"stress": 70.0, "rest": 72.0},
        start_clock_s={"stress": 11 * 3600 + 40 * 60.0, "rest": 11 * 3600 + 5 * 60.0},
    )
    study = scan_folder(tmp_path / "exam").study()
    roles = {s.role for s in study.series}
    assert {"stress", "rest"} <= roles
    for s in study.series:
        if s.role == "stress":
            assert "acquired first" in s.role_reason
        if s.role == "rest":
            assert "acquired second" in s.role_reason
    # the series written as 'stress' were acquired later (11:40), so they are rest now
    stress_t = study.conditions["stress"].slices[0].times_s
    rest_t = study.conditions["rest"].slices[0].times_s
    assert study.conditions["stress"].heart_rate_bpm == pytest.approx(72.0, abs=3.0)
    assert len(stress_t) and len(rest_t)


def test_scanner_derived_copy_is_not_a_second_perfusion(tmp_path):
    """A motion-corrected copy made by the scanner (ImageType DERIVED, MOCO) of the stress
    slices gets the role 'derived' and is never assembled as a perfusion condition."""
    import shutil

    import pydicom
    from pydicom.uid import generate_uid

    root = tmp_path / "exam"
    write_tiny_exam(root, n_frames=10, aif=False)
    before = scan_folder(root).study()
    stress_uids = set(before.conditions["stress"].series_instance_uids)
    src = sorted(p for p in root.iterdir() if "stress" in p.name)[0]
    dst = root / "099_Perf_stress_MOCO"
    shutil.copytree(src, dst)
    uid = generate_uid()
    for f in dst.iterdir():
        ds = pydicom.dcmread(f)
        ds.ImageType = ["DERIVED", "PRIMARY", "MOCO"]
        ds.SeriesInstanceUID = uid
        ds.SeriesNumber = 99
        ds.SeriesDescription = "Perf stress adenosine MOCO"
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.save_as(f, enforce_file_format=True)
    study = scan_folder(root).study()
    moco = next(s for s in study.series if s.series_instance_uid == uid)
    assert moco.role == "derived" and "DERIVED" in moco.role_reason
    assert set(study.conditions["stress"].series_instance_uids) == stress_uids
    assert [len(sl.frames) for sl in study.conditions["stress"].slices] == [10, 10, 10]


def test_warm_scan_uses_cache_and_sees_changes(tmp_path):
    truth = write_tiny_exam(tmp_path / "exam", n_frames=10)
    cold = scan_folder(tmp_path / "exam")
    assert cold.n_from_cache == 0
    warm = scan_folder(tmp_path / "exam")
    assert warm.n_from_cache == warm.n_files == cold.n_files
    a, b = index_to_json(cold), index_to_json(warm)
    a.pop("n_from_cache"), b.pop("n_from_cache")
    assert a == b
    # a changed file is read again
    f = truth.files[0]
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))
    again = scan_folder(tmp_path / "exam")
    assert again.n_from_cache == again.n_files - 1


def test_progress_and_cancel(tmp_path):
    import threading

    from qperf_viewer.errors import CancelledError

    write_tiny_exam(tmp_path / "exam", n_frames=8)
    seen = []
    scan_folder(tmp_path / "exam", progress=lambda d, t: seen.append((d, t)), use_cache=False)
    assert seen and seen[-1][0] == seen[-1][1]
    ev = threading.Event()
    ev.set()
    with pytest.raises(CancelledError):
        scan_folder(tmp_path / "exam", cancel=ev, use_cache=False)


# --------------------------------------------------------------------------- phantom writer
def _oblique(k: int, rows: int, cols: int, spacing, step_mm: float, mirrored: bool):
    n = APEX_DIRECTION_LPS + np.array([0.1, 0.05, -0.2])
    n /= np.linalg.norm(n)
    row = np.cross(n, [0.0, 0.0, 1.0])
    row /= np.linalg.norm(row)
    col = np.cross(n, row)
    if mirrored:
        row = -row
    centre = np.array([20.0, -30.0, 40.0]) + k * step_mm * n
    dy, dx = spacing
    origin = centre - (cols - 1) / 2 * dx * row - (rows - 1) / 2 * dy * col
    return SliceGeometry(
        tuple(float(v) for v in (*row, *col)),
        tuple(float(v) for v in origin),
        spacing,
        (rows, cols),
        8.0,
    )


def _tiny_phantom(opts, seed: int):
    """A tiny PhantomExam in the DICOM style of variant options ``opts``."""
    from qperf_viewer.phantom.model import DicomStyle, PhantomExam

    rng = np.random.default_rng(seed)
    n_pd = 2 if opts.pd_frames is None else opts.pd_frames
    n_t, rows, cols = 10, 12, 14
    conds = {}
    for ci, cname in enumerate(("stress", "rest")):
        rr = (0.62, 0.95)[ci] * (1 + 0.03 * rng.standard_normal(n_t))
        beats = np.concatenate([[0.0], np.cumsum(rr[:-1])])
        slices = []
        lead = 0.05 if opts.aif_series else 0.0  # times start at the first acquired image
        for k in range(opts.n_slices):
            img = (
                60.0
                + 30.0 * rng.random((n_t, rows, cols))
                + 200.0 * (np.arange(n_t) > 5)[:, None, None]
            )
            img[:n_pd] *= 12.0
            slices.append(
                SliceSeries(
                    images=img.astype(np.float32),
                    times_s=beats + lead + 0.15 * k,
                    geometry=_oblique(k, rows, cols, (2.1, 1.9), 10.0, opts.mirrored),
                    pd_frames=tuple(range(n_pd)),
                    ts_ms=100.0,
                    slice_index=k,
                    position=slice_positions(opts.n_slices)[k],
                )
            )
        aif = None
        if opts.aif_series:
            a = 40.0 + 20.0 * rng.random((n_t, 6, 7))
            a[:n_pd] *= 12.0
            aif = AifSeries(
                images=a.astype(np.float32),
                times_s=beats.copy(),
                geometry=_oblique(1, 6, 7, (4.2, 3.8), 10.0, opts.mirrored),
                pd_frames=tuple(range(n_pd)),
                ts_ms=22.0,
            )
        conds[cname] = ConditionData(cname, slices, aif, heart_rate_bpm=60.0 / (0.62, 0.95)[ci])
    exam = PerfusionExam("", "PHANTOM^TINY", "PH0001", "19700304", "20260115", "", 1.5, None, conds)
    if opts.descriptions == "ambiguous":
        desc = {"stress": "Perfusion SAX", "rest": "Perfusion SAX"}
        adesc = {"stress": "AIF_dual", "rest": "AIF_dual"}
    else:
        desc = {"stress": "Perfusion stress adenosine", "rest": "REST PERF SAX"}
        adesc = {c: f"{d} AIF" for c, d in desc.items()}
    start = 86400.0 - 6.0 if opts.midnight else 35995.0
    style = DicomStyle(
        vendor=opts.vendor,
        storage=opts.storage,
        series_per_slice=opts.series_per_slice,
        instance_order=opts.instance_order,
        pd_comment=opts.pd_comment,
        descriptions=desc,
        aif_descriptions=adesc,
        start_clock_s={"stress": start, "rest": start + 900.0},
        junk=opts.junk,
    )
    return PhantomExam(seed=seed, variant="tiny", exam=exam, truth={}, style=style)


def compare_with_phantom_exam(index, exam: PerfusionExam) -> None:
    """The index must give back what the phantom wrote (exam updated by write_exam)."""
    assert len(index.studies) == 1
    study = index.study()
    for cname, cd in exam.conditions.items():
        ci = study.conditions[cname]
        truth = [
            {
                "sop": list(zip(s.sop_instance_uids, s.frame_numbers, strict=True)),
                "times_s": s.times_s,
                "pd_frames": s.pd_frames,
            }
            for s in cd.slices
        ]
        check_against(ci, truth)
        assert [s.position for s in ci.slices] == [s.position for s in cd.slices]
        for a, b in zip(ci.slices, cd.slices, strict=True):
            assert a.ts_ms == pytest.approx(b.ts_ms)
        assert (ci.aif is None) == (cd.aif is None)
        if cd.aif is not None:
            assert ci.aif.sop_instance_uids == cd.aif.sop_instance_uids
            np.testing.assert_allclose(ci.aif.times_s, cd.aif.times_s, atol=1e-3)
            assert ci.aif.pd_frames == cd.aif.pd_frames
        if cd.heart_rate_bpm:
            assert ci.heart_rate_bpm == pytest.approx(cd.heart_rate_bpm, rel=0.1)


def _header_variants() -> list[str]:
    """Phantom variants with distinct DICOM layouts (anatomy-only variants share one)."""
    try:
        from qperf_viewer.phantom.variants import list_variants, resolve_variant
    except ImportError:
        return []
    seen, out = set(), []
    for v in list_variants():
        o = resolve_variant(v, 11)
        key = (
            o.n_slices, o.mirrored, o.pd_frames, o.pd_comment, o.storage, o.vendor,
            o.series_per_slice, o.instance_order, o.descriptions, o.midnight, o.junk,
            o.aif_series,
        )  # fmt: skip
        if key not in seen:
            seen.add(key)
            out.append(v)
    return out


@pytest.mark.parametrize("variant", _header_variants())
def test_phantom_writer_layouts(tmp_path, variant):
    """Every phantom variant's header layout, written by the phantom's own DICOM writer."""
    from qperf_viewer.phantom.dicom_writer import write_exam
    from qperf_viewer.phantom.variants import resolve_variant

    opts = resolve_variant(variant, 11)
    ph = _tiny_phantom(opts, 11)
    write_exam(ph, tmp_path / "dicom")
    index = scan_folder(tmp_path / "dicom")
    compare_with_phantom_exam(index, ph.exam)
    errors = [p for p in index.all_problems if p.severity == "error"]
    if opts.junk:
        names = {Path(p.path).name for p in index.all_problems}
        assert {"README.txt", "screenshot_0001.jpg"} <= names
        assert any("truncated" in p.reason for p in errors)
        assert any("duplicate" in p.reason for p in index.all_problems)
        assert any(s.role == "localizer" for s in index.study().series)
    else:
        assert not errors
    exam = load_exam(index)
    for cname, cd in ph.exam.conditions.items():
        for a, b in zip(exam.conditions[cname].slices, cd.slices, strict=True):
            scale = float(np.max(b.images))
            np.testing.assert_allclose(a.images, b.images, atol=2e-3 * scale + 0.51)


# --------------------------------------------------------------------------- generated phantom
GENERATED = (
    "no_pd_comment",
    "no_pd",
    "enhanced_single_series",
    "philips",
    "midnight",
    "junk",
    "apex_to_base",
    "ambiguous",
)


def compare_with_truth_files(index, truth: dict) -> None:
    """The index against the phantom's truth on disk (``truth_io.load_truth``)."""
    study = index.study()
    assert study.study_instance_uid == truth["study_instance_uid"]
    for cname, ct in truth["conditions"].items():
        ci = study.conditions[cname]
        expected = [
            {
                "sop": list(zip(s["sop_instance_uids"], s["frame_numbers"], strict=True)),
                "times_s": s["times_s"],
                "pd_frames": s["pd_frames"],
            }
            for s in ct["slices"]
        ]
        check_against(ci, expected)
        for sl, st in zip(ci.slices, ct["slices"], strict=True):
            assert sl.position == st["position"]
            assert sl.series_instance_uid == st["series_instance_uid"]
            assert sl.ts_ms == pytest.approx(st["ts_ms"])
            assert sl.location_mm == pytest.approx(st["location_mm"], abs=0.01)
        if ct["aif_series"] is None:
            assert ci.aif is None
        else:
            assert list(ci.aif.sop_instance_uids) == ct["aif_series"]["sop_instance_uids"]
            assert list(ci.aif.pd_frames) == ct["aif_series"]["pd_frames"]
        assert ci.heart_rate_bpm == pytest.approx(ct["heart_rate_bpm"], rel=0.05)
        assert {s.role for s in study.series if s.series_instance_uid in ci.series_instance_uids}


@pytest.mark.slow
@pytest.mark.parametrize("variant", GENERATED)
def test_generated_phantom(tmp_path, variant):
    """Fully generated exams written by the phantom CLI's function (OUT/dicom + OUT/truth),
    checked against ``load_truth``; realistic signal, so PD frames are found by intensity
    when no image comment marks them."""
    cli = pytest.importorskip("qperf_viewer.phantom.cli")
    truth_io = pytest.importorskip("qperf_viewer.phantom.truth_io")

    cli.write_phantom(tmp_path / "exam", 5, variant)
    truth = truth_io.load_truth(tmp_path / "exam")
    index = scan_folder(tmp_path / "exam" / "dicom")
    compare_with_truth_files(index, truth)
    if variant == "no_pd_comment":
        assert all(
            "PD frames found by intensity (no 'PD' image comment)" in sl.flags
            for c in index.study().conditions.values()
            for sl in c.slices
        )


# --------------------------------------------------------------------------- real exams
@pytest.mark.realdata
def test_real_labelled_exams(shared_data):
    root = shared_data / "real_labelled"
    exams = sorted(p for p in root.iterdir() if (p / "dicom").is_dir())
    assert len(exams) == 4
    index = scan_folder(root)
    assert len(index.patients) == 4
    assert any("4 patients" in p.reason for p in index.problems)
    for st in index.studies:
        assert set(st.conditions) == {"stress", "rest"}
        for ci in st.conditions.values():
            assert [sl.position for sl in ci.slices] == ["basal", "mid"]
            assert all("basal" in sl.frames[0].record["SeriesDescription"] for sl in ci.slices[:1])
            assert all("mid" in sl.frames[0].record["SeriesDescription"] for sl in ci.slices[1:])
            for sl in ci.slices:
                assert sl.pd_frames == ()  # no PD frames in these exams
                np.testing.assert_allclose(np.diff(sl.times_s), 1.0, atol=1e-6)
            assert ci.heart_rate_bpm == pytest.approx(60.0)
    exam = load_exam(index, index.studies[0].study_instance_uid)
    s = exam.conditions["stress"].slices[0]
    assert s.images.ndim == 3 and s.images.shape[0] == len(s.times_s)
    assert np.isfinite(s.images).all() and s.images.max() > 0
