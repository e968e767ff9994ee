"""Loader of the real labelled validation exams (``../shared/data/real_labelled``).

Validation only: these exams must never be used for training. Each ``Pnn/dicom/<series>/``
holds one slice (MR Image Storage, one file per frame, no PD frames, signal units);
``Pnn/truth.npz`` holds ``<condition>_<slice>_labels`` (T, Y, X) with 1 = myocardium,
2 = LV blood pool on the hand-labelled frames (0 elsewhere).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qperf_viewer.geometry import SliceGeometry


@dataclass
class RealSlice:
    """One real slice: images (T, Y, X) float32 signal, times_s (T,), labels (T, Y, X) in the
    app's label numbers (1 LV, 2 myo, 0 elsewhere / unlabelled), labelled frame indices."""

    name: str
    images: np.ndarray
    times_s: np.ndarray
    geometry: SliceGeometry
    labels: np.ndarray
    labelled: np.ndarray


def _read_series(folder: Path) -> tuple[np.ndarray, np.ndarray, SliceGeometry, str]:
    import pydicom

    ds = [pydicom.dcmread(f) for f in sorted(folder.glob("*.dcm"))]
    ds.sort(key=lambda d: int(d.InstanceNumber))
    imgs = np.stack([d.pixel_array.astype(np.float32) for d in ds])
    slope = float(getattr(ds[0], "RescaleSlope", 1.0) or 1.0)
    icpt = float(getattr(ds[0], "RescaleIntercept", 0.0) or 0.0)
    imgs = imgs * slope + icpt

    def _t(d) -> float:
        s = str(d.AcquisitionTime)
        return int(s[0:2]) * 3600 + int(s[2:4]) * 60 + float(s[4:])

    times = np.array([_t(d) for d in ds])
    times -= times[0]
    d0 = ds[0]
    geom = SliceGeometry(
        orientation=tuple(float(v) for v in d0.ImageOrientationPatient),
        origin_mm=tuple(float(v) for v in d0.ImagePositionPatient),
        pixel_spacing_mm=tuple(float(v) for v in d0.PixelSpacing),
        shape=(int(d0.Rows), int(d0.Columns)),
        slice_thickness_mm=float(getattr(d0, "SliceThickness", 0.0) or 0.0),
    )
    return imgs, times, geom, str(d0.SeriesDescription)


def load_real_labelled(root: Path) -> list[RealSlice]:
    """All slices of all exams under ``root`` (sorted by exam and series folder)."""
    out: list[RealSlice] = []
    for exam in sorted(p for p in Path(root).iterdir() if p.is_dir()):
        truth = np.load(exam / "truth.npz")
        for series in sorted((exam / "dicom").iterdir()):
            imgs, times, geom, desc = _read_series(series)
            cond = "stress" if "stress" in desc.lower() else "rest"
            sl = "basal" if "basal" in desc.lower() else "mid"
            lab_src = truth[f"{cond}_{sl}_labels"]
            lab = np.zeros_like(lab_src)
            lab[lab_src == 1] = 2
            lab[lab_src == 2] = 1
            labelled = np.nonzero(lab.reshape(lab.shape[0], -1).any(axis=1))[0]
            out.append(RealSlice(f"{exam.name}_{cond}_{sl}", imgs, times, geom, lab, labelled))
    return out
