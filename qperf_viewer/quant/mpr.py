"""Myocardial perfusion reserve (MPR = stress MBF / rest MBF) with the usual conventions.

- Segment MPR only where both the stress and the rest value are reliable and rest MBF is at
  least ``MIN_REST_MBF_ML_MIN_G`` (0.3 mL/min/g: below that the ratio explodes on noise or
  scar); otherwise None.
- Global MBF of a condition: mean of its reliable segment values (optionally weighted, e.g.
  by pixel count). Global MPR = global stress MBF / global rest MBF (not the mean of segment
  ratios), with the same rest threshold.
Values in mL/min/g; segments are AHA numbers 1-17 (any hashable key works).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np

MIN_REST_MBF_ML_MIN_G = 0.3


def _ok(value: float | None) -> bool:
    return value is not None and bool(np.isfinite(value)) and value > 0


def mpr(
    stress: float | None,
    rest: float | None,
    *,
    reliable: bool = True,
    min_rest: float = MIN_REST_MBF_ML_MIN_G,
) -> float | None:
    """Stress/rest ratio, or None when unreliable, missing or rest < ``min_rest``."""
    if not reliable or not _ok(stress) or not _ok(rest) or rest < min_rest:  # type: ignore[operator]
        return None
    return float(stress) / float(rest)  # type: ignore[arg-type]


def segment_mpr(
    stress: Mapping[Hashable, float | None],
    rest: Mapping[Hashable, float | None],
    *,
    stress_reliable: Mapping[Hashable, bool] | None = None,
    rest_reliable: Mapping[Hashable, bool] | None = None,
    min_rest: float = MIN_REST_MBF_ML_MIN_G,
) -> dict[Hashable, float | None]:
    """MPR per segment for every segment present in either condition (None where not
    computable: missing, unreliable, or rest below ``min_rest``)."""
    out: dict[Hashable, float | None] = {}
    for seg in sorted(set(stress) | set(rest), key=str):
        rel = True
        if stress_reliable is not None:
            rel &= bool(stress_reliable.get(seg, False))
        if rest_reliable is not None:
            rel &= bool(rest_reliable.get(seg, False))
        out[seg] = mpr(stress.get(seg), rest.get(seg), reliable=rel, min_rest=min_rest)
    return out


def global_mbf(
    segment_mbf: Mapping[Hashable, float | None],
    *,
    reliable: Mapping[Hashable, bool] | None = None,
    weights: Mapping[Hashable, float] | None = None,
) -> float | None:
    """Mean MBF over the reliable segments (weighted when ``weights`` is given), or None."""
    vals, wts = [], []
    for seg, v in segment_mbf.items():
        if not _ok(v) or (reliable is not None and not reliable.get(seg, False)):
            continue
        w = 1.0 if weights is None else float(weights.get(seg, 0.0))
        if w > 0:
            vals.append(float(v))  # type: ignore[arg-type]
            wts.append(w)
    if not vals:
        return None
    return float(np.average(vals, weights=wts))


def global_mpr(
    global_stress: float | None,
    global_rest: float | None,
    *,
    min_rest: float = MIN_REST_MBF_ML_MIN_G,
) -> float | None:
    """Global MPR = global stress MBF / global rest MBF (None if not computable)."""
    return mpr(global_stress, global_rest, min_rest=min_rest)
