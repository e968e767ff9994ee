"""Tiny synthetic perfusion DICOM exams for tests of the index (not the phantom: no anatomy,
no kinetics; just the header layouts the reader must cope with, written with pydicom).

:func:`write_tiny_exam` writes stress and rest (and optional AIF) series and returns what the
index must find: per condition, the SOP instance UIDs of each slice basal to apical in frame
order, frame times and PD frames.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

_MR = "1.2.840.10008.5.1.4.1.1.4"
_ENH_MR = "1.2.840.10008.5.1.4.1.1.4.1"
_ROW = np.array([0.70710678, 0.70710678, 0.0])
_COL = np.array([0.40824829, -0.40824829, -0.81649658])


@dataclass
class TinyTruth:
    """What the index must assemble. Per condition: slices basal->apical, each a dict with
    'sop' (list of (sop uid, frame number) in frame order), 'times_s', 'pd_frames'."""

    study_uid: str
    conditions: dict[str, list[dict]] = field(default_factory=dict)
    aif_sops: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    series: dict[str, str] = field(default_factory=dict)  # series uid -> role
    files: list[Path] = field(default_factory=list)


def _uid(*parts) -> str:
    import hashlib

    h = int(hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:24], 16)
    return f"2.25.{h}"


def _clock(date: _dt.date, secs: float) -> tuple[str, str]:
    d = date + _dt.timedelta(days=int(secs // 86400))
    s = secs % 86400
    hh, rem = divmod(s, 3600)
    mm, ss = divmod(rem, 60)
    return d.strftime("%Y%m%d"), f"{int(hh):02d}{int(mm):02d}{ss:09.6f}"


def _apex_normal() -> np.ndarray:
    n = np.cross(_ROW, _COL)
    return n if n @ np.array([1.0, -1.0, -1.0]) >= 0 else -n


def write_tiny_exam(
    out: Path,
    *,
    seed: int = 0,
    n_slices: int = 3,
    n_frames: int = 14,
    n_pd: int = 2,
    pd_comment: bool = True,
    series_per_slice: bool = True,
    enhanced: bool = False,
    apex_first: bool = False,
    start_clock_s: dict[str, float] | None = None,
    with_date: bool = True,
    with_times: bool = True,
    descriptions: dict[str, str] | None = None,
    heart_rate: dict[str, float] | None = None,
    aif: bool = True,
    rows: int = 12,
    cols: int = 16,
    slope: float = 1.0,
    intercept: float = 0.0,
    patient_id: str = "TINY001",
) -> TinyTruth:
    """Write a tiny exam under ``out``; returns the truth the index must reproduce."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian

    out = Path(out)
    rng = np.random.default_rng(seed)
    descriptions = descriptions or {"stress": "Perf stress adenosine", "rest": "Perf rest"}
    heart_rate = heart_rate or {"stress": 96.0, "rest": 64.0}
    start_clock_s = start_clock_s or {
        "stress": 10 * 3600 + 59 * 60 + 30.0,
        "rest": 11 * 3600 + 20 * 60,
    }
    date = _dt.date(2026, 1, 15)
    study = _uid(seed, "study")
    truth = TinyTruth(study)
    n_apex = _apex_normal()
    base = np.array([-30.0, 40.0, 60.0])
    number = 10

    def common(sop_class: str, sop: str, series_uid: str, desc: str, num: int) -> Dataset:
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = sop_class
        ds.file_meta.MediaStorageSOPInstanceUID = sop
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop
        ds.Modality, ds.Manufacturer = "MR", "SIEMENS"
        ds.PatientName, ds.PatientID = f"TINY^{patient_id}", patient_id
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series_uid
        ds.StudyDate, ds.StudyTime = date.strftime("%Y%m%d"), "103000"
        ds.SeriesDescription, ds.ProtocolName, ds.SeriesNumber = desc, desc, num
        ds.MagneticFieldStrength = "1.5"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.FrameOfReferenceUID = _uid(seed, "for")
        if slope != 1.0 or intercept != 0.0:
            ds.RescaleSlope, ds.RescaleIntercept = f"{slope:g}", f"{intercept:g}"
        return ds

    def signal(k: int, t: int, is_pd: bool, shape) -> np.ndarray:
        v = 1000.0 if is_pd else 80.0 + 400.0 * np.exp(-((t - 7) ** 2) / 6.0) + 5 * k
        img = np.full(shape, v) + rng.normal(0, 1.0, shape)
        return np.clip(np.rint((img - intercept) / slope), 0, 65535).astype("<u2")

    for cond in ("stress", "rest"):
        rr = 60.0 / heart_rate[cond]
        t0 = start_clock_s[cond]
        slices = []
        geo = []
        for k in range(n_slices):
            origin = base + 10.0 * k * n_apex
            times = [i * rr + 0.12 * k + 0.01 * rng.random() for i in range(n_frames)]
            slices.append({"sop": [], "times_s": [], "pd_frames": list(range(n_pd))})
            geo.append((origin, times))
        all_t0 = min(tt[0] for _, tt in geo)
        if aif:  # the AIF image comes first in each beat: it is the condition's time origin
            all_t0 = min(all_t0, -0.05)
        for k in range(n_slices):
            slices[k]["times_s"] = [t - all_t0 for t in geo[k][1]]
        order = list(range(n_slices))[::-1] if apex_first else list(range(n_slices))
        jobs = []  # (series uid, desc, number, [(k, t)])
        if series_per_slice:
            for k in order:
                jobs.append(
                    (
                        _uid(seed, cond, k),
                        descriptions[cond],
                        number,
                        [(k, t) for t in range(n_frames)],
                    )
                )
                number += 1
        else:
            frames = [(k, t) for t in range(n_frames) for k in order]
            jobs.append((_uid(seed, cond), descriptions[cond], number, frames))
            number += 1
        for suid, desc, num, frames in jobs:
            truth.series[suid] = cond
            folder = out / f"{num:03d}_{desc.replace(' ', '_')}"
            folder.mkdir(parents=True, exist_ok=True)
            if enhanced:
                sop = _uid(seed, suid, "enh")
                ds = common(_ENH_MR, sop, suid, desc, num)
                ds.NumberOfFrames = len(frames)
                ds.Rows, ds.Columns = rows, cols
                shared = Dataset()
                pm = Dataset()
                pm.PixelSpacing, pm.SliceThickness = ["2.0", "2.0"], "8"
                po = Dataset()
                po.ImageOrientationPatient = [f"{x:.8f}" for x in (*_ROW, *_COL)]
                mm = Dataset()
                mm.InversionTimes = [100.0]
                shared.PixelMeasuresSequence = Sequence([pm])
                shared.PlaneOrientationSequence = Sequence([po])
                shared.MRModifierSequence = Sequence([mm])
                if slope != 1.0 or intercept != 0.0:
                    pv = Dataset()
                    pv.RescaleSlope, pv.RescaleIntercept = f"{slope:g}", f"{intercept:g}"
                    pv.RescaleType = "US"
                    shared.PixelValueTransformationSequence = Sequence([pv])
                ds.SharedFunctionalGroupsSequence = Sequence([shared])
                per, pix = [], []
                for i, (k, t) in enumerate(frames):
                    item = Dataset()
                    fc = Dataset()
                    if with_times:
                        da, tm = _clock(date, t0 + geo[k][1][t])
                        fc.FrameAcquisitionDateTime = da + tm
                    fc.TemporalPositionIndex = t + 1
                    fc.StackID, fc.InStackPositionNumber = "1", order.index(k) + 1
                    if t < n_pd and pd_comment:
                        fc.FrameComments = "PD"
                    pp = Dataset()
                    pp.ImagePositionPatient = [f"{x:.6f}" for x in geo[k][0]]
                    cs = Dataset()
                    cs.NominalCardiacTriggerDelayTime = 50.0 + 150.0 * k
                    item.FrameContentSequence = Sequence([fc])
                    item.PlanePositionSequence = Sequence([pp])
                    item.CardiacSynchronizationSequence = Sequence([cs])
                    per.append(item)
                    pix.append(signal(k, t, t < n_pd, (rows, cols)))
                    slices[k]["sop"].append((sop, i + 1))
                ds.PerFrameFunctionalGroupsSequence = Sequence(per)
                ds.PixelData = np.stack(pix).tobytes()
                path = folder / "enhanced.dcm"
                ds.save_as(path, enforce_file_format=True)
                truth.files.append(path)
                continue
            for i, (k, t) in enumerate(frames):
                sop = _uid(seed, suid, k, t)
                ds = common(_MR, sop, suid, desc, num)
                ds.InstanceNumber = i + 1
                ds.Rows, ds.Columns = rows, cols
                ds.PixelSpacing, ds.SliceThickness = ["2.0", "2.0"], "8"
                ds.ImageOrientationPatient = [f"{x:.8f}" for x in (*_ROW, *_COL)]
                ds.ImagePositionPatient = [f"{x:.6f}" for x in geo[k][0]]
                ds.TriggerTime = f"{50.0 + 150.0 * k:g}"
                ds.InversionTime = "100"
                ds.TemporalPositionIdentifier = t + 1
                ds.NominalInterval = f"{rr * 1000:.0f}"
                if with_times:
                    da, tm = _clock(date, t0 + geo[k][1][t])
                    ds.AcquisitionTime = tm
                    if with_date:
                        ds.AcquisitionDate = da
                if t < n_pd and pd_comment:
                    ds.ImageComments = "PD"
                ds.PixelData = signal(k, t, t < n_pd, (rows, cols)).tobytes()
                path = folder / f"IM{i + 1:05d}"
                ds.save_as(path, enforce_file_format=True)
                truth.files.append(path)
                slices[k]["sop"].append((sop, 1))
        truth.conditions[cond] = slices
        if aif:
            suid = _uid(seed, cond, "aif")
            truth.series[suid] = "aif"
            folder = out / f"{number:03d}_AIF_{cond}"
            folder.mkdir(parents=True, exist_ok=True)
            sops = []
            for t in range(n_frames):
                sop = _uid(seed, suid, t)
                ds = common(_MR, sop, suid, f"{descriptions[cond]} AIF", number)
                ds.InstanceNumber = t + 1
                ds.Rows, ds.Columns = rows // 2, cols // 2
                ds.PixelSpacing, ds.SliceThickness = ["4.0", "4.0"], "10"
                ds.ImageOrientationPatient = [f"{x:.8f}" for x in (*_ROW, *_COL)]
                ds.ImagePositionPatient = [f"{x:.6f}" for x in base + 5.0 * n_apex]
                ds.InversionTime = "30"
                if with_times:
                    da, tm = _clock(date, t0 + t * rr - 0.05)
                    ds.AcquisitionTime = tm
                    if with_date:
                        ds.AcquisitionDate = da
                if t < n_pd and pd_comment:
                    ds.ImageComments = "PD"
                ds.PixelData = signal(0, t, t < n_pd, (rows // 2, cols // 2)).tobytes()
                path = folder / f"A{t + 1:05d}.dcm"
                ds.save_as(path, enforce_file_format=True)
                truth.files.append(path)
                sops.append((sop, 1))
            truth.aif_sops[cond] = sops
            number += 1
    return truth
