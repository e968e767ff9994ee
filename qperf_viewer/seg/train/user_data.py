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


def export_training(
    exam_dir: str | Path,
    out: str | Path,
    *,
    results_dir: str | Path | None = None,
    study_uid: str | None = None,
    include_automatic: bool = False,
) -> list[Path]:
    """Write fine-tuning samples (``<study>_<condition>_slice<k>.npz``, the training-sample
    format above) from an exam folder and the corrections saved for it.

    The exam is motion-corrected and segmented as the app does, the saved edits of
    ``results_dir/edits`` (default: the study's results folder in the user data folder) are
    applied, and every slice with a manual segmentation (with ``include_automatic``, every
    segmented slice) is written: the motion-corrected series with its times, PD frames, pixel
    spacing and TS, and the label map. Source files are only read. Returns the written paths.
    """
    from qperf_viewer.dicom import load_exam, scan_folder
    from qperf_viewer.pipeline.analyze import analyze_exam
    from qperf_viewer.pipeline.common import default_output_dir
    from qperf_viewer.pipeline.folder import select_study

    index = scan_folder(Path(exam_dir))
    study = select_study(index, study_uid)
    res = Path(results_dir) if results_dir else default_output_dir(study.study_instance_uid)
    edits = res / "edits"
    if not edits.is_dir() and not include_automatic:
        raise InputError(
            "no saved segmentation corrections for this exam.",
            path=str(edits),
            hint="Correct the segmentation in the app first, or pass --include-automatic.",
        )
    exam = load_exam(index, study.study_instance_uid)
    result = analyze_exam(exam, edits=edits if edits.is_dir() else None, quantify=False)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tag = study.study_instance_uid.replace(".", "_")[-24:]
    written = []
    for cond, cr in result.conditions.items():
        for sr in cr.slices:
            seg = sr.segmentation
            if seg is None or (seg.source != "manual" and not include_automatic):
                continue
            s = sr.series
            written.append(
                write_training_sample(
                    out / f"{tag}_{cond}_slice{sr.slice_index}.npz",
                    sr.corrected,
                    s.times_s,
                    s.pd_frames,
                    s.geometry.pixel_spacing_mm,
                    seg.labels,
                    s.ts_ms,
                )
            )
    if not written:
        raise InputError(
            "the saved corrections hold no manual segmentation for this exam.",
            path=str(edits),
            hint="Edit and save at least one slice, or pass --include-automatic.",
        )
    return written
