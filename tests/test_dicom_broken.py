"""Bad input never crashes the index: a corpus of deliberately broken files made here, plus
pydicom's bundled test files (no network). Each unusable file or series is a problem with a
plain reason and a hint; source files are never modified."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

from qperf_viewer.dicom import cache as header_cache
from qperf_viewer.dicom import load_exam, scan_folder
from qperf_viewer.dicom.cli import format_index
from qperf_viewer.dicom.headers import decoder_available, read_header
from qperf_viewer.dicom.synth import write_tiny_exam
from qperf_viewer.errors import InputError


def _testdata(name: str) -> Path:
    from pydicom.data import get_testdata_file

    p = get_testdata_file(name, download=False)
    if p is None:
        pytest.skip(f"pydicom test file {name} is not bundled")
    return Path(p)


def _problems_by_name(index) -> dict[str, list]:
    out: dict[str, list] = {}
    for p in index.all_problems:
        out.setdefault(Path(p.path).name, []).append(p)
    return out


def _digest(root: Path) -> dict[str, tuple[str, int]]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            out[str(p)] = (hashlib.sha1(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
    return out


@pytest.fixture(scope="module")
def exam_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("broken")
    write_tiny_exam(root / "exam", n_frames=10, aif=False)
    return root


def test_corpus_of_broken_files(exam_dir, tmp_path):
    root = tmp_path / "corpus"
    shutil.copytree(exam_dir / "exam", root)
    series = sorted(p for p in root.iterdir() if p.is_dir())
    good = sorted(series[0].iterdir())
    junk = root / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("not DICOM at all\n")
    (junk / "random.bin").write_bytes(np.random.default_rng(0).bytes(5000))
    (junk / "empty.dcm").write_bytes(b"")
    (junk / "fake_preamble.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\xff" * 40)
    raw = good[3].read_bytes()
    (junk / "cut_header.dcm").write_bytes(raw[:300])
    (junk / "cut_pixels.dcm").write_bytes(raw[:-100])
    ds = pydicom.dcmread(good[4])
    del ds.PixelData
    ds.SOPInstanceUID = ds.SOPInstanceUID + ".9"
    ds.save_as(junk / "no_pixels.dcm", enforce_file_format=True)
    shutil.copy(_testdata("MR_small_jp2klossless.dcm"), junk / "j2k.dcm")
    (root / "empty_folder").mkdir()
    before = _digest(root)

    index = scan_folder(root)  # must not raise
    by = _problems_by_name(index)
    assert by["notes.txt"][0].reason == "not a DICOM file"
    assert by["random.bin"][0].reason == "not a DICOM file"
    assert "empty file" in by["empty.dcm"][0].reason
    assert by["fake_preamble.dcm"][0].severity == "error"
    assert "truncated" in by["cut_header.dcm"][0].reason
    assert "truncated" in by["cut_pixels.dcm"][0].reason
    assert "no pixel data" in by["no_pixels.dcm"][0].reason
    if not decoder_available("1.2.840.10008.1.2.4.90"):
        j2k = [p for p in index.all_problems if "no decoder" in p.reason]
        assert j2k and "pip install" in j2k[0].hint
    for plist in by.values():
        for p in plist:
            assert p.reason and p.hint and p.severity in ("error", "warning", "info")
    # the rest still assembles: the intact series keep all their frames
    study = next(s for s in index.studies if s.conditions)
    assert [len(sl.frames) for sl in study.conditions["stress"].slices] == [10, 10, 10]
    assert _digest(root) == before  # never modifies the source files
    text = format_index(index)
    assert "notes.txt" in text and "truncated" in text


def test_mismatched_matrix_and_missing_times(exam_dir, tmp_path):
    root = tmp_path / "exam"
    shutil.copytree(exam_dir / "exam", root)
    files = sorted(sorted(p for p in root.iterdir() if p.is_dir())[0].iterdir())
    ds = pydicom.dcmread(files[5])
    ds.Rows, ds.Columns = 8, 8
    ds.PixelData = np.zeros((8, 8), "<u2").tobytes()
    ds.save_as(files[5], enforce_file_format=True)
    rest = [p for p in root.iterdir() if "rest" in p.name]
    for d in rest:
        for f in d.iterdir():
            ds = pydicom.dcmread(f)
            del ds.AcquisitionTime
            ds.save_as(f, enforce_file_format=True)
    index = scan_folder(root)
    study = index.study()
    stress = study.conditions["stress"]
    assert sorted(len(sl.frames) for sl in stress.slices) == [9, 10, 10]
    assert any("matrix 8x8" in p.reason for p in index.all_problems)
    rest_c = study.conditions["rest"]
    assert "timing approximate" in rest_c.flags
    assert all(len(sl.frames) == 10 for sl in rest_c.slices)
    assert any("no per-frame acquisition times" in p.reason for p in index.all_problems)


def test_frame_with_another_orientation_is_set_aside(exam_dir, tmp_path):
    """Inconsistent geometry inside a series: the odd frame is listed as a problem and the
    slice keeps its other frames; the other slices are untouched."""
    root = tmp_path / "exam"
    shutil.copytree(exam_dir / "exam", root)
    series = sorted(p for p in root.iterdir() if p.is_dir() and "stress" in p.name)
    files = sorted(series[0].iterdir())
    ds = pydicom.dcmread(files[4])
    ds.ImageOrientationPatient = [0.0, 1.0, 0.0, 0.0, 0.0, -1.0]  # a sagittal frame
    ds.save_as(files[4], enforce_file_format=True)
    index = scan_folder(root)
    stress = index.study().conditions["stress"]
    assert sorted(len(sl.frames) for sl in stress.slices) == [9, 10, 10]
    assert all(len(sl.frames) == 10 for sl in index.study().conditions["rest"].slices)
    odd = [p for p in index.all_problems if "position of their own" in p.reason]
    assert len(odd) == 1 and series[0].name in odd[0].path
    exam = load_exam(index)
    assert min(s.images.shape[0] for s in exam.conditions["stress"].slices) == 9


def test_one_bad_file_at_load_flags_the_slice(exam_dir, tmp_path):
    root = tmp_path / "exam"
    shutil.copytree(exam_dir / "exam", root)
    index = scan_folder(root)
    victim = index.study().conditions["stress"].slices[1].frames[6].path
    data = Path(victim).read_bytes()
    Path(victim).write_bytes(data[: len(data) - 50])  # damaged after the scan
    exam = load_exam(index)
    sl = exam.conditions["stress"].slices[1]
    assert sl.images.shape[0] == 9 and len(sl.times_s) == 9
    assert any("left out" in f for f in sl.flags)
    assert exam.conditions["stress"].slices[0].images.shape[0] == 10


def test_several_patients_and_empty_and_missing(tmp_path):
    write_tiny_exam(tmp_path / "two" / "a", n_frames=8, patient_id="A1", seed=1, aif=False)
    write_tiny_exam(tmp_path / "two" / "b", n_frames=8, patient_id="B2", seed=2, aif=False)
    index = scan_folder(tmp_path / "two")
    assert len(index.patients) == 2 and len(index.studies) == 2
    assert any("2 patients" in p.reason for p in index.problems)
    empty = tmp_path / "empty"
    empty.mkdir()
    idx = scan_folder(empty)
    assert idx.n_files == 0 and "empty" in idx.problems[0].reason
    with pytest.raises(InputError):
        scan_folder(tmp_path / "does_not_exist")
    with pytest.raises(InputError):  # a folder without perfusion: a clear error, no crash
        load_exam(idx)


def test_unreadable_file_and_folder(exam_dir, tmp_path, monkeypatch):
    root = tmp_path / "exam"
    shutil.copytree(exam_dir / "exam", root)
    locked_dir = root / "locked"
    locked_dir.mkdir()
    victim = sorted(
        sorted(p for p in root.iterdir() if p.is_dir() and p != locked_dir)[0].iterdir()
    )[0]
    if os.geteuid() != 0:
        victim.chmod(0)
        locked_dir.chmod(0)
    else:  # root reads everything: simulate the permission errors
        import builtins

        from qperf_viewer.dicom import headers

        real_open, real_scandir = builtins.open, os.scandir

        def fake_open(path, *a, **kw):
            if str(path) == str(victim):
                raise PermissionError(13, "Permission denied", str(path))
            return real_open(path, *a, **kw)

        def fake_scandir(path="."):
            if str(path) == str(locked_dir):
                raise PermissionError(13, "Permission denied", str(path))
            return real_scandir(path)

        monkeypatch.setattr(headers, "open", fake_open, raising=False)
        monkeypatch.setattr(os, "scandir", fake_scandir)
    try:
        index = scan_folder(root)
    finally:
        victim.chmod(0o644)
        locked_dir.chmod(0o755)
    reasons = {Path(p.path).name: p.reason for p in index.all_problems}
    assert "permission denied" in reasons[victim.name]
    assert "permission denied" in reasons["locked"]
    assert index.study().conditions["stress"]  # the rest is still indexed
    monkeypatch.undo()
    again = scan_folder(root)  # permission problems are not cached
    assert victim.name not in {Path(p.path).name for p in again.all_problems}


def test_corrupt_cache_is_rebuilt(exam_dir):
    root = exam_dir / "exam"
    first = scan_folder(root)
    cfile = header_cache.cache_file(root)
    assert cfile.is_file()
    cfile.write_text("{ this is not json")
    again = scan_folder(root)
    assert again.n_from_cache == 0 and again.n_instances == first.n_instances
    assert json.loads(cfile.read_text())["format"] == header_cache.FORMAT
    assert scan_folder(root).n_from_cache == first.n_files


def test_pydicom_bundled_test_files(tmp_path):
    """Every bundled file (many transfer syntaxes, no meta, big endian, DICOMDIRs, SR, RT,
    truncated, deflated) is read without an exception; the fast and pydicom readers agree."""
    from qperf_viewer.dicom import headers

    src = _testdata("MR_small.dcm").parent
    index = scan_folder(src, use_cache=False)
    assert index.n_files > 100
    by = _problems_by_name(index)
    assert "truncated" in by["MR_truncated.dcm"][0].reason
    assert by["README.txt"][0].reason == "not a DICOM file"
    for name in ("MR_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm"):
        rec = read_header(str(src / name))
        assert "_problem" not in rec and rec["Rows"] == 64 and rec["Modality"] == "MR"
    compared = 0
    for p in sorted(src.rglob("*")):
        if not p.is_file():
            continue
        size = p.stat().st_size
        try:
            fast = headers.read_fast(str(p), size)
        except headers._Fallback:
            continue
        if "_problem" in fast:
            continue
        slow = headers.read_pydicom(str(p), size)
        fast.pop("_reader"), slow.pop("_reader")
        assert fast == slow, p.name
        compared += 1
    assert compared > 50
    # pixels of the little-endian, big-endian and RLE variants agree after loading
    ref = pydicom.dcmread(src / "MR_small.dcm").pixel_array.astype(np.float32)
    for name in ("MR_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm",
                 "MR_small_RLE.dcm"):  # fmt: skip
        shutil.copy(src / name, tmp_path / name)
    idx = scan_folder(tmp_path, use_cache=False)
    from qperf_viewer.dicom.pixels import read_frames

    frames = [f for se in idx.studies[0].series for f in se.frames]
    assert len(frames) == 1  # the same SOP instance four times: counted once
    assert sum("duplicate" in p.reason for p in idx.all_problems) == 3
    for name in ("MR_small_implicit.dcm", "MR_small_bigendian.dcm", "MR_small_RLE.dcm"):
        rec = read_header(str(tmp_path / name))
        from qperf_viewer.dicom.model import Frame

        arr = read_frames([Frame(str(tmp_path / name), "x", 1, rec, {})])[0]
        np.testing.assert_array_equal(arr, ref)
