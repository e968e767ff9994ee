"""Semi-quantitative perfusion indices, per pixel and per region.

For clinicians used to them: upslope (maximum tissue slope normalised by the maximum AIF
slope), time to peak and peak enhancement. Inputs as for :func:`qperf_viewer.quant.mbf_map`:
``aif`` (T,), ``tissue`` (..., T) with time last, ``times_s`` (T,) irregular frame times;
works on Gd (mmol/L) or on signal (then the units of peak enhancement are signal units).

Slopes use the actual frame times: each slope is the least-squares slope over 3 consecutive
frames (a light smoothing that also handles irregular sampling). The search window is the
first pass: from the AIF foot to the AIF peak plus twice its rise time (at least 4 frames).
The baseline (frames before the AIF foot) is subtracted first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qperf_viewer.errors import InputError
from qperf_viewer.quant.mapping import baseline_frames


@dataclass
class SemiQuant:
    """Indices with tissue's spatial shape (float32, always finite).

    upslope: max tissue slope / max AIF slope (dimensionless). upslope_per_s: max tissue
    slope (units of the input per s). time_to_peak_s: time from the AIF foot to the tissue
    peak (s). peak_time_s: time of the tissue peak (s, same origin as ``times_s``).
    peak_enhancement: tissue peak above baseline (units of the input). reliable: the curve
    enhances (positive slope and peak).
    """

    upslope: np.ndarray
    upslope_per_s: np.ndarray
    time_to_peak_s: np.ndarray
    peak_time_s: np.ndarray
    peak_enhancement: np.ndarray
    reliable: np.ndarray
    aif_max_slope_per_s: float
    flags: list[str]


def _local_slopes(curves: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares slopes over frames (k-1, k, k+1) for k = 1..T-2; (N, T-2) and the
    centre times (T-2,)."""
    t3 = np.stack([times[:-2], times[1:-1], times[2:]], axis=0)  # (3, T-2)
    tc = t3 - t3.mean(axis=0, keepdims=True)
    den = np.sum(tc**2, axis=0)
    c3 = np.stack([curves[:, :-2], curves[:, 1:-1], curves[:, 2:]], axis=0)  # (3, N, T-2)
    num = np.einsum("kt,knt->nt", tc, c3)
    return num / den[None, :], times[1:-1]


def _smooth3(curves: np.ndarray) -> np.ndarray:
    pad = np.concatenate([curves[:, :1], curves, curves[:, -1:]], axis=1)
    return (pad[:, :-2] + pad[:, 1:-1] + pad[:, 2:]) / 3.0


def semiquant_indices(aif: np.ndarray, tissue: np.ndarray, times_s: np.ndarray) -> SemiQuant:
    """Upslope, time to peak and peak enhancement of ``tissue`` (..., T) (see module doc)."""
    a = np.asarray(aif, dtype=float).reshape(-1)
    tis = np.asarray(tissue, dtype=float)
    times = np.asarray(times_s, dtype=float).reshape(-1)
    if tis.ndim < 1 or tis.shape[-1] != a.size or times.size != a.size:
        raise InputError(
            f"AIF ({a.size}), tissue (time last, {tis.shape}) and times ({times.size}) "
            "must have the same number of frames."
        )
    if a.size < 4 or np.any(np.diff(times) <= 0) or not np.all(np.isfinite(times)):
        raise InputError("Need >= 4 frames with strictly increasing finite times.")
    spatial = tis.shape[:-1]
    c = np.nan_to_num(tis.reshape(-1, a.size), nan=0.0, posinf=0.0, neginf=0.0)
    a = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
    flags: list[str] = []
    base = baseline_frames(a)
    if base.size:
        a = a - np.median(a[base])
        c = c - c[:, base].mean(axis=1, keepdims=True)
        foot = int(base[-1]) + 1
    else:
        flags.append("no pre-contrast frames: baseline not subtracted")
        foot = 0
    peak = int(np.argmax(a))
    end_t = times[peak] + 2.0 * max(times[peak] - times[foot], 0.0)
    end = max(int(np.searchsorted(times, end_t, side="right")), min(a.size, foot + 4))
    win = slice(max(foot - 1, 0), end)
    slopes_t, _ = _local_slopes(c, times)
    slopes_a, _ = _local_slopes(a[None, :], times)
    # slope k (centre frame k+1) is inside the window when its centre is
    lo_k, hi_k = max(win.start - 1, 0), max(end - 1, 1)
    max_a = float(slopes_a[0, lo_k:hi_k].max()) if hi_k > lo_k else 0.0
    max_t = slopes_t[:, lo_k:hi_k].max(axis=1) if hi_k > lo_k else np.zeros(c.shape[0])
    sm = _smooth3(c)[:, win]
    k_peak = np.argmax(sm, axis=1)
    pk = sm[np.arange(sm.shape[0]), k_peak]
    peak_time = times[win][k_peak]
    ok = (max_t > 0) & (pk > 0) & (max_a > 0)
    if not max_a > 0:
        flags.append("AIF does not enhance: upslope undefined")
    with np.errstate(divide="ignore", invalid="ignore"):
        up = np.where(ok, max_t / (max_a if max_a > 0 else 1.0), 0.0)

    def out(v: np.ndarray) -> np.ndarray:
        v = np.nan_to_num(np.where(ok, v, 0.0), nan=0.0, posinf=0.0, neginf=0.0)
        return v.reshape(spatial).astype(np.float32)

    return SemiQuant(
        upslope=out(up),
        upslope_per_s=out(max_t),
        time_to_peak_s=out(peak_time - times[foot]),
        peak_time_s=out(peak_time),
        peak_enhancement=out(pk),
        reliable=ok.reshape(spatial),
        aif_max_slope_per_s=max(max_a, 0.0),
        flags=flags,
    )
