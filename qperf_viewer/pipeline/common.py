"""Shared pieces of the pipeline: constants, stage clock, progress and cancel, small value helpers,
the default output folder.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from qperf_viewer import config
from qperf_viewer.errors import CancelledError

#: progress(fraction in [0, 1], message)
Progress = Callable[[float, str], Any]
#: segmenter(images, times_s, pd_frames, geometry, **context) -> object with ``labels``,
#: ``confidence``, ``lv_centre``, ``rv_insertion_anterior``, ``rv_insertion_inferior``,
#: ``flags`` (e.g. :class:`qperf_viewer.seg.infer.SliceSegmentation`). Context keywords:
#: ``condition``, ``slice_index``, ``series`` (the acquired SliceSeries), ``reference_frame``,
#: ``shifts_px``; segmenters that do not take ``**kwargs`` get only those they name.
Segmenter = Callable[..., Any]

MODELS = {"btex": "BTEX", "fermi": "Fermi"}
#: The MBF map covers the myocardium dilated by this much (mm), so that edits have values.
MAP_MARGIN_MM = 5.0
#: Segment MPR only where rest MBF is at least this (mL/min/g).
MPR_MIN_REST_ML_MIN_G = 0.3
#: A stress heart rate less than this above rest suggests an inadequate vasodilator response.
MIN_STRESS_HR_INCREASE_BPM = 10.0
#: An AIF is usable when its first-pass peak reaches this (mmol/L).
MIN_AIF_PEAK_MMOL_L = 1.0

FLAG_AIF_BLOOD_POOL = (
    "AIF from the LV blood pool of the perfusion images (no usable dual-sequence AIF series): "
    "signal saturation at peak may bias MBF upwards"
)
FLAG_NO_GD = "MBF not computed: no Gd conversion (see the Gd flags); semi-quantitative only"

AIF_DUAL, AIF_POOL, AIF_NONE = "dual-sequence", "blood-pool", "none"


# --------------------------------------------------------------------------------- helpers
class StageClock:
    """Accumulates wall time per stage (s)."""

    def __init__(self) -> None:
        self.t: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.t[stage] = self.t.get(stage, 0.0) + time.perf_counter() - t0


def check_cancel(cancel: Any) -> None:
    if cancel is None:
        return
    is_set = getattr(cancel, "is_set", None)
    stop = is_set() if is_set is not None else (cancel() if callable(cancel) else cancel)
    if stop:
        raise CancelledError("analysis cancelled", hint="Start the analysis again to finish it.")


def report_progress(progress: Progress | None, fraction: float, message: str) -> None:
    if progress is not None:
        progress(float(min(max(fraction, 0.0), 1.0)), message)


def monotonic_progress(progress: Progress | None) -> Progress | None:
    """``progress`` that never goes back (fractions rounded to 1e-4)."""
    if progress is None:
        return None
    last = [0.0]

    def call(fraction: float, message: str) -> None:
        last[0] = max(last[0], round(float(fraction), 4))
        progress(last[0], message)

    return call


def finite_or_none(v: Any) -> float | None:
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def as_point(p: Any) -> tuple[float, float] | None:
    if p is None:
        return None
    a = np.asarray(p, dtype=float).reshape(-1)
    if a.size != 2 or not np.all(np.isfinite(a)):
        return None
    return (float(a[0]), float(a[1]))


def default_output_dir(study_uid: str) -> Path:
    """Where results of a study go without ``--out`` (and in the GUI):
    ``config.user_data_dir() / <StudyInstanceUID>`` (characters outside ``[0-9A-Za-z._-]``
    replaced), so that read-only sources work and reopening finds results and edits."""
    import re

    safe = re.sub(r"[^0-9A-Za-z._-]", "_", str(study_uid)).strip(".") or "unknown-study"
    return config.user_data_dir() / safe
