"""The shipped ONNX model: loading errors, accuracy on held-out phantom slices, real data."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from qperf_viewer import config
from qperf_viewer.errors import ModelError
from qperf_viewer.seg.infer import load_model, segment_series
from qperf_viewer.seg.metrics import dice, insertion_angle_error_deg

MODELS = config.models_dir()
HAVE_MODEL = (MODELS / "qperf_seg.onnx").is_file()
needs_model = pytest.mark.skipif(not HAVE_MODEL, reason="models/qperf_seg.onnx not built yet")

#: Mean myocardium Dice measured on the 16 real labelled slices (models/README.md: 0.668), minus
#: a small margin; the test fails if a new model or preprocessing does worse.
REAL_MYO_DICE_FLOOR = 0.62


def test_missing_model_raises_model_error(tmp_path):
    with pytest.raises(ModelError, match="missing"):
        load_model(tmp_path)
    with pytest.raises(ModelError, match="missing"):
        segment_series(
            np.zeros((10, 32, 32), np.float32), np.arange(10.0), (), None, models_dir=tmp_path
        )


@needs_model
def test_corrupt_model_raises_model_error(tmp_path):
    shutil.copy(MODELS / "metadata.json", tmp_path / "metadata.json")
    (tmp_path / "qperf_seg.onnx").write_bytes(b"not an onnx model")
    with pytest.raises(ModelError, match="damaged"):
        load_model(tmp_path)
    meta = json.loads((MODELS / "metadata.json").read_text())
    meta.pop("onnx_sha256")
    (tmp_path / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="onnxruntime"):
        load_model(tmp_path)
    (tmp_path / "metadata.json").write_text("{broken")
    with pytest.raises(ModelError, match="metadata"):
        load_model(tmp_path)


@needs_model
def test_model_loads_with_metadata():
    m = load_model()
    assert m.metadata["input"]["shape"][1] == m.params.n_frames
    assert m.metadata["output"]["classes"][2] == "myocardium"
    assert load_model() is m  # cached


def _phantom_slice(seed: int, variant: str, condition: str, k: int):
    from qperf_viewer.phantom import generate_exam
    from qperf_viewer.seg.train.data import motion_correct_truth

    pe = generate_exam(seed, variant)
    s = pe.exam.conditions[condition].slices[k]
    st = pe.truth[condition].slices[k]
    return motion_correct_truth(s.images, st.displacement_px), s, st


@needs_model
@pytest.mark.slow
@pytest.mark.parametrize(
    "seed,variant,condition,k",
    [
        (961315, "three_tesla", "stress", 1),  # aorta predicted as a larger second 'LV'
        (960816, "ge", "rest", 2),  # first crop candidate on the aorta, ring broken
        (961016, "dark_rim", "stress", 1),  # first candidate plausible-looking, no RV
    ],
)
def test_heldout_slices_where_the_heart_was_lost(seed, variant, condition, k):
    """Held-out test exams (seeds never trained on) on which the full-field-of-view path once
    segmented the aorta instead of the heart: the heart must be found and delineated."""
    images, s, st = _phantom_slice(seed, variant, condition, k)
    seg = segment_series(images, s.times_s, s.pd_frames, s.geometry)
    assert dice(seg.labels == 2, st.labels == 2) >= 0.9
    assert dice(seg.labels == 1, st.labels == 1) >= 0.9
    assert "RV missing" not in seg.flags


def _phantom_slices(seed: int, variant: str):
    from qperf_viewer.phantom import generate_exam
    from qperf_viewer.seg.train.data import motion_correct_truth

    pe = generate_exam(seed, variant)
    cond = pe.exam.conditions["stress"]
    for s, st in list(zip(cond.slices, pe.truth["stress"].slices, strict=True))[:2]:
        yield motion_correct_truth(s.images, st.displacement_px), s, st


@needs_model
@pytest.mark.slow
def test_heldout_phantom_slices_meet_accuracy():
    """'mirrored' is a variant family held out of training (models/README.md).

    RV insertion angle: below 5 deg on average (the README's target against the published
    2.65 deg mean) and below 10 deg on every point (the analysis issue's per-slice target).
    An insertion point is the mean of a few epicardial contact pixels, so one pixel more or
    less at the end of the contact arc moves it by about 5 deg at this radius: on phantom
    generator version 3 (sharp breathing frames) this exam's stress slice 1 reads 5.4 deg at
    its inferior point (0.3 deg on version 2; 2.8 deg mean over the four points)."""
    errors = []
    for images, s, st in _phantom_slices(990001, "mirrored"):
        seg = segment_series(images, s.times_s, s.pd_frames, s.geometry)
        assert seg.labels.shape == st.labels.shape and seg.labels.dtype == np.uint8
        assert dice(seg.labels == 2, st.labels == 2) >= 0.93  # the published figure
        assert dice(seg.labels == 1, st.labels == 1) >= 0.93
        sp = s.geometry.pixel_spacing_mm
        c = st.lv_centre
        for got, true in (
            (seg.rv_insertion_anterior, st.rv_insertion_anterior),
            (seg.rv_insertion_inferior, st.rv_insertion_inferior),
        ):
            errors.append(insertion_angle_error_deg(c, got, true, sp))
            assert errors[-1] < 10
        assert 0.0 <= seg.confidence <= 1.0
    assert np.mean(errors) < 5, errors


@needs_model
@pytest.mark.realdata
@pytest.mark.slow
def test_real_labelled_exams_dice_floor(shared_data):
    from qperf_viewer.seg.train.evaluate import evaluate_real

    root = shared_data / "real_labelled"
    if not root.is_dir():
        pytest.skip("real_labelled data absent")
    res = evaluate_real(root)
    assert len(res["slices"]) == 16
    assert res["myo_dice_mean"] >= REAL_MYO_DICE_FLOOR


@needs_model
def test_model_sessions_are_cached_per_thread_count():
    """The pipeline runs one onnxruntime thread per inference (two slices at once); a
    standalone load keeps two. Each count gets its own cached session."""
    from qperf_viewer.pipeline.segmenter import OnnxSegmenter

    two = load_model(threads=2)
    one = OnnxSegmenter().load()
    assert one is not two and load_model(threads=1) is one
    assert one.session.get_session_options().intra_op_num_threads == 1
    assert two.session.get_session_options().intra_op_num_threads == 2
