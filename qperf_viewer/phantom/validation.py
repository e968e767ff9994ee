"""Region-fit validation of the quantification engine on a noise-free synthetic exam (used by
``tests/test_quant_exam.py`` and ``benchmarks/bench_quant_noisefree.py``).

Each AHA segment's mean Gd curve over the eroded myocardium of a slice is fitted (region fits,
:func:`qperf_viewer.quant.mapping.fit_curves`) at the slice's map delay and compared with the
mean true MBF over the same pixels. Erosion: a pixel is kept when none of its 8 neighbours lies
outside the myocardium label (motion correction resamples with a separable cubic kernel,
which mixes all 8 neighbours). The true map is moved to the
motion-correction reference frame (normalised linear interpolation; pixels fully inside the
moved myocardium). Segments that a defect splits (true MBF with a coefficient of variation of
``split_cv`` or more) are left out: a region fit of a mix of flows is not their mean flow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from qperf_viewer.exam import LABEL_MYO

#: Limits of the quantification issue on noise-free exams (relative error per segment).
LIMITS = {"btex": 0.05, "fermi": 0.10}
#: Segments whose true MBF varies more than this (coefficient of variation) are left out.
SPLIT_CV = 0.10


@dataclass
class SliceErrors:
    """Region-fit errors of one slice and model: ``segments`` (AHA numbers), ``errors``
    (relative, fitted / true - 1, same order), ``reliable`` (every fit usable)."""

    condition: str
    slice_index: int
    model: str
    segments: list[int]
    errors: np.ndarray
    reliable: bool


def region_fit_errors(
    result, truth: dict, models=tuple(LIMITS), split_cv: float = SPLIT_CV
) -> tuple[list[SliceErrors], dict[str, float]]:
    """Per slice and model the segment errors of a noise-free exam's analysis (``result``, an
    :class:`~qperf_viewer.results.AnalysisResult` made with the truth masks) against its
    ``truth`` (:func:`qperf_viewer.phantom.truth_io.load_truth`); also the map delay error (s)
    per condition."""
    from qperf_viewer.quant.mapping import fit_curves

    out: list[SliceErrors] = []
    delay_err: dict[str, float] = {}
    for cond in ("stress", "rest"):
        cr, tc = result.conditions[cond], truth["conditions"][cond]
        delay_err[cond] = cr.slices[0].map_delay_s - tc["params"]["tissue_delay_s"]
        for sr, st in zip(cr.slices, tc["slices"], strict=True):
            d = np.asarray(st["displacement_px"][sr.reference_frame], float)
            src = np.asarray(st["mbf_ml_min_g"], float)
            num = ndimage.shift(src, d, order=1)
            cover = ndimage.shift((src > 0).astype(float), d, order=1)
            true_map = np.where(cover > 0.99, num / np.maximum(cover, 1e-9), 0.0)
            myo = ndimage.binary_erosion(
                sr.segmentation.labels == LABEL_MYO, structure=np.ones((3, 3), bool)
            )
            dyn = sr.series.dynamic_frames
            times = np.asarray(sr.series.times_s, float)[dyn]
            segs, sel = [], []
            for k in range(1, 17):
                m = (sr.aha == k) & myo & (true_map > 0)
                if m.sum() >= 5 and true_map[m].std() < split_cv * true_map[m].mean():
                    segs.append(k)
                    sel.append(m)
            if not segs:
                continue
            curves = np.stack([sr.gd[dyn][:, m].mean(axis=1) for m in sel])
            want = np.array([true_map[m].mean() for m in sel])
            for model in models:
                fit = fit_curves(
                    cr.aif.values, curves, times, model=model, aif_times_s=cr.aif.times_s,
                    delay_s=sr.map_delay_s,
                )  # fmt: skip
                err = fit.mbf_ml_min_g / want - 1.0
                ok = bool(np.all(fit.reliable))
                out.append(SliceErrors(cond, sr.slice_index, model, segs, err, ok))
    return out, delay_err


def layer_ratios(cond_result, truth_cond: dict) -> tuple[float, float, int] | None:
    """Endo/epi of one analysed condition against its truth: the mean over the segments with
    both layers of the reported ratio (:func:`qperf_viewer.sectors.segment_values`) and of
    the true map's ratio on the true masks (whole halves), and that number of segments; None
    when none has both or the slices do not match."""
    from qperf_viewer.sectors import segment_values

    sl = truth_cond["slices"]
    if len(sl) != len(cond_result.slices):
        return None
    true = segment_values(
        [s["mbf_ml_min_g"] for s in sl], [np.asarray(s["mbf_ml_min_g"]) > 0 for s in sl],
        [s["aha"] for s in sl], [s["labels"] for s in sl],
        [sr.series.geometry.pixel_spacing_mm for sr in cond_result.slices],
        layers_off_borders=False,
    )  # fmt: skip
    pairs = [
        (sv.endo / sv.epi, true[k].endo / true[k].epi)
        for k, sv in cond_result.segments.items()
        if sv.endo and sv.epi and k in true and true[k].endo and true[k].epi
    ]
    if not pairs:
        return None
    got, want = np.mean(pairs, axis=0)
    return float(got), float(want), len(pairs)
