"""Motion correction (qperf_viewer.quant.motion): resampling helpers, simple moving images and
the project's synthetic exams (truth displacements per frame)."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pytest
from scipy import ndimage as ndi

from qperf_viewer.errors import InputError
from qperf_viewer.quant.motion import (
    MotionResult,
    apply_shifts,
    correct_motion,
    correct_series,
    shift_frames,
)


@functools.cache
def _exam(seed: int, variant: str):
    from qperf_viewer.phantom import generate_exam

    return generate_exam(seed, variant)


def _residual_rms(res: MotionResult, displacement_px: np.ndarray) -> float:
    """RMS (pixels) of estimated minus true shifts, relative to the reference frame.

    The phantom's heart moves rigidly, so this is the myocardial misalignment of every frame
    (all frames show myocardium)."""
    ref = res.reference_frame
    err = res.shifts_px - (displacement_px - displacement_px[ref])
    return float(np.sqrt((err**2).sum(axis=1).mean()))


def _moving_series(
    shifts: np.ndarray, *, n_pd: int = 2, noise: float = 0.01, seed: int = 0
) -> np.ndarray:
    """(T, 80, 96) bolus series: LV disc, myocardial ring and RV moving by ``shifts``
    (content of frame t at p + shifts[t]), static chest wall; PD frames first."""
    rng = np.random.default_rng(seed)
    n_t = shifts.shape[0]
    yy, xx = np.mgrid[0:80, 0:96].astype(float)
    t = np.arange(n_t, dtype=float)

    def bolus(t0, peak):
        x = np.clip(t - t0, 0, None) / 3.0
        return peak * x**2 * np.exp(2 - 2 * x) / 1.0

    curves = {"lv": bolus(8, 3.0) + 0.3, "rv": bolus(5, 4.0) + 0.3, "myo": 0.6 * bolus(10, 1.0)}
    out = np.zeros((n_t, 80, 96))
    wall = ((yy < 12) | (xx < 10)).astype(float) * 0.5
    for k in range(n_t):
        dy, dx = shifts[k]
        r = np.hypot(yy - 42 - dy, xx - 52 - dx)
        lv = np.clip(11 - r, 0, 1)
        myo = np.clip(17 - r, 0, 1) - lv
        rv = np.clip(10 - np.hypot(yy - 40 - dy, xx - 30 - dx), 0, 1) * (1 - np.clip(17 - r, 0, 1))
        if k < n_pd:
            img = 1.0 * (lv + rv) + 0.8 * myo + wall
        else:
            img = (
                0.1 * (lv + rv)
                + 0.15 * myo
                + curves["lv"][k] * lv * 0.2
                + curves["rv"][k] * rv * 0.2
                + curves["myo"][k] * myo * 0.3
                + 0.2 * wall
            )
        out[k] = ndi.gaussian_filter(img, 0.8)
    out += noise * rng.standard_normal(out.shape)
    return out.astype(np.float32)


def _breathing(n_t: int, amp=(3.0, 1.5), start: int = 15, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n_t, dtype=float)
    phase = np.clip(t - start, 0, None) * 2 * np.pi / 4.3
    d = np.stack([amp[0] * (1 - np.cos(phase)) / 2, amp[1] * (1 - np.cos(phase)) / 2], axis=1)
    d[t > start] += rng.normal(0, 0.15, (int((t > start).sum()), 2))
    return d


# ----------------------------------------------------------------------------- resampling


def test_shift_frames_integer_and_linear_ramp():
    rng = np.random.default_rng(1)
    img = rng.random((2, 20, 24)).astype(np.float32)
    out = shift_frames(img, np.array([[2.0, -3.0], [0.0, 0.0]]))
    assert out.dtype == np.float32 and out.shape == img.shape
    np.testing.assert_allclose(out[0, 2:15, 5:18], img[0, 4:17, 2:15], atol=1e-6)
    np.testing.assert_allclose(out[1], img[1], atol=1e-6)
    # cubic convolution reproduces linear functions exactly (away from the border)
    yy, xx = np.mgrid[0:20, 0:24].astype(np.float32)
    ramp = (2.0 * yy + 0.5 * xx)[None]
    sh = np.array([[0.3, -1.7]])
    moved = shift_frames(ramp, sh)
    np.testing.assert_allclose(
        moved[0, 4:-4, 4:-4], (ramp[0] + 2.0 * 0.3 - 0.5 * 1.7)[4:-4, 4:-4], atol=1e-4
    )


def test_clamped_cubic_has_no_lobes_at_a_sharp_edge_and_keeps_smooth_profiles():
    # a bright pool (10) beside a wall (1), sampled half a pixel across the edge
    img = np.ones((1, 12, 16), np.float32)
    img[:, :, :6] = 10.0
    sh = np.array([[0.0, 0.5]])
    plain = shift_frames(img, sh)
    clamped = shift_frames(img, sh, clamp=True)
    # Catmull-Rom's lobe: -1/16 of the step 1.5 px beyond the edge, +1/16 before it
    assert plain[0, 5, 6] == pytest.approx(1.0 - 9.0 / 16, abs=1e-5)
    assert plain[0, 5, 4] == pytest.approx(10.0 + 9.0 / 16, abs=1e-5)
    np.testing.assert_allclose(clamped[0, :, 6:], 1.0, atol=1e-6)
    np.testing.assert_allclose(clamped[0, :, :5], 10.0, atol=1e-6)
    assert clamped[0, 5, 5] == pytest.approx(plain[0, 5, 5])  # the edge pixel itself: 5.5
    # smooth profiles (a quadratic bowl) and whole-pixel shifts keep the cubic values
    yy, xx = np.mgrid[0:20, 0:24].astype(np.float32)
    bowl = (0.05 * (yy - 9.3) ** 2 + 0.03 * (xx - 11.8) ** 2)[None]
    for s in ([[0.4, -0.7]], [[2.0, -1.0]]):
        a = shift_frames(bowl, np.array(s))[0, 4:-4, 4:-4]
        b = shift_frames(bowl, np.array(s), clamp=True)[0, 4:-4, 4:-4]
        far = np.abs(np.mgrid[4:16, 4:20][0] - 9.3 + s[0][0]) > 1.5
        np.testing.assert_allclose(b[far], a[far], atol=1e-5)


def test_corrected_series_does_not_undershoot_its_frames():
    d = _breathing(40)
    d[15:] = np.round(d[15:] * 2) / 2 + 0.5  # half-pixel positions during the first pass
    imgs = _moving_series(d, noise=0.0)
    res = correct_motion(imgs, pd_frames=(0, 1))
    lo = imgs.min(axis=(1, 2))
    assert np.all(res.corrected.min(axis=(1, 2)) >= lo - 1e-6)
    plain = shift_frames(imgs, res.shifts_px)
    assert np.any(plain.min(axis=(1, 2)) < lo - 1e-4)  # what the clamp removes


def _coil_series():
    """(T, Y, X) series of one textured anatomy (2 PD frames, 24 dynamic frames half of them
    moved by (3, 2) px) under a receive coil fixed in the image; the coil (Y, X); the heart."""
    rng = np.random.default_rng(4)
    ny, nx = 96, 112
    yy, xx = np.mgrid[0:ny, 0:nx].astype(float)
    body = ((yy - 48) / 40) ** 2 + ((xx - 56) / 50) ** 2 < 1
    tex = ndi.gaussian_filter(rng.random((ny, nx)), 2.0)
    heart = np.hypot(yy - 50, xx - 60) < 14
    anat = body * (0.5 + 2.0 * (tex - tex.mean()) + 1.0 * heart)
    coil = np.exp(0.008 * (xx - 56) + 0.005 * (yy - 48) + 0.00008 * (xx - 56) ** 2)
    shifts = [(0, 0)] * 2 + [((3, 2) if k % 4 in (1, 2) else (0, 0)) for k in range(24)]
    imgs = np.stack([np.roll(anat, s, axis=(0, 1)) * coil for s in shifts]).astype(np.float32)
    return imgs, coil, heart, shifts


def test_coil_shading_does_not_follow_the_moving_heart(monkeypatch):
    """The anatomy does not change, so every corrected frame should match the (corrected) PD
    frame over the heart; the coil stays put while the heart moves by (3, 2) px, and without
    dividing it out the moved frames read up to 3% off (measured: 3.4%)."""
    import qperf_viewer.quant.motion as mo

    imgs, coil, heart, shifts = _coil_series()

    def spread(flatten: bool) -> float:
        monkeypatch.setattr(mo, "COIL_FLATTEN", flatten)
        res = correct_motion(imgs, (0, 1))
        ref = shifts[res.reference_frame]
        core = np.roll(ndi.binary_erosion(heart, iterations=3), ref, axis=(0, 1))
        ratio = np.median(res.corrected[2:][:, core] / res.corrected[1][core], axis=1)
        return float(np.abs(ratio - 1.0).max())

    assert spread(True) < 0.015
    assert spread(False) > 0.025
    est = mo.coil_estimate(imgs, (0, 1))
    assert est.shape == coil.shape and est.dtype == np.float32
    ratio = (est / coil)[heart]
    assert ratio.max() / ratio.min() < 1.1  # the shading's shape, up to a scale, at the heart


def test_apply_shifts_labels_round_trip_and_dtype():
    labels = np.zeros((30, 40), np.uint8)
    labels[10:20, 12:25] = 2
    labels[13:17, 15:20] = 1
    shifts = np.array([[0.0, 0.0], [3.0, -2.0], [-1.4, 2.6]])
    at_frames = apply_shifts(labels, shifts, direction="to_frames")
    assert at_frames.dtype == np.uint8 and at_frames.shape == (3, 30, 40)
    assert set(np.unique(at_frames)) <= {0, 1, 2}
    np.testing.assert_array_equal(at_frames[1, 13:23, 10:23], labels[10:20, 12:25])
    back = apply_shifts(at_frames, shifts, direction="to_reference")
    np.testing.assert_array_equal(
        back[:, 5:25, 5:35], np.broadcast_to(labels, back.shape)[:, 5:25, 5:35]
    )
    with pytest.raises(ValueError):
        apply_shifts(labels, shifts, direction="sideways")


# ------------------------------------------------------------------- simple moving images


def test_recovers_known_shifts_through_contrast_change():
    d = _breathing(40)
    imgs = _moving_series(d)
    res = correct_motion(imgs, (0, 1), pixel_spacing_mm=(2.0, 2.0))
    assert res.corrected.shape == imgs.shape and res.corrected.dtype == np.float32
    assert res.shifts_px.shape == (40, 2)
    np.testing.assert_allclose(res.shifts_px[res.reference_frame], 0.0)
    assert _residual_rms(res, d) < 0.2
    assert np.all(np.isfinite(res.corrected))
    # the corrected series is steadier than the acquired one in the heart region
    heart = res.weight > 0.5
    dyn = slice(2, None)
    assert res.corrected[dyn][:, heart].std(axis=0).mean() < imgs[dyn][:, heart].std(axis=0).mean()


def test_static_series_stays_put():
    imgs = _moving_series(np.zeros((36, 2)), seed=3)
    res = correct_motion(imgs, (0, 1))
    assert np.abs(res.shifts_px).max() < 0.15


def test_forced_reference_and_shift_convention():
    d = _breathing(36, seed=2)
    imgs = _moving_series(d, seed=2)
    res = correct_motion(imgs, (0, 1), reference_frame=30)
    assert res.reference_frame == 30
    np.testing.assert_allclose(res.corrected[30], imgs[30], atol=1e-5)
    # shifts are reference -> frame: labels drawn on the reference grid land on each frame
    np.testing.assert_allclose(res.shifts_px, d - d[30], atol=0.3)


def test_degenerate_inputs_flag_instead_of_failing():
    few = np.random.default_rng(0).random((4, 40, 40)).astype(np.float32)
    res = correct_motion(few, (0, 1))
    assert np.all(res.shifts_px == 0) and any("not corrected" in f for f in res.flags)
    flat = np.zeros((20, 40, 40), np.float32)
    res = correct_motion(flat)
    assert np.all(res.shifts_px == 0) and res.flags
    imgs = _moving_series(_breathing(30))
    imgs[7, 10:20, 10:20] = np.nan
    res = correct_motion(imgs, (0, 1))
    assert np.all(np.isfinite(res.corrected)) and np.all(np.isfinite(res.shifts_px))
    with pytest.raises(InputError):
        correct_motion(np.zeros((10, 10)))
    with pytest.raises(InputError):
        correct_motion(imgs, (0, 1), reference_frame=99)


# ------------------------------------------------------------------------ synthetic exams


@pytest.mark.parametrize(("seed", "variant"), [(1, "standard"), (5, "random")])
def test_phantom_residual_misalignment_below_half_pixel(seed, variant):
    ex = _exam(seed, variant)
    rms = []
    for cond, cd in ex.exam.conditions.items():
        for k, s in enumerate(cd.slices):
            truth = ex.truth[cond].slices[k]
            res = correct_motion(
                s.images, s.pd_frames, pixel_spacing_mm=s.geometry.pixel_spacing_mm
            )
            r = _residual_rms(res, truth.displacement_px)
            assert r < 0.5, f"{cond} slice {k}: residual {r:.2f} px"
            assert res.reference_frame not in s.pd_frames
            rms.append(r)
            if s.pd_frames:  # PD frames registered too
                err = res.shifts_px - (
                    truth.displacement_px - truth.displacement_px[res.reference_frame]
                )
                assert np.abs(err[list(s.pd_frames)]).max() < 0.6
    assert float(np.sqrt(np.mean(np.square(rms)))) < 0.3


@pytest.mark.parametrize("seed", [0, 2])
def test_reference_frame_is_taken_from_the_first_pass(monkeypatch, seed):
    """Breath-hold through the first pass (frames 2-15), free breathing after: the reference is
    a breath-hold frame, so the first-pass frames, which carry the flow, are not resampled by a
    fractional shift. With the reference at the median position of the whole series it lay
    0.4-0.7 px off the breath-hold."""
    from qperf_viewer.quant import motion

    d = _breathing(40, seed=seed)
    imgs = _moving_series(d, seed=seed)
    res = correct_motion(imgs, (0, 1), pixel_spacing_mm=(2.0, 2.0))
    assert np.abs(d[res.reference_frame]).max() < 0.05
    assert np.abs(res.shifts_px[2:16]).max() < 0.1
    assert _residual_rms(res, d) < 0.2
    monkeypatch.setattr(motion, "REFERENCE_FROM_FIRST_PASS", False)
    res = correct_motion(imgs, (0, 1), pixel_spacing_mm=(2.0, 2.0))
    assert np.hypot(*d[res.reference_frame]) > 0.3
    assert np.abs(res.shifts_px[2:16]).max() > 0.3


def test_registration_band_limits_unwindowed_rendered_frames(monkeypatch):
    """A noise-free exam rendered without the k-space window (subendocardial seed 107): its
    sharp partial-volume edges are not band-limited like an acquired image, and registering
    them as they are misaligned the first pass by up to 0.68 px (stress slice 1: RMS 0.25 px
    against 0.07 px with the taper). The registration estimates on frames tapered above half
    Nyquist (``BAND_LIMIT_FROM``)."""
    from qperf_viewer.phantom import generate_exam
    from qperf_viewer.quant import motion

    ex = generate_exam(107, "subendocardial", noiseless=True)

    def residuals(cond: str, k: int) -> tuple[float, float]:
        s, truth = ex.exam.conditions[cond].slices[k], ex.truth[cond].slices[k]
        res = correct_motion(s.images, s.pd_frames, pixel_spacing_mm=s.geometry.pixel_spacing_mm)
        d = truth.displacement_px
        err = (res.shifts_px - (d - d[res.reference_frame]))[s.dynamic_frames]
        e = np.hypot(*err.T)
        return float(np.sqrt((e**2).mean())), float(e.max())

    for cond, cd in ex.exam.conditions.items():
        for k in range(len(cd.slices)):
            rms, worst = residuals(cond, k)
            assert rms < 0.2 and worst < 0.35, f"{cond} slice {k}: {rms:.2f} / {worst:.2f} px"
    monkeypatch.setattr(motion, "BAND_LIMIT_FROM", 0.0)
    rms, worst = residuals("stress", 1)
    assert rms > 0.2 and worst > 0.6, (rms, worst)


def test_pd_frames_stay_with_the_first_dynamic_frames(monkeypatch):
    """Noise-free exam standard 501, stress apical slice: the PD frames' mutual-information
    match lies 0.1 px from the truth, the edge stage 3.2 px. When the two disagree, the one
    nearer the first dynamic frames (acquired next, in the same breath-hold) is kept; keeping
    the edge stage misplaced the PD normalisation of the Gd conversion (segments -25% to
    +20% in region fits)."""
    from qperf_viewer.phantom import generate_exam
    from qperf_viewer.quant import motion

    ex = generate_exam(501, "standard", noiseless=True)
    s, truth = ex.exam.conditions["stress"].slices[2], ex.truth["stress"].slices[2]
    assert s.pd_frames

    def pd_error() -> tuple[float, list[str]]:
        res = correct_motion(s.images, s.pd_frames, pixel_spacing_mm=s.geometry.pixel_spacing_mm)
        d = truth.displacement_px
        err = (res.shifts_px - (d - d[res.reference_frame]))[list(s.pd_frames)]
        return float(np.hypot(*err.T).max()), res.flags

    worst, flags = pd_error()
    assert worst < 0.3, worst
    assert not any("edge stage only" in f for f in flags)
    monkeypatch.setattr(motion, "PD_NEIGHBOUR_FRAMES", 0)
    worst, flags = pd_error()
    assert worst > 2.0 and any("edge stage only" in f for f in flags), (worst, flags)


def test_phantom_without_motion_stays_put():
    ex = _exam(3, "no_motion")
    for cd in ex.exam.conditions.values():
        for s in cd.slices:
            res = correct_motion(
                s.images, s.pd_frames, pixel_spacing_mm=s.geometry.pixel_spacing_mm
            )
            assert np.sqrt((res.shifts_px**2).sum(axis=1).mean()) < 0.2
            assert np.abs(res.shifts_px).max() < 0.5


def test_correct_series_and_labels_to_frames():
    ex = _exam(1, "standard")
    s = ex.exam.conditions["stress"].slices[1]
    truth = ex.truth["stress"].slices[1]
    out, res = correct_series(s)
    assert out.images is res.corrected and out.pd_frames == s.pd_frames
    assert dataclasses.replace(out, images=s.images).times_s is s.times_s
    # truth labels (reference = breath-hold position) moved to the frames by the estimated
    # shifts agree with the truth displacements to within half a pixel (shift of a
    # breath-hold reference frame is zero in truth)
    ref = res.reference_frame
    assert np.abs(truth.displacement_px[ref]).max() < 0.5
    lab_frames = apply_shifts(truth.labels, res.shifts_px - res.shifts_px[ref])
    lab_truth = apply_shifts(truth.labels, truth.displacement_px - truth.displacement_px[ref])
    myo = lab_truth == 2
    agree = (lab_frames[myo] == 2).mean()
    assert agree > 0.9


# ------------------------------------------------------------------------------ real data


def _read_series(folder) -> np.ndarray:
    import pydicom

    ds = [pydicom.dcmread(f) for f in sorted(folder.iterdir()) if f.is_file()]
    ds.sort(key=lambda d: int(d.InstanceNumber))
    return np.stack([d.pixel_array.astype(np.float32) for d in ds])


@pytest.mark.realdata
def test_real_exams_follow_the_hand_drawn_heart(shared_data):
    """Real free-breathing perfusion series (no PD frames) whose manual labels follow the
    heart frame by frame: on the series where the labelled heart moves (centroid spread > 0.9
    px over the labelled first-pass frames), the estimated shifts account for most of it."""
    root = shared_data / "real_labelled"
    if not root.is_dir():
        pytest.skip("real_labelled data not present")
    before = after = 0.0
    n = 0
    for exam in sorted(p for p in root.iterdir() if p.is_dir()):
        truth = np.load(exam / "truth.npz")
        for folder in sorted((exam / "dicom").iterdir()):
            cond = "stress" if folder.name.startswith("1") else "rest"
            labels = truth[f"{cond}_{folder.name.split('_')[1]}_labels"]
            frames = np.flatnonzero((labels > 0).reshape(len(labels), -1).any(axis=1))
            cen = np.array([ndi.center_of_mass(labels[f] > 0) for f in frames])
            spread = float(np.sqrt(((cen - cen.mean(axis=0)) ** 2).sum(axis=1).mean()))
            if spread <= 0.9 or n >= 5:  # moving series only, five at most (test time)
                continue
            images = _read_series(folder)
            assert images.shape == labels.shape
            res = correct_motion(images, (), pixel_spacing_mm=(2.2857, 2.2857))
            est = res.shifts_px[frames]
            diff = (est - est.mean(axis=0)) - (cen - cen.mean(axis=0))
            rest = float(np.sqrt((diff**2).sum(axis=1).mean()))
            assert rest < spread + 0.2, f"{exam.name} {folder.name}: {spread:.2f} -> {rest:.2f} px"
            before += spread
            after += rest
            n += 1
    assert n >= 3
    assert after < 0.6 * before


@pytest.mark.parametrize(
    ("seed", "variant", "k", "before", "after"),
    [(211, "dark_rim", 0, 0.17, 0.14), (512, "philips", 1, 0.24, 0.19)],
)
def test_phase_basis_rounds_go_on_while_a_phase_still_moves(
    monkeypatch, seed, variant, k, before, after
):
    """Noise-free exams dark_rim 211 and philips 512, a stress slice each: the heart holds still
    through the first pass, but the first pass's frames share their contrast with no other
    phase, and after the two rounds of phase-basis building and Gauss-Newton registration
    that were once all, they sat up to 0.19 and 0.26 px off (dark_rim 211's worst segment then
    read 7.0%). Further rounds while a phase image still moves (``BASIS_MORE_ROUNDS``) take
    them to 0.10 and 0.14 px (dark_rim 211: 1.1%)."""
    from qperf_viewer.phantom import generate_exam
    from qperf_viewer.quant import motion

    ex = generate_exam(seed, variant, noiseless=True)
    s, truth = ex.exam.conditions["stress"].slices[k], ex.truth["stress"].slices[k]

    def worst() -> float:
        res = correct_motion(s.images, s.pd_frames, pixel_spacing_mm=s.geometry.pixel_spacing_mm)
        d = truth.displacement_px
        err = (res.shifts_px - (d - d[res.reference_frame]))[s.dynamic_frames]
        return float(np.hypot(*err.T).max())

    assert worst() < after
    monkeypatch.setattr(motion, "BASIS_MORE_ROUNDS", 0)
    assert worst() > before
