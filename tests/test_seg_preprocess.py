"""Preprocessing: exact crop <-> DICOM maps, resampling round trips, timing, normalisation."""

from __future__ import annotations

import numpy as np
import pytest

from qperf_viewer.errors import InputError
from qperf_viewer.seg.preprocess import (
    Augment,
    PreprocessParams,
    bolus_arrival,
    crop_to_native,
    make_crop,
    preprocess_series,
    sample_crop,
    temporal_weights,
)


@pytest.mark.parametrize("spacing", [(1.0, 1.0), (1.827, 1.827), (2.2857, 1.9), (0.7, 0.9)])
def test_crop_coordinate_maps_are_exact_inverses(spacing):
    crop = make_crop((70.3, 91.7), spacing, (150, 192), PreprocessParams())
    i = np.array([0.0, 17.25, 87.5, 175.0])
    j = np.array([3.0, 0.0, 120.125, 175.0])
    r, c = crop.crop_to_native(i, j)
    i2, j2 = crop.native_to_crop(r, c)
    np.testing.assert_allclose(i2, i, atol=1e-10)
    np.testing.assert_allclose(j2, j, atol=1e-10)
    # one crop pixel is pixel_mm in the DICOM grid
    r1, c1 = crop.crop_to_native(1.0, 1.0)
    r0, c0 = crop.crop_to_native(0.0, 0.0)
    assert (r1 - r0) * spacing[0] == pytest.approx(1.0)
    assert (c1 - c0) * spacing[1] == pytest.approx(1.0)
    # centre of the crop grid maps onto the requested centre
    rc, cc = crop.crop_to_native(87.5, 87.5)
    assert (rc, cc) == pytest.approx((70.3, 91.7))


def test_resample_round_trip_reproduces_linear_image():
    """Bilinear sampling reproduces linear functions exactly: native -> crop -> native."""
    spacing = (2.1, 1.7)
    ny, nx = 120, 140
    rr, cc = np.mgrid[0:ny, 0:nx].astype(float)
    img = (0.3 * rr - 0.2 * cc + 5.0)[None].astype(np.float32)
    crop = make_crop((60.2, 70.9), spacing, (ny, nx), PreprocessParams())
    x = sample_crop(img, crop)
    # crop values equal the function at the mapped coordinates
    ci, cj = np.meshgrid(np.arange(176.0), np.arange(176.0), indexing="ij")
    r, c = crop.crop_to_native(ci, cj)
    inside = (r >= 0) & (r <= ny - 1) & (c >= 0) & (c <= nx - 1)
    np.testing.assert_allclose(x[0][inside], (0.3 * r - 0.2 * c + 5.0)[inside], atol=1e-4)
    back = crop_to_native(x, crop)
    rs, cs = crop.native_bbox(margin=0)
    # interior pixels of the crop's footprint come back unchanged
    sub = (slice(rs.start + 1, rs.stop - 1), slice(cs.start + 1, cs.stop - 1))
    np.testing.assert_allclose(back[0][sub], img[0][sub], atol=1e-4)
    # outside the footprint: the fill value
    assert back[0][0, 0] == 0.0 or rs.start == 0


def test_inverse_map_of_one_hot_labels_is_exact_on_dicom_grid():
    """Labels -> one-hot -> crop (1 mm) -> DICOM grid -> argmax gives the labels back."""
    rng = np.random.default_rng(3)
    ny, nx = 96, 96
    rr, cc = np.mgrid[0:ny, 0:nx]
    lab = np.zeros((ny, nx), np.uint8)
    d = np.hypot(rr - 48.3, cc - 47.1)
    lab[d < 14] = 2
    lab[d < 9] = 1
    lab[(np.hypot(rr - 48, cc - 30) < 10) & (lab == 0)] = 3
    oh = np.stack([(lab == k).astype(np.float32) for k in range(4)])
    for spacing in [(1.8, 1.8), (2.3, 2.3), (1.5, 2.0)]:
        centre = (48 + rng.normal(), 47 + rng.normal())
        crop = make_crop(centre, spacing, (ny, nx), PreprocessParams())
        back = crop_to_native(sample_crop(oh, crop), crop, fill=np.array([1.0, 0, 0, 0]))
        got = np.argmax(back, axis=0)
        rs, cs = crop.native_bbox(margin=0)
        np.testing.assert_array_equal(got[rs, cs], lab[rs, cs])


def test_identity_augmentation_matches_inference_sampling():
    rng = np.random.default_rng(0)
    frames = rng.random((3, 80, 90)).astype(np.float32)
    crop = make_crop((40.0, 44.5), (1.9, 1.9), (80, 90), PreprocessParams(), size=64)
    a = sample_crop(frames, crop)
    b = sample_crop(frames, crop, aug=Augment(affine=np.eye(2)))
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_temporal_weights_normalised_and_nearest_outside():
    t = np.arange(10) * 0.8
    grid = np.array([-5.0, 0.0, 3.3, 20.0])
    w = temporal_weights(t, grid, 1.5)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-6)
    assert w[0, 0] == 1.0 and w[-1, -1] == 1.0


def _synthetic_series(gd: bool, n_pd: int = 2, t_arr: float = 6.0):
    ny, nx = 100, 110
    rr, cc = np.mgrid[0:ny, 0:nx].astype(float)
    t = np.arange(n_pd + 50) * 0.9
    lv = np.hypot(rr - 50, cc - 60) < 10
    rv = (np.hypot(rr - 50, cc - 38) < 10) & ~lv
    x = np.clip(t - t_arr, 0, None)
    rv_c = 5 * (x / 3) ** 2 * np.exp(2 - 2 * x / 3)
    x2 = np.clip(t - t_arr - 3, 0, None)
    lv_c = 4 * (x2 / 4) ** 2 * np.exp(2 - 2 * x2 / 4)
    g = np.zeros((len(t), ny, nx), np.float32)
    g[:, lv] = lv_c[:, None]
    g[:, rv] = rv_c[:, None]
    if gd:
        return g[n_pd:], t[n_pd:], (), lv
    s = 500 * (1 - np.exp(-0.1 * (1.0 + 4.5 * g))) + 50
    s[:n_pd] = 1000
    return s.astype(np.float32), t, tuple(range(n_pd)), lv


@pytest.mark.parametrize("gd", [False, True])
def test_arrival_localisation_and_normalisation(gd):
    imgs, t, pd, lv = _synthetic_series(gd)
    pre = preprocess_series(imgs, t, pd, (2.0, 2.0))
    assert 4.0 <= pre.t_arrival_s <= 6.5
    r, c = pre.lv_guess
    assert np.hypot(r - 50, c - 60) < 4  # the late-peaking pool is the LV
    assert pre.x.shape == (24, 176, 176)
    assert pre.x.max() == pytest.approx(1.0, abs=0.25)  # robust percentile of the peak


def test_bolus_arrival_on_curve():
    t = np.arange(40) * 1.0
    x = np.clip(t - 8.0, 0, None) / 3.0  # gamma variate: arrival 8 s, peak 11 s
    curve = x**3 * np.exp(3 - 3 * x)
    imgs = np.zeros((40, 20, 20), np.float32) + curve[:, None, None]
    t_arr, base, _ = bolus_arrival(imgs, t, PreprocessParams())
    assert 6.5 <= t_arr <= 9.0
    assert base.max() <= 8


def test_bad_input_raises():
    with pytest.raises(InputError):
        preprocess_series(np.zeros((5, 10)), np.arange(5), (), (1, 1))
    with pytest.raises(InputError):
        preprocess_series(np.zeros((3, 10, 10)), np.arange(3), (0, 1), (1, 1))
    with pytest.raises(InputError):
        preprocess_series(np.zeros((3, 10, 10)), np.arange(4), (), (1, 1))
