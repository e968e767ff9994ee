"""Diagnostic thresholds for highlighting segments in the report (Qt-free).

A threshold set is only meaningful for the method it was derived with: the kinetic model, the
arterial input function (AIF) source and, to a lesser degree, the field strength. The report
highlights segments only when the exam's model and AIF source match the set's; a different
field strength is printed as a caution.

Default: Kotecha T, Martinez-Naharro A, Boldrini M, et al. Automated pixel-wise quantitative
myocardial perfusion mapping by CMR to detect obstructive coronary artery disease and coronary
microvascular dysfunction: validation against invasive coronary physiology. JACC Cardiovasc
Imaging 2019;12(10):1958-1969. doi:10.1016/j.jcmg.2018.12.022. Inline pixel-wise mapping
(Kellman/Xue, Gadgetron) with a blood-tissue-exchange (BTEX) model and a dual-sequence AIF,
1.5 T; regional cut-offs for obstructive CAD against invasive coronary physiology: stress MBF
1.94 mL/min/g and MPR 1.49; global stress MBF 2.25 mL/min/g for microvascular dysfunction in
patients without obstructive disease.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from qperf_viewer.errors import InputError

AIF_DUAL_SEQUENCE = "dual-sequence"
AIF_BLOOD_POOL = "blood-pool"


def normalise_aif_source(source: str | None) -> str | None:
    """Map free-text AIF source names to 'dual-sequence' | 'blood-pool' | None (unknown)."""
    if not source:
        return None
    s = source.lower()
    if "dual" in s or "aif series" in s or "aif_series" in s:
        return AIF_DUAL_SEQUENCE
    if "pool" in s or "lv" in s or "single" in s:
        return AIF_BLOOD_POOL
    return s


def normalise_model(model: str | None) -> str | None:
    """'btex', 'BTEX-20', 'blood tissue exchange' -> 'BTEX'; 'fermi' -> 'FERMI'."""
    if not model:
        return None
    s = model.lower()
    if "btex" in s or "tissue exchange" in s:
        return "BTEX"
    if "fermi" in s:
        return "FERMI"
    return model.upper()


@dataclass(frozen=True)
class ThresholdSet:
    """Cut-offs below which a segment is highlighted, with their provenance.

    stress_mbf_ml_min_g: regional (segment) stress MBF cut-off, mL/min/g, or None.
    mpr: regional MPR cut-off (stress / rest), or None.
    global_stress_mbf_ml_min_g: global stress MBF cut-off (printed, not a segment highlight).
    quant_model / aif_source / field_strengths_t: the method the cut-offs were derived with.
    """

    name: str
    stress_mbf_ml_min_g: float | None
    mpr: float | None
    citation: str
    doi: str = ""
    quant_model: str = "BTEX"
    aif_source: str = AIF_DUAL_SEQUENCE
    field_strengths_t: tuple[float, ...] = ()
    endpoint: str = ""
    global_stress_mbf_ml_min_g: float | None = None
    global_endpoint: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    def short_citation(self) -> str:
        return self.citation.split(".")[0] if self.citation else self.name

    def method_text(self) -> str:
        fs = "/".join(f"{f:g}" for f in self.field_strengths_t) or "any"
        return f"{self.quant_model} model, {self.aif_source} AIF, {fs} T"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["field_strengths_t"] = list(self.field_strengths_t)
        d["notes"] = list(self.notes)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ThresholdSet:
        try:
            return cls(
                name=str(d["name"]),
                stress_mbf_ml_min_g=_opt_float(d.get("stress_mbf_ml_min_g")),
                mpr=_opt_float(d.get("mpr")),
                citation=str(d.get("citation", "")),
                doi=str(d.get("doi", "")),
                quant_model=str(d.get("quant_model", "BTEX")),
                aif_source=str(d.get("aif_source", AIF_DUAL_SEQUENCE)),
                field_strengths_t=tuple(float(f) for f in d.get("field_strengths_t", ())),
                endpoint=str(d.get("endpoint", "")),
                global_stress_mbf_ml_min_g=_opt_float(d.get("global_stress_mbf_ml_min_g")),
                global_endpoint=str(d.get("global_endpoint", "")),
                notes=tuple(str(n) for n in d.get("notes", ())),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"Invalid threshold set: {exc}.") from exc


def _opt_float(v) -> float | None:
    return None if v is None else float(v)


KOTECHA_2019 = ThresholdSet(
    name="Kotecha 2019",
    stress_mbf_ml_min_g=1.94,
    mpr=1.49,
    citation=(
        "Kotecha T, et al. Automated pixel-wise quantitative myocardial perfusion mapping by "
        "CMR to detect obstructive coronary artery disease and coronary microvascular "
        "dysfunction. JACC Cardiovasc Imaging 2019;12(10):1958-1969"
    ),
    doi="10.1016/j.jcmg.2018.12.022",
    quant_model="BTEX",
    aif_source=AIF_DUAL_SEQUENCE,
    field_strengths_t=(1.5,),
    endpoint="obstructive CAD by invasive coronary physiology (regional)",
    global_stress_mbf_ml_min_g=2.25,
    global_endpoint="coronary microvascular dysfunction without obstructive CAD (global)",
)

DEFAULT_THRESHOLDS = KOTECHA_2019


def load_thresholds(path: str | Path) -> ThresholdSet:
    """Read a site-specific threshold set from JSON (the keys of :meth:`ThresholdSet.to_dict`)."""
    p = Path(path)
    try:
        return ThresholdSet.from_dict(json.loads(p.read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"Cannot read thresholds: {exc}.", path=str(p)) from exc


@dataclass(frozen=True)
class Applicability:
    """Whether a threshold set applies to an exam; ``caution`` is printed even when it does."""

    applies: bool
    reason: str
    caution: str = ""


def applicability(
    thresholds: ThresholdSet | None,
    quant_model: str | None,
    aif_source: str | None,
    field_strength_t: float | None,
) -> Applicability:
    """Highlight only when the exam's kinetic model and AIF source match the set's source."""
    if thresholds is None:
        return Applicability(False, "no thresholds configured")
    m_exam, m_thr = normalise_model(quant_model), normalise_model(thresholds.quant_model)
    a_exam, a_thr = normalise_aif_source(aif_source), normalise_aif_source(thresholds.aif_source)
    if m_exam != m_thr:
        return Applicability(
            False,
            f"not applied: exam uses {quant_model or 'an unknown model'}, cut-offs are for "
            f"{thresholds.quant_model}",
        )
    if a_exam != a_thr:
        return Applicability(
            False,
            f"not applied: exam AIF is {aif_source or 'unknown'}, cut-offs are for "
            f"{thresholds.aif_source} AIF",
        )
    caution = ""
    if thresholds.field_strengths_t:
        if field_strength_t is None:
            caution = "field strength of the exam unknown"
        elif all(abs(field_strength_t - f) > 0.2 for f in thresholds.field_strengths_t):
            fs = "/".join(f"{f:g}" for f in thresholds.field_strengths_t)
            caution = f"cut-offs derived at {fs} T, exam at {field_strength_t:g} T"
    return Applicability(True, "applied: model and AIF source match", caution)
