"""Dark-rim artefact suspicion (qperf_viewer.quant.darkrim): a synthetic ring with known
artefact and defect segments, and the phantom's ``dark_rim_artefact`` variant against its
phase-encode geometry."""

from __future__ import annotations

import numpy as np
import pytest

from qperf_viewer.quant.darkrim import check_dark_rim, dark_rim_flag


def _ring(n: int = 64, r_in: float = 10.0, r_out: float = 16.0):
    rr, cc = np.mgrid[0:n, 0:n].astype(float)
    dr, dc = rr - n / 2, cc - n / 2
    r = np.hypot(dr, dc)
    labels = np.zeros((n, n), np.uint8)
    labels[r < r_in] = 1
    labels[(r >= r_in) & (r < r_out)] = 2
    sector = (np.floor(np.mod(np.degrees(np.arctan2(dr, dc)), 360.0) / 60.0) + 1).astype(int)
    aha = np.where(labels == 2, sector, 0)
    depth = np.clip((r - r_in) / (r_out - r_in), 0, 1)
    return labels, aha, depth


def _curve(t, arrival, peak, width):
    x = np.clip(t - arrival, 0, None) / width
    return peak * x**2 * np.exp(2 - 2 * x) * (1 + 0.3 * (t > arrival + 3 * width))


def _stack(rim_sectors=(), defect_sectors=(), noise=0.0, seed=0):
    labels, aha, depth = _ring()
    t = np.arange(50, dtype=float)
    blood = _curve(t, 10, 4.0, 3.0)  # peak at frame 13
    tissue = _curve(t, 11, 0.5, 6.0)  # peak at frame 17
    x = np.zeros((t.size, *labels.shape))
    x += blood[:, None, None] * (labels == 1)
    myo = labels == 2
    x += tissue[:, None, None] * myo
    inner = myo & (depth < 0.5)
    for s in defect_sectors:  # subendocardial defect: half the inner enhancement, throughout
        m = inner & (aha == s)
        x[:, m] -= 0.5 * tissue[:, None]
    for s in rim_sectors:  # artefact: proportional to the blood-tissue contrast
        m = inner & (aha == s)
        x[:, m] -= 0.15 * np.clip(blood - tissue, 0, None)[:, None]
    x += 1.0  # pre-contrast signal
    x += np.random.default_rng(seed).normal(0, noise, x.shape)
    return x, labels, aha


def test_artefact_segments_are_flagged_and_defects_are_not():
    x, labels, aha = _stack(rim_sectors=(2, 5), defect_sectors=(3,), noise=0.02)
    check = check_dark_rim(x, labels, aha)
    assert check.blood_peak_frame == 13
    assert check.suspected == [2, 5]
    by = {s.segment: s for s in check.segments}
    assert by[3].deficit_late < -0.3  # the defect persists ...
    assert not by[3].suspected  # ... and is not called an artefact
    flag = dark_rim_flag(check, "stress")
    assert "segment 2 basal anteroseptal, 5 basal inferolateral" in flag and "stress" in flag


def test_no_artefact_no_flag_and_degenerate_input():
    x, labels, aha = _stack(noise=0.02)
    check = check_dark_rim(x, labels, aha)
    assert check.suspected == [] and len(check.segments) == 6
    assert dark_rim_flag(check, "rest") is None
    # no blood pool, too few frames: nothing checked, no error
    assert check_dark_rim(x, np.where(labels == 1, 0, labels), aha).segments == []
    assert check_dark_rim(x[:5], labels, aha).blood_peak_frame is None
    # without sectors the whole myocardium is one region
    whole = check_dark_rim(_stack(rim_sectors=range(1, 7))[0], labels, None)
    assert whole.suspected == [0]


@pytest.fixture(scope="module")
def rim_exam(tmp_path_factory):
    from qperf_viewer.phantom.cli import write_phantom

    out = tmp_path_factory.mktemp("rim")
    write_phantom(out, 111, "dark_rim_artefact")
    return out


def test_phantom_rim_artefact_is_found_along_phase_encoding(rim_exam):
    """The phantom darkens the inner wall in proportion to cos^2 of the angle to the
    phase-encode axis: every suspected segment faces that axis, and most slices have one."""
    from qperf_viewer.phantom.generate import _plan
    from qperf_viewer.phantom.truth_segmenter import TruthSegmenter
    from qperf_viewer.pipeline import analyze_folder

    ts = TruthSegmenter(rim_exam)
    run = analyze_folder(
        rim_exam / "dicom", segmenter=ts, quantify=False, pdf=False, dicom=False,
        out_dir=rim_exam / "out",
    )  # fmt: skip
    win = _plan(111, "dark_rim_artefact").window_frac
    flagged = 0
    for cond, cr in run.result.conditions.items():
        for sr in cr.slices:
            labels, aha = sr.segmentation.labels, sr.aha
            flags = [f for f in sr.flags if f.startswith("dark-rim artefact suspected")]
            if not flags:
                continue
            flagged += 1
            lv = np.argwhere(labels == 1).mean(axis=0)
            for s in range(1, 17):
                m = np.argwhere((aha == s) & (labels == 2))
                if not m.size or f" {s} " not in flags[0].replace(",", " "):
                    continue
                d = m - lv
                pe = d[:, 0] if win[0] <= win[1] else d[:, 1]
                cos2 = float(np.mean(pe**2 / np.maximum((d**2).sum(axis=1), 1e-9)))
                assert cos2 > 0.5, (cond, sr.position, s, cos2)
    assert flagged >= 5  # of 6 slices


def test_no_dark_rim_flag_without_the_artefact(rim_exam):
    from qperf_viewer.phantom.cli import write_phantom
    from qperf_viewer.phantom.truth_segmenter import TruthSegmenter
    from qperf_viewer.pipeline import analyze_folder

    for variant in ("subendocardial", "dark_rim"):
        exam = rim_exam.parent / f"{variant}_7"
        write_phantom(exam, 7, variant)
        run = analyze_folder(
            exam / "dicom", segmenter=TruthSegmenter(exam), quantify=False, pdf=False,
            dicom=False, out_dir=exam / "out",
        )  # fmt: skip
        for cr in run.result.conditions.values():
            for sr in cr.slices:
                assert not any("dark-rim" in f for f in sr.flags), (variant, sr.flags)


def test_artefact_variant_is_held_out_of_model_training():
    """The variant belongs to the dark-rim family: never in the segmentation model's training
    or validation exams (adding it must not change the shipped model's recipe)."""
    from qperf_viewer.phantom import list_variants
    from qperf_viewer.seg.train.run import is_held_out, make_split

    assert "dark_rim_artefact" in list_variants() and is_held_out("dark_rim_artefact")
    split = make_split("phantom", 20260115, 60, 20, 1)
    seen = {v for _, v in split["train"] + split["val"]}
    assert "dark_rim_artefact" not in seen and "dark_rim" not in seen
    assert "standard" in seen
