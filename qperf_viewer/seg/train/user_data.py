"""User slices with label maps for fine-tuning (format in models/README.md, 'Fine-tuning').

Each ``*.npz`` in the folder is either
- a *training sample*: ``images`` (T, Y, X) motion-corrected signal or Gd, ``times_s`` (T,),
  ``pd_frames`` (P,) int (may be empty), ``spacing_mm`` (2,) (dy, dx), ``labels`` (Y, X) uint8
  (0 bg, 1 LV, 2 myo, 3 RV); optional ``ts_ms``; or
- an app edit file (``edits/<condition>_slice<k>.npz``, :mod:`qperf_viewer.seg.edits`) with its
  series beside it in ``<stem>_series.npz`` (``images``, ``times_s``, ``pd_frames``,
  ``spacing_mm``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from qperf_viewer.errors import InputError


def write_training_sample(
    path: str | Path, images, times_s, pd_frames, spacing_mm, labels, ts_ms: float | None = None
) -> Path:
    """Write one fine-tuning sample (see the module docstring)."""
    arrays = {
        "images": np.asarray(images, np.float32),
        "times_s": np.asarray(times_s, np.float64),
        "pd_frames": np.asarray(pd_frames, np.int64).reshape(-1),
        "spacing_mm": np.asarray(spacing_mm, np.float64).reshape(2),
        "labels": np.asarray(labels, np.uint8),
        "ts_ms": np.array(np.nan if ts_ms is None else float(ts_ms)),
    }
    path = Path(path)
    np.savez_compressed(path, **arrays)
    return path


def _record(arrs: dict, labels: np.ndarray, name: str) -> dict:
    imgs = np.asarray(arrs["images"], np.float32)
    lab = np.asarray(labels, np.uint8)
    if imgs.ndim != 3 or imgs.shape[1:] != lab.shape:
        raise InputError(f"images {imgs.shape} do not match labels {lab.shape}.", path=name)
    if not (lab == 1).any():
        raise InputError("the label map has no LV blood pool (label 1).", path=name)
    centre = np.argwhere(lab == 1).mean(axis=0)
    return {
        "images": imgs,
        "times_s": np.asarray(arrs["times_s"], float),
        "pd_frames": np.asarray(arrs["pd_frames"], int).reshape(-1),
        "spacing_mm": np.asarray(arrs["spacing_mm"], float).reshape(2),
        "labels": lab,
        "lv_centre": centre,
        "rv_ant": np.full(2, np.nan),
        "rv_inf": np.full(2, np.nan),
        "ts_ms": float(arrs.get("ts_ms", np.nan)),
        "variant": "user",
        "seed": -1,
        "condition": "",
        "slice_index": 0,
        "orientation": np.array([1.0, 0, 0, 0, 1, 0]),
        "origin_mm": np.zeros(3),
    }


def load_user_samples(folder: str | Path) -> list[dict]:
    """Training records of all samples in ``folder``."""
    from qperf_viewer.seg.edits import load_edit

    out = []
    for p in sorted(Path(folder).glob("*.npz")):
        if p.name.endswith("_series.npz"):
            continue
        with np.load(p, allow_pickle=False) as z:
            keys = set(z.files)
            arrs = {k: z[k] for k in z.files}
        if {"images", "labels"} <= keys:
            out.append(_record(arrs, arrs["labels"], str(p)))
        elif "parent_hash" in keys:
            edit = load_edit(p)
            sp = p.with_name(p.stem + "_series.npz")
            if not sp.exists():
                raise InputError("edit file without its series file.", path=str(sp))
            with np.load(sp, allow_pickle=False) as z:
                arrs = {k: z[k] for k in z.files}
            out.append(_record(arrs, edit.labels, str(p)))
        else:
            raise InputError("not a training sample or edit file.", path=str(p))
    if not out:
        raise InputError("no fine-tuning samples (*.npz) found.", path=str(folder))
    return out
