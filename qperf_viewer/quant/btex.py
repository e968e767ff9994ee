"""Distributed blood-tissue exchange model (BTEX) without axial diffusion.

Bassingthwaighte et al. (Circ Res 1989) / Sangren & Sheppard (Bull Math Biophys 1953): a
plug-flow capillary (plasma flow ``Fp``, plasma volume ``vp``) exchanging through ``PS`` with a
radially well-mixed interstitium (``ve``), no axial diffusion. The model works in plasma: the
input is ``Cp = Cb / (1 - Hct)`` from the whole-blood AIF ``Cb``, and::

    C(t) = Fp * integral Cp(t - td - s) R(s) ds

with the unit-amplitude residue (closed form, derived from the Laplace-domain solution)::

    R(s) = 1                                          for s <  tc
    R(s) = sum_{n>=1} Pois(n; kappa) Q(n, ke (s - tc))  for s >= tc

``tc = vp/Fp`` (capillary transit time, s), ``kappa = PS/Fp`` (so the extraction is
``1 - exp(-kappa)``), ``ke = PS/ve`` (1/s), ``Q`` the regularised upper incomplete gamma
function and ``Pois(n; kappa)`` the Poisson probability of ``n`` exchanges (a tracer molecule
leaves the capillary a Poisson number of times and stays an exponential time in the
interstitium each time). The area of ``R`` is ``(vp + ve)/Fp``.

The shape ``(tc, kappa, ke)`` does not depend on the hematocrit, and ``Fp Cp = Fb Cb``: the
reported blood flow ``Fb = Fp / (1 - Hct)`` is therefore independent of the hematocrit used,
given the same blood AIF; ``vb = vp / (1 - Hct) = tc Fb``. Outputs per gram use 1.05 g/mL.

The fitted tissue model includes intra-voxel flow heterogeneity (Bassingthwaighte's
multi-path BTEX): ``FLOW_UNITS`` parallel capillaries with log-normal relative flows of
dispersion ``FLOW_RD`` (0.3, the physiological myocardial value), same volumes and PS, so
that ``R(0) = 1`` and the amplitude is the mean flow. Set ``FLOW_RD = 0`` for the
single-capillary model. Without it, fits of heterogeneous tissue read a few percent low at
stress flows.
"""

from __future__ import annotations

import functools
import threading
from typing import TYPE_CHECKING

import numpy as np

from qperf_viewer.special import I1_LARGE, I1_SMALL, I1_SPLIT, horner

if TYPE_CHECKING:
    from qperf_viewer.quant.mapping import MbfMaps

NAME = "btex"
LABEL = "Distributed blood-tissue exchange (BTEX, no axial diffusion)"
SHAPE_PARAMS = ("tc_s", "kappa", "ke_per_s")
TISSUE_DENSITY_G_ML = 1.05
#: The model takes the plasma input Cb / (1 - Hct) and fits plasma flow.
PLASMA_INPUT = True
#: Intra-voxel flow heterogeneity of the fitted model: relative dispersion (SD/mean) of a
#: log-normal flow distribution over parallel capillary units (myocardial regional flow
#: RD is about 0.3 at the mm scale: Bassingthwaighte et al., Circ Res 1989). 0 = homogeneous.
FLOW_RD = 0.3
FLOW_UNITS = 5

#: BTEX is fitted on all frames.
FIRST_PASS_WINDOW = None
#: Reliability threshold on R^2 (all frames).
MIN_R2 = 0.5
#: Pixel maps: delays searched around the map's reference delay (s).
PIXEL_DELAY_OFFSETS_S = [0.0]
#: Region fits: fit the delay (True) or keep the model-free upslope estimate (False).
FIT_DELAY = True
#: The fitted delay stays within this window (s) around the model-free upslope estimate: the
#: BTEX likelihood has a long flow/transit-time/delay valley that noise would otherwise follow.
DELAY_WINDOW_S = (-0.25, 0.25)


#: Shortest capillary transit time tc = vp/Fp (s) of the fits. Physiologically tc = vb (1-Hct)
#: / Fp is about 1-2 s at stress and 4-8 s at rest; 0.5 s allows blood volume 0.05 at 6
#: mL/min/g. Without it, noisy curves admitted an almost equally good second mode with
#: tc ~ 0.15 s (no vascular volume) and 30-40% higher flow, which a 0.05 s change of delay
#: switched on or off.
TC_MIN_S = 0.5


#: Physiological prior on the myocardial blood volume (mL/mL). It picks the reference delay of
#: a slice's map along the flow / transit-time / delay valley of the likelihood
#: (:func:`qperf_viewer.pipeline.slices.reference_delay`) and the centre of the pixel lattice
#: at that delay (:func:`qperf_viewer.quant.mapping.mbf_map`, ``LATTICE_CENTRE_PRIOR``). Its centre
#: follows the fitted flow (capillary recruitment under vasodilation): healthy volunteers'
#: BTEX maps at 1.5 T show a blood volume of about 9% at rest and 12% at adenosine stress
#: (Nickander et al., J Cardiovasc Magn Reson 2019, doi:10.1186/s12968-019-0585-9); with typical
#: rest and stress flows of 1 and 3 mL/min/g that is ``0.09 + 0.015 (F - 1)``, kept within
#: ``VB_PRIOR_CENTRE_RANGE``; geometric SD factor ``VB_PRIOR_SD``. With this prior (and a
#: 0.05 s delay refinement), over the 39 exams of ``benchmarks/bench_accuracy.py`` the map
#: delay's error (RMS) fell from 0.104 to 0.086 s at stress and from 0.143 to 0.106 s at rest
#: (fixed centre 0.10 before; held-out seeds 401 and 501: 0.108 to 0.077 s and 0.125 to
#: 0.106 s).
VB_PRIOR_AT_1 = 0.09
VB_PRIOR_SLOPE = 0.015  # per mL/min/g
VB_PRIOR_CENTRE_RANGE = (0.075, 0.15)
VB_PRIOR_SD = 1.4
#: Frames per independent residual in the prior's likelihood (the misfit of a measured curve
#: is systematic and correlated over neighbouring frames, not white noise: on phantom exams
#: the pixel residuals against the noise-free truth have a lag-1 correlation of 0.24-0.31,
#: and the mean curve's residual follows blood spill and blur). 8 rather than 4: over 3 seeds
#: x 13 variants of ``benchmarks/bench_accuracy.py`` 24 of 39 runs met all targets instead of
#: 19 (delay scan).
FRAMES_PER_DOF = 8.0


def vb_prior_centre(mbf_ml_min_g: np.ndarray) -> np.ndarray:
    """Centre (mL/mL) of the blood-volume prior for fitted flows (mL/min/g)."""
    f = np.asarray(mbf_ml_min_g, dtype=float)
    return np.clip(VB_PRIOR_AT_1 + VB_PRIOR_SLOPE * (f - 1.0), *VB_PRIOR_CENTRE_RANGE)


def prior_cost(rss: np.ndarray, vb: np.ndarray, mbf_ml_min_g: np.ndarray, n_frames: int):
    """Penalised misfit of fits of one curve: ``(T / FRAMES_PER_DOF) log(RSS) +
    (log(vb / vb0(F)) / log VB_PRIOR_SD)^2`` (lower is better); inf where ``vb`` <= 0.

    rss: residual sums of squares (any consistent units); vb: blood volume (mL/mL);
    mbf_ml_min_g: the fits' flows; n_frames: T, the frames fitted."""
    vb = np.asarray(vb, dtype=float)
    rss = np.maximum(np.asarray(rss, dtype=float), 1e-300)
    centre = vb_prior_centre(mbf_ml_min_g)
    prior = (np.log(np.maximum(vb, 1e-6) / centre) / np.log(VB_PRIOR_SD)) ** 2
    return np.where(vb > 0, n_frames / FRAMES_PER_DOF * np.log(rss) + prior, np.inf)


def shape_grid() -> tuple[np.ndarray, ...]:
    """Default dictionary axes: tc = vp/Fp (s), kappa = PS/Fp, ke = PS/ve (1/s)."""
    tc = np.geomspace(TC_MIN_S, 25.0, 12)
    kappa = np.geomspace(0.05, 10.0, 10)
    ke = np.geomspace(0.004, 1.0, 10)
    return tc, kappa, ke


#: Pixel lattice: log-steps of ke = PS/ve around the reference value. Steps of 0.2: ke
#: varies by 20-30% over a slice (PS follows flow) and the least squares are narrow in it;
#: with steps of 0.7 a noise-free pixel 15% off the reference ke fitted better at the far,
#: fast-transit end of the lattice (flow +35%) than at its own node. With the prior below,
#: +-0.4 gave the same segment values as +-0.6 (3 seeds x 13 variants) in less time.
PIXEL_KE_STEPS = (-0.4, -0.2, 0.0, 0.2, 0.4)
#: Pixel lattice half-widths in steps of a (0.1) and b (0.2): 31 x 9 x 5 nodes. With the prior
#: (below) b +-0.8 gave the same segment values as +-1.2 with 31% fewer nodes; a +-1.2
#: gave slightly larger worst-segment errors than +-1.5 (``benchmarks/bench_accuracy.py``, 3 seeds).
PIXEL_A_HALF = 15
PIXEL_B_HALF = 4
#: Gaussian prior of the pixel fits around the reference shape: SDs of the lattice
#: coordinates ``a = log(tc kappa)``, ``b = log(tc / kappa)`` and ``log ke`` (see
#: :func:`qperf_viewer.quant.mapping.mbf_map`, step 5). Loose along ``a`` (flow): an SD of
#: 0.5 there pulled a defect's pixels 6-10% towards the slice's reference flow.
PIXEL_PRIOR_SD = (1.0, 0.4, 0.5)


def pixel_lattice(reference_shape: np.ndarray):
    """Dictionary lattice of the pixel maps, centred on the shape fitted on the slice's mean
    curve: returns lattice axes and the map from lattice coordinates to ``(tc, kappa, ke)``.

    The lattice is rotated in log space: ``a = log(tc kappa)`` follows flow (both scale as
    1/Fp for given volumes and PS, the long valley of the BTEX likelihood) and
    ``b = log(tc / kappa) = log(vp / PS)``; ``ke`` takes the reference value times
    ``exp(PIXEL_KE_STEPS)`` (it mostly shapes the late washout, which single pixels separate
    poorly from flow and volumes, but one value for a slice with a defect read the normal wall
    25-45% high). Half-widths ``PIXEL_A_HALF`` (steps of 0.1) and ``PIXEL_B_HALF`` (0.2).
    The reference shape is the middle node of every axis (the centre of the prior
    ``PIXEL_PRIOR_SD``).
    """
    ref = np.asarray(reference_shape, dtype=float)
    a0 = float(np.log(ref[0] * ref[1]))
    b0 = float(np.log(ref[0] / ref[1]))
    # steps 0.1 and 0.2: (a -+ b)/2 fall on a 0.05 grid, so tc and kappa values repeat and
    # the residue bank shares its (kappa, ke) tails
    a = a0 + np.arange(-PIXEL_A_HALF, PIXEL_A_HALF + 1) * 0.1
    b = b0 + np.arange(-PIXEL_B_HALF, PIXEL_B_HALF + 1) * 0.2
    lke = float(np.log(ref[2])) + np.asarray(PIXEL_KE_STEPS)

    def to_shape(coords: np.ndarray) -> np.ndarray:
        c = np.asarray(coords, dtype=float)
        tc = np.exp(0.5 * (c[:, 0] + c[:, 1]))
        kappa = np.exp(0.5 * (c[:, 0] - c[:, 1]))
        ke = np.exp(c[:, 2]) if c.shape[1] > 2 else np.full(c.shape[0], np.exp(lke[0]))
        return np.stack([tc, kappa, ke], axis=1)

    if lke.size == 1:
        return (a, b), to_shape
    return (a, b, lke), to_shape


def shape_bounds() -> tuple[np.ndarray, np.ndarray]:
    """Bounds of the shape parameters for the local refinement (natural units)."""
    return np.array([TC_MIN_S, 0.02, 0.002]), np.array([40.0, 20.0, 2.0])


def _n_terms(kappa_max: float) -> int:
    k = max(float(kappa_max), 0.0)
    return int(np.ceil(k + 9.0 * np.sqrt(k) + 10.0))


def _series(kappa: np.ndarray, x: np.ndarray, *, integral: bool) -> np.ndarray:
    """Sum over exchanges n >= 1 of Pois(n; kappa) * Q(n, x) (``integral=False``), or of
    Pois(n; kappa) * (x Q(n, x) + n (1 - Q(n+1, x))) = Pois * ke * integral_0^u Q(n, ke v) dv
    (``integral=True``). Broadcasts ``kappa`` against ``x`` (x >= 0)."""
    kappa = np.asarray(kappa, dtype=float)
    x = np.asarray(x, dtype=float)
    n_max = _n_terms(float(np.max(kappa)) if kappa.size else 0.0)
    term = np.exp(-x)  # x^(n-1) e^-x / (n-1)!, n = 1
    q = term.copy()  # Q(1, x)
    p = np.exp(-kappa) * kappa  # Pois(1; kappa)
    out = np.zeros(np.broadcast_shapes(kappa.shape, x.shape))
    for n in range(1, n_max + 1):
        term = term * (x / n)  # x^n e^-x / n!
        q_next = q + term  # Q(n + 1, x)
        if integral:
            out += p * (x * q + n * (1.0 - q_next))
        else:
            out += p * q
        q = q_next
        p = p * (kappa / (n + 1))
    return out


def residue(lag_s: np.ndarray, shape: np.ndarray) -> np.ndarray:
    """Unit-amplitude residue at ``lag_s`` (L,) for shape rows ``(tc, kappa, ke)`` (M, 3)."""
    s = np.asarray(lag_s, dtype=float)[None, :]
    p = np.asarray(shape, dtype=float)
    tc, kappa, ke = p[:, 0:1], p[:, 1:2], p[:, 2:3]
    u = np.maximum(s - tc, 0.0)
    return np.where(s < tc, 1.0, _series(kappa, ke * u, integral=False))


def residue_integral(lag_s: np.ndarray, shape: np.ndarray) -> np.ndarray:
    """Integral of the unit residue from 0 to ``lag_s`` (closed form), (M, L)."""
    s = np.asarray(lag_s, dtype=float)[None, :]
    p = np.asarray(shape, dtype=float)
    tc, kappa, ke = p[:, 0:1], p[:, 1:2], p[:, 2:3]
    u = np.maximum(s - tc, 0.0)
    tail = _series(kappa, ke * u, integral=True) / ke
    return np.minimum(s, tc) + tail


def _exchange_tails(
    kappa: np.ndarray, ke: np.ndarray, h: float, n_pts: int
) -> tuple[np.ndarray, np.ndarray]:
    """Antiderivative ``T(u) = int_0^u R_tail`` and its derivative ``R_tail(u)`` on ``u = k h``
    (k < n_pts) for pairs (P,): two (P, n_pts) arrays.

    ``R_tail(u) = 1 - exp(-kappa) - int_0^u g``, with the continuous outflow density
    ``g(v) = exp(-kappa - ke v) sqrt(kappa ke / v) I1(2 sqrt(kappa ke v))`` (the Bessel form of
    the same Poisson-gamma series; ``g(0) = exp(-kappa) kappa ke``), evaluated with the
    polynomial approximations of ``I1`` (:mod:`qperf_viewer.special`, relative error < 6e-7;
    ``scipy.special.i1e`` took half of this function's time): ``2 ak exp(-kappa - ke v)
    P_small(z^2 / 3.75^2)`` for ``z = 2 sqrt(kappa ke v) <= 3.75``, else the scaled form
    ``exp(-(sqrt(kappa) - sqrt(ke v))^2) P_large(3.75 / z) 2 ak / z^1.5``; ``R_tail`` by the
    trapezoid rule, ``T`` by the trapezoid rule with its endpoint correction
    ``h^2/12 (f'(a) - f'(b))`` (``f' = -g``).
    """
    k = np.asarray(kappa, dtype=float)[:, None]
    e = np.asarray(ke, dtype=float)[:, None]
    u = (np.arange(n_pts) * h)[None, :]
    ak = k * e
    z2 = 4.0 * ak * u
    lim2 = I1_SPLIT * I1_SPLIT
    g = 2.0 * ak * np.exp(-k - e * u) * horner(I1_SMALL, np.minimum(z2, lim2) / lim2)
    large = z2 > lim2
    if large.any():
        kk, ee, uu = (np.broadcast_to(x, z2.shape)[large] for x in (k, e, u))
        z = np.sqrt(z2[large])
        g[large] = (
            np.exp(-((np.sqrt(kk) - np.sqrt(ee * uu)) ** 2))
            * horner(I1_LARGE, I1_SPLIT / z)
            * (2.0 * kk * ee)
            / (z * np.sqrt(z))
        )
    cum_g = np.concatenate(
        [np.zeros_like(g[:, :1]), np.cumsum(0.5 * (g[:, 1:] + g[:, :-1]), axis=1) * h], axis=1
    )
    tail = np.clip(1.0 - np.exp(-k) - cum_g, 0.0, 1.0)
    steps = 0.5 * h * (tail[:, 1:] + tail[:, :-1]) + (h * h / 12.0) * (g[:, 1:] - g[:, :-1])
    anti = np.concatenate([np.zeros_like(tail[:, :1]), np.cumsum(steps, axis=1)], axis=1)
    return anti, tail


#: Exchange tails of the last few calls, per thread: a Levenberg-Marquardt iteration asks for
#: the tails of the rows' current (kappa, ke) pairs again when it perturbs tc or the delay
#: (8 calls: 27% fewer tail evaluations over the fits and maps of a stress+rest exam; 3 calls:
#: 13%).
TAIL_CACHE_CALLS = 8
_TAILS = threading.local()


def _cached_tails(keys: np.ndarray, h: float, n_pts: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_exchange_tails` of the sorted unique pairs ``keys`` (kappa + 1j ke), reusing
    pairs computed by the last ``TAIL_CACHE_CALLS`` calls of this thread (same values,
    bit for bit: each pair's tail depends on that pair and the grid only)."""
    if TAIL_CACHE_CALLS <= 0:
        return _exchange_tails(keys.real, keys.imag, h, n_pts)
    entries = getattr(_TAILS, "entries", None)
    if entries is None:
        entries = _TAILS.entries = []
    hits = []  # (rows of keys, entry, rows of the entry)
    missing = np.ones(keys.size, dtype=bool)
    for entry in entries:
        e_keys, e_h, e_n = entry[:3]
        if e_h != h or e_n != n_pts or not missing.any():
            continue
        want = np.flatnonzero(missing)
        pos = np.minimum(np.searchsorted(e_keys, keys[want]), e_keys.size - 1)
        hit = e_keys[pos] == keys[want]
        if hit.any():
            hits.append((want[hit], entry, pos[hit]))
            missing[want[hit]] = False
    new = np.flatnonzero(missing)
    if new.size:
        a_new, t_new = _exchange_tails(keys[new].real, keys[new].imag, h, n_pts)
        entries.insert(0, (keys[new], h, n_pts, a_new, t_new))
        del entries[TAIL_CACHE_CALLS:]
        if not hits:
            return a_new, t_new
        hits.append((new, entries[0], np.arange(new.size)))
    anti = np.empty((keys.size, n_pts))
    tail = np.empty((keys.size, n_pts))
    for rows, entry, src in hits:
        anti[rows] = entry[3][src]
        tail[rows] = entry[4][src]
    return anti, tail


def _cells_homogeneous(dt_s: float, n: int, p: np.ndarray) -> np.ndarray:
    """Cell averages of the homogeneous unit residue, rows ``(tc, kappa, ke)``: (M, n).

    Antiderivative differences ``A(s) = min(s, tc) + T(max(s - tc, 0))``, so the jump at
    ``tc`` is exact; rows sharing ``(kappa, ke)`` share one tail on the grid ``dt``, shifted by
    ``tc`` with cubic Hermite interpolation of ``T`` (from ``T`` and ``T' = R_tail`` at the
    nodes). Against the closed form (:func:`residue_integral`) this is 2-10x more accurate
    than the linear interpolation of a 2x finer tail it replaced, at 2/3 of the time.
    """
    edges = np.arange(n + 1) * dt_s
    # unique (kappa, ke) pairs (complex keys sort lexicographically, faster than axis=0)
    keys, inv = np.unique(p[:, 1] + 1j * p[:, 2], return_inverse=True)
    inv = inv.reshape(-1)
    h = dt_s
    n_pts = n + 2
    anti_t, tail = _cached_tails(keys, h, n_pts)
    # Hermite cubic per interval in power form: c0 + f (c1 + f (c2 + f c3)), coefficients on
    # the (few) unique pairs, then one gather per coefficient for the (many) rows
    d = h * tail
    t0, t1, d0, d1 = anti_t[:, :-1], anti_t[:, 1:], d[:, :-1], d[:, 1:]
    n_iv = n_pts - 1
    c0, c1 = t0.ravel(), d0.ravel()
    c2 = (3.0 * (t1 - t0) - 2.0 * d0 - d1).ravel()
    c3 = (2.0 * (t0 - t1) + d0 + d1).ravel()
    tc = p[:, 0:1]
    pos = np.maximum(edges[None, :] - tc, 0.0) / h
    i0 = np.minimum(pos.astype(np.int64), n_iv - 1)
    f = pos - i0
    idx = i0 + (inv * n_iv)[:, None]
    tail_at = c3.take(idx)
    tail_at *= f
    tail_at += c2.take(idx)
    tail_at *= f
    tail_at += c1.take(idx)
    tail_at *= f
    tail_at += c0.take(idx)
    anti = np.minimum(edges[None, :], tc) + tail_at
    return np.diff(anti, axis=1) / dt_s


def flow_units(
    rd: float | None = None, n_units: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Volume weights and relative flows (mean exactly 1) of a log-normal intra-voxel flow
    distribution with relative dispersion ``rd`` (default ``FLOW_RD``; Gauss-Hermite nodes)."""
    rd = FLOW_RD if rd is None else rd
    n_units = FLOW_UNITS if n_units is None else n_units
    return _flow_units(float(rd), int(n_units))


@functools.lru_cache(maxsize=8)
def _flow_units(rd: float, n_units: int) -> tuple[np.ndarray, np.ndarray]:
    if rd <= 0 or n_units <= 1:
        return np.ones(1), np.ones(1)
    x, w = np.polynomial.hermite_e.hermegauss(n_units)
    w = w / w.sum()
    sig = np.sqrt(np.log1p(rd**2))
    m = np.exp(sig * x - 0.5 * sig**2)
    return w, m / float(np.sum(w * m))


def residue_cells(dt_s: float, n: int, shape: np.ndarray) -> np.ndarray:
    """Cell averages over ``[j dt, (j+1) dt]`` (j < n) of the unit residue of the fitted
    tissue model: a flow-weighted mixture of capillary units with relative flows ``m``
    (:func:`flow_units`), each with ``tc/m``, ``kappa/m`` and the same ``ke``, so that the
    amplitude is the mean plasma flow (R(0) = 1). Rows ``(tc, kappa, ke)`` (M, 3) -> (M, n)."""
    p = np.asarray(shape, dtype=float).reshape(-1, 3)
    w, m = flow_units()
    q = np.repeat(p[None], m.size, axis=0)  # (U, M, 3), all units in one evaluation
    q[:, :, 0] /= m[:, None]
    q[:, :, 1] /= m[:, None]
    cells = _cells_homogeneous(dt_s, n, q.reshape(-1, 3)).reshape(m.size, p.shape[0], n)
    return np.einsum("u,umn->mn", w * m, cells)


def outputs(amplitude_per_s: np.ndarray, shape: np.ndarray, hematocrit: float) -> dict:
    """Reported maps from the fitted plasma flow ``Fp`` (1/s) and shape rows (N, 3).

    Returns blood flow ``mbf_ml_min_g`` (Fb = Fp / (1 - Hct), x 60 / 1.05), ``ps_ml_min_g``,
    ``vb`` (mL blood / mL tissue), ``ve`` (mL/mL), and the shape parameters.
    """
    fp = np.asarray(amplitude_per_s, dtype=float)
    shape = np.asarray(shape, dtype=float)
    tc, kappa, ke = shape[..., 0], shape[..., 1], shape[..., 2]
    plasma = 1.0 - float(hematocrit)
    ps = kappa * fp
    scale = 60.0 / TISSUE_DENSITY_G_ML
    with np.errstate(divide="ignore", invalid="ignore"):
        ve = np.where(ke > 0, ps / np.where(ke > 0, ke, 1.0), 0.0)
    return {
        "mbf_ml_min_g": fp / plasma * scale,
        "ps_ml_min_g": ps * scale,
        "vb": tc * fp / plasma,
        "ve": ve,
        "tc_s": tc,
        "kappa": kappa,
        "ke_per_s": ke,
    }


def fit_btex(aif: np.ndarray, tissue: np.ndarray, times_s: np.ndarray, **kwargs: object) -> MbfMaps:
    """Pixelwise BTEX MBF: shortcut for ``mbf_map(..., model="btex")``."""
    from qperf_viewer.quant.mapping import mbf_map

    return mbf_map(aif, tissue, times_s, model="btex", **kwargs)  # type: ignore[arg-type]
