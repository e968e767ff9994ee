"""Saved-edit format and analysis mask files: round trip, validation, atomic writes."""

from __future__ import annotations

import numpy as np
import pytest

from qperf_viewer.errors import InputError
from qperf_viewer.seg.edits import (
    SegmentationEdit,
    edit_from_result,
    load_edit,
    mask_path,
    read_mask,
    save_edit,
    write_mask,
)
from qperf_viewer.seg.infer import SliceSegmentation, segmentation_hash


def _labels() -> np.ndarray:
    lab = np.zeros((40, 50), np.uint8)
    lab[10:30, 10:30] = 2
    lab[14:26, 14:26] = 1
    lab[10:30, 30:36] = 3
    return lab


def _edit(**kw) -> SegmentationEdit:
    d = dict(
        condition="stress",
        slice_index=1,
        labels=_labels(),
        parent_hash=segmentation_hash(_labels()),
        source="manual",
        rv_anterior=(10.5, 30.25),
        rv_inferior=(29.5, 30.0),
        endo=np.array([[14.0, 14.0], [14.0, 26.0], [26.0, 20.0]]),
        epi=np.zeros((0, 2)),
    )
    d.update(kw)
    return SegmentationEdit(**d)


def test_round_trip(tmp_path):
    e = _edit()
    p = save_edit(tmp_path / "edits", e)
    assert p.name == "stress_slice1.npz"
    assert [f.name for f in p.parent.iterdir()] == ["stress_slice1.npz"]  # no temp files left
    got = load_edit(p, shape=(40, 50))
    np.testing.assert_array_equal(got.labels, e.labels)
    assert got.labels.dtype == np.uint8
    assert got.rv_anterior == e.rv_anterior and got.rv_inferior == e.rv_inferior
    np.testing.assert_array_equal(got.endo, e.endo)
    assert got.epi.shape == (0, 2)
    assert (got.parent_hash, got.source, got.created) == (e.parent_hash, e.source, e.created)
    assert (got.condition, got.slice_index) == ("stress", 1)


def test_unset_points_round_trip(tmp_path):
    p = save_edit(tmp_path, _edit(rv_anterior=None, rv_inferior=None, source="automatic"))
    got = load_edit(p)
    assert got.rv_anterior is None and got.rv_inferior is None and got.source == "automatic"


def test_overwrite_is_atomic_replacement(tmp_path):
    save_edit(tmp_path, _edit())
    lab = _labels()
    lab[0, 0] = 3
    p = save_edit(tmp_path, _edit(labels=lab))
    assert load_edit(p).labels[0, 0] == 3
    assert len(list(tmp_path.iterdir())) == 1


@pytest.mark.parametrize(
    "kw",
    [
        {"condition": "exercise"},
        {"slice_index": -1},
        {"labels": np.zeros((3, 3, 3), np.uint8)},
        {"labels": np.full((4, 4), 7, np.uint8)},
        {"labels": np.zeros((4, 4), np.int32)},
        {"source": "guess"},
        {"parent_hash": "not a hash"},
        {"rv_anterior": (np.nan, 3.0)},
        {"endo": np.zeros((3, 3))},
        {"created": "yesterday"},
    ],
)
def test_invalid_edits_refused(tmp_path, kw):
    with pytest.raises(InputError):
        save_edit(tmp_path, _edit(**kw))
    assert not list(tmp_path.iterdir())


def test_load_errors_name_the_file(tmp_path):
    p = save_edit(tmp_path, _edit())
    with pytest.raises(InputError, match="shape"):
        load_edit(p, shape=(41, 50))
    bad = tmp_path / "rest_slice0.npz"
    bad.write_bytes(p.read_bytes()[:100])  # truncated
    with pytest.raises(InputError, match="rest_slice0.npz"):
        load_edit(bad)
    renamed = tmp_path / "rest_slice2.npz"
    renamed.write_bytes(p.read_bytes())  # holds stress slice 1
    with pytest.raises(InputError, match="named"):
        load_edit(renamed)
    np.savez(tmp_path / "stress_slice3.npz", labels=_labels())
    with pytest.raises(InputError, match="lacks"):
        load_edit(tmp_path / "stress_slice3.npz")
    with pytest.raises(InputError):
        load_edit(tmp_path / "missing.npz")


def test_edit_from_automatic_result(tmp_path):
    seg = SliceSegmentation(
        labels=_labels(),
        confidence=0.9,
        lv_centre=(20.0, 20.0),
        rv_insertion_anterior=(10.0, 30.0),
        rv_insertion_inferior=(29.0, 30.0),
    )
    e = edit_from_result(seg, "rest", 0)
    assert e.parent_hash == seg.result_hash() and e.source == "automatic"
    got = load_edit(save_edit(tmp_path, e))
    assert got.parent_hash == seg.result_hash()
    # the hash changes with the labels and the points
    lab = _labels()
    lab[0, 0] = 1
    assert segmentation_hash(lab) != segmentation_hash(_labels())
    assert segmentation_hash(_labels(), (1.0, 2.0)) != segmentation_hash(_labels())


def test_mask_files(tmp_path):
    lab = _labels()
    aha = np.where(lab == 2, 7, 0).astype(np.uint8)
    p = write_mask(tmp_path, "rest", 2, lab, aha)
    assert p == mask_path(tmp_path, "rest", 2) and p.parent.name == "masks"
    got_lab, got_aha = read_mask(p)
    np.testing.assert_array_equal(got_lab, lab)
    np.testing.assert_array_equal(got_aha, aha)
    with pytest.raises(InputError):
        write_mask(tmp_path, "rest", 2, lab, aha[:-1])
    with pytest.raises(InputError):
        write_mask(tmp_path, "rest", 2, lab, np.full_like(aha, 17))
    with pytest.raises(InputError):
        write_mask(tmp_path, "both", 2, lab, aha)


def test_fine_tuning_samples(tmp_path):
    """Training samples and app edit files (+ series) are accepted for fine-tuning."""
    from qperf_viewer.seg.train.user_data import load_user_samples, write_training_sample

    lab = _labels()
    imgs = np.random.default_rng(0).random((12, 40, 50)).astype(np.float32)
    write_training_sample(tmp_path / "a.npz", imgs, np.arange(12.0), (0, 1), (1.8, 1.8), lab)
    save_edit(tmp_path, _edit())
    np.savez(
        tmp_path / "stress_slice1_series.npz",
        images=imgs,
        times_s=np.arange(12.0),
        pd_frames=np.array([], int),
        spacing_mm=np.array([2.0, 2.0]),
    )
    recs = load_user_samples(tmp_path)
    assert len(recs) == 2
    for r in recs:
        np.testing.assert_array_equal(r["labels"], lab)
        assert r["lv_centre"] == pytest.approx((19.5, 19.5))
    (tmp_path / "stress_slice1_series.npz").unlink()
    with pytest.raises(InputError, match="series"):
        load_user_samples(tmp_path)


def test_seg_package_does_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys, qperf_viewer.seg, qperf_viewer.seg.infer, qperf_viewer.seg.edits\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_edit_parent_hash_matches_the_pipelines_segmentation():
    """An edit made from an automatic result (seg.edits) names the same hash that the
    pipeline and the GUI compute for that automatic segmentation, so reopening an exam
    accepts the edit, and a different automatic result does not match."""
    from qperf_viewer.pipeline.segmenter import as_segmentation

    lab = _labels()
    auto = SliceSegmentation(lab, 0.9, (20.0, 20.0), (10.5, 30.25), (29.5, 30.0))
    seg = as_segmentation(auto, None)
    assert edit_from_result(auto, "stress", 1).parent_hash == seg.content_hash()
    other = lab.copy()
    other[20, 20] = 2
    assert segmentation_hash(other, (10.5, 30.25), (29.5, 30.0)) != seg.content_hash()


@pytest.mark.slow
def test_export_training_writes_corrected_slices(tmp_path, capsys):
    """A site's corrections become fine-tuning samples: only the manually edited slice is
    written, with the edited labels and the exam's motion-corrected series."""
    from qperf_viewer.cli import main
    from qperf_viewer.phantom.cli import write_phantom
    from qperf_viewer.phantom.truth_io import load_truth
    from qperf_viewer.seg.train.user_data import export_training, load_user_samples

    write_phantom(tmp_path / "exam", 1, "two_slices")
    src = tmp_path / "exam" / "dicom"
    res = tmp_path / "results"
    assert main(["export-training", str(src), "--out", str(tmp_path / "s0"),
                 "--results", str(res)]) == 2  # fmt: skip
    assert "no saved segmentation corrections" in capsys.readouterr().err
    truth = load_truth(tmp_path / "exam")["conditions"]["stress"]["slices"][0]
    lab = np.asarray(truth["labels"], np.uint8).copy()
    lab[lab == 3] = 0  # a user who erased the RV: an edit the model would not make
    save_edit(res / "edits", SegmentationEdit("stress", 0, lab, parent_hash="0" * 16))
    paths = export_training(src, tmp_path / "samples", results_dir=res)
    assert len(paths) == 1 and paths[0].name.endswith("_stress_slice0.npz")
    (rec,) = load_user_samples(tmp_path / "samples")
    np.testing.assert_array_equal(rec["labels"], lab)
    assert rec["images"].shape[1:] == lab.shape
    assert rec["images"].shape[0] == len(rec["times_s"]) >= 40
    assert np.all(np.diff(rec["times_s"]) > 0)
    assert len(rec["pd_frames"]) > 0 and np.isfinite(rec["ts_ms"])
    assert not any(src.rglob("*.npz"))  # nothing written into the DICOM folder


def test_training_commands_without_training_tools_say_so(monkeypatch, tmp_path, capsys):
    """The standalone bundle leaves out qperf_viewer.seg.train: its commands exit with a
    clear message (exit 2), not a traceback."""
    import importlib

    from qperf_viewer.cli import main

    real = importlib.import_module

    def fake(name, *a, **k):
        if name.startswith("qperf_viewer.seg.train"):
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(importlib, "import_module", fake)
    assert main(["export-training", str(tmp_path), "--out", str(tmp_path / "s")]) == 2
    assert main(["evaluate-model"]) == 2
    err = capsys.readouterr().err
    assert err.count("standalone application does not include") == 2
