"""Fermi-constrained deconvolution (Jerosch-Herold et al., Med Phys 1998).

The tissue curve is the blood AIF convolved with a Fermi-shaped impulse response, delayed by
the bolus-arrival delay ``td``::

    C(t) = F * integral Ca(t - td - s) R(s) ds
    R(s) = (1 + exp(-k tau0)) / (1 + exp(k (s - tau0)))

``R(0) = 1``, so ``F`` (1/s, mL blood per s per mL tissue) is the myocardial blood flow
directly (blood AIF, no hematocrit correction); ``tau0`` (s) is the width of the shoulder and
``k`` (1/s) the decay rate. MBF in mL/min/g is ``F * 60 / 1.05``.

This module holds the model definition used by the fitter in
:mod:`qperf_viewer.quant.mapping` (amplitude ``F`` solved linearly, shape ``(tau0, k)`` by
dictionary search and refinement); the delay is the model-free upslope estimate and the fit
uses the first pass only (see the mapping module). :func:`fit_fermi` is a shortcut.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy.special import expit

if TYPE_CHECKING:
    from qperf_viewer.quant.mapping import MbfMaps

NAME = "fermi"
LABEL = "Fermi-constrained deconvolution"
#: Shape parameters (the amplitude F is solved linearly).
SHAPE_PARAMS = ("tau0_s", "k_per_s")
#: Myocardial tissue density, g/mL.
TISSUE_DENSITY_G_ML = 1.05

#: Fit window: frames up to the AIF peak + this fraction of the AIF rise time (first pass;
#: the Fermi shape cannot follow the interstitial retention and recirculation).
FIRST_PASS_WINDOW = 0.75
#: Reliability threshold on R^2 over that window. The window holds few frames, so a noisy
#: pixel's R^2 is low even when its flow is right: at 0.5, 60-75% of the rest pixels of the
#: synthetic exams were dropped, whole segments were left without a value and the pixels kept
#: (the better enhancing ones) read high. At 0.2 every segment of the 13 variants of
#: ``benchmarks/bench_accuracy.py`` has a value; the worst rest errors fell (mean 60% -> 30%).
MIN_R2 = 0.2
#: Pixel maps: delays searched around the map's reference delay (s).
PIXEL_DELAY_OFFSETS_S = [0.0]
#: Region fits: fit the delay (True) or keep the model-free upslope estimate (False).
FIT_DELAY = False


def shape_grid() -> tuple[np.ndarray, ...]:
    """Default dictionary axes of the shape parameters: tau0 (s), k (1/s)."""
    tau0 = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.5, 7.5, 10.0, 14.0, 20.0])
    k = np.geomspace(0.04, 4.0, 12)
    return tau0, k


def shape_bounds() -> tuple[np.ndarray, np.ndarray]:
    """Bounds of the shape parameters for the local refinement (natural units)."""
    return np.array([0.0, 0.02]), np.array([30.0, 8.0])


def residue(lag_s: np.ndarray, shape: np.ndarray) -> np.ndarray:
    """Unit-amplitude Fermi residue ``R`` (R(0) = 1) at ``lag_s``.

    lag_s: (L,) lags >= 0 (s); shape: (M, 2) rows ``(tau0_s, k_per_s)``. Returns (M, L).
    """
    t = np.asarray(lag_s, dtype=float)[None, :]
    tau0 = np.asarray(shape, dtype=float)[:, 0:1]
    k = np.asarray(shape, dtype=float)[:, 1:2]
    # (1 + e^{-k tau0}) / (1 + e^{k (t - tau0)}) = expit(-k (t - tau0)) / expit(k tau0)
    return expit(-k * (t - tau0)) / expit(k * tau0)


def residue_cells(dt_s: float, n: int, shape: np.ndarray) -> np.ndarray:
    """Exact cell averages of the unit residue over ``[j dt, (j+1) dt]``, j < n: (M, n).

    Antiderivative: ``(s - (softplus(k (s - tau0)) - softplus(-k tau0)) / k) / expit(k tau0)``.
    """
    p = np.asarray(shape, dtype=float).reshape(-1, 2)
    tau0, k = p[:, 0:1], p[:, 1:2]
    s = (np.arange(n + 1) * dt_s)[None, :]
    anti = (s - (np.logaddexp(0.0, k * (s - tau0)) - np.logaddexp(0.0, -k * tau0)) / k) / expit(
        k * tau0
    )
    return np.diff(anti, axis=1) / dt_s


def outputs(amplitude_per_s: np.ndarray, shape: np.ndarray, hematocrit: float) -> dict:
    """Reported maps from the fitted amplitude (1/s) and shape parameters (N, 2).

    Fermi is fitted against the blood AIF, so the amplitude is blood flow and the hematocrit
    does not enter.
    """
    del hematocrit
    f = np.asarray(amplitude_per_s, dtype=float)
    return {
        "mbf_ml_min_g": f * 60.0 / TISSUE_DENSITY_G_ML,
        "tau0_s": np.asarray(shape[..., 0], dtype=float),
        "k_per_s": np.asarray(shape[..., 1], dtype=float),
    }


def fit_fermi(
    aif: np.ndarray, tissue: np.ndarray, times_s: np.ndarray, **kwargs: object
) -> MbfMaps:
    """Pixelwise Fermi MBF: shortcut for ``mbf_map(..., model="fermi")``."""
    from qperf_viewer.quant.mapping import mbf_map

    return mbf_map(aif, tissue, times_s, model="fermi", **kwargs)  # type: ignore[arg-type]
