"""Header reading: one DICOM file -> one plain, JSON-serialisable header record.

Two readers produce the same record:

* a fast reader for the common case (Part 10 or preamble-less files in little-endian explicit
  or implicit VR, any transfer syntax whose data set is little endian, including encapsulated
  compressed pixel data): it walks the elements up to the pixel data, decodes only the tags in
  :data:`TAGS`, skips everything else by its length and never reads pixel data;
* pydicom (``dcmread`` with ``defer_size``, so pixel data is never loaded) for everything the
  fast reader declines: enhanced multi-frame files (per-frame functional groups), big endian,
  deflated, unusual character sets, and anything the fast reader cannot parse.

A record is a ``dict``: DICOM keywords -> decoded values (``str``, ``float``, ``int``, lists),
plus internal keys (leading underscore): ``_ts`` transfer syntax UID, ``_px`` whether pixel
data is present, ``_px_off``/``_px_len`` byte offset and length of native pixel data,
``_encap`` encapsulated (compressed) pixel data, ``_reader`` ('fast' | 'pydicom'),
``_frames`` per-frame attributes of enhanced multi-frame files (list of dicts, keys as in the
file level, frame order), ``_problem``/``_hint``/``_severity`` when the file cannot be used.
"""

from __future__ import annotations

import os
import struct
import warnings
from typing import Any

#: Bumped whenever the record layout or decoding changes (invalidates caches).
RECORD_VERSION = 3

_CHUNK = 16384
_UNDEF = 0xFFFFFFFF
_PIXEL_DATA = 0x7FE00010

# (tag, keyword, implicit VR, kind). kind: s str, m list[str], f float, F list[float], i int.
_TAG_TABLE: tuple[tuple[int, str, str, str], ...] = (
    (0x00080005, "SpecificCharacterSet", "CS", "m"),
    (0x00080008, "ImageType", "CS", "m"),
    (0x00080016, "SOPClassUID", "UI", "s"),
    (0x00080018, "SOPInstanceUID", "UI", "s"),
    (0x00080020, "StudyDate", "DA", "s"),
    (0x00080021, "SeriesDate", "DA", "s"),
    (0x00080022, "AcquisitionDate", "DA", "s"),
    (0x00080023, "ContentDate", "DA", "s"),
    (0x0008002A, "AcquisitionDateTime", "DT", "s"),
    (0x00080030, "StudyTime", "TM", "s"),
    (0x00080031, "SeriesTime", "TM", "s"),
    (0x00080032, "AcquisitionTime", "TM", "s"),
    (0x00080033, "ContentTime", "TM", "s"),
    (0x00080050, "AccessionNumber", "SH", "s"),
    (0x00080060, "Modality", "CS", "s"),
    (0x00080070, "Manufacturer", "LO", "s"),
    (0x00081030, "StudyDescription", "LO", "s"),
    (0x0008103E, "SeriesDescription", "LO", "s"),
    (0x00081090, "ManufacturerModelName", "LO", "s"),
    (0x00100010, "PatientName", "PN", "s"),
    (0x00100020, "PatientID", "LO", "s"),
    (0x00100030, "PatientBirthDate", "DA", "s"),
    (0x00180010, "ContrastBolusAgent", "LO", "s"),
    (0x00180024, "SequenceName", "SH", "s"),
    (0x00180050, "SliceThickness", "DS", "f"),
    (0x00180080, "RepetitionTime", "DS", "f"),
    (0x00180081, "EchoTime", "DS", "f"),
    (0x00180082, "InversionTime", "DS", "f"),
    (0x00180087, "MagneticFieldStrength", "DS", "f"),
    (0x00181030, "ProtocolName", "LO", "s"),
    (0x00181060, "TriggerTime", "DS", "f"),
    (0x00181062, "NominalInterval", "IS", "f"),
    (0x00181088, "HeartRate", "IS", "f"),
    (0x00181314, "FlipAngle", "DS", "f"),
    (0x0020000D, "StudyInstanceUID", "UI", "s"),
    (0x0020000E, "SeriesInstanceUID", "UI", "s"),
    (0x00200010, "StudyID", "SH", "s"),
    (0x00200011, "SeriesNumber", "IS", "i"),
    (0x00200012, "AcquisitionNumber", "IS", "i"),
    (0x00200013, "InstanceNumber", "IS", "i"),
    (0x00200032, "ImagePositionPatient", "DS", "F"),
    (0x00200037, "ImageOrientationPatient", "DS", "F"),
    (0x00200052, "FrameOfReferenceUID", "UI", "s"),
    (0x00200100, "TemporalPositionIdentifier", "IS", "i"),
    (0x00200105, "NumberOfTemporalPositions", "IS", "i"),
    (0x00201041, "SliceLocation", "DS", "f"),
    (0x00204000, "ImageComments", "LT", "s"),
    (0x00280002, "SamplesPerPixel", "US", "i"),
    (0x00280004, "PhotometricInterpretation", "CS", "s"),
    (0x00280006, "PlanarConfiguration", "US", "i"),
    (0x00280008, "NumberOfFrames", "IS", "i"),
    (0x00280010, "Rows", "US", "i"),
    (0x00280011, "Columns", "US", "i"),
    (0x00280030, "PixelSpacing", "DS", "F"),
    (0x00280100, "BitsAllocated", "US", "i"),
    (0x00280101, "BitsStored", "US", "i"),
    (0x00280103, "PixelRepresentation", "US", "i"),
    (0x00281052, "RescaleIntercept", "DS", "f"),
    (0x00281053, "RescaleSlope", "DS", "f"),
)
TAGS: dict[int, tuple[str, str, str]] = {t: (k, vr, kind) for t, k, vr, kind in _TAG_TABLE}
KEYWORDS: tuple[str, ...] = tuple(k for _, k, _, _ in _TAG_TABLE)

_LONG_VRS = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)
_VALID_VRS = _LONG_VRS | frozenset(
    {
        b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT",
        b"PN", b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US",
    }
)  # fmt: skip
_BINARY = {b"US": "<H", b"SS": "<h", b"UL": "<I", b"SL": "<l", b"FL": "<f", b"FD": "<d"}
_IMPLICIT_LE = "1.2.840.10008.1.2"
_EXPLICIT_LE = "1.2.840.10008.1.2.1"
_DEFLATED = "1.2.840.10008.1.2.1.99"
_EXPLICIT_BE = "1.2.840.10008.1.2.2"
_NATIVE_TS = frozenset({_IMPLICIT_LE, _EXPLICIT_LE, _EXPLICIT_BE, _DEFLATED})
_SIMPLE_CHARSETS = frozenset({"", "ISO_IR 6", "ISO_IR 100", "ISO_IR 192", "ISO 2022 IR 6"})
ENHANCED_SOP_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.4.1",  # Enhanced MR Image Storage
        "1.2.840.10008.5.1.4.1.1.4.3",  # Enhanced MR Color Image Storage
        "1.2.840.10008.5.1.4.1.1.4.4",  # Legacy Converted Enhanced MR Image Storage
    }
)
_FUNCTIONAL_GROUPS = frozenset({0x52009229, 0x52009230})


class _Fallback(Exception):
    """The fast reader declines this file; pydicom gets it."""


class _Truncated(_Fallback):
    """The file ends inside the header."""


def problem(reason: str, hint: str, severity: str = "error") -> dict[str, Any]:
    """A record for a file that cannot be used."""
    return {"_problem": reason, "_hint": hint, "_severity": severity}


NOT_DICOM = problem(
    "not a DICOM file",
    "Ignored. Nothing to do unless you expected images here.",
    "info",
)


# --------------------------------------------------------------------------- value decoding
def _text(raw: bytes) -> str:
    try:
        s = raw.decode("utf-8")
    except UnicodeDecodeError:
        s = raw.decode("latin-1")
    return s.strip(" \x00\t\r\n")


def _number(s: str, integer: bool) -> float | int | None:
    s = s.strip(" \x00")
    if not s:
        return None
    try:
        return int(s) if integer else float(s)
    except ValueError:
        try:
            v = float(s)
        except ValueError:
            return None
        return int(v) if integer and v.is_integer() else (None if integer else v)


def _decode(raw: bytes, vr: bytes, kind: str) -> Any:
    """Decode one element value of VR ``vr`` into the record's ``kind``."""
    fmt = _BINARY.get(vr)
    if fmt is not None:
        size = struct.calcsize(fmt)
        n = len(raw) // size
        if n == 0:
            return None
        vals = list(struct.unpack_from("<" + fmt[1] * n, raw))
        if kind in ("F", "m"):
            return [float(v) for v in vals]
        v = vals[0]
        return float(v) if kind == "f" else int(v) if kind == "i" else str(v)
    text = _text(raw)
    if kind == "s":
        return text
    if kind == "m":
        return [p.strip(" \x00") for p in text.split("\\")] if text else []
    parts = text.split("\\")
    if kind == "F":
        vals = [_number(p, False) for p in parts]
        return None if not vals or any(v is None for v in vals) else vals
    return _number(parts[0], kind == "i")


# --------------------------------------------------------------------------- fast reader
class _Stream:
    """A window onto a file: ``buf`` holds bytes from absolute offset ``base``."""

    __slots__ = ("f", "buf", "base", "size")

    def __init__(self, f, buf: bytes, size: int):
        self.f = f
        self.buf = buf
        self.base = 0
        self.size = size

    def ensure(self, pos: int, n: int) -> int:
        """Make bytes [pos, pos+n) available; return their offset inside ``buf``."""
        rel = pos - self.base
        if rel >= 0 and rel + n <= len(self.buf):
            return rel
        if pos + n > self.size:
            raise _Truncated("file ends inside the header")
        self.f.seek(pos)
        self.buf = self.f.read(max(n, _CHUNK))
        self.base = pos
        if len(self.buf) < n:
            raise _Truncated("file ends inside the header")
        return 0


def _looks_like_dataset_start(b: bytes) -> tuple[bool, bool] | None:
    """For a preamble-less file: (is DICOM, explicit VR) from its first element, else None."""
    if len(b) < 8:
        return None
    group, elem = struct.unpack_from("<HH", b, 0)
    if group not in (0x0002, 0x0008) or elem > 0x0100:
        return None
    if b[4:6] in _VALID_VRS and b[4:6].isupper():
        return True, True
    length = struct.unpack_from("<I", b, 4)[0]
    if length < 1024:
        return True, False
    return None


def _element_header(s: _Stream, pos: int, explicit: bool) -> tuple[int, bytes, int, int]:
    """(tag, VR, value length, header length) of the element at ``pos``."""
    rel = s.ensure(pos, 8)
    buf = s.buf
    group, elem = struct.unpack_from("<HH", buf, rel)
    tag = (group << 16) | elem
    if group == 0xFFFE:  # item / delimiters never have a VR
        return tag, b"", struct.unpack_from("<I", buf, rel + 4)[0], 8
    if explicit:
        vr = bytes(buf[rel + 4 : rel + 6])
        if vr in _LONG_VRS:
            rel = s.ensure(pos, 12)
            return tag, vr, struct.unpack_from("<I", s.buf, rel + 8)[0], 12
        if vr not in _VALID_VRS:
            raise _Fallback(f"unknown VR {vr!r}")
        return tag, vr, struct.unpack_from("<H", buf, rel + 6)[0], 8
    info = TAGS.get(tag)
    vr = info[1].encode() if info else b""
    return tag, vr, struct.unpack_from("<I", buf, rel + 4)[0], 8


def _skip_undefined(s: _Stream, pos: int, explicit: bool, depth: int = 0) -> int:
    """Skip the items of an undefined-length sequence starting at ``pos``; return end."""
    if depth > 16:
        raise _Fallback("sequences nested too deep")
    while True:
        tag, _vr, length, hl = _element_header(s, pos, False)
        pos += hl
        if tag == 0xFFFEE0DD:  # sequence delimiter
            return pos
        if tag != 0xFFFEE000:
            raise _Fallback("bad sequence item")
        if length != _UNDEF:
            pos += length
            continue
        while True:  # item of undefined length: elements until the item delimiter
            tag, vr, length, hl = _element_header(s, pos, explicit)
            pos += hl
            if tag == 0xFFFEE00D:
                break
            if length == _UNDEF:
                pos = _skip_undefined(s, pos, explicit and vr != b"UN", depth + 1)
            else:
                pos += length


def read_fast(path: str, size: int) -> dict[str, Any]:
    """Fast header reader; raises :class:`_Fallback` when pydicom must read the file."""
    with open(path, "rb") as f:
        head = f.read(_CHUNK)
        s = _Stream(f, head, size)
        rec: dict[str, Any] = {}
        if len(head) >= 132 and head[128:132] == b"DICM":
            pos = 132
        else:
            start = _looks_like_dataset_start(head)
            if start is None:
                return dict(NOT_DICOM)
            pos = 0
        # File meta information (always explicit VR little endian).
        ts = None
        media_sop = None
        while True:
            if pos + 8 > size:
                break
            rel = s.ensure(pos, 8)
            if struct.unpack_from("<H", s.buf, rel)[0] != 0x0002:
                break
            tag, vr, length, hl = _element_header(s, pos, True)
            if length == _UNDEF:
                raise _Fallback("undefined length in meta")
            if tag in (0x00020010, 0x00020002):
                rel = s.ensure(pos + hl, length)
                val = _text(s.buf[rel : rel + length])
                if tag == 0x00020010:
                    ts = val
                elif val:
                    media_sop = val
            pos += hl + length
        if ts is None:
            ts = _IMPLICIT_LE
            if pos + 6 <= size:
                rel = s.ensure(pos, 6)
                if s.buf[rel + 4 : rel + 6] in _VALID_VRS:
                    ts = _EXPLICIT_LE
        if ts in (_EXPLICIT_BE, _DEFLATED):
            raise _Fallback("big endian or deflated")
        explicit = ts != _IMPLICIT_LE
        rec["_ts"] = ts
        rec["_encap"] = ts not in _NATIVE_TS
        first = True
        while True:
            if pos == size:
                break
            if pos + 8 > size:
                raise _Truncated("file ends inside the header")
            if first:  # a mislabelled transfer syntax is common: trust the bytes
                rel = s.ensure(pos, 6)
                explicit = s.buf[rel + 4 : rel + 6] in _VALID_VRS
                first = False
            tag, vr, length, hl = _element_header(s, pos, explicit)
            if tag >= _PIXEL_DATA:
                if tag == _PIXEL_DATA:
                    rec["_px"] = True
                    if length == _UNDEF:
                        rec["_encap"] = True
                    else:
                        rec["_px_off"] = pos + hl
                        rec["_px_len"] = length
                        if pos + hl + length > size:
                            rec["_truncated"] = True
                break
            if tag in _FUNCTIONAL_GROUPS or tag in (0x7FE00008, 0x7FE00009):
                raise _Fallback("multi-frame functional groups or float pixel data")
            if length == _UNDEF:
                pos = _skip_undefined(s, pos + hl, explicit and vr != b"UN")
                continue
            info = TAGS.get(tag)
            if info is not None:
                rel = s.ensure(pos + hl, length)
                val = _decode(s.buf[rel : rel + length], vr, info[2])
                if val is not None and val != "" and val != []:
                    rec[info[0]] = val
            pos += hl + length
    if media_sop and "SOPClassUID" not in rec:
        rec["SOPClassUID"] = media_sop
    cs = rec.get("SpecificCharacterSet")
    if cs and any(c not in _SIMPLE_CHARSETS for c in cs):
        raise _Fallback("character set")
    if rec.get("SOPClassUID") in ENHANCED_SOP_CLASSES or (rec.get("NumberOfFrames") or 1) > 1:
        raise _Fallback("multi-frame")
    rec.setdefault("_px", False)
    rec["_reader"] = "fast"
    return rec


# --------------------------------------------------------------------------- pydicom reader
def _as_list(v) -> list:
    if isinstance(v, str | bytes) or not hasattr(v, "__iter__"):
        return [v]
    return list(v)


def _py_value(elem, kind: str) -> Any:
    v = elem.value
    if v is None or v == "":
        return None
    try:
        if kind == "s":
            if isinstance(v, bytes):
                return _text(v)
            return str(v).strip()
        if kind == "m":
            return [str(x).strip() for x in _as_list(v)]
        if kind == "F":
            return [float(x) for x in _as_list(v)]
        v = _as_list(v)[0]
        return int(float(v)) if kind == "i" else float(v)
    except (TypeError, ValueError, IndexError):
        return None


def _copy_tags(ds, out: dict[str, Any]) -> None:
    for tag, (kw, _vr, kind) in TAGS.items():
        if tag in ds:
            try:
                val = _py_value(ds[tag], kind)
            except Exception:  # noqa: BLE001 - a damaged element is skipped, not fatal
                val = None
            if val is not None and val != "" and val != []:
                out[kw] = val


def _first(ds, *path: str):
    """Follow sequence keywords ``path`` (first item each) to an attribute; None if absent."""
    cur = ds
    for i, kw in enumerate(path):
        if cur is None or kw not in cur:
            return None
        val = cur[kw].value
        if i < len(path) - 1:
            cur = val[0] if val else None
        else:
            return val
    return None


def _group_attrs(fg) -> dict[str, Any]:
    """Attributes of one functional-group item (shared or per-frame) as record keys."""
    out: dict[str, Any] = {}

    def put(key, val, conv):
        if val is None or val == "":
            return
        try:
            out[key] = conv(val)
        except (TypeError, ValueError, IndexError):
            pass

    def floats(v):
        return [float(x) for x in v]

    put("ImagePositionPatient", _first(fg, "PlanePositionSequence", "ImagePositionPatient"), floats)
    put(
        "ImageOrientationPatient",
        _first(fg, "PlaneOrientationSequence", "ImageOrientationPatient"),
        floats,
    )
    put("PixelSpacing", _first(fg, "PixelMeasuresSequence", "PixelSpacing"), floats)
    put("SliceThickness", _first(fg, "PixelMeasuresSequence", "SliceThickness"), float)
    put(
        "FrameAcquisitionDateTime",
        _first(fg, "FrameContentSequence", "FrameAcquisitionDateTime"),
        str,
    )
    put("FrameReferenceDateTime", _first(fg, "FrameContentSequence", "FrameReferenceDateTime"), str)
    put("TemporalPositionIndex", _first(fg, "FrameContentSequence", "TemporalPositionIndex"), int)
    put("StackID", _first(fg, "FrameContentSequence", "StackID"), str)
    put("InStackPositionNumber", _first(fg, "FrameContentSequence", "InStackPositionNumber"), int)
    put("ImageComments", _first(fg, "FrameContentSequence", "FrameComments"), str)
    put(
        "TriggerTime",
        _first(fg, "CardiacSynchronizationSequence", "NominalCardiacTriggerDelayTime"),
        float,
    )
    put(
        "NominalInterval",
        _first(fg, "CardiacSynchronizationSequence", "RRIntervalTimeNominal"),
        float,
    )
    inv = _first(fg, "MRModifierSequence", "InversionTimes")
    if inv is not None:
        seq = _as_list(inv)
        if seq:
            put("InversionTime", seq[0], float)
    put("FlipAngle", _first(fg, "MRTimingAndRelatedParametersSequence", "FlipAngle"), float)
    put(
        "RepetitionTime",
        _first(fg, "MRTimingAndRelatedParametersSequence", "RepetitionTime"),
        float,
    )
    put("RescaleSlope", _first(fg, "PixelValueTransformationSequence", "RescaleSlope"), float)
    put(
        "RescaleIntercept",
        _first(fg, "PixelValueTransformationSequence", "RescaleIntercept"),
        float,
    )
    ft = _first(fg, "MRImageFrameTypeSequence", "FrameType")
    if ft is not None:
        put("FrameType", ft, lambda v: [str(x) for x in _as_list(v)])
    return out


def _frames_of(ds) -> list[dict[str, Any]]:
    shared: dict[str, Any] = {}
    if "SharedFunctionalGroupsSequence" in ds and ds.SharedFunctionalGroupsSequence:
        shared = _group_attrs(ds.SharedFunctionalGroupsSequence[0])
    n = int(ds.get("NumberOfFrames", 1) or 1)
    per = list(ds.get("PerFrameFunctionalGroupsSequence", []) or [])
    frames = []
    for i in range(n):
        fr = dict(shared)
        if i < len(per):
            fr.update(_group_attrs(per[i]))
        frames.append(fr)
    return frames


def read_pydicom(path: str, size: int) -> dict[str, Any]:
    """Header record via pydicom (pixel data is deferred, never read)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(path, defer_size=1024)
        except InvalidDicomError:
            with open(path, "rb") as f:
                head = f.read(132)
            if _looks_like_dataset_start(head) is None:
                return dict(NOT_DICOM)
            ds = pydicom.dcmread(path, defer_size=1024, force=True)
        rec: dict[str, Any] = {}
        meta = getattr(ds, "file_meta", None)
        ts = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
        if not ts:
            ts = _IMPLICIT_LE if ds.is_implicit_VR else _EXPLICIT_LE
            if not ds.is_little_endian:
                ts = _EXPLICIT_BE
        rec["_ts"] = ts
        rec["_encap"] = ts not in _NATIVE_TS
        _copy_tags(ds, rec)
        if "SOPClassUID" not in rec and meta is not None and meta.get("MediaStorageSOPClassUID"):
            rec["SOPClassUID"] = str(meta.MediaStorageSOPClassUID)
        raw = ds._dict.get(_PIXEL_DATA)
        rec["_px"] = raw is not None
        if raw is not None:
            length = getattr(raw, "length", None)
            tell = getattr(raw, "value_tell", None)
            if length == _UNDEF:
                rec["_encap"] = True
            elif length is not None and tell is not None:
                if ts in (_IMPLICIT_LE, _EXPLICIT_LE):
                    rec["_px_off"] = int(tell)
                    rec["_px_len"] = int(length)
                if ts != _DEFLATED and int(tell) + int(length) > size:
                    rec["_truncated"] = True
        nframes = int(rec.get("NumberOfFrames") or 1)
        if "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds:
            rec["_frames"] = _frames_of(ds)
        elif nframes > 1:
            rec["_frames"] = [{} for _ in range(nframes)]
    rec["_reader"] = "pydicom"
    return rec


# --------------------------------------------------------------------------- entry point
def read_header(path: str, size: int | None = None) -> dict[str, Any]:
    """Header record of one file; never raises for bad input (problems become records)."""
    try:
        if size is None:
            size = os.path.getsize(path)
        if size == 0:
            return problem("empty file (0 bytes)", "Ignored. Copy the file again if it matters.")
        try:
            rec = read_fast(path, size)
        except _Truncated:
            try:
                rec = read_pydicom(path, size)
            except Exception:  # noqa: BLE001 - pydicom cannot read it either
                rec = {}
            if "_problem" not in rec and not rec.get("_px"):
                return problem(
                    "truncated: the file ends inside its header",
                    "Copy the study again from the scanner or PACS.",
                )
        except _Fallback:
            rec = read_pydicom(path, size)
    except PermissionError:
        return dict(
            problem(
                "cannot be read: permission denied",
                "Check the file permissions (e.g. chmod -R u+r on the folder) or copy the "
                "folder to a place you can read.",
            ),
            _transient=True,
        )
    except FileNotFoundError:
        return dict(
            problem("disappeared during the scan", "Scan the folder again.", "warning"),
            _transient=True,
        )
    except OSError as exc:
        return dict(
            problem(
                f"cannot be read ({exc.strerror or exc})",
                "Check the disk or network share and copy the folder again.",
            ),
            _transient=True,
        )
    except Exception as exc:  # noqa: BLE001 - any parser failure means a damaged file
        return problem(
            f"truncated or damaged DICOM file ({type(exc).__name__})",
            "Copy the study again from the scanner or PACS.",
        )
    if "_problem" in rec:
        return rec
    return _judge(rec)


_SOP_DICOMDIR = "1.2.840.10008.1.3.10"


def _judge(rec: dict[str, Any]) -> dict[str, Any]:
    """Turn a parsed record into a problem record when the file is unusable."""
    if not any(k in rec for k in KEYWORDS):
        rec.update(
            problem(
                "damaged DICOM file: no readable header elements",
                "Copy the study again from the scanner or PACS.",
            )
        )
        return rec
    if rec.get("SOPClassUID") == _SOP_DICOMDIR:
        rec.update(
            problem(
                "DICOMDIR (a media directory, not an image)",
                "Ignored: the images are read directly.",
                "info",
            )
        )
        return rec
    if rec.get("_truncated"):
        rec.update(
            problem(
                "truncated: the file ends before the end of its pixel data",
                "Copy the study again from the scanner or PACS.",
            )
        )
        return rec
    if not rec.get("_px"):
        if rec.get("Rows") or rec.get("Modality") in ("MR", "CT"):
            rec.update(
                problem(
                    "no pixel data (header only)",
                    "Export the series again with images, or ignore this file.",
                )
            )
        else:
            rec.update(
                problem(
                    "not an image (no pixel data: e.g. a report or presentation state)",
                    "Ignored. Nothing to do.",
                    "info",
                )
            )
        return rec
    if not rec.get("StudyInstanceUID") or not rec.get("SeriesInstanceUID"):
        rec.update(
            problem(
                "the header has no StudyInstanceUID/SeriesInstanceUID",
                "Export the study again from the scanner or PACS.",
            )
        )
        return rec
    if rec.get("_encap") and not decoder_available(rec.get("_ts", "")):
        rec["_no_decoder"] = True
    return rec


_DECODER_CACHE: dict[str, bool] = {}


def decoder_available(ts: str) -> bool:
    """Whether pydicom can decode pixel data of transfer syntax ``ts`` here."""
    if ts in _DECODER_CACHE:
        return _DECODER_CACHE[ts]
    try:
        from pydicom.pixels import get_decoder

        ok = bool(get_decoder(ts).is_available)
    except Exception:  # noqa: BLE001 - unknown syntax: no decoder
        ok = False
    _DECODER_CACHE[ts] = ok
    return ok


def transfer_syntax_name(ts: str) -> str:
    """Readable name of a transfer syntax UID."""
    try:
        from pydicom.uid import UID

        name = UID(ts).name
        return name if name and name != ts else ts
    except Exception:  # noqa: BLE001
        return ts
