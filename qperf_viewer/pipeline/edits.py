"""Segmentation edits: :func:`apply_edit` (re-aggregation from the unchanged pixel maps, no re-fit)
and saved edits (``edits/`` folder).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from qperf_viewer.errors import InputError
from qperf_viewer.exam import (
    CONDITIONS,
    LABEL_LV,
)
from qperf_viewer.pipeline.aggregate import condition_result, mpr_of
from qperf_viewer.pipeline.slices import nearest_position, sector_map, slice_curves
from qperf_viewer.results import (
    AnalysisResult,
    ConditionResult,
    Segmentation,
    SliceResult,
)

# ---------------------------------------------------------------------------- edits
SECTOR_PREFIXES = (
    "no myocardium segmented",
    "RV insertion points",
    "slice position unknown",
    "AHA segments undefined",
)


def slice_position(cr: ConditionResult, slice_index: int) -> int:
    for k, sr in enumerate(cr.slices):
        if sr.slice_index == int(slice_index):
            return k
    raise InputError(
        f"{cr.name} has no slice {slice_index} (slices {[sr.slice_index for sr in cr.slices]})."
    )


def _complete(seg: Segmentation, sr: SliceResult) -> Segmentation:
    """Check an edited segmentation against its slice and fill missing landmarks."""
    labels = np.asarray(seg.labels)
    shape = tuple(sr.corrected.shape[1:])
    if labels.shape != shape:
        raise InputError(
            f"the segmentation has shape {labels.shape} but {sr.condition} slice "
            f"{sr.slice_index} has {shape}.",
            hint="It belongs to another series; delete it or re-run the analysis.",
        )
    if labels.size and (labels.min() < 0 or labels.max() > 3):
        raise InputError("segmentation labels must be 0-3.")
    labels = labels.astype(np.uint8)
    centre, ant, inf = seg.lv_centre, seg.rv_insertion_anterior, seg.rv_insertion_inferior
    if centre is None or ant is None or inf is None:
        from qperf_viewer.seg.rv_insertion import rv_insertion_points

        rv = rv_insertion_points(labels, sr.series.geometry)
        centre = centre or rv.lv_centre
        ant, inf = ant or rv.anterior, inf or rv.inferior
    return dataclasses.replace(
        seg, labels=labels, lv_centre=centre, rv_insertion_anterior=ant, rv_insertion_inferior=inf
    )


def apply_edit(
    result: AnalysisResult,
    condition: str,
    slice_index: int,
    segmentation: Segmentation | None,
) -> AnalysisResult:
    """A new result with one slice's segmentation replaced (None: slice rejected, left out of
    the segment values): AHA sectors, curves, segment values (median of the unchanged pixel
    map's reliable pixels over the new mask), global values, semi-quantitative indices and
    MPR are re-aggregated; nothing is re-fitted and ``result`` is not modified.

    slice_index: the slice's index in its condition (``SliceResult.slice_index``, basal to
    apical as in the index and the mask/edit file names).
    """
    if condition not in result.conditions:
        raise InputError(f"the result has no {condition} condition.")
    cr = result.conditions[condition]
    k = slice_position(cr, slice_index)
    sr = cr.slices[k]
    flags = [f for f in sr.flags if not f.startswith((*SECTOR_PREFIXES, "edit:"))]
    aha = None
    seg = None
    if segmentation is not None:
        seg = _complete(segmentation, sr)
        positions = [s.position for s in cr.slices]
        aha, sflags = sector_map(seg, sr.series.geometry, nearest_position(positions, k))
        flags += sflags
        if seg.source == "manual":
            auto = sr.automatic
            flags.append("edit: manual segmentation")
            if auto is not None and seg.parent_hash and seg.parent_hash != auto.content_hash():
                flags.append("edit: made on a different automatic segmentation; please review")
    else:
        flags.append("edit: slice rejected by the user (left out of the segment values)")
    new_sr = dataclasses.replace(sr, segmentation=seg, aha=aha, flags=flags, curves=[])
    new_sr.curves = slice_curves(new_sr)
    slices = list(cr.slices)
    slices[k] = new_sr
    new_cr = condition_result(
        cr.name, slices, cr.aif, cr.aif_source, cr.heart_rate_bpm, list(cr.flags)
    )
    conds = dict(result.conditions)
    conds[condition] = new_cr
    g, segs = mpr_of(conds.get("stress"), conds.get("rest"))
    return dataclasses.replace(
        result, conditions=conds, mpr_global=g, mpr_segments=segs, flags=list(result.flags)
    )


def load_edits(folder: str | Path) -> dict[tuple[str, int], Segmentation | None]:
    """Saved segmentations of an ``edits/`` folder (:mod:`qperf_viewer.seg.edits` files
    ``<condition>_slice<k>.npz``; slices marked 'rejected' in ``review.json`` map to None).
    Unreadable files raise InputError naming the file."""
    import json
    import re

    from qperf_viewer.seg.edits import load_edit

    folder = Path(folder)
    out: dict[tuple[str, int], Segmentation | None] = {}
    if not folder.is_dir():
        return out
    for p in sorted(folder.glob("*_slice*.npz")):
        m = re.fullmatch(r"(stress|rest)_slice(\d+)\.npz", p.name)
        if not m:
            continue
        e = load_edit(p)
        lv = np.argwhere(e.labels == LABEL_LV)
        centre = (float(lv[:, 0].mean()), float(lv[:, 1].mean())) if lv.size else None
        contours = None
        if len(e.endo) >= 3 and len(e.epi) >= 3:
            contours = {"endo": np.asarray(e.endo), "epi": np.asarray(e.epi)}
        out[(e.condition, e.slice_index)] = Segmentation(
            labels=e.labels.astype(np.uint8),
            lv_centre=centre,
            rv_insertion_anterior=e.rv_anterior,
            rv_insertion_inferior=e.rv_inferior,
            source=e.source,
            parent_hash=e.parent_hash,
            contours=contours,
        )
    review = folder / "review.json"
    if review.is_file():
        try:
            doc = json.loads(review.read_text(encoding="utf-8"))
            states = doc.get("slices", {}) if isinstance(doc, dict) else {}
        except (OSError, ValueError) as exc:
            raise InputError(f"the review file cannot be read ({exc}).", path=str(review)) from exc
        for key, state in states.items():
            m = re.fullmatch(r"(stress|rest)_slice(\d+)", str(key))
            if m and state == "rejected":
                out[(m.group(1), int(m.group(2)))] = None
    return out


def apply_saved_edits(
    result: AnalysisResult,
    edits: str | Path | Mapping[tuple[str, int], Segmentation | None],
) -> AnalysisResult:
    """Apply saved edits (folder or mapping, see :func:`analyze_exam`); an edit that does not
    fit (no such slice, other shape) is skipped with an exam-level flag."""
    found = load_edits(edits) if isinstance(edits, str | Path) else dict(edits)
    for (cond, k), seg in sorted(found.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        try:
            result = apply_edit(result, cond, k, seg)
        except InputError as exc:
            result = dataclasses.replace(
                result,
                flags=[*result.flags, f"saved edit of {cond} slice {k} not used: {exc.message}"],
            )
    return result


# ------------------------------------------------------------------------ slice positions
#: File in the ``edits/`` folder holding the user's slice-position overrides:
#: ``{"stress": {"3": "mid", "1": null}, "rest": {...}}`` (slice index -> position or null).
POSITIONS_FILE = "positions.json"


def parse_position_overrides(items: list[str]) -> dict[str, dict[int, str | None]]:
    """``["stress:3=mid", "rest:1=none"]`` (command line) -> overrides by condition."""
    from qperf_viewer.exam import POSITIONS

    out: dict[str, dict[int, str | None]] = {}
    for item in items:
        try:
            lhs, pos = item.split("=", 1)
            cond, k = lhs.split(":", 1)
            idx = int(k)
        except ValueError:
            raise InputError(
                f"position override {item!r} is not CONDITION:SLICE=POSITION.",
                hint="For example --position stress:3=mid (slices 0-based, basal to apical).",
            ) from None
        cond, pos = cond.strip().lower(), pos.strip().lower()
        if cond not in CONDITIONS:
            raise InputError(f"position override {item!r}: condition must be stress or rest.")
        if pos not in (*POSITIONS, "none"):
            raise InputError(
                f"position override {item!r}: position must be basal, mid, apical or none."
            )
        out.setdefault(cond, {})[idx] = None if pos == "none" else pos
    return out


def load_position_overrides(path: str | Path) -> dict[str, dict[int, str | None]]:
    """Overrides from ``edits/positions.json`` (see :data:`POSITIONS_FILE`)."""
    import json

    p = Path(path)
    try:
        doc = json.loads(p.read_text())
        return {
            str(c): {int(k): (None if v is None else str(v)) for k, v in m.items()}
            for c, m in doc.items()
        }
    except (OSError, ValueError, AttributeError, TypeError) as exc:
        raise InputError(
            f"the slice-position file cannot be read ({exc}).",
            path=str(p),
            hint='Fix it (e.g. {"stress": {"3": "mid"}}) or delete it.',
        ) from exc


def apply_position_overrides(exam, overrides: dict[str, dict[int, str | None]]) -> list[str]:
    """Re-assign slice positions of ``exam`` (in place) with the user's overrides; returns
    notes for the report (which condition's positions the user set)."""
    from qperf_viewer.sectors import assign_positions

    notes = []
    for cond, ov in overrides.items():
        cd = exam.conditions.get(cond)
        if cd is None or not ov:
            continue
        locs = [s.location_mm for s in cd.slices]
        if any(not 0 <= int(k) < len(locs) for k in ov):
            raise InputError(
                f"position override for {cond} slice {sorted(ov)}: the exam has "
                f"{len(locs)} {cond} slices (0-based)."
            )
        for s, pos in zip(cd.slices, assign_positions(locs, ov), strict=True):
            s.position = pos
        set_ = ", ".join(f"slice {k + 1} {v or 'not used'}" for k, v in sorted(ov.items()))
        notes.append(f"{cond} slice positions set by the user ({set_})")
    return notes


# ------------------------------------------------------------------------ manual AIF regions
def aif_region_path(edits: str | Path, condition: str) -> Path:
    """``edits/aif_<condition>.npz``: ``mask`` bool (Y, X) in the reference-frame grid of
    slice ``slice_index`` (int; -1: the grid of the dual-sequence AIF series), ``created``
    (ISO 8601); written when the user draws the AIF region, removed when they return to the
    automatic AIF."""
    return Path(edits) / f"aif_{condition}.npz"


def save_aif_region(edits: str | Path, condition: str, slice_index: int, mask) -> Path:
    """Save (atomically) a hand-drawn AIF region; ``mask=None`` removes the saved one."""
    import datetime as _dt
    import os
    import tempfile

    path = aif_region_path(edits, condition)
    if mask is None:
        path.unlink(missing_ok=True)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".aif-", suffix=".npz")
    with os.fdopen(fd, "wb") as f:
        np.savez(
            f,
            mask=np.asarray(mask, dtype=bool),
            slice_index=np.array(int(slice_index)),
            created=np.array(_dt.datetime.now().astimezone().isoformat(timespec="seconds")),
        )
    os.replace(tmp, path)
    return path


def load_aif_regions(edits: str | Path) -> dict[str, tuple[int, np.ndarray]]:
    """Saved AIF regions of an ``edits/`` folder: condition -> (slice index, mask).
    Unreadable files raise InputError naming the file."""
    out: dict[str, tuple[int, np.ndarray]] = {}
    for cond in CONDITIONS:
        p = aif_region_path(edits, cond)
        if not p.is_file():
            continue
        try:
            with np.load(p, allow_pickle=False) as z:
                mask = np.asarray(z["mask"], dtype=bool)
                k = int(z["slice_index"])
        except (OSError, ValueError, KeyError) as exc:
            raise InputError(
                f"the saved AIF region cannot be read ({exc}).",
                path=str(p),
                hint="Delete the file to return to the automatic AIF.",
            ) from exc
        if mask.ndim != 2 or not mask.any():
            raise InputError("the saved AIF region is empty or not 2D.", path=str(p))
        out[cond] = (k, mask)
    return out
