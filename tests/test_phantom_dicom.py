"""Round trip of the phantom DICOM writer on tiny hand-made exams (and, when the generator
exists, on real generated exams): every file reads, headers are valid and say what the exam
holds (times, geometry, PD frames, rescale), and the exam is updated with what was written."""

from __future__ import annotations

import datetime as dt
import importlib.util
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.config import RAISE
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.uid import UID, ExplicitVRLittleEndian

from qperf_viewer.exam import AifSeries, ConditionData, PerfusionExam, SliceSeries
from qperf_viewer.geometry import APEX_DIRECTION_LPS, SliceGeometry, base_to_apex_normal
from qperf_viewer.phantom.dicom_writer import (
    ENHANCED_MR_IMAGE_STORAGE,
    MR_IMAGE_STORAGE,
    clock_strings,
    write_exam,
)
from qperf_viewer.phantom.model import DicomStyle, PhantomExam

STUDY_DATE = "20260115"


@pytest.fixture(autouse=True)
def _strict_pydicom(monkeypatch):
    """Invalid values (too long, bad VR) raise instead of warning, writing and reading."""
    monkeypatch.setattr(pydicom.config.settings, "writing_validation_mode", RAISE)
    monkeypatch.setattr(pydicom.config.settings, "reading_validation_mode", RAISE)


# ------------------------------------------------------------------------------------------
# tiny exams


def _oblique_axes() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = APEX_DIRECTION_LPS + np.array([0.1, 0.05, -0.2])
    n /= np.linalg.norm(n)
    row = np.cross(n, [0.0, 0.0, 1.0])
    row /= np.linalg.norm(row)
    col = np.cross(n, row)
    return row, col, n


def _geometry(k: int, rows: int, cols: int, spacing=(2.1, 1.9), step_mm=10.0) -> SliceGeometry:
    row, col, n = _oblique_axes()
    centre = np.array([20.0, -30.0, 40.0]) + k * step_mm * n
    dy, dx = spacing
    origin = centre - (cols - 1) / 2 * dx * row - (rows - 1) / 2 * dy * col
    return SliceGeometry(
        orientation=tuple(float(v) for v in (*row, *col)),
        origin_mm=tuple(float(v) for v in origin),
        pixel_spacing_mm=spacing,
        shape=(rows, cols),
        slice_thickness_mm=8.0,
    )


def _ramp(n_t: int, rows: int, cols: int, base: float, scale: float) -> np.ndarray:
    t, y, x = np.meshgrid(np.arange(n_t), np.arange(rows), np.arange(cols), indexing="ij")
    return (base + scale * (0.3 * t + 0.05 * y + 0.011 * x)).astype(np.float32)


def make_phantom(
    *,
    n_slices: int = 3,
    n_t: int = 6,
    n_pd: int = 2,
    rows: int = 12,
    cols: int = 16,
    aif: bool = True,
    scale: float = 400.0,
    rr_s: tuple[float, float] = (0.62, 0.95),
    start_clock_s: tuple[float, float] = (35999.5, 37800.0),  # stress crosses 10:00
    **style_kw,
) -> PhantomExam:
    """Stress and rest with known ramps; times per heartbeat with RR jitter, slices offset by
    their trigger delay (0.16 s apart), AIF right after the R wave."""
    rng = np.random.default_rng(3)
    conditions = {}
    for ci, cname in enumerate(("stress", "rest")):
        rr = rr_s[ci] * (1 + 0.05 * rng.standard_normal(n_t))
        beats = np.concatenate([[0.0], np.cumsum(rr[:-1])])
        slices = []
        for k in range(n_slices):
            slices.append(
                SliceSeries(
                    images=_ramp(n_t, rows, cols, 50.0 + 20 * k + 10 * ci, scale),
                    times_s=beats + 0.05 + 0.16 * k,
                    geometry=_geometry(k, rows, cols),
                    pd_frames=tuple(range(n_pd)),
                    ts_ms=100.0 + 5 * k,
                    slice_index=k,
                    trigger_time_ms=60.0 + 160.0 * k,
                )
            )
        aif_s = None
        if aif:
            aif_s = AifSeries(
                images=_ramp(n_t, 8, 10, 30.0, scale * 0.5),
                times_s=beats.copy(),
                geometry=_geometry(1, 8, 10, spacing=(4.2, 3.8)),
                pd_frames=tuple(range(n_pd)),
                ts_ms=22.0,
            )
        conditions[cname] = ConditionData(
            name=cname, slices=slices, aif=aif_s, heart_rate_bpm=60.0 / rr_s[ci]
        )
    exam = PerfusionExam(
        study_instance_uid="",
        patient_name="PHANTOM^TINY",
        patient_id="PH0001",
        patient_birth_date="19700304",
        study_date=STUDY_DATE,
        manufacturer="",
        field_strength_t=1.5,
        conditions=conditions,
    )
    style = DicomStyle(
        descriptions={"stress": "perf_stress_adenosine", "rest": "perf_rest"},
        aif_descriptions={"stress": "AIF_stress", "rest": "AIF_rest"},
        start_clock_s={"stress": start_clock_s[0], "rest": start_clock_s[1]},
        study_date=STUDY_DATE,
        **style_kw,
    )
    return PhantomExam(seed=7, variant="tiny", exam=exam, truth={}, style=style)


# ------------------------------------------------------------------------------------------
# reading back


def _read_all(paths: list[Path]) -> dict[str, tuple[Path, pydicom.Dataset]]:
    """SOP instance UID -> (path, dataset) of every readable DICOM file among ``paths``."""
    out = {}
    for p in paths:
        try:
            ds = pydicom.dcmread(p)
        except (InvalidDicomError, EOFError, OSError):
            continue
        if "PixelData" not in ds:
            continue
        out.setdefault(str(ds.SOPInstanceUID), (p, ds))
    return out


def _mv(value) -> list:
    """A DICOM value as a list (single values of multi-valued elements read back bare)."""
    return [str(v) for v in value] if isinstance(value, MultiValue | list) else [str(value)]


def _clock_s(da: str, tm: str, study_date: str = STUDY_DATE) -> float:
    """Seconds since midnight of ``study_date`` of a DA/TM pair (HHMMSS.ffffff is a clock)."""
    day = (dt.datetime.strptime(da, "%Y%m%d") - dt.datetime.strptime(study_date, "%Y%m%d")).days
    h, m, s = int(tm[:2]), int(tm[2:4]), float(tm[4:])
    return day * 86400 + h * 3600 + m * 60 + s


def _frame_info(ds: pydicom.Dataset, frame: int, study_date: str) -> dict:
    """Signal image, clock, position, orientation, trigger, PD mark, TS of one frame."""
    arr = ds.pixel_array
    if ds.SOPClassUID == ENHANCED_MR_IMAGE_STORAGE:
        shared = ds.SharedFunctionalGroupsSequence[0]
        item = ds.PerFrameFunctionalGroupsSequence[frame - 1]

        def group(name):
            return getattr(item, name)[0] if name in item else getattr(shared, name)[0]

        pvt = group("PixelValueTransformationSequence")
        content = item.FrameContentSequence[0]
        fdt = str(content.FrameAcquisitionDateTime)
        return dict(
            signal=arr[frame - 1] * float(pvt.RescaleSlope) + float(pvt.RescaleIntercept),
            clock=_clock_s(fdt[:8], fdt[8:], study_date),
            ipp=[float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient],
            iop=[float(v) for v in group("PlaneOrientationSequence").ImageOrientationPatient],
            spacing=[float(v) for v in group("PixelMeasuresSequence").PixelSpacing],
            trigger=float(group("CardiacSynchronizationSequence").NominalCardiacTriggerDelayTime),
            pd=content.get("FrameComments", "") == "PD",
            ts=float(_mv(group("MRModifierSequence").InversionTimes)[0]),
            temporal=int(content.TemporalPositionIndex),
        )
    assert frame == 1
    slope = float(ds.get("RescaleSlope", 1.0))
    intercept = float(ds.get("RescaleIntercept", 0.0))
    return dict(
        signal=arr * slope + intercept,
        clock=_clock_s(ds.AcquisitionDate, ds.AcquisitionTime, study_date),
        content_clock=_clock_s(ds.ContentDate, ds.ContentTime, study_date),
        ipp=[float(v) for v in ds.ImagePositionPatient],
        iop=[float(v) for v in ds.ImageOrientationPatient],
        spacing=[float(v) for v in ds.PixelSpacing],
        trigger=float(ds.TriggerTime),
        pd=ds.get("ImageComments", "") == "PD",
        ts=float(ds.InversionTime),
        temporal=int(ds.TemporalPositionIdentifier),
    )


def _check_roundtrip(ph: PhantomExam, paths: list[Path]) -> dict[str, tuple[Path, pydicom.Dataset]]:
    """Everything the reader needs comes back from the files the exam now points to."""
    files = _read_all(paths)
    style = ph.style
    for cname, cond in ph.exam.conditions.items():
        start = style.start_clock_s[cname]
        series_list = [*cond.slices, *([cond.aif] if cond.aif is not None else [])]
        for s in series_list:
            assert len(s.sop_instance_uids) == s.images.shape[0] == len(s.frame_numbers)
            triggers = set()
            for t, (sop, fn) in enumerate(zip(s.sop_instance_uids, s.frame_numbers, strict=True)):
                _, ds = files[sop]
                assert ds.SeriesInstanceUID == s.series_instance_uid
                info = _frame_info(ds, fn, style.study_date)
                quantum = float(ds.get("RescaleSlope", 1.0))
                if ds.SOPClassUID == ENHANCED_MR_IMAGE_STORAGE:
                    pvt = ds.SharedFunctionalGroupsSequence[0].PixelValueTransformationSequence
                    quantum = float(pvt[0].RescaleSlope)
                np.testing.assert_allclose(info["signal"], s.images[t], atol=quantum / 2 + 1e-3)
                assert info["clock"] == pytest.approx(start + s.times_s[t], abs=2e-6)
                if "content_clock" in info:
                    assert info["content_clock"] == pytest.approx(info["clock"], abs=2e-6)
                np.testing.assert_allclose(info["ipp"], s.geometry.origin_mm, atol=1e-5)
                np.testing.assert_allclose(info["iop"], s.geometry.orientation, atol=1e-6)
                np.testing.assert_allclose(info["spacing"], s.geometry.pixel_spacing_mm)
                assert info["pd"] == (style.pd_comment and t in s.pd_frames)
                assert info["ts"] == pytest.approx(s.ts_ms)
                assert info["temporal"] == t + 1
                triggers.add(info["trigger"])
            assert len(triggers) == 1  # TriggerTime constant per slice, never a frame time
            if isinstance(s, SliceSeries):
                assert triggers.pop() == pytest.approx(s.trigger_time_ms)
    return files


def _check_files_valid(paths: list[Path]) -> None:
    for p in paths:
        ds = pydicom.dcmread(p)
        if "LOCALIZER" in _mv(ds.ImageType):
            continue
        meta = ds.file_meta
        assert meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert meta.MediaStorageSOPClassUID == ds.SOPClassUID
        assert ds.SOPClassUID in (MR_IMAGE_STORAGE, ENHANCED_MR_IMAGE_STORAGE)
        for kw in ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID"):
            assert UID(ds[kw].value).is_valid, (kw, ds[kw].value)
        assert UID(ds.FrameOfReferenceUID).is_valid
        assert UID(meta.ImplementationClassUID).is_valid
        assert ds.BitsAllocated == 16 and ds.PixelRepresentation == 0
        assert ds.Modality == "MR"
        for kw in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate"):
            assert kw in ds
        assert ds.MagneticFieldStrength in (1.5, 3.0)


# ------------------------------------------------------------------------------------------
# tests


def test_clock_strings_cross_minute_hour_midnight():
    assert clock_strings("20260115", 36000.0) == ("20260115", "100000.000000")
    assert clock_strings("20260115", 36077.0) == ("20260115", "100117.000000")
    assert clock_strings("20260115", 3599.9999996) == ("20260115", "010000.000000")
    assert clock_strings("20260115", 86399.25) == ("20260115", "235959.250000")
    assert clock_strings("20260131", 86400.5) == ("20260201", "000000.500000")
    assert clock_strings("20260115", -1.0) == ("20260114", "235959.000000")


def test_classic_siemens_series_per_slice(tmp_path):
    ph = make_phantom(vendor="SIEMENS", storage="classic", series_per_slice=True)
    paths = write_exam(ph, tmp_path / "dicom")
    n_files = sum(s.n_frames for c in ph.exam.conditions.values() for s in c.slices) + sum(
        c.aif.images.shape[0] for c in ph.exam.conditions.values()
    )
    assert len(paths) == n_files and all(p.is_file() for p in paths)
    _check_files_valid(paths)
    files = _check_roundtrip(ph, paths)
    assert UID(ph.exam.study_instance_uid).is_valid
    for cname, cond in ph.exam.conditions.items():
        uids = {s.series_instance_uid for s in cond.slices}
        assert len(uids) == len(cond.slices)  # one series per slice
        ds = files[cond.slices[0].sop_instance_uids[0]][1]
        assert ds.SeriesDescription == ph.style.descriptions[cname]
        assert ds.Manufacturer == "SIEMENS"
        assert "RescaleSlope" not in ds
        assert list(ds.ImageType[:3]) == ["ORIGINAL", "PRIMARY", "M"]
        assert ds.SliceThickness == 8.0 and ds.SpacingBetweenSlices == pytest.approx(10.0)
        assert ds.FlipAngle < ph.style.flip_angle_deg  # PD frame: low flip angle
        dyn = files[cond.slices[0].sop_instance_uids[-1]][1]
        assert dyn.FlipAngle == ph.style.flip_angle_deg and "ImageComments" not in dyn
        assert (ds.Rows, ds.Columns) == (12, 16)
        assert _mv(ds.ScanningSequence) == ["GR"] and "SS" in _mv(ds.SequenceVariant)
        aif_ds = files[cond.aif.sop_instance_uids[0]][1]
        assert "AIF" in aif_ds.SeriesDescription
        assert (aif_ds.Rows, aif_ds.Columns) == (8, 10)
        assert all(n == 1 for s in cond.slices for n in s.frame_numbers)
        nums = [int(files[u][1].InstanceNumber) for u in cond.slices[0].sop_instance_uids]
        assert nums == list(range(1, len(nums) + 1))
    # stress series numbered (and acquired) before rest
    num = {
        c: files[d.slices[0].sop_instance_uids[0]][1].SeriesNumber
        for c, d in ph.exam.conditions.items()
    }
    assert num["stress"] < num["rest"]


def test_classic_philips_one_series_apex_first_across_midnight(tmp_path):
    ph = make_phantom(
        vendor="Philips",
        storage="classic",
        series_per_slice=False,
        instance_order="apex_to_base",
        start_clock_s=(86400.0 - 2.5, 86400.0 + 1200.0),
        readout="GRE-EPI",
    )
    paths = write_exam(ph, tmp_path / "dicom")
    _check_files_valid(paths)
    files = _check_roundtrip(ph, paths)
    for cond in ph.exam.conditions.values():
        assert len({s.series_instance_uid for s in cond.slices}) == 1
        # instance numbers run across slices, apex first within each heartbeat
        inst = np.array(
            [[int(files[u][1].InstanceNumber) for u in s.sop_instance_uids] for s in cond.slices]
        )
        n = len(cond.slices)
        assert sorted(inst.ravel()) == list(range(1, inst.size + 1))
        np.testing.assert_array_equal(inst[-1], np.arange(inst.shape[1]) * n + 1)  # apex
        np.testing.assert_array_equal(inst[0], np.arange(inst.shape[1]) * n + n)  # base
        ds = files[cond.slices[0].sop_instance_uids[0]][1]
        assert ds.Manufacturer.startswith("Philips")
        assert float(ds.RescaleSlope) != 1.0 and float(ds.RescaleIntercept) != 0.0
        assert "EP" in _mv(ds.ScanningSequence)
    # stress crosses midnight: dates advance
    stress = ph.exam.conditions["stress"].slices[0]
    dates = [files[u][1].AcquisitionDate for u in stress.sop_instance_uids]
    assert dates[0] == "20260115" and dates[-1] == "20260116"
    # flat DICOM/IM_xxxxx files without extension
    assert all(p.parent.name == "DICOM" and p.name.startswith("IM_") for p in paths)


@pytest.mark.parametrize(
    ("vendor", "per_slice", "order", "pd_comment"),
    [("GE", False, "base_to_apex", True), ("Philips", True, "apex_to_base", False)],
)
def test_enhanced_multiframe(tmp_path, vendor, per_slice, order, pd_comment):
    ph = make_phantom(
        vendor=vendor,
        storage="enhanced",
        series_per_slice=per_slice,
        instance_order=order,
        pd_comment=pd_comment,
    )
    paths = write_exam(ph, tmp_path / "dicom")
    _check_files_valid(paths)
    n_series = sum(
        (len(c.slices) if per_slice else 1) + (c.aif is not None)
        for c in ph.exam.conditions.values()
    )
    assert len(paths) == n_series
    files = _check_roundtrip(ph, paths)
    for cond in ph.exam.conditions.values():
        s0 = cond.slices[0]
        assert len(set(s0.sop_instance_uids)) == 1  # one SOP per series
        fns = [fn for s in cond.slices for fn in s.frame_numbers]
        if not per_slice:
            assert sorted(fns) == list(range(1, len(fns) + 1))
        ds = files[s0.sop_instance_uids[0]][1]
        assert ds.SOPClassUID == ENHANCED_MR_IMAGE_STORAGE
        assert int(ds.NumberOfFrames) == len(ds.PerFrameFunctionalGroupsSequence)
        assert len(ds.DimensionIndexSequence) == 3
        shared = ds.SharedFunctionalGroupsSequence[0]
        assert "PixelMeasuresSequence" in shared and "PlaneOrientationSequence" in shared
        assert ds.SaturationRecovery == "YES"
        per = ds.PerFrameFunctionalGroupsSequence
        fdts = [str(it.FrameContentSequence[0].FrameAcquisitionDateTime) for it in per]
        assert len(set(fdts)) == len(fdts)  # per-frame times
        assert all(
            len(it.FrameContentSequence[0].DimensionIndexValues) == 3
            and "MRTimingAndRelatedParametersSequence" in it
            for it in per
        )
        if not per_slice:
            positions = {tuple(it.PlanePositionSequence[0].ImagePositionPatient) for it in per}
            assert len(positions) == len(cond.slices)
        if vendor == "Philips":
            pvt = shared.PixelValueTransformationSequence[0]
            assert float(pvt.RescaleSlope) != 1.0 and float(pvt.RescaleIntercept) == -100.0
        if not pd_comment:
            assert not any("FrameComments" in it.FrameContentSequence[0] for it in per)


def test_junk_and_determinism(tmp_path):
    ph = make_phantom(vendor="GE", storage="classic", junk=True, n_slices=2, n_t=4)
    paths = write_exam(ph, tmp_path / "a")
    names = {p.name for p in paths}
    assert "README.txt" in names and any(n.endswith(".jpg") for n in names)
    readable, truncated, localizers = [], [], []
    for p in paths:
        try:
            ds = pydicom.dcmread(p)
            _ = ds.pixel_array
            readable.append((p, ds))
        except Exception:  # noqa: BLE001 - junk must fail somehow
            truncated.append(p)
            continue
        if "LOCALIZER" in ds.ImageType:
            localizers.append(ds)
    assert any(p.suffix == ".dcm" for p, _ in readable)
    # README, jpg and the truncated file fail to read as DICOM images
    assert {p.name for p in truncated} >= {"README.txt"} and len(truncated) == 3
    trunc = next(p for p in truncated if p.suffix == ".dcm")
    assert trunc.stat().st_size == 300
    assert localizers and all(
        ds.SeriesInstanceUID
        not in {s.series_instance_uid for c in ph.exam.conditions.values() for s in c.slices}
        for ds in localizers
    )
    iops = {tuple(ds.ImageOrientationPatient) for ds in localizers}
    sax = tuple(round(v, 6) for v in ph.exam.conditions["stress"].slices[0].geometry.orientation)
    assert sax not in {tuple(round(float(v), 6) for v in i) for i in iops}
    sops = [str(ds.SOPInstanceUID) for _, ds in readable]
    dups = {u for u in sops if sops.count(u) > 1}
    assert len(dups) == 1
    dup_paths = [p for p, ds in readable if str(ds.SOPInstanceUID) in dups]
    assert dup_paths[0].parent != dup_paths[1].parent
    assert dup_paths[0].read_bytes() == dup_paths[1].read_bytes()
    _check_roundtrip(ph, paths)
    # deterministic: the same exam written again gets the same UIDs
    ph2 = make_phantom(vendor="GE", storage="classic", junk=True, n_slices=2, n_t=4)
    write_exam(ph2, tmp_path / "b")
    for c in ph.exam.conditions:
        assert ph.exam.conditions[c].slices[1].sop_instance_uids == (
            ph2.exam.conditions[c].slices[1].sop_instance_uids
        )
    assert ph.exam.study_instance_uid == ph2.exam.study_instance_uid


def test_quantisation_clipping_and_large_signal(tmp_path):
    ph = make_phantom(vendor="SIEMENS", n_slices=1, aif=False, scale=90000.0, pd_comment=False)
    s = ph.exam.conditions["rest"].slices[0]
    s.images[0, 0, 0] = -25.0  # negative signal is clipped to 0
    paths = write_exam(ph, tmp_path / "dicom")
    files = _read_all(paths)
    ds = files[s.sop_instance_uids[0]][1]
    assert float(ds.RescaleSlope) > 1.0  # would not fit uint16 with slope 1
    sig = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert sig[0, 0] == pytest.approx(0.0, abs=float(ds.RescaleSlope) / 2)
    s.images[0, 0, 0] = 0.0
    _check_roundtrip(ph, paths)


def test_base_to_apex_positions_survive(tmp_path):
    """Slices written apex first still carry positions that order them basal -> apical."""
    ph = make_phantom(vendor="SIEMENS", instance_order="apex_to_base", aif=False)
    ph.style.start_clock_s.clear()  # defaults are chosen and recorded
    for c in ph.exam.conditions.values():
        for s in c.slices:
            s.trigger_time_ms = None
    paths = write_exam(ph, tmp_path / "dicom")
    assert ph.style.start_clock_s["stress"] < ph.style.start_clock_s["rest"]
    _check_roundtrip(ph, paths)  # written trigger times are recorded too
    files = _read_all(paths)
    cond = ph.exam.conditions["stress"]
    geoms = []
    for s in cond.slices:
        ds = files[s.sop_instance_uids[0]][1]
        geoms.append(
            SliceGeometry(
                orientation=tuple(float(v) for v in ds.ImageOrientationPatient),
                origin_mm=tuple(float(v) for v in ds.ImagePositionPatient),
                pixel_spacing_mm=tuple(float(v) for v in ds.PixelSpacing),
                shape=(ds.Rows, ds.Columns),
            )
        )
    n = base_to_apex_normal(geoms[0])
    pos = [float(np.asarray(g.origin_mm) @ n) for g in geoms]
    assert pos == sorted(pos)
    numbers = [files[s.sop_instance_uids[0]][1].SeriesNumber for s in cond.slices]
    assert numbers == sorted(numbers, reverse=True)  # apex series first


# ------------------------------------------------------------------------------------------
# real generated exams (once the generator exists)

_HAVE_GENERATOR = importlib.util.find_spec("qperf_viewer.phantom.generate") is not None


@pytest.fixture(scope="module")
def generated() -> PhantomExam:
    """One real generated exam (the generator takes seconds: made once per module)."""
    if not _HAVE_GENERATOR:
        pytest.skip("phantom generator not available yet")
    from qperf_viewer.phantom import generate_exam

    return generate_exam(11, "standard")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("storage", "vendor", "junk"), [("classic", "SIEMENS", True), ("enhanced", "Philips", False)]
)
def test_generated_exam_roundtrip(tmp_path, generated, storage, vendor, junk):
    ph = generated
    ph.style.storage, ph.style.vendor, ph.style.junk = storage, vendor, junk
    if storage == "classic":  # one file per frame: keep the first 24 heartbeats (test speed)
        for cond in ph.exam.conditions.values():
            for s in [*cond.slices, *([cond.aif] if cond.aif is not None else [])]:
                s.images, s.times_s = s.images[:24], s.times_s[:24]
                s.sop_instance_uids = s.sop_instance_uids[:24]
                s.frame_numbers = s.frame_numbers[:24]
    given = {
        c: [s.sop_instance_uids for s in cond.slices] for c, cond in ph.exam.conditions.items()
    }
    paths = write_exam(ph, tmp_path / "dicom")
    files = _check_roundtrip(ph, paths)
    dicom_paths = [p for p, _ in files.values()]
    _check_files_valid(dicom_paths[:: max(1, len(dicom_paths) // 25)])
    for cname, cond in ph.exam.conditions.items():
        ds = files[cond.slices[0].sop_instance_uids[-1]][1]
        assert ds.SeriesDescription == ph.style.descriptions[cname]
        assert (ds.Rows, ds.Columns) == cond.slices[0].images.shape[1:]
        if cond.aif is not None:
            assert "AIF" in files[cond.aif.sop_instance_uids[0]][1].SeriesDescription.upper()
        if storage == "classic":  # the generator's valid per-frame UIDs are kept
            assert [s.sop_instance_uids for s in cond.slices] == given[cname]
    if junk:
        names = {p.name for p in paths}
        assert "README.txt" in names and any(n.endswith(".jpg") for n in names)
