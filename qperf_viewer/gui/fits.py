"""Fitted model curves for the curves panel (numpy + ``qperf_viewer.quant``, no Qt).

The pipeline keeps MBF maps, not fitted curves; the panel re-fits the few curves it shows
(segment means of one slice, the pixel under the cursor) with the same model and draws the
model's forward curve (``quant.model_curves``). Amplitude convention of ``model_curves``:
blood flow per s for Fermi, plasma flow per s for BTEX (Fp = Fb (1 - Hct)); blood flow per s
per mL tissue = MBF (mL/min/g) x 1.05 g/mL / 60.
"""

from __future__ import annotations

import numpy as np

from qperf_viewer.results import Curve

TISSUE_DENSITY_G_ML = 1.05


def model_key(model: str) -> str:
    m = model.lower()
    return "btex" if "btex" in m or "exchange" in m else "fermi"


def fit_model_curves(
    aif: Curve,
    curves: np.ndarray,
    times_s: np.ndarray,
    model: str = "btex",
    hematocrit: float = 0.42,
    delay_s: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fit (M, T) tissue Gd curves (mmol/L) at ``times_s`` against the AIF; returns
    (fitted (M, T) mmol/L, MBF (M,) mL/min/g, reliable (M,) bool). ``delay_s``: the bolus
    delay (s) of the slice's MBF map (:func:`map_delay_s`), so that the drawn curve is the
    model behind the map's values; None fits a shared delay."""
    from qperf_viewer.quant import fit_curves, model_curves
    from qperf_viewer.quant.mapping import MODELS

    key = model_key(model)
    y = np.atleast_2d(np.asarray(curves, dtype=float))
    t = np.asarray(times_s, dtype=float)
    m = fit_curves(
        aif.values,
        y,
        t,
        model=key,
        hematocrit=hematocrit,
        aif_times_s=aif.times_s,
        delay_s=delay_s,
    )
    names = MODELS[key].SHAPE_PARAMS
    shape = np.stack([np.asarray(m.params[n], dtype=float).reshape(-1) for n in names], axis=1)
    mbf = np.asarray(m.mbf_ml_min_g, dtype=float).reshape(-1)
    amp = mbf * TISSUE_DENSITY_G_ML / 60.0
    if key == "btex":
        amp = amp * (1.0 - m.hematocrit)
    fitted = model_curves(
        aif.values,
        t,
        model=key,
        amplitude_per_s=amp,
        shape=shape,
        delay_s=np.asarray(m.delay_s, dtype=float).reshape(-1),
        hematocrit=m.hematocrit,
        aif_times_s=aif.times_s,
    )
    return fitted, mbf, np.asarray(m.reliable, dtype=bool).reshape(-1)


def map_delay_s(sr) -> float | None:
    """The bolus delay (s) the slice's MBF map was fitted with (median over its reliable
    pixels), None when the map has none."""
    from qperf_viewer.quant.mapping import DELAY_BOUNDS_S

    d = sr.maps.get("delay_s") if getattr(sr, "maps", None) else None
    if d is None or sr.mbf_valid is None or not np.any(sr.mbf_valid):
        return None
    v = np.asarray(d, dtype=float)[np.asarray(sr.mbf_valid, dtype=bool)]
    v = v[np.isfinite(v)]
    if not v.size:
        return None
    return float(np.clip(np.median(v), *DELAY_BOUNDS_S))
