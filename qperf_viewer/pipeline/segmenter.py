"""Segmenters: the shipped ONNX model as a pipeline segmenter, and the normalisation of any
segmenter's output to a :class:`~qperf_viewer.results.Segmentation`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from qperf_viewer.errors import InputError
from qperf_viewer.pipeline.common import Segmenter, as_point, finite_or_none
from qperf_viewer.results import (
    Segmentation,
)


# ------------------------------------------------------------------------------ segmenter
class OnnxSegmenter:
    """The shipped ONNX model (:mod:`qperf_viewer.seg.infer`) as a pipeline segmenter.

    The model is loaded once (``load()``); a missing or damaged model raises
    :class:`~qperf_viewer.errors.ModelError`. threads: onnxruntime threads per inference; the
    analysis segments two slices at once on threads while motion correction runs in worker
    processes, so one thread each: 1 instead of 2 cut the end-to-end wall time of
    ``benchmarks/bench_analyze.py``'s exam by 0.3-1.9 s in 4 alternated pairs of runs (the
    masks bit for bit the same).
    """

    def __init__(self, models_dir: str | Path | None = None, threads: int = 1) -> None:
        self.models_dir = models_dir
        self.threads = max(1, int(threads))
        self._model = None

    def load(self):
        if self._model is None:
            from qperf_viewer.seg.infer import load_model

            self._model = load_model(self.models_dir, threads=self.threads)
        return self._model

    @property
    def version(self) -> str:
        m = self.load()
        return f"{m.path.name} {m.version}".strip()

    def __call__(self, images, times_s, pd_frames, geometry, centre=None, **_context):
        """centre: optional crop centre (row, col, pixels), e.g. a neighbouring slice's LV."""
        from qperf_viewer.seg.infer import segment_series

        return segment_series(
            images, times_s, pd_frames, geometry, model=self.load(), centre=centre
        )


def call_segmenter(segmenter: Segmenter, *args: Any, **context: Any):
    import inspect

    try:
        params = inspect.signature(segmenter).parameters
    except (TypeError, ValueError):
        return segmenter(*args, **context)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return segmenter(*args, **context)
    return segmenter(*args, **{k: v for k, v in context.items() if k in params})


def as_segmentation(out: Any, geometry) -> Segmentation:
    """Normalise a segmenter's output to an automatic :class:`Segmentation`."""
    if isinstance(out, Segmentation):
        return out
    labels = np.asarray(out.labels)
    if labels.ndim != 2:
        raise InputError(f"the segmenter returned labels of shape {labels.shape}, not (Y, X).")
    labels = labels.astype(np.uint8)
    centre = as_point(getattr(out, "lv_centre", None))
    ant = as_point(getattr(out, "rv_insertion_anterior", None))
    inf = as_point(getattr(out, "rv_insertion_inferior", None))
    if centre is None or ant is None or inf is None:
        from qperf_viewer.seg.rv_insertion import rv_insertion_points

        rv = rv_insertion_points(labels, geometry)
        centre = centre or rv.lv_centre
        ant, inf = ant or rv.anterior, inf or rv.inferior
    return Segmentation(
        labels=labels,
        lv_centre=centre,
        rv_insertion_anterior=ant,
        rv_insertion_inferior=inf,
        confidence=float(finite_or_none(getattr(out, "confidence", 0.0)) or 0.0),
        source="automatic",
        flags=tuple(str(f) for f in getattr(out, "flags", ()) or ()),
    )
