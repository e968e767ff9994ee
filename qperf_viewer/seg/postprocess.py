"""Anatomical clean-up of a label map (Y, X) uint8: 0 background, 1 LV blood pool,
2 myocardium, 3 RV blood pool.

Rules (in order): one LV cavity (the component best enclosed by myocardium with the RV
beside it, holes filled, so papillary muscles and
trabeculae enclosed by the cavity count as LV); one myocardium component touching it (islands
removed, everything enclosed by the epicardium that is not LV becomes myocardium); small gaps
in the ring closed, large gaps flagged; one RV component next to the myocardium.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from qperf_viewer.exam import LABEL_BACKGROUND, LABEL_LV, LABEL_MYO, LABEL_RV

FLAG_NO_RING = "no ring"
FLAG_RING_BROKEN = "ring broken"
FLAG_RV_MISSING = "RV missing"

_CROSS = ndimage.generate_binary_structure(2, 1)
_SQUARE = ndimage.generate_binary_structure(2, 2)


def largest_component(mask: np.ndarray, structure=_SQUARE) -> np.ndarray:
    """The largest connected component of a boolean mask (empty stays empty)."""
    lab, n = ndimage.label(mask, structure=structure)
    if n <= 1:
        return lab > 0
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    return lab == int(np.argmax(sizes))


def ring_gap_fraction(labels: np.ndarray) -> float:
    """Fraction of the LV cavity's outer border (4-neighbours) that is not myocardium;
    1.0 when there is no LV."""
    lv = labels == LABEL_LV
    if not lv.any():
        return 1.0
    border = ndimage.binary_dilation(lv, _CROSS) & ~lv
    if not border.any():
        return 1.0
    return float(np.mean(labels[border] != LABEL_MYO))


def postprocess_labels(
    labels: np.ndarray, max_gap_fraction: float = 0.15, rv_max_distance_px: float = 3.0
) -> tuple[np.ndarray, list[str]]:
    """Clean label map and flags ('no ring', 'ring broken', 'RV missing').

    Works on the bounding box of the labelled pixels plus a background margin (the rules only
    look at labelled pixels and their neighbours), which makes it several times faster."""
    lab = np.asarray(labels, dtype=np.uint8)
    nz = np.nonzero(lab)
    if nz[0].size == 0:
        return np.zeros_like(lab), [FLAG_NO_RING, FLAG_RV_MISSING]
    m = int(np.ceil(rv_max_distance_px)) + 3
    r0, r1 = max(int(nz[0].min()) - m, 0), min(int(nz[0].max()) + m + 1, lab.shape[0])
    c0, c1 = max(int(nz[1].min()) - m, 0), min(int(nz[1].max()) + m + 1, lab.shape[1])
    sub, flags = _postprocess(lab[r0:r1, c0:c1], max_gap_fraction, rv_max_distance_px)
    out = np.zeros_like(lab)
    out[r0:r1, c0:c1] = sub
    return out, flags


def _postprocess(
    lab: np.ndarray, max_gap_fraction: float, rv_max_distance_px: float
) -> tuple[np.ndarray, list[str]]:
    out = np.zeros_like(lab)
    flags: list[str] = []
    lv = _best_cavity(lab, rv_max_distance_px)
    if not lv.any():
        return out, [FLAG_NO_RING, FLAG_RV_MISSING]
    lv = ndimage.binary_fill_holes(lv)
    myo = lab == LABEL_MYO
    # myocardium: components touching the cavity; keep the largest of them
    mlab, n = ndimage.label(myo & ~lv, structure=_SQUARE)
    if n:
        touch = np.unique(mlab[ndimage.binary_dilation(lv, _SQUARE) & (mlab > 0)])
        keep = np.zeros(n + 1, bool)
        if touch.size:
            sizes = np.bincount(mlab.ravel(), minlength=n + 1)
            keep[touch[np.argmax(sizes[touch])]] = True
        myo = keep[mlab]
    else:
        myo = np.zeros_like(lv)
    if not myo.any():
        out[lv] = LABEL_LV
        return out, [FLAG_NO_RING, *_rv_only(lab, out, rv_max_distance_px)]
    # close small gaps: border pixels of the cavity that are not myocardium
    border = ndimage.binary_dilation(lv, _CROSS) & ~lv
    gap = border & ~myo
    gap_frac = float(gap.sum()) / max(int(border.sum()), 1)
    if 0 < gap_frac <= max_gap_fraction:
        myo = myo | gap
    elif gap_frac > max_gap_fraction:
        flags.append(FLAG_RING_BROKEN)
    myo = _trim_far(myo, lv)
    epi = ndimage.binary_fill_holes(lv | myo)
    myo = epi & ~lv
    out[myo] = LABEL_MYO
    out[lv] = LABEL_LV
    flags += _rv_only(lab, out, rv_max_distance_px)
    return out, flags


#: Myocardium farther from the cavity than this many times the wall's median distance from
#: it (about half its thickness) is not wall: a leak along a neighbouring structure.
FAR_WALL_FACTOR = 4.0
#: ... and never closer than this (pixels): thin walls keep their whole thickness.
FAR_WALL_MIN_PX = 8.0


def _trim_far(myo: np.ndarray, lv: np.ndarray) -> np.ndarray:
    """``myo`` without the pixels farther from the cavity ``lv`` than
    ``max(FAR_WALL_FACTOR * median distance, FAR_WALL_MIN_PX)``, then its largest component."""
    if not myo.any() or not lv.any():
        return myo
    dist = ndimage.distance_transform_edt(~lv)
    limit = max(FAR_WALL_FACTOR * float(np.median(dist[myo])), FAR_WALL_MIN_PX)
    near = myo & (dist <= limit)
    if near.sum() == myo.sum() or not near.any():
        return myo
    return largest_component(near)


def _best_cavity(lab: np.ndarray, rv_max_distance_px: float) -> np.ndarray:
    """The LV cavity among the predicted LV components: the one best enclosed by myocardium
    and with the RV beside its ring, not merely the largest (a bright descending aorta or
    stomach can be predicted as a second, larger 'cavity' with a partial ring).

    Candidates are components of at least 10% of the largest one; score = fraction of the
    cavity border that is myocardium + 0.5 if an RV component lies within
    ``rv_max_distance_px`` of the cavity and its touching myocardium; ties go to the larger.
    """
    clab, n = ndimage.label(lab == LABEL_LV, structure=_SQUARE)
    if n <= 1:
        return clab > 0
    sizes = np.bincount(clab.ravel())
    sizes[0] = 0
    cands = [i for i in range(1, n + 1) if sizes[i] >= max(0.1 * sizes.max(), 4)]
    if len(cands) <= 1:  # one candidate, or only specks (each under 4 pixels): the largest
        return clab == (cands[0] if cands else int(np.argmax(sizes)))
    myo = lab == LABEL_MYO
    mlab, _ = ndimage.label(myo, structure=_SQUARE)
    rv = lab == LABEL_RV
    rv_dist = ndimage.distance_transform_edt(~rv) if rv.any() else None
    best, best_key = cands[0], (-1.0, 0)
    for i in cands:
        c = ndimage.binary_fill_holes(clab == i)
        border = ndimage.binary_dilation(c, _CROSS) & ~c
        ring = float(np.mean(myo[border])) if border.any() else 0.0
        score = ring
        if rv_dist is not None:
            touch = np.unique(mlab[ndimage.binary_dilation(c, _SQUARE) & (mlab > 0)])
            heart = c | np.isin(mlab, touch[touch > 0])
            if float(rv_dist[heart].min()) <= rv_max_distance_px:
                score += 0.5
        key = (round(score, 2), int(sizes[i]))
        if key > best_key:
            best, best_key = i, key
    return clab == best


def _rv_only(lab: np.ndarray, out: np.ndarray, max_dist_px: float) -> list[str]:
    """Write the RV (one component near the myocardium or cavity) into ``out`` in place."""
    heart = out > 0
    rv = (lab == LABEL_RV) & ~heart
    if not rv.any():
        return [FLAG_RV_MISSING]
    rlab, n = ndimage.label(rv, structure=_SQUARE)
    dist = ndimage.distance_transform_edt(~heart)
    sizes = np.bincount(rlab.ravel(), minlength=n + 1)
    mind = ndimage.minimum(dist, rlab, np.arange(1, n + 1))
    ok = [i + 1 for i in range(n) if mind[i] <= max_dist_px]
    if not ok:
        return [FLAG_RV_MISSING]
    best = max(ok, key=lambda i: sizes[i])
    rvm = ndimage.binary_fill_holes(rlab == best) & ~heart
    out[rvm] = LABEL_RV
    return []


__all__ = [
    "FLAG_NO_RING",
    "FLAG_RING_BROKEN",
    "FLAG_RV_MISSING",
    "LABEL_BACKGROUND",
    "largest_component",
    "postprocess_labels",
    "ring_gap_fraction",
]
