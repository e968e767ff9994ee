"""Pixel loading for indexed frames: (rows, cols) float32 with the modality LUT
(RescaleSlope/Intercept, per frame for enhanced files) applied.

Uncompressed little-endian single-sample pixel data is read straight from the byte offset the
header reader recorded (no DICOM parsing); everything else goes through pydicom's
``pixel_array`` (compressed syntaxes need a decoder; big endian, bit-packed, multi-frame).
"""

from __future__ import annotations

import warnings
from collections import defaultdict

import numpy as np

from qperf_viewer.dicom.headers import decoder_available, transfer_syntax_name
from qperf_viewer.dicom.model import Frame

_LE_NATIVE = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1")


class PixelError(Exception):
    """A frame's pixels cannot be read; ``str()`` is a plain reason."""


def _native_dtype(rec: dict) -> np.dtype | None:
    if rec.get("_ts") not in _LE_NATIVE or "_px_off" not in rec:
        return None
    if int(rec.get("SamplesPerPixel") or 1) != 1:
        return None
    bits = int(rec.get("BitsAllocated") or 0)
    stored = int(rec.get("BitsStored") or bits)
    signed = int(rec.get("PixelRepresentation") or 0) == 1
    if bits not in (8, 16, 32) or (signed and stored != bits):
        return None
    return np.dtype(("<i" if signed else "<u") + str(bits // 8))


def _rescale(arr: np.ndarray, fr: Frame) -> np.ndarray:
    out = arr.astype(np.float32, copy=False)
    slope = fr.get("RescaleSlope")
    icpt = fr.get("RescaleIntercept")
    slope = 1.0 if slope is None else float(slope)
    icpt = 0.0 if icpt is None else float(icpt)
    if slope != 1.0 or icpt != 0.0:
        out = out * np.float32(slope) + np.float32(icpt)
    return out.astype(np.float32, copy=False)


def _read_native(path: str, rec: dict, frames: list[Frame], dtype: np.dtype) -> list[np.ndarray]:
    rows, cols = int(rec.get("Rows") or 0), int(rec.get("Columns") or 0)
    nbytes = rows * cols * dtype.itemsize
    if nbytes <= 0:
        raise PixelError("the header has no image size (Rows/Columns)")
    out = []
    with open(path, "rb") as f:
        for fr in frames:
            start = (fr.frame_number - 1) * nbytes
            if start + nbytes > int(rec["_px_len"]):
                raise PixelError("the pixel data is shorter than the image size")
            f.seek(int(rec["_px_off"]) + start)
            buf = f.read(nbytes)
            if len(buf) < nbytes:
                raise PixelError("truncated: the file ends inside its pixel data")
            out.append(np.frombuffer(buf, dtype=dtype).reshape(rows, cols))
    return out


def _read_pydicom(
    path: str, rec: dict, frames: list[Frame], decoded: dict[str, np.ndarray] | None
) -> list[np.ndarray]:
    ts = rec.get("_ts", "")
    if rec.get("_encap") and not decoder_available(ts):
        raise PixelError(f"compressed ({transfer_syntax_name(ts)}) and no decoder is installed")
    arr = decoded.get(path) if decoded is not None else None
    if arr is None:
        import pydicom

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, force=True)
            arr = ds.pixel_array
        if decoded is not None:
            decoded[path] = arr
    n = int(rec.get("NumberOfFrames") or 1)
    if int(rec.get("SamplesPerPixel") or 1) != 1:
        raise PixelError("colour image (several samples per pixel), not an MR magnitude image")
    if n > 1 and arr.ndim == 3:
        return [arr[fr.frame_number - 1] for fr in frames]
    return [arr for _ in frames]


def read_frames(
    frames: list[Frame], decoded: dict[str, np.ndarray] | None = None
) -> list[np.ndarray | PixelError]:
    """Pixels of each frame as (rows, cols) float32, or a :class:`PixelError` in its place.

    decoded: optional memo of whole files decoded by pydicom (path -> array), so that several
    slices of one multi-frame file are decoded once.
    """
    by_path: dict[str, list[int]] = defaultdict(list)
    for i, fr in enumerate(frames):
        by_path[fr.path].append(i)
    out: list[np.ndarray | PixelError] = [PixelError("not read")] * len(frames)
    for path, idx in by_path.items():
        group = [frames[i] for i in idx]
        rec = group[0].record
        try:
            dtype = _native_dtype(rec)
            if dtype is not None:
                arrs = _read_native(path, rec, group, dtype)
            else:
                arrs = _read_pydicom(path, rec, group, decoded)
            for i, fr, a in zip(idx, group, arrs, strict=True):
                out[i] = _rescale(np.asarray(a), fr)
        except PixelError as exc:
            for i in idx:
                out[i] = exc
        except MemoryError:
            raise
        except PermissionError:
            for i in idx:
                out[i] = PixelError("cannot be read: permission denied")
        except Exception as exc:  # noqa: BLE001 - a damaged file must not stop the load
            for i in idx:
                out[i] = PixelError(f"pixel data cannot be decoded ({type(exc).__name__}: {exc})")
    return out


def frame_means(
    frames: list[Frame], decoded: dict[str, np.ndarray] | None = None
) -> list[float | None]:
    """Mean intensity of each frame (None where unreadable)."""
    out: list[float | None] = []
    for a in read_frames(frames, decoded):
        out.append(None if isinstance(a, PixelError) else float(np.mean(a, dtype=np.float64)))
    return out


def load_stack(
    frames: list[Frame], decoded: dict[str, np.ndarray] | None = None
) -> tuple[np.ndarray | None, list[int], list[str]]:
    """Stack frames into (T, Y, X) float32, leaving out unreadable frames.

    Returns (images or None when nothing could be read, indices of the frames kept,
    plain notes about frames left out).
    """
    arrs = read_frames(frames, decoded)
    keep, notes = [], []
    shape = None
    for i, a in enumerate(arrs):
        if isinstance(a, PixelError):
            notes.append(f"frame {i} ({frames[i].path}) left out: {a}")
            continue
        if shape is None:
            shape = a.shape
        if a.shape != shape:
            notes.append(f"frame {i} ({frames[i].path}) left out: image size {a.shape} != {shape}")
            continue
        keep.append(i)
    if not keep:
        return None, [], notes
    images = np.stack([arrs[i] for i in keep]).astype(np.float32, copy=False)  # type: ignore[misc]
    return images, keep, notes
