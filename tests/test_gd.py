"""Signal to Gd conversion (qperf_viewer.quant.gd): look-ups, guards and flags on simple arrays,
accuracy on the project's synthetic exams (noiseless signal against the true Gd)."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pytest
from scipy import ndimage as ndi

from qperf_viewer.errors import InputError
from qperf_viewer.exam import SliceSeries
from qperf_viewer.geometry import SliceGeometry
from qperf_viewer.quant.gd import (
    FLAG_ALREADY_GD,
    FLAG_NO_PD,
    FLAG_NO_TS,
    SaturationRecoveryLUT,
    TableLUT,
    detect_baseline_frames,
    header_marks_gd,
    images_to_gd,
    native_t1_ms,
    signal_to_gd,
)

GEOM = SliceGeometry((1, 0, 0, 0, 1, 0), (0, 0, 0), (2.0, 2.0), (4, 5))


@functools.cache
def _exam(seed: int, variant: str, noiseless: bool = False):
    from qperf_viewer.phantom import generate_exam

    return generate_exam(seed, variant, noiseless=noiseless)


def _curve_series(gd: np.ndarray, *, t1_ms=1000.0, ts_ms=100.0, m0c=800.0, n_pd=2, r1=4.5):
    """(T, 4, 5) ideal saturation-recovery signal of a Gd curve (T_dyn,), PD frames first."""
    r1_s = 1000.0 / t1_ms + r1 * gd
    sr = m0c * (1.0 - np.exp(-ts_ms / 1000.0 * r1_s))
    sig = np.concatenate([np.full(n_pd, m0c), sr])
    return np.broadcast_to(sig[:, None, None], (sig.size, 4, 5)).astype(np.float32).copy()


def _bolus(n=40, start=8, peak=4.0):
    t = np.arange(n, dtype=float)
    x = np.clip(t - start, 0, None) / 4.0
    return peak * x**2 * np.exp(2 - 2 * x) + 0.3 * (t > start) * (1 - np.exp(-(t - start) / 20))


# ------------------------------------------------------------------------------ look-ups


def test_saturation_recovery_lut_round_trip_and_cap():
    lut = SaturationRecoveryLUT(100.0)
    r1 = np.linspace(0.2, 60.0, 200)
    np.testing.assert_allclose(lut.r1(lut.ratio(r1)), r1, rtol=1e-9)
    assert lut.ratio_min == 0.0 and 0.99 < lut.ratio_max < 1.0
    assert np.isfinite(lut.r1(np.array([1.0, 2.0, -1.0]))).all()
    with pytest.raises(InputError):
        SaturationRecoveryLUT(0.0)


def test_table_lut_equals_ideal_lut_when_built_from_it():
    ideal = SaturationRecoveryLUT(114.0)
    table = TableLUT.from_lut(ideal, np.linspace(0.0, 90.0, 600))
    ratios = np.linspace(0.0, ideal.ratio(60.0), 500)
    np.testing.assert_allclose(table.r1(ratios), ideal.r1(ratios), rtol=1e-4, atol=1e-4)
    r1 = np.linspace(0.5, 80.0, 300)
    np.testing.assert_allclose(table.ratio(r1), ideal.ratio(r1), atol=1e-6)
    # same Gd from either look-up
    gd = _bolus()
    series = _curve_series(gd, ts_ms=114.0)
    a = images_to_gd(series, (0, 1), ts_ms=114.0)
    b = images_to_gd(series, (0, 1), ts_ms=None, lut=table)
    np.testing.assert_allclose(a.gd_mmol_l, b.gd_mmol_l, atol=2e-3)
    with pytest.raises(InputError):
        TableLUT([0.1, 0.3, 0.2], [1.0, 2.0, 3.0])
    with pytest.raises(InputError):
        TableLUT([0.1, 0.2], [1.0])


# ------------------------------------------------------------------- conversion on arrays


def test_exact_inversion_with_pd_frames_and_r1_scaling():
    gd = _bolus()
    series = _curve_series(gd)
    res = images_to_gd(series, (0, 1), ts_ms=100.0)
    assert res.method == "pd" and res.has_gd and res.flags == []
    assert res.gd_mmol_l.shape == series.shape and res.gd_mmol_l.dtype == np.float32
    np.testing.assert_allclose(res.gd_mmol_l[2:, 2, 3], gd, atol=1e-4)
    np.testing.assert_array_equal(res.gd_mmol_l[:2], 0.0)
    np.testing.assert_allclose(res.r10_per_s, 1.0, rtol=1e-4)
    assert res.valid.all() and res.baseline_frames[0] == 2
    assert max(res.baseline_frames) <= 2 + 8  # before the bolus foot (frame 8 of the curve)
    np.testing.assert_array_equal(res.gd_dynamic, res.gd_mmol_l[2:])
    # MBF-relevant: Gd scales with 1/r1 (so AIF and tissue share it)
    res2 = images_to_gd(series, (0, 1), ts_ms=100.0, r1=9.0)
    np.testing.assert_allclose(res2.gd_mmol_l, res.gd_mmol_l / 2, atol=1e-5)


def test_baseline_detection_and_override():
    gd = _bolus(start=10)
    series = _curve_series(gd)
    base, flags = detect_baseline_frames(series, (0, 1))
    assert base[0] == 2 and 5 <= len(base) <= 10 and not flags
    res = images_to_gd(series, (0, 1), ts_ms=100.0, baseline_frames=(2, 3, 4))
    assert res.baseline_frames == (2, 3, 4)
    with pytest.raises(InputError):
        images_to_gd(series, (0, 1), ts_ms=100.0, baseline_frames=(0, 3))


def test_ts_default_and_missing_ts_gives_no_gd():
    series = _curve_series(_bolus())
    res = images_to_gd(series, (0, 1), ts_ms=None, default_ts_ms=100.0)
    assert res.has_gd and res.ts_ms == 100.0 and any("default 100 ms" in f for f in res.flags)
    for pd in ((0, 1), ()):
        res = images_to_gd(series, pd, ts_ms=None)
        assert res.gd_mmol_l is None and res.gd_dynamic is None and not res.has_gd
        assert FLAG_NO_TS in res.flags and res.method == "none"
        assert not res.valid.any()
    s = SliceSeries(
        images=series, times_s=np.arange(series.shape[0]), geometry=GEOM, pd_frames=(0, 1)
    )
    res = signal_to_gd(s)
    assert res.gd_mmol_l is None and FLAG_NO_TS in res.flags


def test_no_pd_frames_assume_native_t1():
    gd = _bolus()
    for b0, tissue in ((1.5, "myocardium"), (3.0, "blood"), (1.5, "blood")):
        t1 = native_t1_ms(b0, tissue)
        series = _curve_series(gd, t1_ms=t1, n_pd=0)
        res = images_to_gd(series, (), ts_ms=100.0, field_strength_t=b0, tissue=tissue)
        assert res.method == "t1_assumed" and FLAG_NO_PD in res.flags
        np.testing.assert_allclose(res.r10_per_s, 1000.0 / t1, rtol=1e-5)
        np.testing.assert_allclose(res.gd_mmol_l[:, 0, 0], gd, atol=1e-3)
        # baseline signal gives M0*C
        np.testing.assert_allclose(res.s_pd, 800.0, rtol=1e-4)
    assert native_t1_ms(1.5, "myocardium") == 1000.0 and native_t1_ms(3.0, "blood") == 1850.0
    assert native_t1_ms(None, "blood") == 1550.0
    # a label map picks blood T1 for LV/RV pixels
    labels = np.zeros((4, 5), np.uint8)
    labels[1, :] = 1
    series = _curve_series(gd, t1_ms=1550.0, n_pd=0)
    res = images_to_gd(series, (), ts_ms=100.0, tissue=labels)
    np.testing.assert_allclose(res.r10_per_s[1], 1 / 1.55, rtol=1e-5)
    np.testing.assert_allclose(res.r10_per_s[0], 1.0, rtol=1e-5)
    np.testing.assert_allclose(res.gd_mmol_l[:, 1, 0], gd, atol=1e-3)


def test_signal_at_or_above_pd_is_guarded():
    gd = _bolus(peak=30.0)  # drives the ratio to 1 (saturation)
    series = _curve_series(gd)
    series[20:24, 0, 0] = 900.0  # S > S_pd (noise)
    series[25, 1, 1] = -5.0  # negative (rescale intercept)
    series[:, 3, 4] = 0.0  # air: no PD signal
    series[10, 2, 2] = np.nan
    res = images_to_gd(series, (0, 1), ts_ms=100.0)
    assert np.all(np.isfinite(res.gd_mmol_l)) and np.all(np.isfinite(res.r10_per_s))
    assert res.n_clipped[0, 0] >= 4 and res.n_clipped[1, 1] >= 1
    assert any("S >= S_pd" in f for f in res.flags)
    assert not res.valid[3, 4] and res.gd_mmol_l[:, 3, 4].max() == 0.0
    assert res.gd_mmol_l.max() < 25.0


def test_already_gd_only_when_marked():
    gd = np.broadcast_to(_bolus()[:, None, None], (40, 4, 5)).astype(np.float32)
    s = SliceSeries(images=gd, times_s=np.arange(40.0), geometry=GEOM, ts_ms=None)
    res = signal_to_gd(s)  # signal without TS: never taken as Gd
    assert res.gd_mmol_l is None and FLAG_NO_TS in res.flags
    res = signal_to_gd(s, already_gd=True)
    assert res.method == "already_gd" and res.flags[0].startswith(FLAG_ALREADY_GD)
    assert "user" in res.flags[0]
    np.testing.assert_array_equal(res.gd_mmol_l, gd)
    res = signal_to_gd(dataclasses.replace(s, units="gd"))
    assert res.method == "already_gd" and "header" in res.flags[0]
    assert header_marks_gd(["DERIVED", "PRIMARY", "GD"], "perf")
    assert header_marks_gd("DERIVED\\SECONDARY\\GD_MMOL_L", None)
    assert header_marks_gd(None, "Perfusion rest [Gd]")
    assert header_marks_gd((), "MBF input Gd mmol/L")
    assert not header_marks_gd(["ORIGINAL", "PRIMARY", "M"], "Gd perfusion stress")
    assert not header_marks_gd(None, None)


def test_bad_inputs_raise():
    series = _curve_series(_bolus())
    with pytest.raises(InputError):
        images_to_gd(series, (0, 99), ts_ms=100.0)
    with pytest.raises(InputError):
        images_to_gd(series, (0, 1), ts_ms=100.0, r1=0.0)
    with pytest.raises(InputError):
        images_to_gd(series, (), ts_ms=100.0, native_t1=-1.0)


# ------------------------------------------------------------------------ synthetic exams


def _check_region(res, truth, label, tol_rel, erode=1):
    """Region-mean Gd over the breath-hold (no motion) frames against the true Gd above its
    own baseline; returns the largest error relative to the true peak."""
    mask = ndi.binary_erosion(truth.labels == label, iterations=erode)
    frames = [f for f in truth.reference_frames if f in res.dynamic_frames]
    true = truth.gd_mmol_l - truth.gd_mmol_l[list(res.baseline_frames)].mean(axis=0)
    est_c = res.gd_mmol_l[frames][:, mask].mean(axis=1)
    true_c = true[frames][:, mask].mean(axis=1)
    err = float(np.abs(est_c - true_c).max() / true_c.max())
    assert err < tol_rel, f"label {label}: {err * 100:.1f}% of peak"
    return err


def test_phantom_noiseless_signal_gives_true_gd():
    ex = _exam(1, "standard", noiseless=True)
    for cond, cd in ex.exam.conditions.items():
        for k, s in enumerate(cd.slices):
            truth = ex.truth[cond].slices[k]
            res = signal_to_gd(s, field_strength_t=ex.exam.field_strength_t)
            assert res.method == "pd" and res.ts_ms == s.ts_ms
            assert res.valid[truth.labels > 0].mean() > 0.99
            _check_region(res, truth, 2, 0.02)  # myocardium
            _check_region(res, truth, 1, 0.04, erode=2)  # LV blood: saturation, partial volume
        aif = signal_to_gd(cd.aif)
        assert aif.method == "pd" and aif.ts_ms == cd.aif.ts_ms and aif.has_gd
        assert np.all(np.isfinite(aif.gd_mmol_l))


def test_phantom_noise_leaves_region_means_unbiased():
    ex = _exam(1, "standard", noiseless=True)
    rng = np.random.default_rng(7)
    for cond in ("stress", "rest"):
        s = ex.exam.conditions[cond].slices[1]
        truth = ex.truth[cond].slices[1]
        clean = signal_to_gd(s)
        frames = [f for f in truth.reference_frames if f in clean.dynamic_frames]
        myo = ndi.binary_erosion(truth.labels == 2, iterations=1)
        lv = ndi.binary_erosion(truth.labels == 1, iterations=1)
        base_sig = float(np.median(s.images[len(s.pd_frames) + 1][truth.labels == 2]))
        for snr in (10, 20):
            z = rng.standard_normal(s.images.shape) + 1j * rng.standard_normal(s.images.shape)
            images = np.abs(s.images + base_sig / snr * z).astype(np.float32)
            noisy = signal_to_gd(dataclasses.replace(s, images=images))
            assert all("S >= S_pd" in f for f in noisy.flags)
            assert noisy.valid[myo].all()
            a = clean.gd_mmol_l[frames][:, myo].mean(axis=1)
            b = noisy.gd_mmol_l[frames][:, myo].mean(axis=1)
            assert np.abs(b - a).max() < 0.03 * a.max()  # myocardium: unbiased
            # LV blood pixels near saturation: the noise cap keeps the mean within 10%
            a = clean.gd_mmol_l[frames][:, lv].mean(axis=1)
            b = noisy.gd_mmol_l[frames][:, lv].mean(axis=1)
            assert np.abs(b - a).max() < (0.2 if snr == 10 else 0.1) * a.max()
            # ... and a region-mean signal curve converts without bias (e.g. an AIF)
            curve = images_to_gd(images[:, lv].mean(axis=1), s.pd_frames, ts_ms=s.ts_ms)
            ref = images_to_gd(s.images[:, lv].mean(axis=1), s.pd_frames, ts_ms=s.ts_ms)
            assert curve.gd_mmol_l.shape == (s.n_frames,)
            assert np.abs(curve.gd_mmol_l - ref.gd_mmol_l).max() < 0.03 * ref.gd_mmol_l.max()


def test_phantom_without_pd_frames_flags_and_uses_t1_defaults():
    ex = _exam(2, "no_pd", noiseless=True)
    b0 = ex.exam.field_strength_t
    s = ex.exam.conditions["stress"].slices[1]  # stress: no residual Gd at baseline
    truth = ex.truth["stress"].slices[1]
    assert s.pd_frames == ()
    res = signal_to_gd(s, field_strength_t=b0)
    assert res.method == "t1_assumed" and FLAG_NO_PD in res.flags
    np.testing.assert_allclose(res.r10_per_s[res.valid], 1000.0 / native_t1_ms(b0), rtol=1e-5)
    _check_region(res, truth, 2, 0.02)
    # with labels, blood pixels use the blood T1
    res = signal_to_gd(s, field_strength_t=b0, tissue=truth.labels)
    _check_region(res, truth, 1, 0.05, erode=2)
    aif = signal_to_gd(ex.exam.conditions["stress"].aif, field_strength_t=b0)
    assert FLAG_NO_PD in aif.flags
    np.testing.assert_allclose(
        aif.r10_per_s[aif.valid], 1000.0 / native_t1_ms(b0, "blood"), rtol=1e-5
    )
