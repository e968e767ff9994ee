"""Synthetic stress/rest perfusion exams with ground truth (test bed, demo, training data).

``generate_exam(seed, variant)`` builds one exam in memory; ``list_variants()`` names the
variants; ``truth_io`` saves/loads the truth; ``cli`` adds the ``phantom`` and ``demo``
subcommands.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["generate_exam", "list_variants", "VARIANTS"]

if TYPE_CHECKING:
    from qperf_viewer.phantom.generate import generate_exam
    from qperf_viewer.phantom.variants import VARIANTS, list_variants


def __getattr__(name: str):
    # Lazy, so that importing qperf_viewer.phantom.cli / model stays light.
    if name == "generate_exam":
        from qperf_viewer.phantom.generate import generate_exam

        return generate_exam
    if name in ("list_variants", "VARIANTS"):
        from qperf_viewer.phantom import variants

        return getattr(variants, name)
    raise AttributeError(f"module 'qperf_viewer.phantom' has no attribute {name!r}")
