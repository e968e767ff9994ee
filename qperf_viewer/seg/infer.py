"""Automatic segmentation of one slice series with the shipped ONNX model (onnxruntime only).

``segment_series(images, times_s, pd_frames, geometry)`` -> :class:`SliceSegmentation`:
labels (Y, X) uint8 in the DICOM grid (0 bg, 1 LV, 2 myo, 3 RV), confidence, LV centre,
RV insertion points (row, col), flags and timings. The model (``qperf_seg.onnx`` +
``metadata.json`` in :func:`qperf_viewer.config.models_dir`) is loaded once per path and
cached; a missing or corrupt model raises :class:`~qperf_viewer.errors.ModelError`.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from qperf_viewer import config
from qperf_viewer.errors import ModelError
from qperf_viewer.geometry import SliceGeometry
from qperf_viewer.results import segmentation_hash
from qperf_viewer.seg.postprocess import postprocess_labels
from qperf_viewer.seg.preprocess import PreprocessParams, crop_to_native, preprocess_series
from qperf_viewer.seg.rv_insertion import rv_insertion_points

MODEL_FILE = "qperf_seg.onnx"
METADATA_FILE = "metadata.json"
FLAG_LOW_CONFIDENCE = "low confidence"
#: Confidence below which a segmentation is flagged for review.
LOW_CONFIDENCE = 0.75
#: A crop whose predicted LV (mm^2) x ring fraction is below this tries other candidates.
HEART_SCORE_OK = 150.0
#: Re-centre the crop when the predicted LV lies further than this from its centre (mm).
RECENTRE_MM = 20.0


@dataclass
class SliceSegmentation:
    """Automatic segmentation of one slice.

    labels: (Y, X) uint8 in the slice's DICOM grid. confidence: 1 - mean normalised softmax
    entropy over the myocardium, in [0, 1]. Points are (row, col) floats in the DICOM grid,
    None when undefined. crop: the crop <-> DICOM map used (CropGeometry.to_dict()).
    """

    labels: np.ndarray
    confidence: float
    lv_centre: tuple[float, float] | None
    rv_insertion_anterior: tuple[float, float] | None
    rv_insertion_inferior: tuple[float, float] | None
    flags: list[str] = field(default_factory=list)
    crop: dict = field(default_factory=dict)
    t_arrival_s: float = float("nan")
    model_version: str = ""
    timings_ms: dict[str, float] = field(default_factory=dict)

    def result_hash(self) -> str:
        """SHA-256 (hex, 16 chars) of the labels and points: identifies this result."""
        return segmentation_hash(
            self.labels, self.rv_insertion_anterior, self.rv_insertion_inferior
        )


@dataclass
class SegModel:
    """A loaded model: onnxruntime session, metadata and preprocessing parameters."""

    session: object
    metadata: dict
    params: PreprocessParams
    path: Path
    load_ms: float

    @property
    def version(self) -> str:
        return str(self.metadata.get("version", ""))

    def run(self, x: np.ndarray) -> np.ndarray:
        """Logits (4, H, W) of one input (F, H, W)."""
        return self.session.run(None, {self.input_name: x[None].astype(np.float32)})[0][0]

    @property
    def input_name(self) -> str:
        return str(self.metadata.get("input", {}).get("name", "x"))


_CACHE: dict[tuple, SegModel] = {}
_LOCK = threading.Lock()


def load_model(models_dir: str | Path | None = None, threads: int = 2) -> SegModel:
    """Load (once, then cached) the ONNX model and its metadata from ``models_dir``.

    Raises ModelError when a file is missing, unreadable, altered (SHA-256 differs from the
    metadata) or not a model onnxruntime can run.
    """
    d = Path(models_dir) if models_dir is not None else config.models_dir()
    onnx_path, meta_path = d / MODEL_FILE, d / METADATA_FILE
    hint = "Reinstall qperf-viewer or set QPERF_MODELS to a folder holding the model files."
    for p in (onnx_path, meta_path):
        if not p.is_file():
            raise ModelError("the segmentation model file is missing.", path=str(p), hint=hint)
    key = (
        str(onnx_path.resolve()), onnx_path.stat().st_mtime_ns, meta_path.stat().st_mtime_ns,
        int(threads),
    )  # fmt: skip
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
        t0 = time.perf_counter()
        try:
            meta = json.loads(meta_path.read_text())
            params = PreprocessParams.from_dict(meta["preprocessing"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(
                f"the model metadata cannot be read ({exc}).", path=str(meta_path), hint=hint
            ) from exc
        blob = onnx_path.read_bytes()
        want = meta.get("onnx_sha256")
        if want and hashlib.sha256(blob).hexdigest() != want:
            raise ModelError(
                "the segmentation model file is damaged (checksum differs from metadata.json).",
                path=str(onnx_path),
                hint=hint,
            )
        try:
            import onnxruntime as ort

            so = ort.SessionOptions()
            so.intra_op_num_threads = threads
            so.inter_op_num_threads = 1
            # no busy-waiting of the worker threads after a run: on a 2-core machine they
            # would take the cores from the pre/post-processing that follows
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
            so.log_severity_level = 3
            sess = ort.InferenceSession(blob, so, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(
                f"onnxruntime cannot load the segmentation model ({exc}).",
                path=str(onnx_path),
                hint=hint,
            ) from exc
        model = SegModel(sess, meta, params, onnx_path, 1e3 * (time.perf_counter() - t0))
        _CACHE.clear()
        _CACHE[key] = model
        return model


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=0, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=0, keepdims=True)


def _heart_score(probs: np.ndarray, pixel_mm: float) -> tuple[float, bool]:
    """Plausibility of a crop's prediction as a short-axis heart.

    Score: area (mm^2) of the LV cavity kept by the anatomical clean-up times the fraction of
    its border that is myocardium, times 0.3 when no RV lies beside the ring and 0.5 when the
    ring is broken; ~0 when the crop shows no LV with a myocardial ring (e.g. a crop centred
    on the aorta or the stomach). Also returns whether the clean-up raised no flag."""
    labels, flags = postprocess_labels(np.argmax(probs, axis=0).astype(np.uint8))
    lv = labels == 1
    if not lv.any():
        return 0.0, False
    border = ndimage.binary_dilation(lv, iterations=2) & ~lv
    ring = float(np.mean(probs[2][border] > 0.3)) if border.any() else 0.0
    rv = 0.3 if "RV missing" in flags else 1.0
    closed = 0.5 if "ring broken" in flags else 1.0
    return float(lv.sum()) * pixel_mm**2 * ring * rv * closed, not flags


def _confidence(probs: np.ndarray, myo: np.ndarray) -> float:
    if not myo.any():
        return 0.0
    p = np.clip(probs[:, myo], 1e-8, 1.0)
    ent = -(p * np.log(p)).sum(axis=0) / np.log(p.shape[0])
    return float(1.0 - ent.mean())


def segment_series(
    images: np.ndarray,
    times_s: np.ndarray,
    pd_frames,
    geometry: SliceGeometry,
    *,
    model: SegModel | None = None,
    models_dir: str | Path | None = None,
    centre: tuple[float, float] | None = None,
    recentre: bool = True,
) -> SliceSegmentation:
    """Segment one motion-corrected slice series.

    images: (T, Y, X) signal or Gd (mmol/L) with PD frames listed in ``pd_frames``;
    times_s: (T,) s; geometry: the slice's geometry (pixel spacing; patient orientation for
    naming the RV insertion points). centre: optional crop centre (row, col) (default: found
    from the contrast dynamics, checked with the model against up to two other candidates;
    the crop is re-centred once on the predicted LV when needed). A pipeline that knows the LV
    position from a neighbouring slice can pass it here.
    """
    t0 = time.perf_counter()
    model = model or load_model(models_dir)
    params = model.params
    spacing = geometry.pixel_spacing_mm

    first: list = []

    def _run(c):
        # later runs (other crop centres) reuse the first run's bolus-arrival analysis
        arr = (first[0].t_arrival_s, first[0].baseline_frames) if first else None
        p = preprocess_series(images, times_s, pd_frames, spacing, params, centre=c, arrival=arr)
        return p, _softmax(model.run(p.x))

    pre, probs = _run(centre)
    first.append(pre)
    candidates = list(pre.candidates)
    t1 = time.perf_counter()
    n_runs = 1
    score, plausible = _heart_score(probs, params.pixel_mm)
    if centre is None and not (plausible and score >= HEART_SCORE_OK) and candidates:
        # the first candidate shows no LV in a closed ring beside the RV: try the others
        for c in candidates:
            p2, pr2 = _run(c)
            n_runs += 1
            s2, ok2 = _heart_score(pr2, params.pixel_mm)
            if s2 > score:
                pre, probs, score, plausible = p2, pr2, s2, ok2
            if plausible and score >= HEART_SCORE_OK:
                break
    t2 = time.perf_counter()
    if recentre and centre is None:
        lvp = probs[1] > 0.5
        if lvp.sum() > 20:
            ci, cj = np.argwhere(lvp).mean(axis=0)
            h = (np.asarray(pre.crop.shape) - 1) / 2.0
            if np.hypot(ci - h[0], cj - h[1]) * params.pixel_mm > RECENTRE_MM:
                new_c = pre.crop.crop_to_native(ci, cj)
                pre2, probs = _run((float(new_c[0]), float(new_c[1])))
                pre2.flags = pre.flags + pre2.flags
                pre = pre2
                n_runs += 1
    if score < HEART_SCORE_OK:
        pre.flags.append("heart localisation uncertain")
    t3 = time.perf_counter()
    native = crop_to_native(probs, pre.crop, fill=np.array([1.0, 0.0, 0.0, 0.0]))
    raw = np.argmax(native, axis=0).astype(np.uint8)
    labels, pflags = postprocess_labels(raw)
    conf = _confidence(native, labels == 2)
    rv = rv_insertion_points(labels, geometry)
    flags = list(pre.flags) + pflags
    if conf < LOW_CONFIDENCE:
        flags.append(FLAG_LOW_CONFIDENCE)
    t4 = time.perf_counter()
    timings = {f"pre_{k}": v for k, v in pre.timings_ms.items()}
    timings.update(
        first_pass=1e3 * (t1 - t0),
        candidates=1e3 * (t2 - t1),
        recentre=1e3 * (t3 - t2),
        postprocess=1e3 * (t4 - t3),
        total=1e3 * (t4 - t0),
        runs=float(n_runs),
    )
    return SliceSegmentation(
        labels=labels,
        confidence=conf,
        lv_centre=rv.lv_centre,
        rv_insertion_anterior=rv.anterior,
        rv_insertion_inferior=rv.inferior,
        flags=flags,
        crop=pre.crop.to_dict(),
        t_arrival_s=pre.t_arrival_s,
        model_version=model.version,
        timings_ms=timings,
    )
