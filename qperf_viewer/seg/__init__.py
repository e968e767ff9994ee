"""Segmentation of short-axis perfusion slices: preprocessing, ONNX inference, clean-up,
RV insertion points and the saved-edit format.

``segment_series`` (onnxruntime only) lives in :mod:`qperf_viewer.seg.infer`; training code
(torch, optional) in :mod:`qperf_viewer.seg.train`. Importing this package loads neither.
"""

from __future__ import annotations

__all__ = ["SliceSegmentation", "segment_series", "load_model"]


def __getattr__(name: str):
    if name in __all__:
        from qperf_viewer.seg import infer

        return getattr(infer, name)
    raise AttributeError(f"module 'qperf_viewer.seg' has no attribute {name!r}")
