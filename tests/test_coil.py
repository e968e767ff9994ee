"""Coil shading against the breathing heart (qperf_viewer.quant.coil), undone for the AIF
taken from the perfusion series' LV blood pool (qperf_viewer.pipeline.aif)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from qperf_viewer.quant.coil import MAX_GRADIENT_PER_PX, coil_gradient, undo_coil_motion

N_T, N_PD = 60, 3


def _pool_curve() -> np.ndarray:
    """(T,) signal of a blood pool: PD frames, baseline, first pass, recirculation, washout."""
    t = np.arange(N_T, dtype=float)
    curve = 0.25 + 0.6 * ((t - 12) / 5.0).clip(0) ** 2 * np.exp(-((t - 12) / 5.0).clip(0))
    curve += 0.08 * np.exp(-0.5 * ((t - 30) / 4.0) ** 2) + 0.004 * (t - 12).clip(0)
    curve[:N_PD] = 1.0
    return curve


def _breathing() -> np.ndarray:
    """(T, 2) shifts (pixels): breath-hold until frame 35, then breathing (5-frame period)."""
    t = np.arange(N_T, dtype=float)
    on = t >= 35
    s = np.zeros((N_T, 2))
    s[on, 0] = 3.0 * np.sin(2 * np.pi * (t[on] - 35) / 5.0) ** 2
    s[on, 1] = -1.5 * np.sin(2 * np.pi * (t[on] - 35) / 5.0) ** 2
    return s


def _series(g: tuple[float, float], shifts: np.ndarray, noise: float = 0.0):
    """Corrected (T, Y, X) series of a textured pool whose frames carry the coil ratio
    exp(g . (s_t - s0)); the pool mask and the true curve."""
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:64, 0:64]
    pool = (yy - 32) ** 2 + (xx - 32) ** 2 <= 10**2
    texture = 1.0 + 0.1 * ndi.gaussian_filter(rng.standard_normal((64, 64)), 3) * 10
    curve = _pool_curve()
    s0 = shifts[:N_PD].mean(axis=0)
    coil = np.exp((shifts - s0) @ np.asarray(g))
    frames = curve[:, None, None] * texture[None] * coil[:, None, None]
    frames = frames * np.where(pool, 1.0, 0.6)[None]
    if noise:
        frames = frames + noise * rng.standard_normal(frames.shape)
    return frames.astype(np.float32), pool, curve


DYN = list(range(N_PD, N_T))
PD = list(range(N_PD))


@pytest.mark.parametrize("noise", [0.0, 0.01])
def test_gradient_is_recovered_from_the_breathing(noise):
    g = (0.004, -0.002)
    frames, pool, _ = _series(g, _breathing(), noise)
    fit = coil_gradient(frames, _breathing(), pool, PD, DYN)
    assert fit is not None
    assert np.allclose(fit.gradient, g, atol=0.0006), fit
    assert fit.stderr < 0.001


def test_undo_gives_every_frame_the_normalising_frames_shading():
    g = (0.004, -0.002)
    shifts = _breathing()
    frames, pool, curve = _series(g, shifts)
    before = frames[:, pool].mean(axis=1) / frames[0, pool].mean()
    out, fit, flags = undo_coil_motion(frames, shifts, pool, PD, DYN)
    after = out[:, pool].mean(axis=1) / out[0, pool].mean()
    assert fit is not None and fit.applied and flags == []
    assert np.abs(before / curve - 1).max() > 0.012  # 3.4 px against 0.4%/px
    assert np.abs(after / curve - 1).max() < 0.002


def test_without_motion_or_with_a_steep_fit_nothing_changes():
    frames, pool, _ = _series((0.004, -0.002), np.zeros((N_T, 2)))
    out, fit, flags = undo_coil_motion(frames, np.zeros((N_T, 2)), pool, PD, DYN)
    assert fit is None and flags == [] and np.array_equal(out, frames)
    steep = (2 * MAX_GRADIENT_PER_PX, 0.0)
    frames, pool, _ = _series(steep, _breathing())
    out, fit, flags = undo_coil_motion(frames, _breathing(), pool, PD, DYN)
    assert fit is not None and not fit.applied and np.array_equal(out, frames)
    assert flags and "not corrected" in flags[0]


def test_phantom_gradient_matches_its_coil(monkeypatch):
    """Noise-free exam no_aif 213, rest basal slice: the heart breathes through a coil whose
    log rises 0.19%/px across the LV pool; fitted from the pool's late signal, the coil ratio
    of every frame is found to within a quarter of its largest value (0.9%)."""
    from qperf_viewer.phantom import generate_exam
    from qperf_viewer.phantom import signal as sg
    from qperf_viewer.quant.motion import correct_motion

    coils = []
    original = sg.coil_sensitivity

    def record(shape, rng, centre):
        coils.append(original(shape, rng, centre))
        return coils[-1]

    monkeypatch.setattr(sg, "coil_sensitivity", record)
    ex = generate_exam(213, "no_aif", noiseless=True)
    s, truth = ex.exam.conditions["rest"].slices[0], ex.truth["rest"].slices[0]
    coil = [c for c in coils if c.shape == s.images.shape[1:]][
        len(ex.exam.conditions["stress"].slices)
    ]
    res = correct_motion(s.images, s.pd_frames, pixel_spacing_mm=s.geometry.pixel_spacing_mm)
    pool = truth.labels == 1
    fit = coil_gradient(res.corrected, res.shifts_px, pool, s.pd_frames, s.dynamic_frames)
    assert fit is not None
    s0 = res.shifts_px[list(s.pd_frames)].mean(axis=0)
    gy, gx = np.gradient(np.log(coil.astype(np.float64)))
    rr, cc = np.nonzero(pool)
    true = [
        ndi.map_coordinates(gy, [rr + s0[0], cc + s0[1]], order=1).mean(),
        ndi.map_coordinates(gx, [rr + s0[0], cc + s0[1]], order=1).mean(),
    ]
    # what the frames see: the coil's log ratio g . (s_t - s0), along the breathing
    ds = res.shifts_px[list(s.dynamic_frames)] - s0
    want, got = ds @ np.asarray(true), ds @ np.asarray(fit.gradient)
    assert np.abs(want).max() > 0.008  # up to 0.9% on the breathing frames
    assert np.abs(got - want).max() < 0.0025, (np.abs(got - want).max(), np.abs(want).max())
