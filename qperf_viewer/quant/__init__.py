"""Quantification engine (Qt-free): motion correction, Gd conversion, AIF, kinetic models,
pixelwise MBF, semi-quantitative indices and MPR.

Modules: ``motion`` (moco), ``gd`` (signal -> Gd), ``aif`` (LV blood-pool detection and AIF
curves), ``fermi`` and ``btex`` (kinetic models), ``mapping`` (``mbf_map``/``fit_curves``),
``semiquant`` (upslope, time to peak, peak enhancement), ``mpr`` (stress/rest ratios),
``cli`` (``map`` subcommand).

The public names below are imported lazily (on first attribute access), so importing the
package stays cheap and independent modules do not import each other.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: public name -> defining module (relative to this package)
_EXPORTS = {
    "MbfMaps": "mapping",
    "mbf_map": "mapping",
    "fit_curves": "mapping",
    "model_curves": "mapping",
    "MODELS": "mapping",
    "AifResult": "aif",
    "detect_aif": "aif",
    "aif_from_region": "aif",
    "aif_from_perfusion": "aif",
    "extract_aif_curve": "aif",
    "align_aif": "aif",
    "SemiQuant": "semiquant",
    "semiquant_indices": "semiquant",
    "segment_mpr": "mpr",
    "global_mpr": "mpr",
    "global_mbf": "mpr",
}

__all__ = [
    "MODELS",
    "AifResult",
    "MbfMaps",
    "SemiQuant",
    "aif_from_perfusion",
    "aif_from_region",
    "align_aif",
    "detect_aif",
    "extract_aif_curve",
    "fit_curves",
    "global_mbf",
    "global_mpr",
    "mbf_map",
    "model_curves",
    "segment_mpr",
    "semiquant_indices",
]

if TYPE_CHECKING:  # pragma: no cover
    from qperf_viewer.quant.aif import (
        AifResult,
        aif_from_perfusion,
        aif_from_region,
        align_aif,
        detect_aif,
        extract_aif_curve,
    )
    from qperf_viewer.quant.mapping import MODELS, MbfMaps, fit_curves, mbf_map, model_curves
    from qperf_viewer.quant.mpr import global_mbf, global_mpr, segment_mpr
    from qperf_viewer.quant.semiquant import SemiQuant, semiquant_indices


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'qperf_viewer.quant' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"qperf_viewer.quant.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
