"""Named variants of the synthetic exam: each is a set of options over :data:`DEFAULTS`.

``random`` draws the options per seed (the training set); ``demo`` is the fixed demo exam.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np


@dataclass(frozen=True)
class VariantOptions:
    """Options of a generated exam.

    n_slices: short-axis slices per condition (2, 3 or 4).
    mirrored: pixel grid flipped left-right and the IOP row vector negated.
    motion: respiratory motion after the breath-hold (False: none at all).
    hypertrophy: thick myocardium.
    pd_frames: leading PD frames (None: 2 or 3 drawn per seed; 0: none).
    pd_comment: ImageComments 'PD' on the PD frames.
    storage: 'classic' | 'enhanced'.
    vendor: 'SIEMENS' | 'Philips' | 'GE'.
    series_per_slice: one series per slice (else one series per condition).
    instance_order: 'base_to_apex' | 'apex_to_base'.
    descriptions: 'clear' (stress/rest keywords) | 'ambiguous'.
    midnight: the stress acquisition crosses midnight.
    junk: non-DICOM files, truncated DICOM, a localizer and a duplicate instance.
    aif_series: low-resolution dual-sequence AIF series per condition.
    square: square matrix (else usually non-square).
    dark_rim: low phase-encode resolution without apodisation (Gibbs dark rims).
    rim_artefact: a transient dark subendocardial rim along the phase-encode direction while
        the blood pool is brighter than the myocardium (the dark-rim artefact of first-pass
        perfusion: ringing at the blood-myocardium edge, worsened by motion), strongest at
        the blood-pool peak, fading with the blood-myocardium contrast; true MBF unchanged.
    defects: 'random' | 'none' | 'transmural' | 'subendocardial' stress perfusion defects.
    field_strength_t: None (drawn) or 1.5 / 3.0.
    """

    n_slices: int = 3
    mirrored: bool = False
    motion: bool = True
    hypertrophy: bool = False
    pd_frames: int | None = None
    pd_comment: bool = True
    storage: str = "classic"
    vendor: str = "SIEMENS"
    series_per_slice: bool = True
    instance_order: str = "base_to_apex"
    descriptions: str = "clear"
    midnight: bool = False
    junk: bool = False
    aif_series: bool = True
    square: bool = False
    dark_rim: bool = False
    rim_artefact: bool = False
    defects: str = "random"
    field_strength_t: float | None = None


DEFAULTS = VariantOptions()

#: Variant name -> options that differ from :data:`DEFAULTS`.
VARIANTS: dict[str, dict] = {
    "standard": {},
    "mirrored": {"mirrored": True},
    "no_motion": {"motion": False},
    "two_slices": {"n_slices": 2},
    "four_slices": {"n_slices": 4},
    "hypertrophy": {"hypertrophy": True},
    "no_pd": {"pd_frames": 0},
    "no_pd_comment": {"pd_comment": False},
    "enhanced": {"storage": "enhanced"},
    "single_series": {"series_per_slice": False},
    "enhanced_single_series": {"storage": "enhanced", "series_per_slice": False},
    "philips": {"vendor": "Philips", "instance_order": "apex_to_base"},
    "ge": {"vendor": "GE", "field_strength_t": 1.5},
    "apex_to_base": {"instance_order": "apex_to_base"},
    "ambiguous": {"descriptions": "ambiguous"},
    "midnight": {"midnight": True},
    "junk": {"junk": True},
    "no_aif": {"aif_series": False},
    "square": {"square": True},
    "dark_rim": {"dark_rim": True},
    "dark_rim_artefact": {"dark_rim": True, "rim_artefact": True},
    "normal": {"defects": "none"},
    "subendocardial": {"defects": "subendocardial"},
    "transmural": {"defects": "transmural"},
    "three_tesla": {"field_strength_t": 3.0},
    "demo": {"defects": "transmural", "field_strength_t": 1.5},
    "random": {},  # options drawn per seed, see resolve_variant
}


def list_variants() -> list[str]:
    """Names of all variants."""
    return list(VARIANTS)


def _random_options(seed: int) -> VariantOptions:
    rng = np.random.default_rng([seed, 907])
    r = rng.random
    return VariantOptions(
        n_slices=int(rng.choice([2, 3, 3, 3, 3, 4])),
        mirrored=bool(r() < 0.5),
        motion=bool(r() < 0.8),
        hypertrophy=bool(r() < 0.2),
        pd_frames=int(rng.choice([0, 2, 3, 3])) if r() < 0.9 else None,
        pd_comment=bool(r() < 0.8),
        storage="enhanced" if r() < 0.25 else "classic",
        vendor=str(rng.choice(["SIEMENS", "Philips", "GE"])),
        series_per_slice=bool(r() < 0.7),
        instance_order="apex_to_base" if r() < 0.4 else "base_to_apex",
        descriptions="ambiguous" if r() < 0.15 else "clear",
        midnight=bool(r() < 0.05),
        junk=bool(r() < 0.1),
        aif_series=bool(r() < 0.7),
        square=bool(r() < 0.2),
        dark_rim=bool(r() < 0.25),
        defects=str(rng.choice(["random", "random", "none", "transmural", "subendocardial"])),
        field_strength_t=None,
    )


def resolve_variant(variant: str, seed: int) -> VariantOptions:
    """Options of ``variant`` (for 'random': drawn from ``seed``)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown phantom variant {variant!r}; choose one of {list_variants()}")
    if variant == "random":
        return _random_options(seed)
    names = {f.name for f in fields(VariantOptions)}
    opts = VARIANTS[variant]
    unknown = set(opts) - names
    if unknown:
        raise ValueError(f"variant {variant!r} has unknown options {sorted(unknown)}")
    return replace(DEFAULTS, **opts)
