"""Synthetic stress/rest perfusion exams with ground truth, fully in memory.

:func:`generate_exam` draws an anatomy, oblique short-axis slice planes, heart rates and
timing, blood-pool curves, per-pixel MBF (smooth, with coronary-territory stress defects) and
BTEX tissue curves, renders every frame with partial volume, respiratory motion, coil shading,
finite k-space resolution and Rician noise, and returns a
:class:`~qperf_viewer.phantom.model.PhantomExam` (signal images before integer quantisation,
truth, DICOM style). Deterministic per (seed, variant); the anatomy, kinetics and noise
streams depend on the seed only, so e.g. 'standard' and 'mirrored' of one seed show the same
heart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydicom.uid import generate_uid
from scipy.ndimage import gaussian_filter
from scipy.signal import lfilter

from qperf_viewer.exam import (
    LABEL_MYO,
    AifSeries,
    ConditionData,
    PerfusionExam,
    SliceSeries,
)
from qperf_viewer.geometry import SliceGeometry, base_to_apex_normal, position_along_normal_mm
from qperf_viewer.phantom import anatomy as an
from qperf_viewer.phantom import kinetics as kin
from qperf_viewer.phantom import motion as mo
from qperf_viewer.phantom import signal as sg
from qperf_viewer.phantom.aha import aha_segment_map, slice_positions
from qperf_viewer.phantom.model import (
    ConditionTruth,
    DicomStyle,
    PhantomExam,
    SliceTruth,
)
from qperf_viewer.phantom.variants import VariantOptions, resolve_variant

#: Bump when the generated exams change (the cached demo and benchmark exams are then
#: regenerated). 2: the descending aorta no longer intrudes into the heart (see
#: :func:`qperf_viewer.phantom.anatomy._clear_aorta`). 3: breathing displaces each frame by
#: rendering the anatomy at its displacement (rounded to ``motion.STEP_PX``), no longer by
#: interpolating the reference frame, which blurred every displaced frame.
GENERATOR_VERSION = "3"
HEMATOCRIT = kin.HEMATOCRIT
R1 = kin.R1_L_PER_MMOL_S
FINE_DT_S = 0.1
_UID_ROOT = "qperf-viewer-phantom"

STRESS_DESCRIPTIONS = (
    "Perfusion stress adenosine",
    "ADENOSINE PERF SAX",
    "tfl_perf_stress_regadenoson",
    "perf stress",
    "STRESS first pass MoCo off",
)
REST_DESCRIPTIONS = (
    "Perfusion rest",
    "REST PERF SAX",
    "tfl_perf_rest",
    "perf rest",
    "REST first pass",
)
AMBIGUOUS = ("Perfusion SAX", "perf_sax", "first pass perfusion", "SR_perf")
MATRICES = ((144, 192), (160, 192), (128, 160), (144, 176), (176, 208), (150, 192), (192, 144))


@dataclass
class _Plan:
    """Exam-wide random draws."""

    opts: VariantOptions
    anat: an.Anatomy
    geoms: list[SliceGeometry]
    positions: list[str | None]
    field_t: float
    m0_scale: float
    snr: float
    window_frac: tuple[float, float]
    hamming: float
    ts_ms: float
    ts_aif_ms: float
    ve: float
    ps_base: float
    vb_base: float
    mbf_global: dict[str, float]
    mbf_harm: np.ndarray
    endo_grad: dict[str, float]
    defects: list[dict]
    delay_s: float


# --------------------------------------------------------------------------- geometry


def _slice_geometries(
    anat: an.Anatomy, rng: np.random.Generator, n_slices: int, square: bool
) -> list[SliceGeometry]:
    h = anat.heart
    if square:
        shape = (int(rng.choice([160, 176, 192])),) * 2
    else:
        shape = tuple(int(v) for v in MATRICES[int(rng.integers(len(MATRICES)))])
    sp = float(np.round(rng.uniform(1.8, 2.4), 4))
    # Slice normal: the LV axis tilted by a few degrees; standard display: row x col = -n.
    tilt_ax = np.cross(h.axis, rng.normal(size=3))
    tilt_ax /= np.linalg.norm(tilt_ax)
    n = an._rotate(h.axis, tilt_ax, np.radians(rng.uniform(0, 9)))
    ref = np.array([0.0, 0.0, 1.0]) - n[2] * n
    row = np.cross(ref, n)
    row /= np.linalg.norm(row)
    row = an._rotate(row, n, rng.uniform(0, 2 * np.pi))
    col = np.cross(-n, row)  # row x col = -n
    col /= np.linalg.norm(col)
    iop = tuple(float(np.round(v, 6)) for v in (*row, *col))
    row, col = np.array(iop[:3]), np.array(iop[3:])
    thickness = float(rng.choice([8.0, 8.0, 10.0]))
    zeta = (
        np.linspace(rng.uniform(0.2, 0.28), rng.uniform(0.5, 0.55), 2)
        if n_slices == 2
        else np.linspace(rng.uniform(0.18, 0.26), rng.uniform(0.72, 0.8), n_slices)
    )
    # Field-of-view centre: near the LV centre of the mid-ventricle, offset in-plane.
    z_mid = float(np.mean(zeta)) * h.length_mm
    fov_c = h.origin + z_mid * h.axis
    fov_c = fov_c + row * rng.uniform(-25, 25) + col * rng.uniform(-25, 25)
    ny, nx = shape
    geoms = []
    for z in zeta * h.length_mm:
        p = h.origin + z * h.axis
        centre = fov_c + ((p - fov_c) @ n) * n
        origin = centre - (nx - 1) / 2 * sp * row - (ny - 1) / 2 * sp * col
        geoms.append(
            SliceGeometry(
                orientation=iop,
                origin_mm=tuple(float(np.round(v, 4)) for v in origin),
                pixel_spacing_mm=(sp, sp),
                shape=shape,
                slice_thickness_mm=thickness,
            )
        )
    return geoms


def _aif_geometry(geom: SliceGeometry, factor: float) -> SliceGeometry:
    """Low-resolution geometry covering about the same field of view."""
    ny, nx = geom.shape
    sp = geom.pixel_spacing_mm[0] * factor
    shape = (int(round(ny / factor)), int(round(nx / factor)))
    centre = geom.centre_mm()
    origin = (
        centre - (shape[1] - 1) / 2 * sp * geom.row_dir - (shape[0] - 1) / 2 * sp * geom.col_dir
    )
    return SliceGeometry(
        orientation=geom.orientation,
        origin_mm=tuple(float(np.round(v, 4)) for v in origin),
        pixel_spacing_mm=(float(np.round(sp, 4)),) * 2,
        shape=shape,
        slice_thickness_mm=geom.slice_thickness_mm,
    )


def _mirror_geometry(geom: SliceGeometry) -> SliceGeometry:
    """Columns flipped and the row vector negated: the same pixels in patient space."""
    nx = geom.shape[1]
    origin = geom.pixel_to_patient(0.0, nx - 1.0)
    r = -geom.row_dir
    iop = tuple(float(v) + 0.0 for v in (*r, *geom.col_dir))
    return SliceGeometry(
        orientation=iop,
        origin_mm=tuple(float(np.round(v, 4)) for v in origin),
        pixel_spacing_mm=geom.pixel_spacing_mm,
        shape=geom.shape,
        slice_thickness_mm=geom.slice_thickness_mm,
    )


# --------------------------------------------------------------------------- perfusion


def _draw_defects(rng: np.random.Generator, mode: str) -> list[dict]:
    if mode == "none":
        return []
    if mode == "random":
        k = int(rng.choice([0, 1, 1, 2]))
    else:
        k = int(rng.choice([1, 1, 2]))
    territories = {  # AHA angle centre (deg from anterior insertion), zeta range
        "LAD": (30.0, (0.3, 1.1)),
        "RCA": (165.0, (-0.1, 0.75)),
        "LCX": (270.0, (-0.1, 0.9)),
    }
    names = rng.choice(list(territories), size=k, replace=False)
    out = []
    for name in names:
        centre, (z0, z1) = territories[str(name)]
        sub = mode == "subendocardial" or (mode == "random" and rng.random() < 0.4)
        out.append(
            {
                "territory": str(name),
                "centre_deg": float(centre + rng.uniform(-20, 20)),
                "half_width_deg": float(rng.uniform(35, 70)),
                "zeta": (float(z0 + rng.uniform(-0.1, 0.15)), float(z1)),
                "severity": float(rng.uniform(0.35, 0.65)),
                "subendocardial": bool(sub),
                "depth": float(rng.uniform(0.4, 0.6)),
            }
        )
    return out


def mbf_field(
    plan: _Plan, condition: str, phi_deg: np.ndarray, depth: np.ndarray, zeta: np.ndarray
) -> np.ndarray:
    """True MBF (mL/min/g) at heart angle ``phi_deg`` (from the anterior insertion),
    transmural depth (0 endo .. 1 epi) and relative long-axis position ``zeta``."""
    g = plan.mbf_global[condition]
    phi = np.radians(phi_deg)
    var = np.ones_like(phi)
    for k, a, ph in plan.mbf_harm:
        var = var + a * np.cos(k * phi - ph)
    var = var * (1.0 + plan.endo_grad[condition] * (0.5 - depth))
    var = var * (1.0 + 0.06 * (zeta - 0.5))
    mbf = g * var
    if condition == "stress":
        for d in plan.defects:
            dphi = (phi_deg - d["centre_deg"] + 180.0) % 360.0 - 180.0
            ang = 1.0 / (1.0 + np.exp((np.abs(dphi) - d["half_width_deg"]) / 6.0))
            z0, z1 = d["zeta"]
            zz = 1.0 / (1.0 + np.exp(-(zeta - z0) / 0.04)) / (1.0 + np.exp((zeta - z1) / 0.04))
            tr = 1.0
            if d["subendocardial"]:
                tr = 1.0 / (1.0 + np.exp((depth - d["depth"]) / 0.07))
            mbf = mbf * (1.0 - d["severity"] * ang * zz * tr)
    return mbf.astype(np.float32)


def _ps_vb(plan: _Plan, mbf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Permeability-surface product (mL/min/g) and blood volume as functions of MBF
    (capillary recruitment under vasodilation)."""
    ps = plan.ps_base * (0.75 + 0.25 * mbf)
    vb = plan.vb_base + 0.012 * mbf
    return ps, vb


def _extracellular(fine_t: np.ndarray, cb: np.ndarray, ve: float, delay: float, tau: float):
    """Slow extracellular uptake: ``ve * Cp`` delayed and dispersed (mmol/L tissue)."""
    cp = np.interp(fine_t - delay, fine_t, cb) / (1.0 - HEMATOCRIT)
    q = float(np.exp(-(fine_t[1] - fine_t[0]) / tau))
    cp0 = cp[0]
    return ve * (cp0 + lfilter([1.0 - q], [1.0, -q], cp - cp0))


# --------------------------------------------------------------------------- timing


@dataclass
class _Timing:
    hr_bpm: float
    beat_s: np.ndarray  # (T,) R-wave times relative to the condition origin
    trig_ms: list[float]  # per slice
    trig_aif_ms: float | None
    n_pd: int
    t0_ms: float  # earliest trigger (condition time origin)

    def times(self, trig_ms: float) -> np.ndarray:
        return self.beat_s + (trig_ms - self.t0_ms) / 1000.0


def _timing(
    rng: np.random.Generator,
    condition: str,
    n_slices: int,
    aif: bool,
    n_pd: int,
    max_frames: int | None = None,
):
    hr = rng.uniform(80, 100) if condition == "stress" else rng.uniform(60, 75)
    n = int(rng.integers(50, 71))
    if max_frames is not None:
        n = max(min(n, int(max_frames)), n_pd + 2)
    rr0 = 60.0 / hr
    eps = np.zeros(n)
    e = 0.0
    for i in range(n):
        e = 0.7 * e + rng.normal(0, 0.025)
        eps[i] = e
    rr = rr0 * (1.0 + eps)
    beats = np.concatenate([[0.0], np.cumsum(rr[:-1])])
    trig_aif = float(rng.uniform(8, 25)) if aif else None
    first = float(rng.uniform(70, 120)) if aif else float(rng.uniform(20, 60))
    step = min(float(rng.uniform(130, 175)), (rr.min() * 1000 - first - 60) / n_slices)
    trig = [round(first + k * step, 1) for k in range(n_slices)]
    t0 = min(trig + ([trig_aif] if trig_aif is not None else []))
    hr_mean = 60.0 / float(np.mean(rr))
    return _Timing(hr_mean, beats, trig, trig_aif, n_pd, t0)


# --------------------------------------------------------------------------- frames


def _texture(rng: np.random.Generator, shape: tuple[int, int], amp: float, sigma: float):
    t = gaussian_filter(rng.standard_normal(shape), sigma)
    t /= t.std() + 1e-12
    return (1.0 + amp * t).astype(np.float32)


def _phase(trig_ms: float, rr_ms: float) -> float:
    """Cavity scale of the cardiac phase at ``trig_ms`` after the R wave."""
    peak = 0.38 * rr_ms
    return float(1.0 - 0.2 * np.exp(-(((trig_ms - peak) / (0.22 * rr_ms)) ** 2)))


#: Dark-rim artefact of the ``dark_rim_artefact`` variant: signal drop of the inner myocardium as a
#: fraction of the blood-myocardium signal difference, and the inner depth fraction it covers
#: (fading linearly to zero there).
RIM_AMPLITUDE = 0.6
RIM_DEPTH = 0.45


def _rim_drop(
    plan, rend, sel: np.ndarray, s_blood: np.ndarray, s_myo: np.ndarray, n_pd: int
) -> np.ndarray:
    """Signal drop (T, N) of the N myocardial pixels ``sel`` ((Y, X) bool) with signals
    ``s_myo`` (T, N): RIM_AMPLITUDE x the blood-myocardium difference where the blood is
    brighter, in the inner RIM_DEPTH of the wall, weighted by cos^2 of the angle between the
    pixel's radial direction and the phase-encode axis (the axis with the smaller acquired
    k-space fraction); 0 in PD frames."""
    rr, cc = np.nonzero(sel)
    dr, dc = rr - rend.lv_centre[0], cc - rend.lv_centre[1]
    pe = dr if plan.window_frac[0] <= plan.window_frac[1] else dc
    cos2 = (pe / np.maximum(np.hypot(dr, dc), 1e-6)) ** 2
    inner = np.clip(1.0 - np.nan_to_num(rend.depth[sel], nan=1.0) / RIM_DEPTH, 0.0, 1.0)
    diff = np.clip(s_blood[:, None] - s_myo, 0.0, None)
    drop = RIM_AMPLITUDE * diff * (cos2 * inner)[None, :]
    drop[:n_pd] = 0.0
    return drop.astype(np.float32)


def _render_condition_slice(
    plan: _Plan,
    condition: str,
    geom: SliceGeometry,
    times: np.ndarray,
    n_pd: int,
    ts_ms: float,
    curves: dict[str, np.ndarray],
    tissue_lookup,
    disp_px: np.ndarray,
    phase: float,
    shift_mm: np.ndarray,
    rng_tex: np.random.Generator,
    rng_noise: np.random.Generator,
    noiseless: bool,
    low_res: bool = False,
    snr_factor: float = 1.0,
    kspace_window: bool | None = None,
):
    """Render one slice's frames: returns (images (T,Y,X), gd (T,Y,X), render, mbf map)."""
    rend = an.render_slice(plan.anat, geom, phase=phase, shift_mm=shift_mm)
    ny, nx = geom.shape
    nt = times.size
    t1 = sg.native_t1_ms(plan.field_t)
    pd = sg.proton_density()
    names = an.CLASS_NAMES
    ns = an.N_STATIC

    # Uniform per-class Gd curves (T, C).
    gd_cls = np.zeros((nt, len(names)))
    for k, name in enumerate(names):
        if name in curves:
            gd_cls[:, k] = curves[name]
    rv_mbf = np.full(1, 0.6 * plan.mbf_global[condition])
    gd_cls[:, an.C["rv_wall"]] = tissue_lookup(rv_mbf, times)[0]

    def sig(m0, t1v, gd):
        s = sg.saturation_recovery(m0, t1v, gd, ts_ms, R1)
        if n_pd:
            s[:n_pd] = np.broadcast_to(m0, s[:n_pd].shape)
        return s

    s_cls = sig(pd[None, :], t1[None, :], gd_cls).astype(np.float32)  # (T, C)
    gd_cls = gd_cls.astype(np.float32)
    # Static layer.
    sfr = rend.static_frac.reshape(ns, -1)
    tex_s = _texture(rng_tex, (ny, nx), 0.08, 1.0 if low_res else 1.5)
    static = (s_cls[:, :ns] @ sfr).reshape(nt, ny, nx) * tex_s
    gd_static = (gd_cls[:, :ns] @ sfr).reshape(nt, ny, nx)

    def moving_layer(r):
        """(signal, Gd) (T, Y, X) and cover (Y, X) of the moving layer as rendered in ``r``
        (uniform classes, then the per-pixel myocardium; no texture)."""
        mf = r.moving_frac
        myo_frac = mf[i_myo] + mf[i_pap]
        sel = myo_frac > 0
        # lv_myo + papillary share the pixel's MBF, which moves with the tissue
        mbf_pix = mbf_field(plan, condition, r.phi_deg, r.depth, r.zeta)
        gd_myo_pix = tissue_lookup(mbf_pix[sel], times).astype(np.float32)  # (N, T)
        mfr = mf.reshape(mf.shape[0], -1).copy()
        mfr[i_myo] = 0.0
        mfr[i_pap] = 0.0
        mov = (s_cls[:, ns:] @ mfr).reshape(nt, ny, nx)
        gd_mov = (gd_cls[:, ns:] @ mfr).reshape(nt, ny, nx)
        s_myo = sig(pd[an.C["lv_myo"]], t1[an.C["lv_myo"]], gd_myo_pix.T).astype(np.float32)
        mov[:, sel] += s_myo * myo_frac[sel][None, :]
        if plan.opts.rim_artefact:
            drop = _rim_drop(plan, r, sel, s_cls[:, an.C["lv_blood"]], s_myo, n_pd)
            mov[:, sel] -= drop * myo_frac[sel][None, :]
        gd_mov[:, sel] += gd_myo_pix.T * myo_frac[sel][None, :]
        return mov, gd_mov, mf.sum(axis=0)

    i_myo, i_pap = (an.C[n] - ns for n in ("lv_myo", "papillary"))
    moving, gd_moving, cover = moving_layer(rend)
    mf = rend.moving_frac
    tex_m = _texture(rng_tex, (ny, nx), 0.04, 1.0 if low_res else 1.6)
    # Organ texture: fine mottling of the liver, large blobs (bowel, stomach, spleen) below.
    liver = mf[an.C["liver"] - ns]
    abdo = mf[an.C["abdomen"] - ns]
    fine = _texture(rng_tex, (ny, nx), 0.12, 1.2) - 1.0
    blobs = _texture(rng_tex, (ny, nx), 0.35, 5.0) - 1.0
    tex_m = tex_m * np.clip(1.0 + liver * fine + abdo * blobs, 0.3, None)

    # Respiratory motion of the moving layer: each displaced frame is rendered at its
    # displacement (the sub-pixel part by rendering the anatomy moved by it, the whole-pixel
    # part by an exact shift), so that moving frames keep the partial volume of a sharp
    # acquisition; the smooth texture moves with the tissue by linear interpolation.
    disp_px = np.asarray(disp_px, dtype=float)
    cover_t = np.broadcast_to(cover, moving.shape).astype(np.float32)
    if np.any(disp_px != 0):
        moving, gd_moving, cover_t = moving.copy(), gd_moving.copy(), cover_t.copy()
        whole = np.floor(disp_px + 1e-9)
        frac = np.round(disp_px - whole, 9)
        dy, dx = geom.pixel_spacing_mm
        for fr in np.unique(frac, axis=0):
            idx = np.flatnonzero(np.all(frac == fr, axis=1) & np.any(disp_px != 0, axis=1))
            if idx.size == 0:
                continue
            if np.any(fr != 0):
                moved = np.asarray(shift_mm, dtype=float) + (
                    fr[0] * dy * np.asarray(geom.col_dir) + fr[1] * dx * np.asarray(geom.row_dir)
                )
                rb = an.render_slice(plan.anat, geom, phase=phase, shift_mm=moved)
                m_b, g_b, c_b = moving_layer(rb)
            else:
                m_b, g_b, c_b = moving, gd_moving, cover
            c_b = np.broadcast_to(c_b, m_b.shape)
            stack = np.stack([m_b[idx], g_b[idx], c_b[idx]], axis=1)
            stack = mo.shift_frames(stack, whole[idx])  # whole pixels: exact
            moving[idx], gd_moving[idx], cover_t[idx] = stack[:, 0], stack[:, 1], stack[:, 2]
        tex_t = mo.shift_frames(np.broadcast_to(tex_m, moving.shape), disp_px)
        moving = moving * tex_t
    else:
        moving = moving * tex_m
    # Moving tissue covers the cavity content of the static layer (lung and its vessels).
    f_lung = rend.static_frac[an.C["lung"]]
    f_ves = rend.static_frac[an.C["lung_vessel"]]
    cav = f_lung + f_ves
    w_l = np.where(cav > 0, f_lung / np.maximum(cav, 1e-6), 1.0)[None]
    il, iv = an.C["lung"], an.C["lung_vessel"]
    s_cav = (w_l * s_cls[:, il, None, None] + (1 - w_l) * s_cls[:, iv, None, None]) * tex_s
    g_cav = w_l * gd_cls[:, il, None, None] + (1 - w_l) * gd_cls[:, iv, None, None]
    scale = np.where(cover_t > cav[None], cav[None] / np.maximum(cover_t, 1e-6), 1.0)
    images = static + scale * (moving - cover_t * s_cav)
    gd = gd_static + scale * (gd_moving - cover_t * g_cav)

    # Coil shading, global scale, finite resolution and noise.
    centre = rend.lv_centre
    coil = sg.coil_sensitivity((ny, nx), rng_noise, centre)
    clean = np.clip(images, 0.0, None) * coil[None] * plan.m0_scale
    window = (not noiseless) if kspace_window is None else kspace_window
    if noiseless and not window:
        out = clean.astype(np.float32)
        rng_noise.standard_normal(4)  # keep the stream length independent of the mode
    else:
        myo_base = plan.m0_scale * pd[an.C["lv_myo"]] * (1 - np.exp(-ts_ms / t1[an.C["lv_myo"]]))
        sigma = 0.0 if noiseless else myo_base / (plan.snr * snr_factor)
        g = sg.gfactor_map((ny, nx), rng_noise)
        win = sg.kspace_window((ny, nx), plan.window_frac, plan.hamming) if window else None
        out = sg.acquire(clean, rng_noise, sigma=sigma, gfactor=g, window=win)
    mbf_pix = mbf_field(plan, condition, rend.phi_deg, rend.depth, rend.zeta)
    mbf_map = np.where(rend.labels == LABEL_MYO, mbf_pix, 0.0).astype(np.float32)
    return out.astype(np.float32), gd.astype(np.float32), rend, mbf_map


# --------------------------------------------------------------------------- main


def _uid(seed: int, variant: str, *parts) -> str:
    return generate_uid(entropy_srcs=[_UID_ROOT, str(seed), variant, *map(str, parts)])


def _plan(seed: int, variant: str) -> _Plan:
    opts = resolve_variant(variant, seed)
    rng = np.random.default_rng([seed, 1])
    anat = an.sample_anatomy(np.random.default_rng([seed, 2]), hypertrophy=opts.hypertrophy)
    geoms = _slice_geometries(anat, np.random.default_rng([seed, 3]), opts.n_slices, opts.square)
    field_t = opts.field_strength_t or float(rng.choice([1.5, 1.5, 3.0]))
    dark = opts.dark_rim
    frac_pe = rng.uniform(0.55, 0.7) if dark else rng.uniform(0.75, 1.0)
    frac_ro = rng.uniform(0.8, 1.0)
    window = (frac_pe, frac_ro) if rng.random() < 0.5 else (frac_ro, frac_pe)
    stress_g = rng.uniform(2.0, 3.5)
    rest_g = rng.uniform(0.7, 1.3)
    mk_rng = np.random.default_rng([seed, 4])
    return _Plan(
        opts=opts,
        anat=anat,
        geoms=geoms,
        positions=slice_positions(opts.n_slices),
        field_t=field_t,
        m0_scale=float(rng.uniform(1200, 4000)),
        snr=float(rng.uniform(2.0, 5.0)),
        window_frac=window,
        hamming=0.0 if dark else float(rng.uniform(0.0, 0.5)),
        ts_ms=float(np.round(rng.uniform(100, 200))),
        ts_aif_ms=float(np.round(rng.uniform(20, 30))),
        ve=float(rng.uniform(0.2, 0.3)),
        ps_base=float(rng.uniform(1.0, 1.5)),
        vb_base=float(rng.uniform(0.07, 0.09)),
        mbf_global={"stress": float(stress_g), "rest": float(rest_g)},
        mbf_harm=np.array(
            [[k, mk_rng.uniform(0, 0.07), mk_rng.uniform(0, 6.3)] for k in (1, 2, 3)]
        ),
        endo_grad={
            "stress": float(mk_rng.uniform(-0.05, 0.08)),
            "rest": float(mk_rng.uniform(0.05, 0.15)),
        },
        defects=_draw_defects(mk_rng, opts.defects),
        delay_s=float(rng.uniform(0.3, 1.2)),
    )


def generate_exam(
    seed: int,
    variant: str = "standard",
    *,
    noiseless: bool = False,
    max_frames: int | None = None,
    kspace_window: bool | None = None,
) -> PhantomExam:
    """Generate one synthetic stress/rest exam (see the module docstring).

    noiseless: skip the noise and, unless ``kspace_window`` is True, the k-space window (for
        checks of the signal contract).
    kspace_window: apply the finite k-space sampling window (None: only with noise). Every
        acquired MR image is band-limited by it; without it the rendered images' sharp
        partial-volume edges are not (see ``quant.motion.BAND_LIMIT_FROM``).
    max_frames: cap the number of frames per condition (quick tests only; real exams have
        50-70).
    """
    plan = _plan(seed, variant)
    opts = plan.opts
    rng_k = np.random.default_rng([seed, 5])
    rng_style = np.random.default_rng([seed, 6])
    n_pd = opts.pd_frames if opts.pd_frames is not None else int(rng_k.choice([2, 3]))
    gap_s = float(rng_k.uniform(600, 1200))
    study_uid = _uid(seed, variant, "study")
    conditions: dict[str, ConditionData] = {}
    truths: dict[str, ConditionTruth] = {}
    stress_bolus: dict | None = None
    agent = str(rng_style.choice(["adenosine", "regadenoson"]))
    descr = _descriptions(rng_style, opts, agent)

    for ci, cond in enumerate(("stress", "rest")):
        tim = _timing(rng_k, cond, opts.n_slices, opts.aif_series, n_pd, max_frames)
        end_s = float(tim.times(max(tim.trig_ms))[-1]) + 1.0
        fine_t = np.arange(0.0, end_s + FINE_DT_S, FINE_DT_S)
        t_sr = float(tim.beat_s[n_pd]) if n_pd < tim.beat_s.size else 0.0
        bolus = {
            "arrival_s": t_sr + float(rng_k.uniform(6, 11)),
            "peak_gd_mmol_l": float(
                rng_k.uniform(3.5, 6.0) if cond == "stress" else rng_k.uniform(4.5, 7.0)
            ),
            "alpha": float(rng_k.uniform(2.5, 3.5)),
            "beta_s": float(
                rng_k.uniform(1.0, 1.4) if cond == "stress" else rng_k.uniform(1.3, 1.8)
            ),
            "recirc_fraction": float(rng_k.uniform(0.15, 0.3)),
            "recirc_delay_s": float(rng_k.uniform(11, 16)),
            "plateau_fraction": float(rng_k.uniform(0.09, 0.14)),
            "rv_lead_s": float(
                rng_k.uniform(2.5, 3.5) if cond == "stress" else rng_k.uniform(3.5, 5.0)
            ),
            "rv_peak_ratio": float(rng_k.uniform(1.3, 1.8)),
            "aorta_lag_s": float(rng_k.uniform(0.6, 1.4)),
        }
        if cond == "stress":
            stress_bolus = dict(bolus)
            residual = np.zeros_like(fine_t)
        else:
            assert stress_bolus is not None
            # Residual Gd of the stress bolus: the rest origin is gap_s after the stress one.
            residual = kin.aif_curve(fine_t + gap_s, chamber="lv", **stress_bolus)
        blood = {c: kin.aif_curve(fine_t, chamber=c, **bolus) + residual for c in kin.CHAMBERS}
        lv = blood["lv"]
        fine_curves = {
            "lv_blood": lv,
            "atrium": np.interp(fine_t + 0.8, fine_t, lv),
            "rv_blood": blood["rv"],
            "aorta_blood": blood["aorta"],
            "lung_vessel": 0.5 * blood["rv"] + 0.5 * lv,
            "lung": 0.12 * blood["rv"],
            "liver": _extracellular(fine_t, lv, 0.25, 6.0, 12.0),
            "muscle": _extracellular(fine_t, lv, 0.1, 3.0, 40.0),
            "marrow": _extracellular(fine_t, lv, 0.08, 3.0, 25.0),
            "abdomen": _extracellular(fine_t, lv, 0.18, 5.0, 15.0),
            "mediastinum": _extracellular(fine_t, lv, 0.18, 3.0, 25.0),
        }
        lookup = _tissue_lookup(plan, cond, fine_t, lv)

        # Motion: breath-hold for the first part, then breathing.
        rng_m = np.random.default_rng([seed, 7, ci])
        if opts.motion:
            bh_end = float(
                tim.beat_s[
                    min(int(rng_m.uniform(0.35, 0.75) * tim.beat_s.size), tim.beat_s.size - 1)
                ]
            )
            amp = float(rng_m.uniform(6, 14))
        else:
            bh_end, amp = None, 0.0
        shift = np.zeros(3) if cond == "stress" else rng_m.uniform(-3, 3, 3)
        rr_ms = 60000.0 / tim.hr_bpm
        rng_tex = np.random.default_rng([seed, 8, ci])
        rng_noise = np.random.default_rng([seed, 9, ci])

        slices, struths = [], []
        for j, geom in enumerate(plan.geoms):
            times = tim.times(tim.trig_ms[j])
            disp_mm = mo.breathing_mm(
                times,
                np.random.default_rng([seed, 10, ci]),
                breath_hold_end_s=bh_end,
                amplitude_mm=amp,
            )
            disp = mo.quantise_px(mo.in_plane_px(disp_mm, geom))
            curves = {k: np.interp(times, fine_t, v) for k, v in fine_curves.items()}
            imgs, gd, rend, mbf_map = _render_condition_slice(
                plan,
                cond,
                geom,
                times,
                n_pd,
                plan.ts_ms,
                curves,
                lookup,
                disp,
                _phase(tim.trig_ms[j], rr_ms),
                shift,
                rng_tex,
                rng_noise,
                noiseless,
                kspace_window=kspace_window,
            )
            ref = tuple(int(i) for i in np.flatnonzero(np.all(disp == 0, axis=1)))
            st = SliceTruth(
                labels=rend.labels,
                mbf_ml_min_g=mbf_map,
                aha=np.zeros_like(rend.labels),
                displacement_px=disp.astype(np.float64),
                reference_frames=ref,
                rv_insertion_anterior=rend.rv_ant,
                rv_insertion_inferior=rend.rv_inf,
                lv_centre=rend.lv_centre,
                position=plan.positions[j],
                gd_mmol_l=gd,
                extra={
                    "zeta": float(np.nanmean(rend.zeta[rend.labels > 0]))
                    if np.any(rend.labels > 0)
                    else None,
                    "cardiac_phase_scale": _phase(tim.trig_ms[j], rr_ms),
                },
            )
            ss = SliceSeries(
                images=imgs,
                times_s=times,
                geometry=geom,
                pd_frames=tuple(range(n_pd)),
                ts_ms=plan.ts_ms,
                position=plan.positions[j],
                slice_index=j,
                trigger_time_ms=tim.trig_ms[j],
            )
            slices.append(ss)
            struths.append(st)

        aif_series = None
        if opts.aif_series:
            g0 = plan.geoms[0]
            ag = _aif_geometry(g0, float(rng_k.uniform(2.2, 3.0)))
            times = tim.times(tim.trig_aif_ms)
            disp = mo.quantise_px(
                mo.in_plane_px(
                    mo.breathing_mm(
                        times,
                        np.random.default_rng([seed, 10, ci]),
                        breath_hold_end_s=bh_end,
                        amplitude_mm=amp,
                    ),
                    ag,
                )
            )
            curves = {k: np.interp(times, fine_t, v) for k, v in fine_curves.items()}
            imgs, _, _, _ = _render_condition_slice(
                plan,
                cond,
                ag,
                times,
                n_pd,
                plan.ts_aif_ms,
                curves,
                lookup,
                disp,
                _phase(tim.trig_aif_ms, rr_ms),
                shift,
                rng_tex,
                rng_noise,
                noiseless,
                low_res=True,
                snr_factor=0.8,
                kspace_window=kspace_window,
            )
            aif_series = AifSeries(
                images=imgs,
                times_s=times,
                geometry=ag,
                pd_frames=tuple(range(n_pd)),
                ts_ms=plan.ts_aif_ms,
            )

        conditions[cond] = ConditionData(
            name=cond,
            slices=slices,
            aif=aif_series,
            heart_rate_bpm=float(np.round(tim.hr_bpm, 2)),
            series_descriptions=(),
        )
        truths[cond] = ConditionTruth(
            slices=struths,
            aif_times_s=fine_t,
            aif_gd_mmol_l=lv.astype(np.float64),
            segment_mbf={},
            global_mbf=0.0,
            heart_rate_bpm=float(np.round(tim.hr_bpm, 2)),
            hematocrit=HEMATOCRIT,
            r1_l_per_mmol_s=R1,
            params={
                **bolus,
                "ts_ms": plan.ts_ms,
                "ts_aif_ms": plan.ts_aif_ms if opts.aif_series else None,
                "field_strength_t": plan.field_t,
                "ve": plan.ve,
                "ps_base_ml_min_g": plan.ps_base,
                "vb_base": plan.vb_base,
                "tissue_delay_s": plan.delay_s,
                "mbf_level_ml_min_g": plan.mbf_global[cond],
                "defects": plan.defects if cond == "stress" else [],
                "breath_hold_end_s": bh_end,
                "n_pd": n_pd,
                "rv_gd_mmol_l": blood["rv"],
                "aorta_gd_mmol_l": blood["aorta"],
            },
        )

    if opts.mirrored:
        _mirror(conditions, truths)
    _finish_truth(conditions, truths)
    style = _style(rng_style, opts, descr, gap_s)
    _assign_uids(seed, variant, conditions, opts)
    for cond, cd in conditions.items():
        n_series = len(cd.slices) if opts.series_per_slice else 1
        cd.series_descriptions = (descr[cond],) * n_series
    exam = PerfusionExam(
        study_instance_uid=study_uid,
        patient_name=f"PHANTOM^{variant.upper()}^{seed}",
        patient_id=f"QPH{seed:06d}",
        patient_birth_date=_birth_date(rng_style),
        study_date=style.study_date,
        manufacturer=opts.vendor,
        field_strength_t=plan.field_t,
        stress_agent=agent,
        conditions=conditions,
    )
    mpr = {
        s: truths["stress"].segment_mbf[s] / truths["rest"].segment_mbf[s]
        for s in truths["stress"].segment_mbf
        if s in truths["rest"].segment_mbf and truths["rest"].segment_mbf[s] > 0
    }
    return PhantomExam(
        seed=seed,
        variant=variant,
        exam=exam,
        truth=truths,
        style=style,
        mpr_segment=mpr,
        mpr_global=truths["stress"].global_mbf / truths["rest"].global_mbf,
    )


def _tissue_lookup(plan: _Plan, cond: str, fine_t: np.ndarray, lv: np.ndarray):
    """Tissue Gd for arbitrary MBF values by linear interpolation between BTEX curves
    computed on a fine MBF grid (PS and vb follow MBF, so MBF is the only free parameter)."""
    grid = np.geomspace(0.2, 6.0, 72)
    ps, vb = _ps_vb(plan, grid)
    cache: dict[bytes, np.ndarray] = {}

    def lookup(mbf: np.ndarray, times: np.ndarray) -> np.ndarray:
        key = times.tobytes()
        if key not in cache:
            cache[key] = kin.tissue_curves(
                times,
                fine_t,
                lv,
                grid,
                ps,
                vb,
                np.full(grid.size, plan.ve),
                HEMATOCRIT,
                plan.delay_s,
            )
        tab = cache[key]
        m = np.clip(np.asarray(mbf, dtype=float), grid[0], grid[-1])
        pos = np.interp(np.log(m), np.log(grid), np.arange(grid.size))
        i0 = np.clip(np.floor(pos).astype(int), 0, grid.size - 2)
        w = (pos - i0)[:, None]
        return tab[i0] * (1.0 - w) + tab[i0 + 1] * w

    return lookup


def _mirror(conditions: dict[str, ConditionData], truths: dict[str, ConditionTruth]) -> None:
    """Flip every slice left-right and negate the IOP row vector (same patient-space data)."""
    for cond, cd in conditions.items():
        for ss, st in zip(cd.slices, truths[cond].slices, strict=True):
            nx = ss.geometry.shape[1]
            ss.images = np.ascontiguousarray(ss.images[:, :, ::-1])
            ss.geometry = _mirror_geometry(ss.geometry)
            st.labels = np.ascontiguousarray(st.labels[:, ::-1])
            st.mbf_ml_min_g = np.ascontiguousarray(st.mbf_ml_min_g[:, ::-1])
            if st.gd_mmol_l is not None:
                st.gd_mmol_l = np.ascontiguousarray(st.gd_mmol_l[:, :, ::-1])
            st.displacement_px = st.displacement_px * np.array([1.0, -1.0]) + 0.0
            flip = lambda p, n=nx: (p[0], n - 1 - p[1])  # noqa: E731
            st.rv_insertion_anterior = flip(st.rv_insertion_anterior)
            st.rv_insertion_inferior = flip(st.rv_insertion_inferior)
            st.lv_centre = flip(st.lv_centre)
        if cd.aif is not None:
            cd.aif.images = np.ascontiguousarray(cd.aif.images[:, :, ::-1])
            cd.aif.geometry = _mirror_geometry(cd.aif.geometry)


def _nearest_level(positions: list[str | None], j: int) -> str:
    if positions[j] is not None:
        return positions[j]
    best = min((abs(k - j), k) for k, p in enumerate(positions) if p is not None)
    return positions[best[1]]


def _finish_truth(conditions: dict[str, ConditionData], truths: dict[str, ConditionTruth]) -> None:
    """AHA maps, slice locations, segment and global MBF."""
    for cond, cd in conditions.items():
        tr = truths[cond]
        positions = [s.position for s in cd.slices]
        sums: dict[int, list[float]] = {}
        all_vals = []
        for j, (ss, st) in enumerate(zip(cd.slices, tr.slices, strict=True)):
            ss.location_mm = position_along_normal_mm(ss.geometry, base_to_apex_normal(ss.geometry))
            level = _nearest_level(positions, j)
            st.aha = aha_segment_map(
                st.labels,
                ss.geometry,
                st.lv_centre,
                st.rv_insertion_anterior,
                st.rv_insertion_inferior,
                level,
            )
            if ss.position is None:
                continue
            myo = st.labels == LABEL_MYO
            all_vals.append(st.mbf_ml_min_g[myo])
            for seg in np.unique(st.aha[myo]):
                sums.setdefault(int(seg), []).append(st.mbf_ml_min_g[myo & (st.aha == seg)])
        tr.segment_mbf = {s: float(np.mean(np.concatenate(v))) for s, v in sorted(sums.items())}
        tr.global_mbf = float(np.mean(np.concatenate(all_vals))) if all_vals else 0.0


def _birth_date(rng: np.random.Generator) -> str:
    return (
        f"19{int(rng.integers(40, 90))}{int(rng.integers(1, 13)):02d}{int(rng.integers(1, 29)):02d}"
    )


def _descriptions(rng: np.random.Generator, opts: VariantOptions, agent: str) -> dict[str, str]:
    if opts.descriptions == "ambiguous":
        d = str(rng.choice(AMBIGUOUS))
        return {"stress": d, "rest": d}
    s = str(rng.choice(STRESS_DESCRIPTIONS))
    s = s.replace("adenosine", agent).replace("regadenoson", agent)
    return {"stress": s, "rest": str(rng.choice(REST_DESCRIPTIONS))}


def _style(
    rng: np.random.Generator, opts: VariantOptions, descr: dict[str, str], gap_s: float
) -> DicomStyle:
    if opts.midnight:
        start = 86400.0 - rng.uniform(10, 35)
    elif rng.random() < 0.4:
        start = 3600.0 * int(rng.integers(8, 17)) - rng.uniform(5, 30)  # crosses an hour
    else:
        start = rng.uniform(8 * 3600, 17 * 3600)
    start = float(np.round(start, 4))
    readout = {"SIEMENS": "bSSFP", "Philips": "TFE", "GE": "FGRE"}[opts.vendor]
    if rng.random() < 0.3:
        readout = "GRE"
    return DicomStyle(
        vendor=opts.vendor,
        storage=opts.storage,
        series_per_slice=opts.series_per_slice,
        instance_order=opts.instance_order,
        pd_comment=opts.pd_comment,
        descriptions=dict(descr),
        aif_descriptions={
            c: f"{descr[c]} AIF" if opts.descriptions == "clear" else "AIF_dual" for c in descr
        },
        start_clock_s={"stress": start, "rest": float(np.round(start + gap_s, 4))},
        junk=opts.junk,
        flip_angle_deg=float(rng.choice([12.0, 15.0, 50.0])) if readout != "bSSFP" else 50.0,
        readout=readout,
        study_date=f"2026{int(rng.integers(1, 13)):02d}{int(rng.integers(1, 28)):02d}",
    )


def _assign_uids(
    seed: int, variant: str, conditions: dict[str, ConditionData], opts: VariantOptions
) -> None:
    for cond, cd in conditions.items():
        cond_series = _uid(seed, variant, cond, "series")
        for j, ss in enumerate(cd.slices):
            ss.series_instance_uid = (
                _uid(seed, variant, cond, "series", j) if opts.series_per_slice else cond_series
            )
            nt = ss.n_frames
            if opts.storage == "enhanced":
                if opts.series_per_slice:
                    ss.sop_instance_uids = (_uid(seed, variant, cond, "sop", j),) * nt
                    ss.frame_numbers = tuple(range(1, nt + 1))
                else:
                    ss.sop_instance_uids = (_uid(seed, variant, cond, "sop"),) * nt
                    ss.frame_numbers = tuple(j * nt + k + 1 for k in range(nt))
            else:
                ss.sop_instance_uids = tuple(
                    _uid(seed, variant, cond, "sop", j, k) for k in range(nt)
                )
                ss.frame_numbers = (1,) * nt
        if cd.aif is not None:
            a = cd.aif
            a.series_instance_uid = _uid(seed, variant, cond, "aif")
            nt = a.images.shape[0]
            if opts.storage == "enhanced":
                a.sop_instance_uids = (_uid(seed, variant, cond, "aif", "sop"),) * nt
                a.frame_numbers = tuple(range(1, nt + 1))
            else:
                a.sop_instance_uids = tuple(_uid(seed, variant, cond, "aif", k) for k in range(nt))
                a.frame_numbers = (1,) * nt
