"""The GUI's calls into the Qt-free core, in one place (tests swap in a stand-in).

Every view action that needs the core goes through a :class:`CoreBackend` method, so the
session never imports core modules directly and the constructed-data backend in
``sample_data`` can answer the same calls. Saved edits use ``qperf_viewer.seg.edits``' file
format; the review states (accepted / rejected) go to ``edits/review.json``, which
``pipeline.load_edits`` also reads (a rejected slice is left out there too).
"""

from __future__ import annotations

import inspect
import json
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from qperf_viewer.results import AnalysisResult, Segmentation

log = logging.getLogger(__name__)


def call_with_supported(fn, *args: Any, **kwargs: Any) -> Any:
    """Call ``fn`` with the keyword arguments its signature accepts (all with ``**kw``)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return fn(*args, **kwargs)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return fn(*args, **kwargs)
    return fn(*args, **{k: v for k, v in kwargs.items() if k in params})


def default_output_dir(study_uid: str) -> Path:
    """Analysis output of a study in the user's data folder, keyed by StudyInstanceUID
    (``pipeline.default_output_dir``, so the CLI and the GUI share results and edits)."""
    from qperf_viewer.pipeline.common import default_output_dir as _default

    return Path(_default(study_uid))


# --- saved edits: qperf_viewer.seg.edits' format (edits/<condition>_slice<k>.npz) -----------


def edit_path(out_dir: Path, condition: str, slice_index: int) -> Path:
    from qperf_viewer.seg.edits import edit_filename

    return Path(out_dir) / "edits" / edit_filename(condition, slice_index)


def save_edit(out_dir: Path, condition: str, slice_index: int, seg: Segmentation) -> Path:
    """Write a segmentation atomically as ``out_dir/edits/<cond>_slice<k>.npz``."""
    from qperf_viewer.seg.edits import SegmentationEdit
    from qperf_viewer.seg.edits import save_edit as _save

    contours = seg.contours or {}
    edit = SegmentationEdit(
        condition=condition,
        slice_index=int(slice_index),
        labels=np.asarray(seg.labels, dtype=np.uint8),
        parent_hash=seg.parent_hash or seg.content_hash(),
        source=seg.source,
        rv_anterior=seg.rv_insertion_anterior,
        rv_inferior=seg.rv_insertion_inferior,
        endo=np.asarray(contours.get("endo", np.zeros((0, 2))), float).reshape(-1, 2),
        epi=np.asarray(contours.get("epi", np.zeros((0, 2))), float).reshape(-1, 2),
    )
    return _save(Path(out_dir) / "edits", edit)


def load_edit(path: Path, shape: tuple[int, int] | None = None) -> Segmentation:
    """Read a saved edit back as a :class:`Segmentation` (LV centre = LV label centroid)."""
    from qperf_viewer.exam import LABEL_LV
    from qperf_viewer.gui.contours import centroid
    from qperf_viewer.seg.edits import load_edit as _load

    e = _load(path, shape)
    contours = {"endo": e.endo, "epi": e.epi} if len(e.endo) >= 3 and len(e.epi) >= 3 else None
    return Segmentation(
        labels=e.labels.astype(np.uint8),
        lv_centre=centroid(e.labels == LABEL_LV),
        rv_insertion_anterior=e.rv_anterior,
        rv_insertion_inferior=e.rv_inferior,
        source=e.source,
        parent_hash=e.parent_hash,
        contours=contours,
    )


def list_edits(out_dir: Path) -> dict[tuple[str, int], Path]:
    found = {}
    for p in sorted((Path(out_dir) / "edits").glob("*_slice*.npz")):
        m = re.fullmatch(r"(stress|rest)_slice(\d+)\.npz", p.name)
        if m:
            found[(m.group(1), int(m.group(2)))] = p
    return found


def save_review(out_dir: Path, review: dict[tuple[str, int], str]) -> None:
    path = Path(out_dir) / "edits" / "review.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {f"{c}_slice{k}": v for (c, k), v in sorted(review.items())}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"schema": "qperf-viewer/review/1", "slices": doc}, indent=1))
    tmp.replace(path)


def load_review(out_dir: Path) -> dict[tuple[str, int], str]:
    path = Path(out_dir) / "edits" / "review.json"
    if not path.is_file():
        return {}
    out = {}
    for key, v in json.loads(path.read_text()).get("slices", {}).items():
        m = re.fullmatch(r"(.+)_slice(\d+)", key)
        if m:
            out[(m.group(1), int(m.group(2)))] = str(v)
    return out


class CoreBackend:
    """The real core: ``qperf_viewer.dicom`` and ``qperf_viewer.pipeline``.

    segmenter: optional pipeline segmenter (default: the shipped ONNX model).
    """

    def __init__(self, segmenter: Any = None) -> None:
        self.segmenter = segmenter

    def scan_folder(self, path, progress=None, cancel=None):
        from qperf_viewer.dicom import scan_folder

        return call_with_supported(scan_folder, path, progress=progress, cancel=cancel)

    def index_to_json(self, index) -> dict:
        from qperf_viewer.dicom import index_to_json

        return index_to_json(index)

    def load_exam(self, index, study_uid=None, roles=None, progress=None, cancel=None):
        from qperf_viewer.dicom import load_exam

        kw: dict[str, Any] = {"progress": progress, "cancel": cancel}
        if roles:
            params = inspect.signature(load_exam).parameters
            name = next((n for n in ("overrides", "roles", "role_overrides") if n in params), None)
            if name is None:
                log.warning("load_exam() takes no role overrides; ignoring %s", roles)
            else:
                kw[name] = dict(roles)
        return call_with_supported(load_exam, index, study_uid, **kw)

    def analyze_exam(self, exam, *, model="btex", progress=None, cancel=None, quantify=True):
        """The pipeline's analysis; ``quantify=False`` stops after segmentation and sectors."""
        from qperf_viewer.pipeline import analyze_exam

        kw: dict[str, Any] = {
            "model": model,
            "progress": progress,
            "cancel": cancel,
            "quantify": quantify,
        }
        if self.segmenter is not None:
            kw["segmenter"] = self.segmenter
        return analyze_exam(exam, **kw)

    def apply_edit(self, result: AnalysisResult, condition, slice_index, segmentation):
        from qperf_viewer.pipeline import apply_edit

        return apply_edit(result, condition, slice_index, segmentation)

    def manual_aif(self, result, condition, slice_index, mask, progress=None, cancel=None):
        """Re-fit one condition with the AIF of a hand-drawn region (None: automatic AIF)."""
        from qperf_viewer.pipeline import apply_manual_aif

        return apply_manual_aif(result, condition, slice_index, mask, progress, cancel)

    def report_data(self, result: AnalysisResult):
        from qperf_viewer.pipeline import report_data

        return report_data(result)

    def write_outputs(
        self, result: AnalysisResult, out_dir, progress=None, cancel=None, thresholds=None
    ):
        """results.json, masks, segmentation.json, curves.csv, report.pdf, dicom/ (never
        edits/) into ``out_dir``, atomically, with the report ``thresholds`` (a ThresholdSet;
        default the literature set)."""
        from qperf_viewer.pipeline import write_outputs

        return write_outputs(
            result,
            out_dir,
            progress=progress,
            thresholds=thresholds,
            quantified=result.model != "none",
        )


def report_data_of(backend: Any, result: AnalysisResult):
    """ReportData of a result through the backend (the pipeline's, with partial-exam notes),
    else the report module's builder."""
    fn = getattr(backend, "report_data", None)
    if fn is not None:
        return fn(result)
    from qperf_viewer.report.build import report_data_from_result

    return report_data_from_result(result)
