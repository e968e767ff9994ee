"""Forward kinetic models of the phantom (generation only; the fitting code lives in
``qperf_viewer.quant`` and must not import this module, so that tests are no inverse crime).

Blood curves are whole-blood Gd concentrations in mmol/L; tissue curves are mmol per litre of
tissue. Times in seconds. Per-pixel arrays are ``(N,)`` and curves ``(N, T)``.

Blood-pool curves: a gamma-variate first pass (Thompson et al., Circ Res 1964), a dispersed
gamma-variate recirculation and a slowly washing-out mixed plateau, with a residual baseline.

Tissue: the distributed blood-tissue exchange model without axial diffusion (plug-flow
capillary exchanging with a radially well-mixed interstitium; Sangren & Sheppard, Bull Math
Biophys 1953; Bassingthwaighte et al., Circ Res 1989 'BTEX'). With plasma flow ``Fp``, plasma
volume ``vp``, interstitial volume ``ve`` and permeability-surface product ``PS`` (all per mL of
tissue), the outflow impulse response is, with ``tau = vp/Fp``, ``a = PS/Fp``, ``k = PS/ve`` and
``u = t - tau >= 0``::

    h(t) = exp(-a) [ delta(u) + exp(-k u) sqrt(a k / u) I1(2 sqrt(a k u)) ]

and the tissue residue function is ``R(t) = Fp (1 - integral_0^t h)``; the tissue
concentration is ``Ct = Cp (*) R``. Intra-voxel flow heterogeneity is a volume-weighted mixture
of a few sub-units with different flows (same PS, vb, ve).
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

from qperf_viewer.special import I1_LARGE, I1_SMALL, horner

#: Myocardial tissue density, g/mL.
TISSUE_DENSITY_G_ML = 1.05
#: Default hematocrit.
HEMATOCRIT = 0.42
#: Default longitudinal relaxivity of the contrast agent, L/(mmol s).
R1_L_PER_MMOL_S = 4.5

CHAMBERS = ("rv", "lv", "aorta")


def gamma_variate(
    times_s: np.ndarray, *, arrival_s: float, alpha: float, beta_s: float
) -> np.ndarray:
    """Unit-peak gamma variate ``((t-t0)/(alpha beta))^alpha exp(alpha - (t-t0)/beta)``.

    Zero before ``arrival_s``; peak 1 at ``arrival_s + alpha*beta_s``.
    """
    t = np.asarray(times_s, dtype=float) - arrival_s
    tp = alpha * beta_s
    x = np.clip(t, 0.0, None) / tp
    out = np.zeros_like(x)
    pos = x > 0
    out[pos] = np.exp(alpha * (np.log(x[pos]) + 1.0 - x[pos]))
    return out


def _exp_dispersion(values: np.ndarray, dt_s: float, tau_s: float) -> np.ndarray:
    """Convolve a uniformly sampled curve with a unit-area exponential (time constant tau)."""
    if tau_s <= 0:
        return values
    q = float(np.exp(-dt_s / tau_s))
    return lfilter([1.0 - q], [1.0, -q], values)


def aif_curve(
    times_s: np.ndarray,
    *,
    arrival_s: float,
    peak_gd_mmol_l: float,
    chamber: str = "lv",
    alpha: float = 3.0,
    beta_s: float = 1.3,
    recirc_fraction: float = 0.25,
    recirc_delay_s: float = 13.0,
    recirc_width: float = 2.2,
    plateau_fraction: float = 0.12,
    mixing_tau_s: float = 10.0,
    washout_tau_s: float = 240.0,
    renal_tau_s: float = 5400.0,
    baseline_gd_mmol_l: float = 0.0,
    rv_lead_s: float = 3.5,
    rv_peak_ratio: float = 1.6,
    rv_sharpness: float = 0.7,
    aorta_lag_s: float = 0.8,
    aorta_dispersion_s: float = 0.6,
) -> np.ndarray:
    """Whole-blood Gd (mmol/L) of one blood pool at ``times_s``.

    ``arrival_s`` and ``peak_gd_mmol_l`` describe the LV blood pool (bolus arrival time and
    first-pass peak above baseline). ``chamber`` selects the pool:

    - ``'lv'``: first pass ``peak * gamma(alpha, beta)``, recirculation (a wider gamma variate
      ``recirc_delay_s`` later, ``recirc_fraction`` of the peak), and a mixed plateau
      ``plateau_fraction * peak`` that builds up with ``mixing_tau_s`` and washes out
      (extravasation ``washout_tau_s``, renal clearance ``renal_tau_s``), on top of
      ``baseline_gd_mmol_l`` (residual Gd of an earlier bolus);
    - ``'rv'``: earlier by ``rv_lead_s`` (pulmonary transit), sharper (beta x ``rv_sharpness``)
      and higher (x ``rv_peak_ratio``, less dilution), same recirculation and plateau timing;
    - ``'aorta'``: the LV curve ``aorta_lag_s`` later, dispersed by an exponential of time
      constant ``aorta_dispersion_s`` (computed on a fine internal grid).
    """
    if chamber not in CHAMBERS:
        raise ValueError(f"chamber must be one of {CHAMBERS}, not {chamber!r}")
    t = np.asarray(times_s, dtype=float)
    if chamber == "aorta":
        dt = 0.02
        t0 = min(float(t.min()) if t.size else 0.0, arrival_s - 5.0)
        t1 = float(t.max()) if t.size else 0.0
        fine = np.arange(t0, t1 + 2 * dt, dt)
        lv = aif_curve(
            fine - aorta_lag_s,
            arrival_s=arrival_s,
            peak_gd_mmol_l=peak_gd_mmol_l,
            chamber="lv",
            alpha=alpha,
            beta_s=beta_s,
            recirc_fraction=recirc_fraction,
            recirc_delay_s=recirc_delay_s,
            recirc_width=recirc_width,
            plateau_fraction=plateau_fraction,
            mixing_tau_s=mixing_tau_s,
            washout_tau_s=washout_tau_s,
            renal_tau_s=renal_tau_s,
            baseline_gd_mmol_l=baseline_gd_mmol_l,
        )
        disp = baseline_gd_mmol_l + _exp_dispersion(lv - baseline_gd_mmol_l, dt, aorta_dispersion_s)
        return np.interp(t, fine, disp)

    a0, beta, peak = arrival_s, beta_s, peak_gd_mmol_l
    if chamber == "rv":
        a0 = arrival_s - rv_lead_s
        beta = beta_s * rv_sharpness
        peak = peak_gd_mmol_l * rv_peak_ratio
    first = peak * gamma_variate(t, arrival_s=a0, alpha=alpha, beta_s=beta)
    rec = (
        recirc_fraction
        * peak_gd_mmol_l
        * gamma_variate(
            t,
            arrival_s=a0 + recirc_delay_s - alpha * beta_s,
            alpha=alpha,
            beta_s=beta_s * recirc_width,
        )
    )
    tt = np.clip(t - a0, 0.0, None)
    plateau = (
        plateau_fraction
        * peak_gd_mmol_l
        * (1.0 - np.exp(-((tt / mixing_tau_s) ** 2)))
        * (0.55 * np.exp(-tt / washout_tau_s) + 0.45 * np.exp(-tt / renal_tau_s))
    )
    return baseline_gd_mmol_l + first + rec + plateau


def chamber_curves(times_s: np.ndarray, **aif_kwargs) -> dict[str, np.ndarray]:
    """RV, LV and aorta whole-blood Gd (mmol/L) for one bolus (see :func:`aif_curve`)."""
    return {c: aif_curve(times_s, chamber=c, **aif_kwargs) for c in CHAMBERS}


def flow_heterogeneity(n_units: int = 3, cv: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Volume weights and relative flows of ``n_units`` sub-units with a log-normal flow
    distribution of coefficient of variation ``cv``; the mean relative flow is exactly 1."""
    if n_units <= 1 or cv <= 0:
        return np.ones(1), np.ones(1)
    # Gauss-Hermite (probabilists') nodes for a log-normal.
    x, w = np.polynomial.hermite_e.hermegauss(n_units)
    w = w / w.sum()
    s = np.sqrt(np.log1p(cv**2))
    m = np.exp(s * x - 0.5 * s**2)
    m = m / float(np.sum(w * m))
    return w, m


def _exchange_density(a: np.ndarray, k: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Continuous part of the outflow impulse response without the exp(-a) factor's
    partner: ``exp(-a - k u) sqrt(a k / u) I1(2 sqrt(a k u))`` for u >= 0 (finite at 0).

    Uses the polynomial approximations of I1 (Abramowitz & Stegun 9.8.3/9.8.4), which are
    several times faster than ``scipy.special.i1e`` on large arrays.
    """
    ak = a * k
    z = 2.0 * np.sqrt(ak * u)
    small = z <= 3.75
    ts = np.minimum(z, 3.75) / 3.75
    # z <= 3.75: I1(z)/z * 2ak  (sqrt(ak/u) * z = 2ak)
    g_small = 2.0 * ak * horner(I1_SMALL, ts * ts)
    out = np.exp(-a - k * u)
    if np.all(small):
        return out * g_small
    zl = np.maximum(z, 3.75)
    # z > 3.75: I1(z) = exp(z)/sqrt(z) * P(3.75/z); sqrt(ak/u) = z / (2u) = 2ak / z
    g_large = np.exp(zl) / np.sqrt(zl) * horner(I1_LARGE, 3.75 / zl) * (2.0 * ak / zl)
    return out * np.where(small, g_small, g_large)


def residue_function(
    t_s: np.ndarray, fp_per_s: np.ndarray, vp: np.ndarray, ve: np.ndarray, ps_per_s: np.ndarray
) -> np.ndarray:
    """Residue function R(t) (1/s; Ct = Cp (*) R) of the Sangren-Sheppard / BTEX capillary.

    t_s: (L,) times >= 0 of a uniform grid starting at 0. Parameters (N,), per mL tissue.
    Returns (N, L) cell-averaged residue values (so that a plain Riemann sum convolves well).
    """
    t = np.asarray(t_s, dtype=float)
    dt = float(t[1] - t[0])
    fp = np.asarray(fp_per_s, dtype=float)[:, None]
    tau = np.asarray(vp, dtype=float)[:, None] / fp
    a = np.asarray(ps_per_s, dtype=float)[:, None] / fp
    k = np.asarray(ps_per_s, dtype=float)[:, None] / np.asarray(ve, dtype=float)[:, None]
    # Cumulative outflow H at the cell edges t_j (j = 0..L), then average R over each cell.
    edges = np.concatenate([t, [t[-1] + dt]])[None, :]
    u = edges - tau
    pos = u > 0
    up = np.where(pos, u, 0.0)
    g = np.where(pos, _exchange_density(a, k, up), 0.0)
    g0 = np.exp(-a) * a * k  # limit of g at u -> 0+
    # Trapezoid cumulative integral of g from u = 0.
    prev_u = np.concatenate([np.zeros_like(up[:, :1]), up[:, :-1]], axis=1)
    prev_g = np.concatenate([np.zeros_like(g[:, :1]), g[:, :-1]], axis=1)
    prev_g = np.where(prev_u > 0, prev_g, g0)
    inc = np.where(pos, 0.5 * (prev_g + g) * (up - prev_u), 0.0)
    cum = np.cumsum(inc, axis=1)
    h_cum = np.where(pos, np.exp(-a) + cum, 0.0)
    h_cum = np.minimum(h_cum, 1.0)
    r_edges = fp * (1.0 - h_cum)
    # Exact cell average of the step at tau, trapezoid elsewhere.
    r_cell = 0.5 * (r_edges[:, :-1] + r_edges[:, 1:])
    lo = edges[:, :-1]
    in_cell = (tau >= lo) & (tau < lo + dt)
    frac = np.clip((tau - lo) / dt, 0.0, 1.0)
    step_val = frac * fp + (1.0 - frac) * r_edges[:, 1:]
    return np.where(in_cell, step_val, r_cell)


def tissue_curves(
    times_s: np.ndarray,
    aif_times_s: np.ndarray,
    aif_gd_mmol_l: np.ndarray,
    mbf_ml_min_g: np.ndarray,
    ps_ml_min_g: np.ndarray,
    vb: np.ndarray,
    ve: np.ndarray,
    hematocrit: float = HEMATOCRIT,
    delay_s: float | np.ndarray = 0.0,
    *,
    heterogeneity_cv: float = 0.3,
    n_units: int = 3,
    dt_s: float = 0.2,
) -> np.ndarray:
    """Myocardial tissue Gd (mmol/L tissue), ``(N, T)`` at ``times_s``.

    aif_times_s / aif_gd_mmol_l: whole-blood arterial input (mmol/L), any sampling covering
        ``times_s`` (values before its first sample are taken as its first value: the tissue
        starts in equilibrium with a residual baseline).
    mbf_ml_min_g, ps_ml_min_g: (N,) blood flow and permeability-surface product per gram.
    vb, ve: (N,) blood and interstitial volume fractions (mL/mL tissue).
    delay_s: scalar or (N,) arrival delay of the input at the tissue (s).
    Plasma input Cp = Cb / (1 - Hct); plasma flow Fp = MBF * 1.05 / 60 * (1 - Hct) per s;
    plasma volume vp = vb (1 - Hct). Flow heterogeneity: ``n_units`` sub-units, log-normal
    flows with coefficient of variation ``heterogeneity_cv``.
    """
    times = np.asarray(times_s, dtype=float)
    at = np.asarray(aif_times_s, dtype=float)
    ab = np.asarray(aif_gd_mmol_l, dtype=float)
    mbf = np.atleast_1d(np.asarray(mbf_ml_min_g, dtype=float))
    n = mbf.size
    ps = np.broadcast_to(np.asarray(ps_ml_min_g, dtype=float), (n,))
    vb_ = np.broadcast_to(np.asarray(vb, dtype=float), (n,))
    ve_ = np.broadcast_to(np.asarray(ve, dtype=float), (n,))
    delay = np.broadcast_to(np.asarray(delay_s, dtype=float), (n,))

    t0 = min(float(times.min()), float(at[0])) - float(delay.max())
    t_end = float(times.max())
    grid = np.arange(t0, t_end + 2 * dt_s, dt_s)
    lag = np.arange(grid.size) * dt_s
    fb = mbf * TISSUE_DENSITY_G_ML / 60.0
    fp = fb * (1.0 - hematocrit)
    vp = vb_ * (1.0 - hematocrit)
    ps_s = ps * TISSUE_DENSITY_G_ML / 60.0

    weights, rel = flow_heterogeneity(n_units, heterogeneity_cv)
    resid = np.zeros((n, grid.size))
    for w, m in zip(weights, rel, strict=True):
        resid += w * residue_function(lag, fp * m, vp, ve_, ps_s)

    # Delays: group pixels with the same delay (usually one or a few values).
    out = np.empty((n, times.size))
    nfft = int(2 ** np.ceil(np.log2(2 * grid.size)))
    rfft_r = np.fft.rfft(resid, nfft, axis=1)
    uniq, inv = np.unique(np.round(delay, 3), return_inverse=True)
    for i, d in enumerate(uniq):
        sel = inv == i
        # Input at cell midpoints (the residue is cell-averaged): second-order accurate.
        cp = np.interp(grid - d - 0.5 * dt_s, at, ab, left=ab[0], right=ab[-1]) / (1.0 - hematocrit)
        cp0 = cp[0]
        conv = np.fft.irfft(rfft_r[sel] * np.fft.rfft(cp - cp0, nfft)[None, :], nfft, axis=1)
        ct = conv[:, : grid.size] * dt_s + cp0 * (vp[sel] + ve_[sel])[:, None]
        # Sample at the acquisition times (grid is uniform: linear interpolation by index).
        pos = (times - grid[0]) / dt_s
        i0 = np.clip(np.floor(pos).astype(int), 0, grid.size - 2)
        f = pos - i0
        out[sel] = ct[:, i0] * (1.0 - f) + ct[:, i0 + 1] * f
    return out
