"""A segmenter that returns a phantom exam's ground truth instead of running the model.

Used to measure what the automatic segmentation changes (model evaluation) and by tests that
check the quantification without the model. Same call signature as the pipeline's segmenters
(:mod:`qperf_viewer.pipeline.segmenter`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from qperf_viewer.results import Segmentation


class TruthSegmenter:
    """The phantom's truth labels and landmarks, moved to the reference frame of the motion
    correction (the truth is drawn at the breath-hold position, displacement 0).

    phantom_dir: a folder written by ``qperf-viewer phantom`` (its ``truth/`` beside the DICOM
    tree). fail: (condition, slice_index) pairs that raise, to simulate a failing slice.
    """

    version = "phantom truth masks"

    def __init__(self, phantom_dir: str | Path, fail: set[tuple[str, int]] = frozenset()):
        from qperf_viewer.phantom.truth_io import load_truth

        self.truth = load_truth(phantom_dir)
        self.fail = set(fail)

    def slice_truth(self, condition: str, slice_index: int) -> dict:
        return self.truth["conditions"][condition]["slices"][slice_index]

    def moved(self, condition: str, slice_index: int, reference_frame: int, key: str = "labels"):
        """A truth map (``labels`` or ``aha``, (Y, X) uint8) moved to ``reference_frame``.

        The displacement is fractional: each class's indicator is shifted with linear
        interpolation and every pixel takes the class that covers most of it (background
        when nothing covers half of it). A nearest-neighbour shift would misplace every
        boundary by up to half a pixel in the same direction, which on a myocardium three or
        four pixels thick mixes blood into the 'myocardium' of whole segments.

        A displacement of exactly half a pixel (the phantom rounds displacements to
        ``motion.STEP_PX``) leaves every boundary pixel covered half by each side: those
        ties go to either side in a checkerboard (the maps moved by 0.001 px less and more),
        so that each class keeps its area and centroid; with ties to the background the
        myocardium lost 12-17% of its pixels (phantom exams 213 and the tests' phantom).
        """
        st = self.slice_truth(condition, slice_index)
        d = np.asarray(st["displacement_px"][reference_frame], dtype=float)
        src = np.asarray(st[key])
        if not np.any(np.abs(d - np.round(d)) > 1e-6):
            m = ndimage.shift(src, np.round(d), order=0, mode="constant", cval=0)
            return m.astype(np.uint8)
        half = np.abs(np.abs(d - np.floor(d)) - 0.5) < 1e-6
        if not half.any():
            return _moved_by(src, d)
        eps = np.where(half, 1e-3, 0.0)
        rr, cc = np.indices(src.shape)
        return np.where((rr + cc) % 2 == 0, _moved_by(src, d - eps), _moved_by(src, d + eps))

    def __call__(
        self, images, times_s, pd_frames, geometry, *, condition, slice_index, reference_frame, **_
    ) -> Segmentation:
        if (condition, slice_index) in self.fail:
            raise ValueError("simulated segmentation failure")
        st = self.slice_truth(condition, slice_index)
        d = np.asarray(st["displacement_px"][reference_frame], dtype=float)

        def move(p):
            return (float(p[0] + d[0]), float(p[1] + d[1]))

        return Segmentation(
            labels=self.moved(condition, slice_index, reference_frame),
            lv_centre=move(st["lv_centre"]),
            rv_insertion_anterior=move(st["rv_insertion_anterior"]),
            rv_insertion_inferior=move(st["rv_insertion_inferior"]),
            confidence=1.0,
        )


def _moved_by(src: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Label map ``src`` (Y, X) moved by the fractional displacement ``d`` (drow, dcol) px:
    each class's indicator shifted with linear interpolation, every pixel the class that
    covers more than half of it (else background)."""
    classes = [int(c) for c in np.unique(src) if c != 0]
    best = np.full(src.shape, 0.5)
    out = np.zeros(src.shape, np.uint8)
    for c in classes:
        frac = ndimage.shift((src == c).astype(np.float64), d, order=1, mode="constant")
        take = frac > best
        out[take] = c
        best = np.where(take, frac, best)
    return out
