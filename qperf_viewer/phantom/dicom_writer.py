"""Write a synthetic exam (:class:`~qperf_viewer.phantom.model.PhantomExam`) as DICOM Part 10.

:func:`write_exam` stores ``phantom.exam`` (signal units, images ``(T, Y, X)``) the way a
scanner export would, following ``phantom.style`` (:class:`~.model.DicomStyle`):

* ``storage == 'classic'``: MR Image Storage, one file per frame;
  ``storage == 'enhanced'``: Enhanced MR Image Storage, one multi-frame file per series with
  shared / per-frame functional groups (timing in ``FrameContentSequence``, plane position,
  cardiac trigger delay, MR timing; rescale in ``PixelValueTransformationSequence``; TS in
  ``MRModifierSequence.InversionTimes``; PD frames marked by ``FrameComments`` 'PD' and
  ``FrameType[2] == 'PROTON_DENSITY'`` when ``style.pd_comment``).
* Clock times: frame ``i`` of a condition is acquired at ``style.start_clock_s[cond] +
  times_s[i]`` (seconds since midnight of ``style.study_date``); past 86400 s the clock wraps
  and the date advances. TriggerTime is the slice's constant delay after the R wave (ms).
* Pixel values: uint16 ``stored = round((max(S, 0) - intercept) / slope)``; SIEMENS writes no
  rescale (slope 1), GE writes 1/0, Philips writes a non-trivial slope and intercept -100 (plus
  a Philips private scale slope that readers must ignore). A slope-1 vendor falls back to an
  explicit non-trivial slope only when the signal would not fit (or would be crushed by) uint16.
* ``style.junk``: README.txt, a random-bytes ``.jpg``, a truncated DICOM (first 300 bytes), a
  3-plane localizer series and a byte-identical duplicate of one instance in another folder.

After writing, each :class:`~qperf_viewer.exam.SliceSeries` / ``AifSeries`` of
``phantom.exam`` holds the ``series_instance_uid``, ``sop_instance_uids`` and ``frame_numbers``
actually written (classic: one SOP per frame, frame 1; enhanced: the series' single SOP,
frames as stored), and ``trigger_time_ms`` where it was unset, so the truth saved afterwards
matches the files. Series/SOP UIDs already on the exam are kept where valid and consistent
with the storage (one per frame classic, one per series enhanced); others are derived
deterministically from (seed, variant). With ``style.pd_comment`` the PD frames also record
their low flip angle (5 deg); without it nothing in the header tells PD frames apart.
Enhanced files with all slices in one series store frames interleaved per heartbeat.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import re
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom import dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import UID, ExplicitVRLittleEndian

from qperf_viewer.exam import AifSeries, PerfusionExam, SliceSeries
from qperf_viewer.geometry import SliceGeometry
from qperf_viewer.phantom.model import DicomStyle, PhantomExam

__all__ = [
    "MR_IMAGE_STORAGE",
    "ENHANCED_MR_IMAGE_STORAGE",
    "write_exam",
    "clock_strings",
]

MR_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.4")
ENHANCED_MR_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.4.1")
#: Private implementation class UID of this writer (2.25 form, fixed).
IMPLEMENTATION_CLASS_UID = UID(
    "2.25." + str(uuid.UUID(bytes=hashlib.sha256(b"qperf-viewer").digest()[:16]).int)
)
IMPLEMENTATION_VERSION = "QPERF_PHANTOM_1"

_SECONDS_PER_DAY = 86400
_US_PER_DAY = _SECONDS_PER_DAY * 1_000_000
_GYRO_MHZ_T = 42.577478
_PHILIPS_INTERCEPT = -100.0
_MIN_SIGNAL_FOR_UNIT_SLOPE = 50.0  # below this a slope-1 vendor would lose too much precision
#: Series numbers: earlier series (localizer, cines) come first, as on a real scanner.
_FIRST_SERIES_NUMBER = {"SIEMENS": 12, "PHILIPS": 801, "GE": 7}
_LOCALIZER_SERIES_NUMBER = {"SIEMENS": 1, "PHILIPS": 101, "GE": 1}
_SCAN_OPTIONS = {"SIEMENS": ["PFP", "CG"], "PHILIPS": ["CG"], "GE": ["CG", "FAST_GEMS"]}

_VENDORS = {
    "SIEMENS": dict(
        manufacturer="SIEMENS",
        models={1.5: "MAGNETOM Aera", 3.0: "MAGNETOM Prisma"},
        software="syngo MR XA31",
        station="AWP66132",
        institution="Phantom Heart Centre",
        image_type=["ORIGINAL", "PRIMARY", "M", "ND", "NORM"],
        study_description="Cardiac^Perfusion",
        localizer_description="localizer",
        body_part="HEART",
        rescale="absent",
    ),
    "PHILIPS": dict(
        manufacturer="Philips Medical Systems",
        models={1.5: "Ingenia", 3.0: "Ingenia Elition X"},
        software="5.7.1\\5.7.1.2",
        station="PHILIPS-7Q1B3K",
        institution="Phantom Hospital",
        image_type=["ORIGINAL", "PRIMARY", "M", "FFE"],
        study_description="Cardiac perfusion",
        localizer_description="Survey",
        body_part="CHEST",
        rescale="philips",
    ),
    "GE": dict(
        manufacturer="GE MEDICAL SYSTEMS",
        models={1.5: "SIGNA Artist", 3.0: "SIGNA Premier"},
        software="30\\LX\\MR29.1_EA_2120.b",
        station="GEMR1",
        institution="Phantom Imaging",
        image_type=["ORIGINAL", "PRIMARY", "M", "OTHER"],
        study_description="CARDIAC PERFUSION",
        localizer_description="3-Plane Loc",
        body_part="HEART",
        rescale="unit",
    ),
}

# readout -> scanning sequence, variant, TE/TR (ms), sequence names per vendor, enhanced terms
_READOUTS = {
    "bSSFP": dict(
        scanning=["GR"],
        variant=["SK", "SS"],
        te=1.12,
        tr=2.65,
        names={"SIEMENS": "*tfi2d1_42", "PHILIPS": "B-TFE", "GE": "FIESTA"},
        echo_pulse="GRADIENT",
        steady_state="FREE_PRECESSION",
        spoiling="NONE",
        epi="NO",
        echo_train=1,
    ),
    "FLASH": dict(
        scanning=["GR"],
        variant=["SK", "SP"],
        te=1.24,
        tr=2.41,
        names={"SIEMENS": "*tfl2d1_16", "PHILIPS": "T1TFE", "GE": "fgre"},
        echo_pulse="GRADIENT",
        steady_state="NONE",
        spoiling="RF",
        epi="NO",
        echo_train=1,
    ),
    "EPI": dict(
        scanning=["GR", "EP"],
        variant=["SK", "SP"],
        te=1.05,
        tr=5.9,
        names={"SIEMENS": "*epfid2d1_4", "PHILIPS": "T1TFE-EPI", "GE": "fgre-et"},
        echo_pulse="GRADIENT",
        steady_state="NONE",
        spoiling="RF",
        epi="YES",
        echo_train=4,
    ),
}


# --------------------------------------------------------------------------------------------
# small helpers


def _uid(*parts: object) -> UID:
    """Deterministic 2.25 UID (UUID integer form) from ``parts``; at most 44 characters."""
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()[:16]
    return UID(f"2.25.{uuid.UUID(bytes=digest).int}")


def _valid_uid(value: str | None) -> bool:
    return bool(value) and UID(str(value)).is_valid


def _ds(x: float) -> str:
    """A DS string (<= 16 characters) for ``x``: the shortest exact form when it fits."""
    x = float(x)
    if x == 0:
        return "0"
    s = repr(x)
    if s.endswith(".0"):
        s = s[:-2]
    precision = 15
    while len(s) > 16:  # pydicom's format_number_as_ds can return 17 characters
        s = f"{x:.{precision}g}"
        precision -= 1
    return s


def _ds_list(values) -> list[str]:
    return [_ds(v) for v in values]


def clock_strings(study_date: str, clock_s: float) -> tuple[str, str]:
    """(DA 'YYYYMMDD', TM 'HHMMSS.ffffff') of a clock time in s since midnight of
    ``study_date``; values past 86400 s (or negative) roll the date over."""
    us = int(round(float(clock_s) * 1e6))
    days, rem = divmod(us, _US_PER_DAY)
    date = _dt.datetime.strptime(study_date, "%Y%m%d").date() + _dt.timedelta(days=int(days))
    hh, rem = divmod(rem, 3_600_000_000)
    mm, rem = divmod(rem, 60_000_000)
    ss, frac = divmod(rem, 1_000_000)
    return date.strftime("%Y%m%d"), f"{hh:02d}{mm:02d}{ss:02d}.{frac:06d}"


def _datetime_string(study_date: str, clock_s: float) -> str:
    da, tm = clock_strings(study_date, clock_s)
    return da + tm


def _clean(text: str, keep: str = "") -> str:
    out = re.sub(rf"[^A-Za-z0-9{re.escape(keep)}]+", "_", text).strip("_")
    return out or "X"


def _vendor_key(vendor: str) -> str:
    v = (vendor or "").upper()
    if v.startswith("PHILIPS"):
        return "PHILIPS"
    if v.startswith("GE"):
        return "GE"
    return "SIEMENS"


def _readout_key(readout: str) -> str:
    r = re.sub(r"[^a-z]", "", (readout or "").lower())
    if "epi" in r or r.endswith("et"):
        return "EPI"
    if any(k in r for k in ("ssfp", "fisp", "fiesta", "btfe", "balanced", "trufi")):
        return "bSSFP"
    return "FLASH"


def _field_key(b0: float) -> float:
    return 3.0 if b0 >= 2.2 else 1.5


# --------------------------------------------------------------------------------------------
# plan of what goes where


@dataclass
class _Frame:
    """One acquired frame: source series, 0-based frame index, stack rank of its slice."""

    src: SliceSeries | AifSeries
    t: int
    rank: int
    trigger_ms: float


@dataclass
class _Series:
    kind: str  # 'perfusion' | 'aif'
    condition: str
    uid: str
    number: int
    description: str
    protocol: str
    frames: list[_Frame]
    sources: list[SliceSeries | AifSeries]
    spacing_between_mm: float
    slope: float = 1.0
    intercept: float = 0.0
    write_rescale: bool = False
    bits_stored: int = 16
    written: dict[int, list[tuple[str, int]]] = field(default_factory=dict)


@dataclass
class _Ctx:
    """Exam-wide constants."""

    phantom: PhantomExam
    style: DicomStyle
    vendor: str
    vinfo: dict
    readout: dict
    b0: float
    study_uid: str
    for_uid: str
    study_date: str
    study_clock_s: float
    accession: str
    study_id: str
    patient_sex: str
    patient_age: str
    patient_weight: str
    patient_size: str
    rng: np.random.Generator
    starts: dict[str, float]
    file_counter: int = 0
    paths: list[Path] = field(default_factory=list)
    dicom_paths: list[Path] = field(default_factory=list)
    localizer_paths: list[Path] = field(default_factory=list)
    used_sops: set[str] = field(default_factory=set)


def _condition_starts(exam: PerfusionExam, style: DicomStyle) -> dict[str, float]:
    """Clock start (s since midnight of the study date) of each condition; missing ones are
    placed 15 min after the previous condition's last frame (first at 10:00)."""
    starts: dict[str, float] = {}
    last_end = None
    for name, cond in exam.conditions.items():
        if name in style.start_clock_s:
            starts[name] = float(style.start_clock_s[name])
        else:
            starts[name] = 36000.0 if last_end is None else last_end + 900.0
        ends = [float(np.max(s.times_s)) for s in cond.slices if len(s.times_s)]
        last_end = starts[name] + (max(ends) if ends else 0.0)
    return starts


def _spacing_between(slices: list[SliceSeries]) -> float:
    if len(slices) < 2:
        g = slices[0].geometry if slices else None
        return float(g.slice_thickness_mm) if g and g.slice_thickness_mm else 8.0
    n = slices[0].geometry.normal
    pos = np.sort([float(np.asarray(s.geometry.origin_mm) @ n) for s in slices])
    return float(np.median(np.abs(np.diff(pos))))


def _fallback_trigger_ms(acq_rank: int) -> float:
    return 40.0 + 160.0 * acq_rank


def _plan(ctx: _Ctx) -> list[_Series]:
    exam, style = ctx.phantom.exam, ctx.style
    apex_first = style.instance_order == "apex_to_base"
    series: list[_Series] = []
    number = _FIRST_SERIES_NUMBER[ctx.vendor]
    step = 100 if ctx.vendor == "PHILIPS" else 1
    for cname in sorted(exam.conditions, key=lambda c: ctx.starts[c]):
        cond = exam.conditions[cname]
        slices = list(cond.slices)
        if not slices:
            continue
        order = list(range(len(slices)))[::-1] if apex_first else list(range(len(slices)))
        desc = style.descriptions.get(cname) or f"perfusion_{cname}"
        spacing = _spacing_between(slices)
        triggers = {}
        for rank, k in enumerate(order):
            s = slices[k]
            trig = s.trigger_time_ms
            triggers[k] = float(trig) if trig is not None else _fallback_trigger_ms(rank)
        protocol = _protocol_name(ctx, desc)
        if style.series_per_slice:
            used: set[str] = set()
            for k in order:
                s = slices[k]
                uid = s.series_instance_uid
                if not _valid_uid(uid) or uid in used:
                    uid = _uid(ctx.phantom.seed, ctx.phantom.variant, "series", cname, k)
                used.add(uid)
                frames = [_Frame(s, t, 0, triggers[k]) for t in range(s.n_frames)]
                series.append(
                    _Series("perfusion", cname, uid, number, desc, protocol, frames, [s], spacing)
                )
                number += step
        else:
            uid = slices[0].series_instance_uid
            if not _valid_uid(uid):
                uid = _uid(ctx.phantom.seed, ctx.phantom.variant, "series", cname)
            n_t = max(s.n_frames for s in slices)
            frames = [
                _Frame(slices[k], t, rank, triggers[k])
                for t in range(n_t)
                for rank, k in enumerate(order)
                if t < slices[k].n_frames
            ]
            srcs = [slices[k] for k in order]
            series.append(
                _Series("perfusion", cname, uid, number, desc, protocol, frames, srcs, spacing)
            )
            number += step
        aif = cond.aif
        if aif is not None and aif.images.shape[0] > 0:
            adesc = style.aif_descriptions.get(cname) or f"{desc}_AIF"
            if "AIF" not in adesc.upper():
                adesc = f"{adesc} AIF"
            uid = aif.series_instance_uid
            if not _valid_uid(uid) or any(uid == s.uid for s in series):
                uid = _uid(ctx.phantom.seed, ctx.phantom.variant, "series", cname, "aif")
            trig = max(5.0, min(triggers.values()) - 60.0) if triggers else 20.0
            frames = [_Frame(aif, t, 0, trig) for t in range(aif.images.shape[0])]
            series.append(
                _Series(
                    "aif",
                    cname,
                    uid,
                    number,
                    adesc,
                    _protocol_name(ctx, adesc),
                    frames,
                    [aif],
                    float(aif.geometry.slice_thickness_mm or 10.0),
                )
            )
            number += step
    return series


def _protocol_name(ctx: _Ctx, description: str) -> str:
    """Protocol as the vendor records it; never more explicit than the description."""
    if ctx.vendor == "GE":
        return "CARDIAC/PERFUSION"
    if ctx.vendor == "PHILIPS":
        return f"WIP {description}"[:64]
    return description[:64]


def _choose_rescale(ctx: _Ctx, ser: _Series) -> None:
    """Slope/intercept and BitsStored of a series so that uint16 holds the signal."""
    smax = max((float(np.nanmax(s.images)) for s in ser.sources if s.images.size), default=1.0)
    smax = max(smax, 1e-6)
    mode = ctx.vinfo["rescale"]
    if mode == "philips":
        slope = float(_ds((smax - _PHILIPS_INTERCEPT) / 4000.0 * 1.0273))
        ser.slope, ser.intercept, ser.write_rescale = slope, _PHILIPS_INTERCEPT, True
    elif smax > 65535.0 or smax < _MIN_SIGNAL_FOR_UNIT_SLOPE:
        slope = float(_ds(smax / 4000.0))
        ser.slope, ser.intercept, ser.write_rescale = slope, 0.0, True
    else:
        ser.slope, ser.intercept = 1.0, 0.0
        ser.write_rescale = mode == "unit"
    top = int(np.ceil((smax - ser.intercept) / ser.slope)) + 1
    ser.bits_stored = 12 if top <= 4095 else 16


def _quantise(images: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    x = np.nan_to_num(np.asarray(images, dtype=np.float64), nan=0.0)
    q = np.rint((np.clip(x, 0.0, None) - intercept) / slope)
    return np.clip(q, 0, 65535).astype("<u2")


# --------------------------------------------------------------------------------------------
# datasets


def _file_meta(sop_class: str, sop_uid: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION
    return meta


def _common(ctx: _Ctx, sop_class: str) -> Dataset:
    """Patient, study, equipment, frame of reference and acquisition constants."""
    ex = ctx.phantom.exam
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.Modality = "MR"
    ds.PatientName = ex.patient_name or f"PHANTOM^SEED{ctx.phantom.seed}"
    ds.PatientID = ex.patient_id or f"PH{ctx.phantom.seed:08d}"
    ds.PatientBirthDate = ex.patient_birth_date or ""
    ds.PatientSex = ctx.patient_sex
    if ctx.patient_age:
        ds.PatientAge = ctx.patient_age
    ds.PatientSize = ctx.patient_size
    ds.PatientWeight = ctx.patient_weight
    ds.StudyInstanceUID = ctx.study_uid
    study_da, study_tm = clock_strings(ctx.study_date, ctx.study_clock_s)
    ds.StudyDate, ds.StudyTime = study_da, study_tm
    ds.StudyDescription = ctx.vinfo["study_description"]
    ds.AccessionNumber = ctx.accession
    ds.StudyID = ctx.study_id
    ds.ReferringPhysicianName = "REFERRER^PHANTOM"
    ds.FrameOfReferenceUID = ctx.for_uid
    ds.PositionReferenceIndicator = ""
    ds.Manufacturer = ex.manufacturer or ctx.vinfo["manufacturer"]
    ds.ManufacturerModelName = ctx.vinfo["models"][_field_key(ctx.b0)]
    ds.SoftwareVersions = ctx.vinfo["software"]
    ds.StationName = ctx.vinfo["station"]
    ds.InstitutionName = ctx.vinfo["institution"]
    ds.DeviceSerialNumber = str(40000 + ctx.phantom.seed % 9973)
    ds.MagneticFieldStrength = _ds(ctx.b0)
    ds.BodyPartExamined = ctx.vinfo["body_part"]
    ds.PatientPosition = "HFS"
    ds.BurnedInAnnotation = "NO"
    return ds


def _mr_acquisition(ctx: _Ctx, ds: Dataset, hr_bpm: float | None) -> None:
    """Classic MR Image module constants of a series."""
    ro = ctx.readout
    st = ctx.style
    ds.ScanningSequence = list(ro["scanning"])
    ds.SequenceVariant = list(ro["variant"])
    ds.ScanOptions = _SCAN_OPTIONS[ctx.vendor]
    ds.MRAcquisitionType = "2D"
    ds.SequenceName = ro["names"][ctx.vendor]
    ds.RepetitionTime = _ds(ro["tr"])
    ds.EchoTime = _ds(ro["te"])
    ds.EchoTrainLength = ro["echo_train"]
    ds.NumberOfAverages = "1"
    ds.ImagingFrequency = _ds(_GYRO_MHZ_T * ctx.b0)
    ds.ImagedNucleus = "1H"
    ds.EchoNumbers = "1"
    ds.PercentSampling = "100"
    ds.PercentPhaseFieldOfView = "75"
    ds.PixelBandwidth = "1085" if ro is _READOUTS["bSSFP"] else "1500"
    ds.ReceiveCoilName = "Body" if ctx.vendor == "SIEMENS" else "SENSE-Cardiac"
    ds.TransmitCoilName = "Body"
    ds.InPlanePhaseEncodingDirection = "ROW"
    ds.FlipAngle = _ds(st.flip_angle_deg)
    ds.VariableFlipAngleFlag = "N"
    ds.dBdt = "0"
    ds.SAR = _ds(0.4 + 0.1 * (ctx.b0 > 2))
    if hr_bpm:
        ds.HeartRate = str(int(round(hr_bpm)))
        ds.NominalInterval = str(int(round(60000.0 / hr_bpm)))
        ds.CardiacNumberOfImages = "1"
        ds.TriggerWindow = "0"
        ds.BeatRejectionFlag = "N"


def _series_ids(ds: Dataset, ctx: _Ctx, ser: _Series, first_clock_s: float) -> None:
    ds.SeriesInstanceUID = ser.uid
    ds.SeriesNumber = ser.number
    ds.SeriesDescription = ser.description
    ds.ProtocolName = ser.protocol
    da, tm = clock_strings(ctx.study_date, first_clock_s)
    ds.SeriesDate, ds.SeriesTime = da, tm


def _frame_clock(ctx: _Ctx, ser: _Series, f: _Frame) -> float:
    return ctx.starts[ser.condition] + float(f.src.times_s[f.t])


def _is_pd(f: _Frame) -> bool:
    return f.t in set(f.src.pd_frames)


def _pd_flip(ctx: _Ctx) -> float:
    return float(min(5.0, ctx.style.flip_angle_deg))


def _window(ser: _Series, stored: list[np.ndarray]) -> tuple[str, str]:
    allv = np.concatenate([s.ravel()[::7] for s in stored]) if stored else np.zeros(1)
    lo, hi = np.percentile(allv, [1.0, 99.5]) * ser.slope + ser.intercept
    return _ds(round((lo + hi) / 2.0)), _ds(max(round(hi - lo), 1))


def _hr(ctx: _Ctx, cname: str) -> float | None:
    cond = ctx.phantom.exam.conditions[cname]
    if cond.heart_rate_bpm:
        return float(cond.heart_rate_bpm)
    for s in cond.slices:
        dyn = s.dynamic_frames
        if len(dyn) > 2:
            rr = float(np.median(np.diff(np.asarray(s.times_s)[dyn])))
            if rr > 0:
                return 60.0 / rr
    return None


# --------------------------------------------------------------------------------------------
# file names


def _series_folder(ctx: _Ctx, dicom_dir: Path, ser_number: int, description: str) -> Path:
    ex = ctx.phantom.exam
    if ctx.vendor == "SIEMENS":
        pname = _clean(str(ex.patient_name or f"PHANTOM_{ctx.phantom.seed}")).upper()
        return (
            dicom_dir
            / f"{pname}_{ctx.study_date}"
            / f"{_clean(description).upper()}_{ser_number:04d}"
        )
    if ctx.vendor == "PHILIPS":
        return dicom_dir / "DICOM"
    return dicom_dir / f"E{ctx.study_id}" / f"S{ser_number:04d}"


def _file_name(ctx: _Ctx, ser_number: int, instance: int, clock_s: float, sop_uid: str) -> str:
    ctx.file_counter += 1
    if ctx.vendor == "SIEMENS":
        da, tm = clock_strings(ctx.study_date, clock_s)
        pname = _clean(str(ctx.phantom.exam.patient_name or "PHANTOM")).upper()
        stamp = f"{da[:4]}.{da[4:6]}.{da[6:]}.{tm[:2]}.{tm[2:4]}.{tm[4:6]}.{tm[7:]}"
        tail = int(sop_uid.rsplit(".", 1)[-1]) % 100_000_000
        return f"{pname}.MR.CARDIAC.{ser_number:04d}.{instance:04d}.{stamp}.{tail:08d}.IMA"
    if ctx.vendor == "PHILIPS":
        return f"IM_{ctx.file_counter:05d}"
    return f"I{instance:05d}.dcm"


def _save(ctx: _Ctx, ds: Dataset, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    dcmwrite(path, ds, enforce_file_format=True)
    ctx.paths.append(path)
    ctx.dicom_paths.append(path)
    return path


# --------------------------------------------------------------------------------------------
# classic MR Image Storage


def _write_classic_series(ctx: _Ctx, ser: _Series, dicom_dir: Path) -> None:
    vendor = ctx.vendor
    hr = _hr(ctx, ser.condition)
    stored = {id(s): _quantise(s.images, ser.slope, ser.intercept) for s in ser.sources}
    ds = _common(ctx, MR_IMAGE_STORAGE)
    first_clock = min(_frame_clock(ctx, ser, f) for f in ser.frames)
    _series_ids(ds, ctx, ser, first_clock)
    _mr_acquisition(ctx, ds, hr)
    ds.ImageType = list(ctx.vinfo["image_type"])
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = ser.bits_stored
    ds.HighBit = ser.bits_stored - 1
    ds.PixelRepresentation = 0
    ds.SpacingBetweenSlices = _ds(ser.spacing_between_mm)
    if ser.write_rescale:
        ds.RescaleIntercept = _ds(ser.intercept)
        ds.RescaleSlope = _ds(ser.slope)
        if vendor == "PHILIPS":
            block = ds.private_block(0x2005, "Philips MR Imaging DD 001", create=True)
            block.add_new(0x0E, "FL", float(1.0 / (ser.slope * 7.3)))  # ScaleSlope (ignore)
            block.add_new(0x0D, "FL", 0.0)  # ScaleIntercept
    wc, ww = _window(ser, list(stored.values()))
    ds.WindowCenter, ds.WindowWidth = wc, ww
    n_t = max(s.images.shape[0] for s in ser.sources)
    ds.NumberOfTemporalPositions = n_t
    folder = _series_folder(ctx, dicom_dir, ser.number, ser.description)
    ts_by_src = {id(s): s.ts_ms for s in ser.sources}
    for inst, f in enumerate(ser.frames, start=1):
        src, geom = f.src, f.src.geometry
        sop = _claim_sop(ctx, _given_classic_sop(f), "sop", ser.uid, _frame_key(ser, f))
        clock = _frame_clock(ctx, ser, f)
        da, tm = clock_strings(ctx.study_date, clock)
        ds.file_meta = _file_meta(MR_IMAGE_STORAGE, sop)
        ds.SOPInstanceUID = sop
        ds.InstanceCreationDate, ds.InstanceCreationTime = da, tm
        ds.InstanceNumber = inst
        ds.AcquisitionNumber = f.t + 1
        ds.TemporalPositionIdentifier = f.t + 1
        ds.AcquisitionDate, ds.AcquisitionTime = da, tm
        ds.ContentDate, ds.ContentTime = da, tm
        _plane(ds, geom)
        ds.TriggerTime = _ds(f.trigger_ms)
        ts = ts_by_src[id(src)]
        if ts is not None:
            ds.InversionTime = _ds(ts)
        elif "InversionTime" in ds:
            del ds.InversionTime
        pd = _is_pd(f)
        if pd and ctx.style.pd_comment:
            ds.ImageComments = "PD"
            ds.FlipAngle = _ds(_pd_flip(ctx))
        else:
            ds.FlipAngle = _ds(ctx.style.flip_angle_deg)
            if "ImageComments" in ds:
                del ds.ImageComments
        img = stored[id(src)][f.t]
        ds.Rows, ds.Columns = int(img.shape[0]), int(img.shape[1])
        ds.AcquisitionMatrix = [0, int(img.shape[1]), int(img.shape[0]), 0]
        ds.PixelData = np.ascontiguousarray(img).tobytes()
        _save(ctx, ds, folder / _file_name(ctx, ser.number, inst, clock, sop))
        ser.written.setdefault(id(src), []).append((sop, 1))


def _claim_sop(ctx: _Ctx, given: str | None, *parts: object) -> str:
    """The SOP Instance UID the generator chose when valid and unused, else a new one."""
    uid = given if given and _valid_uid(given) and given not in ctx.used_sops else None
    if uid is None:
        uid = _uid(ctx.phantom.seed, ctx.phantom.variant, *parts)
    ctx.used_sops.add(uid)
    return uid


def _given_classic_sop(f: _Frame) -> str | None:
    uids = f.src.sop_instance_uids
    return uids[f.t] if len(uids) == f.src.images.shape[0] else None


def _given_enhanced_sop(ser: _Series) -> str | None:
    given = {u for s in ser.sources for u in s.sop_instance_uids}
    return next(iter(given)) if len(given) == 1 else None


def _frame_key(ser: _Series, f: _Frame) -> str:
    """Stable key of a frame inside its series (source index, frame index)."""
    k = next(i for i, s in enumerate(ser.sources) if s is f.src)
    return f"{k}:{f.t}"


def _plane(ds: Dataset, geom: SliceGeometry) -> None:
    ds.ImagePositionPatient = _ds_list(geom.origin_mm)
    ds.ImageOrientationPatient = _ds_list(geom.orientation)
    ds.PixelSpacing = _ds_list(geom.pixel_spacing_mm)
    ds.SliceThickness = _ds(geom.slice_thickness_mm or 8.0)
    ds.SliceLocation = _ds(float(geom.centre_mm() @ geom.normal))


# --------------------------------------------------------------------------------------------
# Enhanced MR Image Storage


def _item(**kw) -> Dataset:
    d = Dataset()
    for k, v in kw.items():
        setattr(d, k, v)
    return d


def _modifier(vendor: str, ts_ms: float | None) -> Dataset:
    """MR Modifier item; the saturation time TS (ms) goes into InversionTimes."""
    item = _item(
        InversionRecovery="YES" if ts_ms is not None else "NO",
        FlowCompensation="NONE",
        T2Preparation="NO",
        SpectrallySelectedExcitation="NONE",
        SpatialPresaturation="NONE",
        PartialFourier="NO",
        ParallelAcquisition="YES",
        ParallelAcquisitionTechnique="OTHER" if vendor == "SIEMENS" else "SENSE",
        ParallelReductionFactorInPlane=2.0,
        ParallelReductionFactorOutOfPlane=1.0,
        ParallelReductionFactorSecondInPlane=1.0,
    )
    if ts_ms is not None:
        item.InversionTimes = [float(ts_ms)]
    return item


def _write_enhanced_series(ctx: _Ctx, ser: _Series, dicom_dir: Path) -> None:
    vendor, ro, st = ctx.vendor, ctx.readout, ctx.style
    shapes = {s.images.shape[1:] for s in ser.sources}
    if len(shapes) != 1:
        raise ValueError(f"enhanced series {ser.description!r}: slices differ in matrix size")
    rows, cols = next(iter(shapes))
    hr = _hr(ctx, ser.condition)
    stored = {id(s): _quantise(s.images, ser.slope, ser.intercept) for s in ser.sources}
    sop = _claim_sop(ctx, _given_enhanced_sop(ser), "sop", ser.uid, "enhanced")
    clocks = [_frame_clock(ctx, ser, f) for f in ser.frames]
    first_clock = min(clocks)
    ds = _common(ctx, ENHANCED_MR_IMAGE_STORAGE)
    ds.file_meta = _file_meta(ENHANCED_MR_IMAGE_STORAGE, sop)
    ds.SOPInstanceUID = sop
    _series_ids(ds, ctx, ser, first_clock)
    da, tm = clock_strings(ctx.study_date, first_clock)
    ds.InstanceCreationDate, ds.InstanceCreationTime = da, tm
    ds.ContentDate, ds.ContentTime = da, tm
    ds.AcquisitionDateTime = da + tm
    ds.AcquisitionDuration = float(max(clocks) - first_clock + 0.2)
    ds.InstanceNumber = 1
    ds.AcquisitionNumber = 1
    ds.ContentQualification = "PRODUCT"
    pd_marked = st.pd_comment and any(_is_pd(f) for f in ser.frames)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "MIXED" if pd_marked else "PERFUSION", "NONE"]
    ds.PixelPresentation = "MONOCHROME"
    ds.VolumetricProperties = "VOLUME"
    ds.VolumeBasedCalculationTechnique = "NONE"
    ds.ComplexImageComponent = "MAGNITUDE"
    ds.AcquisitionContrast = "MIXED" if pd_marked else "T1"
    ds.ResonantNucleus = "1H"
    ds.KSpaceFiltering = "NONE"
    ds.ApplicableSafetyStandardAgency = "IEC"
    ds.MRAcquisitionType = "2D"
    ds.PulseSequenceName = ro["names"][vendor]
    ds.EchoPulseSequence = ro["echo_pulse"]
    ds.MultiPlanarExcitation = "NO"
    ds.PhaseContrast = "NO"
    ds.TimeOfFlightContrast = "NO"
    ds.Spoiling = ro["spoiling"]
    ds.SteadyStatePulseSequence = ro["steady_state"]
    ds.EchoPlanarPulseSequence = ro["epi"]
    ds.SaturationRecovery = "YES"
    ds.SpectrallySelectedSuppression = "NONE"
    ds.OversamplingPhase = "NONE"
    ds.GeometryOfKSpaceTraversal = "RECTILINEAR"
    ds.SegmentedKSpaceTraversal = "PARTIAL" if ro["echo_train"] > 1 else "SINGLE"
    ds.RectilinearPhaseEncodeReordering = "LINEAR"
    ds.NumberOfKSpaceTrajectories = 1
    ds.CardiacSynchronizationTechnique = "PROSPECTIVE"
    ds.CardiacSignalSource = "ECG"
    ds.CardiacRRIntervalSpecified = float(60000.0 / hr) if hr else 0.0
    ds.CardiacBeatRejectionTechnique = "RR_INTERVAL"
    rr_ms = 60000.0 / hr if hr else 1000.0
    ds.LowRRValue = int(rr_ms * 0.8)
    ds.HighRRValue = int(rr_ms * 1.25)
    ds.IntervalsAcquired = len({f.t for f in ser.frames})
    ds.IntervalsRejected = 0
    ds.RespiratoryMotionCompensationTechnique = "NONE"
    ds.AcquisitionContextSequence = Sequence()
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = int(rows), int(cols)
    ds.BitsAllocated = 16
    ds.BitsStored = ser.bits_stored
    ds.HighBit = ser.bits_stored - 1
    ds.PixelRepresentation = 0
    ds.LossyImageCompression = "00"
    ds.PresentationLUTShape = "IDENTITY"
    ds.NumberOfFrames = len(ser.frames)
    if vendor == "PHILIPS":
        block = ds.private_block(0x2005, "Philips MR Imaging DD 001", create=True)
        block.add_new(0x0E, "FL", float(1.0 / (ser.slope * 7.3)))
        block.add_new(0x0D, "FL", 0.0)

    # dimensions: stack / in-stack position / temporal position
    dim_org = _uid(ctx.phantom.seed, ctx.phantom.variant, "dimorg", ser.uid)
    ds.DimensionOrganizationSequence = Sequence([_item(DimensionOrganizationUID=dim_org)])
    dims = []
    for tag, label in (
        (0x00209056, "Stack ID"),
        (0x00209057, "In-Stack Position Number"),
        (0x00209128, "Temporal Position Index"),
    ):
        d = _item(
            DimensionOrganizationUID=dim_org,
            DimensionIndexPointer=tag,
            FunctionalGroupPointer=0x00209111,
            DimensionDescriptionLabel=label,
        )
        dims.append(d)
    ds.DimensionIndexSequence = Sequence(dims)

    geoms = [s.geometry for s in ser.sources]
    same_orientation = all(
        np.allclose(g.orientation, geoms[0].orientation, atol=1e-6) for g in geoms
    )
    same_spacing = (
        all(np.allclose(g.pixel_spacing_mm, geoms[0].pixel_spacing_mm) for g in geoms)
        and len({g.slice_thickness_mm for g in geoms}) == 1
    )
    g0 = geoms[0]

    def measures(g: SliceGeometry) -> Dataset:
        return _item(
            PixelSpacing=_ds_list(g.pixel_spacing_mm),
            SliceThickness=_ds(g.slice_thickness_mm or 8.0),
            SpacingBetweenSlices=_ds(ser.spacing_between_mm),
        )

    wc, ww = _window(ser, list(stored.values()))
    shared = Dataset()
    if same_spacing:
        shared.PixelMeasuresSequence = Sequence([measures(g0)])
    if same_orientation:
        shared.PlaneOrientationSequence = Sequence(
            [_item(ImageOrientationPatient=_ds_list(g0.orientation))]
        )
    shared.PixelValueTransformationSequence = Sequence(
        [
            _item(
                RescaleIntercept=_ds(ser.intercept),
                RescaleSlope=_ds(ser.slope),
                RescaleType="US",
            )
        ]
    )
    shared.FrameVOILUTSequence = Sequence([_item(WindowCenter=wc, WindowWidth=ww)])
    ts_values = {s.ts_ms for s in ser.sources if s.ts_ms is not None}
    if len(ts_values) <= 1:
        shared.MRModifierSequence = Sequence([_modifier(vendor, next(iter(ts_values), None))])
    shared.MRImagingModifierSequence = Sequence(
        [
            _item(
                PixelBandwidth=1085.0 if ro is _READOUTS["bSSFP"] else 1500.0,
                MagnetizationTransfer="NONE",
                BloodSignalNulling="NO",
                Tagging="NONE",
                TransmitterFrequency=float(_GYRO_MHZ_T * ctx.b0),
            )
        ]
    )
    shared.FrameAnatomySequence = Sequence(
        [
            _item(
                AnatomicRegionSequence=Sequence(
                    [
                        _item(
                            CodeValue="80891009",
                            CodingSchemeDesignator="SCT",
                            CodeMeaning="Heart",
                        )
                    ]
                ),
                FrameLaterality="U",
            )
        ]
    )
    shared.MREchoSequence = Sequence([_item(EffectiveEchoTime=float(ro["te"]))])
    shared.MRAveragesSequence = Sequence([_item(NumberOfAverages=1.0)])
    shared.MRReceiveCoilSequence = Sequence(
        [
            _item(
                ReceiveCoilName="Body" if vendor == "SIEMENS" else "SENSE-Cardiac",
                ReceiveCoilManufacturerName=ctx.vinfo["manufacturer"][:64],
                ReceiveCoilType="MULTICOIL",
                QuadratureReceiveCoil="NO",
                MultiCoilDefinitionSequence=Sequence(
                    [
                        _item(MultiCoilElementName=f"{name}{k}", MultiCoilElementUsed="YES")
                        for name in ("BA", "SP")
                        for k in (1, 2, 3)
                    ]
                ),
            )
        ]
    )
    shared.MRTransmitCoilSequence = Sequence(
        [
            _item(
                TransmitCoilName="Body",
                TransmitCoilManufacturerName=ctx.vinfo["manufacturer"][:64],
                TransmitCoilType="BODY",
            )
        ]
    )
    shared.MRFOVGeometrySequence = Sequence(
        [
            _item(
                InPlanePhaseEncodingDirection="ROW",
                MRAcquisitionFrequencyEncodingSteps=int(rows),
                MRAcquisitionPhaseEncodingStepsInPlane=int(cols * 3 // 4),
                PercentSampling=100.0,
                PercentPhaseFieldOfView=75.0,
            )
        ]
    )
    ds.SharedFunctionalGroupsSequence = Sequence([shared])

    per_frame = []
    pixels = np.empty((len(ser.frames), rows, cols), dtype="<u2")
    for i, f in enumerate(ser.frames):
        src, g = f.src, f.src.geometry
        pd = _is_pd(f)
        clock = clocks[i]
        dt = _datetime_string(ctx.study_date, clock)
        content = _item(
            FrameAcquisitionNumber=f.t + 1,
            FrameReferenceDateTime=dt,
            FrameAcquisitionDateTime=dt,
            FrameAcquisitionDuration=round(float(ro["tr"]) * cols * 0.75 / ro["echo_train"], 1),
            StackID="1",
            InStackPositionNumber=f.rank + 1,
            TemporalPositionIndex=f.t + 1,
            DimensionIndexValues=[1, f.rank + 1, f.t + 1],
        )
        if pd and st.pd_comment:
            content.FrameComments = "PD"
        item = Dataset()
        item.FrameContentSequence = Sequence([content])
        item.PlanePositionSequence = Sequence([_item(ImagePositionPatient=_ds_list(g.origin_mm))])
        if not same_orientation:
            item.PlaneOrientationSequence = Sequence(
                [_item(ImageOrientationPatient=_ds_list(g.orientation))]
            )
        if not same_spacing:
            item.PixelMeasuresSequence = Sequence([measures(g)])
        item.CardiacSynchronizationSequence = Sequence(
            [
                _item(
                    NominalCardiacTriggerDelayTime=float(f.trigger_ms),
                    RRIntervalTimeNominal=float(60000.0 / hr) if hr else 0.0,
                )
            ]
        )
        flip = _pd_flip(ctx) if (pd and st.pd_comment) else float(st.flip_angle_deg)
        item.MRTimingAndRelatedParametersSequence = Sequence(
            [
                _item(
                    RepetitionTime=float(ro["tr"]),
                    FlipAngle=flip,
                    EchoTrainLength=int(ro["echo_train"]),
                    RFEchoTrainLength=1,
                    GradientEchoTrainLength=int(ro["echo_train"]),
                    GradientOutputType="DB_DT",
                    GradientOutput=0.0,
                    SpecificAbsorptionRateSequence=Sequence(
                        [
                            _item(
                                SpecificAbsorptionRateDefinition="IEC_WHOLE_BODY",
                                SpecificAbsorptionRateValue=0.4 + 0.1 * (ctx.b0 > 2),
                            )
                        ]
                    ),
                    OperatingModeSequence=Sequence(
                        [
                            _item(OperatingModeType=kind, OperatingMode="IEC_NORMAL")
                            for kind in ("STATIC FIELD", "RF", "GRADIENT")
                        ]
                    ),
                )
            ]
        )
        if len(ts_values) > 1:
            item.MRModifierSequence = Sequence([_modifier(vendor, src.ts_ms)])
        flavour = "PROTON_DENSITY" if (pd and st.pd_comment) else "PERFUSION"
        item.MRImageFrameTypeSequence = Sequence(
            [
                _item(
                    FrameType=["ORIGINAL", "PRIMARY", flavour, "NONE"],
                    PixelPresentation="MONOCHROME",
                    VolumetricProperties="VOLUME",
                    VolumeBasedCalculationTechnique="NONE",
                    ComplexImageComponent="MAGNITUDE",
                    AcquisitionContrast="PROTON_DENSITY" if flavour != "PERFUSION" else "T1",
                )
            ]
        )
        per_frame.append(item)
        pixels[i] = stored[id(src)][f.t]
        ser.written.setdefault(id(src), []).append((sop, i + 1))
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    ds.PixelData = pixels.tobytes()
    folder = _series_folder(ctx, dicom_dir, ser.number, ser.description)
    _save(ctx, ds, folder / _file_name(ctx, ser.number, 1, first_clock, sop))


# --------------------------------------------------------------------------------------------
# junk


def _write_localizer(ctx: _Ctx, dicom_dir: Path) -> None:
    """Three-plane localizer (series 1), classic MR, before the perfusion series."""
    desc = ctx.vinfo["localizer_description"]
    uid = _uid(ctx.phantom.seed, ctx.phantom.variant, "series", "localizer")
    ds = _common(ctx, MR_IMAGE_STORAGE)
    clock0 = ctx.study_clock_s + 30.0
    number = _LOCALIZER_SERIES_NUMBER[ctx.vendor]
    ser = _Series("localizer", "", uid, number, desc, desc, [], [], 10.0)
    _series_ids(ds, ctx, ser, clock0)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    ds.ScanningSequence = ["GR"]
    ds.SequenceVariant = ["SP"]
    ds.ScanOptions = ""
    ds.MRAcquisitionType = "2D"
    ds.RepetitionTime = "3.6"
    ds.EchoTime = "1.6"
    ds.EchoTrainLength = 1
    ds.FlipAngle = "10"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    n = 64
    yy, xx = np.mgrid[0:n, 0:n]
    body = (((yy - n / 2) / (n * 0.42)) ** 2 + ((xx - n / 2) / (n * 0.3)) ** 2) < 1.0
    planes = {
        "sag": ([0.0, 1.0, 0.0, 0.0, 0.0, -1.0], [0.0, -200.0, 200.0]),
        "cor": ([1.0, 0.0, 0.0, 0.0, 0.0, -1.0], [-200.0, 0.0, 200.0]),
        "tra": ([1.0, 0.0, 0.0, 0.0, 1.0, 0.0], [-200.0, -200.0, 0.0]),
    }
    folder = _series_folder(ctx, dicom_dir, number, desc)
    for inst, (name, (iop, ipp)) in enumerate(planes.items(), start=1):
        sop = _claim_sop(ctx, None, "sop", uid, name)
        clock = clock0 + 2.0 * inst
        da, tm = clock_strings(ctx.study_date, clock)
        ds.file_meta = _file_meta(MR_IMAGE_STORAGE, sop)
        ds.SOPInstanceUID = sop
        ds.InstanceNumber = inst
        ds.AcquisitionNumber = 1
        ds.AcquisitionDate, ds.AcquisitionTime = da, tm
        ds.ContentDate, ds.ContentTime = da, tm
        ds.ImagePositionPatient = _ds_list(ipp)
        ds.ImageOrientationPatient = _ds_list(iop)
        ds.PixelSpacing = ["6.25", "6.25"]
        ds.SliceThickness = "10"
        ds.Rows = ds.Columns = n
        img = (body * (300 + 200 * np.cos(xx / 7.0 + inst))).astype("<u2")
        ds.PixelData = img.tobytes()
        _save(ctx, ds, folder / _file_name(ctx, number, inst, clock, sop))
        ctx.localizer_paths.append(ctx.dicom_paths[-1])


def _write_junk(ctx: _Ctx, dicom_dir: Path) -> None:
    readme = dicom_dir / "README.txt"
    readme.write_text(
        "Exported images. Burn to CD with the viewer of your choice.\n"
        f"Patient: {ctx.phantom.exam.patient_id}\nStudy date: {ctx.study_date}\n"
    )
    jpg = dicom_dir / "screenshot_0001.jpg"
    jpg.write_bytes(b"\xff\xd8\xff\xe0" + ctx.rng.bytes(4096))
    ctx.paths += [readme, jpg]
    if not ctx.dicom_paths:
        return
    perf = [p for p in ctx.dicom_paths if p not in ctx.localizer_paths]
    if not perf:
        return
    src = perf[len(perf) // 2]
    if ctx.vendor == "PHILIPS":
        trunc = src.parent / "IM_99999"
    else:
        trunc = src.parent / f"{src.stem}_1{src.suffix}"
    trunc.write_bytes(src.read_bytes()[:300])
    dup_dir = dicom_dir / "EXPORT_2" / "copy"
    dup_dir.mkdir(parents=True, exist_ok=True)
    dup = dup_dir / src.name
    shutil.copyfile(src, dup)
    ctx.paths += [trunc, dup]


# --------------------------------------------------------------------------------------------
# public API


def write_exam(phantom: PhantomExam, dicom_dir: Path) -> list[Path]:
    """Write ``phantom.exam`` as DICOM into ``dicom_dir`` in ``phantom.style``.

    Returns every file written (DICOM files first in writing order, then junk files). Updates
    ``phantom.exam`` in place: each slice/AIF series gets the series UID, SOP instance UIDs and
    frame numbers (1-based) actually written, in frame order; unset ``trigger_time_ms``, an
    invalid study UID and missing ``style.start_clock_s`` entries are replaced by the written
    values.
    """
    dicom_dir = Path(dicom_dir)
    dicom_dir.mkdir(parents=True, exist_ok=True)
    exam, style = phantom.exam, phantom.style
    vendor = _vendor_key(style.vendor)
    seed_bytes = hashlib.sha256(f"{phantom.seed}|{phantom.variant}|dicom".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(seed_bytes[:8], "little"))
    b0 = float(exam.field_strength_t or 1.5)
    starts = _condition_starts(exam, style)
    for cname, start in starts.items():  # record defaults so the truth matches the files
        style.start_clock_s.setdefault(cname, start)
    first_start = min(starts.values()) if starts else 36000.0
    study_uid = exam.study_instance_uid
    if not _valid_uid(study_uid):
        study_uid = _uid(phantom.seed, phantom.variant, "study")
        exam.study_instance_uid = study_uid
    study_date = style.study_date or exam.study_date or "20260115"
    age = ""
    if exam.patient_birth_date:
        try:
            born = _dt.datetime.strptime(exam.patient_birth_date, "%Y%m%d").date()
            on = _dt.datetime.strptime(study_date, "%Y%m%d").date()
            age = f"{max(0, (on - born).days // 365):03d}Y"
        except ValueError:
            age = ""
    sex = str(rng.choice(["M", "F"]))
    ctx = _Ctx(
        phantom=phantom,
        style=style,
        vendor=vendor,
        vinfo=_VENDORS[vendor],
        readout=_READOUTS[_readout_key(style.readout)],
        b0=b0,
        study_uid=study_uid,
        for_uid=_uid(phantom.seed, phantom.variant, "frame-of-reference"),
        study_date=study_date,
        study_clock_s=first_start - 900.0 - float(rng.integers(0, 300)),
        accession=f"A{int(rng.integers(10**7, 10**8))}",
        study_id=str(int(rng.integers(1000, 99999))),
        patient_sex=sex,
        patient_age=age,
        patient_weight=_ds(round(float(rng.uniform(55, 105)), 1)),
        patient_size=_ds(round(float(rng.uniform(1.55, 1.95)), 2)),
        rng=rng,
        starts=starts,
    )
    plan = _plan(ctx)
    if style.junk:
        _write_localizer(ctx, dicom_dir)
    for ser in plan:
        _choose_rescale(ctx, ser)
        if style.storage == "enhanced":
            _write_enhanced_series(ctx, ser, dicom_dir)
        else:
            _write_classic_series(ctx, ser, dicom_dir)
        for src in ser.sources:
            written = ser.written.get(id(src), [])
            src.series_instance_uid = ser.uid
            src.sop_instance_uids = tuple(u for u, _ in written)
            src.frame_numbers = tuple(n for _, n in written)
            if isinstance(src, SliceSeries) and src.trigger_time_ms is None:
                src.trigger_time_ms = next((f.trigger_ms for f in ser.frames if f.src is src), None)
    if style.junk:
        _write_junk(ctx, dicom_dir)
    return list(ctx.paths)
