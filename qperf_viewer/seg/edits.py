"""Saved segmentations (corrected or accepted) and the mask files written for an analysis.

Edit file ``edits/<condition>_slice<k>.npz`` (k 0-based, basal to apical), no pickles:

=================  ===========================================================================
``format``         int, :data:`EDIT_FORMAT_VERSION`
``labels``         (Y, X) uint8 in the slice's DICOM grid: 0 bg, 1 LV, 2 myocardium, 3 RV
``rv_anterior``    (2,) float64 (row, col) of the anterior RV insertion, NaN when unset
``rv_inferior``    (2,) float64 (row, col) of the inferior RV insertion, NaN when unset
``endo``/``epi``   (N, 2) float64 contour control points (row, col), N may be 0
``parent_hash``    str, :func:`qperf_viewer.results.segmentation_hash` of the automatic result
``source``         str, 'automatic' (accepted as is) or 'manual' (edited)
``created``        str, ISO 8601 time with time zone
``condition``      str, 'stress' or 'rest'; ``slice_index`` int
=================  ===========================================================================

Writes are atomic (temporary file in the same folder, then ``os.replace``). Loading validates
everything and raises :class:`~qperf_viewer.errors.InputError` naming the file and the problem.
Mask file ``OUTDIR/masks/<condition>_slice<k>.npz``: ``labels`` (Y, X) uint8 and ``aha``
(Y, X) uint8 (AHA segment 1-16 on myocardium, 0 elsewhere; computed by qperf_viewer.sectors).
A file with ``labels`` plus the series arrays (see models/README.md) is also accepted for
fine-tuning the model.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from qperf_viewer.errors import InputError
from qperf_viewer.exam import CONDITIONS

EDIT_FORMAT_VERSION = 1
SOURCES = ("automatic", "manual")
_HASH_RE = re.compile(r"^[0-9a-f]{8,64}$")


def _now_iso() -> str:
    return _dt.datetime.now(_dt.UTC).astimezone().isoformat(timespec="seconds")


@dataclass
class SegmentationEdit:
    """A saved segmentation of one slice (see the module docstring for the file layout)."""

    condition: str
    slice_index: int
    labels: np.ndarray
    parent_hash: str
    source: str = "manual"
    rv_anterior: tuple[float, float] | None = None
    rv_inferior: tuple[float, float] | None = None
    endo: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    epi: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    created: str = field(default_factory=_now_iso)


def edit_filename(condition: str, slice_index: int) -> str:
    return f"{condition}_slice{int(slice_index)}.npz"


def _point(p) -> np.ndarray:
    return np.full(2, np.nan) if p is None else np.asarray(p, dtype=np.float64).reshape(2)


def _atomic_savez(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def validate_edit(edit: SegmentationEdit, shape: tuple[int, int] | None = None) -> None:
    """Raise InputError when ``edit`` breaks the format (used on save and on load)."""
    if edit.condition not in CONDITIONS:
        raise InputError(f"condition must be one of {CONDITIONS}, got {edit.condition!r}.")
    if int(edit.slice_index) < 0:
        raise InputError(f"slice index must be >= 0, got {edit.slice_index}.")
    lab = np.asarray(edit.labels)
    if lab.ndim != 2 or lab.dtype != np.uint8:
        raise InputError(f"labels must be a 2D uint8 array, got {lab.dtype} {lab.shape}.")
    if lab.size and int(lab.max()) > 3:
        raise InputError(f"labels hold values other than 0-3 (max {int(lab.max())}).")
    if shape is not None and tuple(lab.shape) != tuple(shape):
        raise InputError(
            f"labels have shape {lab.shape} but the slice has {tuple(shape)}.",
            hint="The edit belongs to a different series; delete it or re-run the analysis.",
        )
    if edit.source not in SOURCES:
        raise InputError(f"source must be one of {SOURCES}, got {edit.source!r}.")
    if not _HASH_RE.match(str(edit.parent_hash)):
        raise InputError(f"parent_hash must be a lowercase hex digest, got {edit.parent_hash!r}.")
    for name in ("rv_anterior", "rv_inferior"):
        p = getattr(edit, name)
        if p is not None:
            a = np.asarray(p, dtype=float)
            if a.shape != (2,) or not np.all(np.isfinite(a)):
                raise InputError(f"{name} must be a finite (row, col) pair, got {p!r}.")
    for name in ("endo", "epi"):
        c = np.asarray(getattr(edit, name), dtype=float)
        if c.ndim != 2 or c.shape[1] != 2 or not np.all(np.isfinite(c)):
            raise InputError(f"{name} control points must be a finite (N, 2) array, got {c.shape}.")
    try:
        _dt.datetime.fromisoformat(str(edit.created))
    except ValueError as exc:
        raise InputError(f"created must be an ISO 8601 time, got {edit.created!r}.") from exc


def save_edit(folder: str | Path, edit: SegmentationEdit) -> Path:
    """Validate and atomically write ``folder/<condition>_slice<k>.npz``; returns the path."""
    validate_edit(edit)
    arrays = {
        "format": np.array(EDIT_FORMAT_VERSION, dtype=np.int64),
        "labels": np.asarray(edit.labels, dtype=np.uint8),
        "rv_anterior": _point(edit.rv_anterior),
        "rv_inferior": _point(edit.rv_inferior),
        "endo": np.asarray(edit.endo, dtype=np.float64).reshape(-1, 2),
        "epi": np.asarray(edit.epi, dtype=np.float64).reshape(-1, 2),
        "parent_hash": np.array(str(edit.parent_hash)),
        "source": np.array(str(edit.source)),
        "created": np.array(str(edit.created)),
        "condition": np.array(str(edit.condition)),
        "slice_index": np.array(int(edit.slice_index), dtype=np.int64),
    }
    return _atomic_savez(Path(folder) / edit_filename(edit.condition, edit.slice_index), arrays)


_REQUIRED = (
    "format",
    "labels",
    "rv_anterior",
    "rv_inferior",
    "endo",
    "epi",
    "parent_hash",
    "source",
    "created",
    "condition",
    "slice_index",
)


def load_edit(path: str | Path, shape: tuple[int, int] | None = None) -> SegmentationEdit:
    """Read and validate an edit file; ``shape`` (rows, cols) checks it fits the slice."""
    path = Path(path)
    hint = "Delete the file to fall back to the automatic segmentation."
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except FileNotFoundError as exc:
        raise InputError("the saved segmentation does not exist.", path=str(path)) from exc
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(
            f"the saved segmentation cannot be read ({exc}).", path=str(path), hint=hint
        ) from exc
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise InputError(
            f"the saved segmentation lacks {', '.join(missing)}.", path=str(path), hint=hint
        )
    if int(data["format"]) != EDIT_FORMAT_VERSION:
        raise InputError(
            f"unsupported edit format {int(data['format'])} (this version reads "
            f"{EDIT_FORMAT_VERSION}).",
            path=str(path),
            hint=hint,
        )

    def _pt(a: np.ndarray):
        a = np.asarray(a, dtype=float)
        return None if a.shape == (2,) and np.all(np.isnan(a)) else tuple(float(v) for v in a)

    try:
        edit = SegmentationEdit(
            condition=str(data["condition"]),
            slice_index=int(data["slice_index"]),
            labels=data["labels"],
            parent_hash=str(data["parent_hash"]),
            source=str(data["source"]),
            rv_anterior=_pt(data["rv_anterior"]),
            rv_inferior=_pt(data["rv_inferior"]),
            endo=np.asarray(data["endo"], dtype=float),
            epi=np.asarray(data["epi"], dtype=float),
            created=str(data["created"]),
        )
        validate_edit(edit, shape)
    except InputError as exc:
        raise InputError(exc.message, path=str(path), hint=exc.hint or hint) from exc
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"the saved segmentation is malformed ({exc}).", path=str(path), hint=hint
        ) from exc
    expected = edit_filename(edit.condition, edit.slice_index)
    if path.name != expected:
        raise InputError(
            f"the file holds {edit.condition} slice {edit.slice_index} but is named {path.name}.",
            path=str(path),
            hint=f"Rename it to {expected} or delete it.",
        )
    return edit


def edit_from_result(seg, condition: str, slice_index: int, source: str = "automatic"):
    """An edit record of an automatic :class:`~qperf_viewer.seg.infer.SliceSegmentation`
    (e.g. when the user accepts it unchanged)."""
    return SegmentationEdit(
        condition=condition,
        slice_index=slice_index,
        labels=np.asarray(seg.labels, dtype=np.uint8).copy(),
        parent_hash=seg.result_hash(),
        source=source,
        rv_anterior=seg.rv_insertion_anterior,
        rv_inferior=seg.rv_insertion_inferior,
    )


# --------------------------------------------------------------------------------------------
# analysis output masks


def mask_path(outdir: str | Path, condition: str, slice_index: int) -> Path:
    return Path(outdir) / "masks" / edit_filename(condition, slice_index)


def write_mask(
    outdir: str | Path, condition: str, slice_index: int, labels: np.ndarray, aha: np.ndarray
) -> Path:
    """Atomically write ``OUTDIR/masks/<condition>_slice<k>.npz`` (``labels``, ``aha``)."""
    lab = np.asarray(labels)
    seg = np.asarray(aha)
    if lab.ndim != 2 or seg.shape != lab.shape:
        raise InputError(f"labels {lab.shape} and aha {seg.shape} must be equal 2D shapes.")
    if lab.size and (lab.min() < 0 or lab.max() > 3):
        raise InputError("labels must hold values 0-3.")
    if seg.size and (seg.min() < 0 or seg.max() > 16):
        raise InputError("aha must hold AHA segment numbers 0-16.")
    if condition not in CONDITIONS:
        raise InputError(f"condition must be one of {CONDITIONS}, got {condition!r}.")
    return _atomic_savez(
        mask_path(outdir, condition, slice_index),
        {"labels": lab.astype(np.uint8), "aha": seg.astype(np.uint8)},
    )


def read_mask(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(labels, aha) of a mask file, validated."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            lab, seg = z["labels"], z["aha"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(f"the mask file cannot be read ({exc}).", path=str(path)) from exc
    if lab.dtype != np.uint8 or seg.dtype != np.uint8 or lab.shape != seg.shape or lab.ndim != 2:
        raise InputError("the mask file holds arrays of the wrong type or shape.", path=str(path))
    return lab, seg
