"""Pixelwise and regional myocardial blood flow: the public fitting API.

``mbf_map(aif, tissue, times_s, model="fermi" | "btex", hematocrit=0.42) -> MbfMaps``

Inputs and units
    aif: (T,) whole-blood Gd (mmol/L) of the LV blood pool, at ``times_s`` (or at its own
        ``aif_times_s``, see below). tissue: (..., T) tissue Gd (mmol/L), time on the last axis
        (as the published mapping tool takes it); only dynamic (saturation-recovery) frames.
    times_s: (T,) strictly increasing acquisition times in s: one frame per heartbeat, so the
        sampling is irregular.
    Outputs have tissue's spatial shape ``(...)``; MBF is blood flow in mL/min/g (x 60/1.05).

Models (each one a small module with the residue function and its dictionary grid)
    ``fermi`` (:mod:`.fermi`, blood AIF, amplitude = blood flow) and ``btex``
    (:mod:`.btex`, plasma input Cb/(1-Hct), amplitude = plasma flow, reported Fb = Fp/(1-Hct)).

How the fit works (fast, vectorised over pixels)
    1. Baseline: the AIF foot is found (last frame before the peak below 5% of the
       enhancement); the median AIF and the mean tissue value over the frames before it are
       subtracted (a residual Gd baseline from an earlier bolus is in equilibrium and drops
       out). Both are then divided by the AIF peak (exact invariance to a common scale).
    2. Irregular sampling: the model is evaluated on a fine uniform grid (``dt_fine_s``,
       default 0.2 s or a quarter of the shortest AIF frame interval if that is less, at least
       0.05 s): the AIF is interpolated between its sample times with a monotone cubic (PCHIP;
       zero before its first sample, held after its last), convolved by FFT with the exact
       cell averages of the model residue, and the fine model curve is sampled at the actual
       frame times ``t_i - delay`` by linear interpolation. The data are never resampled.
    3. Bolus-arrival delay: the flow estimate is very sensitive to it (about 1% per 10 ms at
       stress), and single noisy curves do not pin it down, so it is estimated once on a
       high-SNR curve: the mean of the given region curves (:func:`fit_curves`, default
       ``delay_s="shared"``) or of the map's myocardium-like pixels (:func:`mbf_map`,
       ``MbfMaps.reference_delay_s``), and shared. Model-free start: early on all tracer is
       still in the tissue, ``C = F * int Ca(t - d)``, fitted on the upslope (frames up to
       30% of the peak). Fermi keeps that value (its smooth shoulder cannot represent the
       capillary transit and would trade flow for delay); BTEX refines it within +-0.25 s.
       Estimated delays are >= -0.5 frame (the LV blood is upstream of the myocardium).
    4. Region fits: dictionary starts (the best local maxima of the normalised
       correlation over the model's shape grid), then a batched Levenberg-Marquardt fit on
       the exact model with the flow solved linearly (variable projection); three or more
       curves at one delay (a slice's segments) also start from the median of their fitted
       shapes (``SIBLING_START``). BTEX region fits at one delay then take the blood-volume
       prior of the delay scan (:func:`btex.prior_cost`) over a profile of transit times
       (:func:`_prior_profile`; ``fit_curves(prior=False)`` for least squares alone).
    5. Pixel maps: dictionary of unit-amplitude model curves over a shape lattice at the
       reference delay; the flow is linear, so the global least-squares search is a
       normalised matrix product (float32, pixel chunks) and an argmax, followed by a
       separable parabolic interpolation of the score and of the flow around the best node.
       BTEX uses a lattice rotated along its flow/transit-time valley and centred on the
       reference fit, with ``ke`` on a few steps around the reference (see
       :func:`btex.pixel_lattice`), and picks the node by maximum a posteriori: least squares
       plus ``s2 * sum(((c - c_ref) / sd)^2)`` over the lattice coordinates ``c``, a Gaussian
       prior around the reference (``btex.PIXEL_PRIOR_SD``) weighted by the pixel's own
       noise variance per frame ``s2`` (residual of its best unpenalised node / (T - 4)).
       Without it the best of thousands of noisy correlations drifts to far nodes (the
       interquartile range of pixel MBF / truth is 1.6-1.7x wider on noisy synthetic maps);
       the prior is loose along the flow axis ``a`` so that defects keep their contrast,
       and pixels that the data determine (small ``s2``) keep their own shape. Fermi does
       the same on a lattice in ``(log(tau0 + 1 s), log k)`` centred on the median shape of
       the myocardium-like pixels from a first search over its default grid
       (``fermi.LATTICE_FROM_PIXELS``, :func:`fermi.pixel_lattice`): the shape fitted on the
       mean curve sits at another point of Fermi's tau0/k valley than single pixels do.
    6. Window: BTEX uses all frames; Fermi the first pass of the tissue (up to the AIF peak
       plus 0.75 x its rise time for region fits, 2.0 x for pixel maps, shifted by the
       delay), as usual for Fermi deconvolution.
    7. Quality: R^2 (threshold: the model's ``MIN_R2``) and RMS residual per fit, a reliability
       mask and status bits; outputs are always finite (invalid fits give 0 with ``reliable``
       False).
"""

from __future__ import annotations

import threading
import types
from dataclasses import dataclass, field

import numpy as np

from qperf_viewer.errors import InputError
from qperf_viewer.quant import btex, fermi
from qperf_viewer.quant.pchip import Pchip

MODELS: dict[str, types.ModuleType] = {"fermi": fermi, "btex": btex}

#: Status bits of each fit (``MbfMaps.status``).
STATUS_INVALID_INPUT = 1  # non-finite values in the tissue curve
STATUS_NO_ENHANCEMENT = 2  # no positive fit (flat or negative curve)
STATUS_POOR_FIT = 4  # R^2 below ``min_r2``
STATUS_OUT_OF_RANGE = 8  # MBF outside the plausible range
STATUS_AT_BOUND = 16  # slowest transit of the model range or latest delay (informative)
STATUS_AIF_UNUSABLE = 32  # AIF without a usable first pass
UNRELIABLE_BITS = (
    STATUS_INVALID_INPUT
    | STATUS_NO_ENHANCEMENT
    | STATUS_POOR_FIT
    | STATUS_OUT_OF_RANGE
    | STATUS_AIF_UNUSABLE
)

#: Range of the bolus-arrival delay of the tissue relative to the AIF (s). Estimated delays
#: are further limited below to -0.5 x the median frame interval: the LV blood is upstream of
#: the myocardium, so only a timing misalignment (less than half a frame after alignment)
#: can make the tissue appear to arrive first.
DELAY_BOUNDS_S = (-1.0, 6.0)
#: Plausible MBF range (mL/min/g) for the reliability flag.
MBF_RANGE_ML_MIN_G = (0.05, 10.0)
_CHUNK = 1024
#: Step of the fine model grid (s), at most a quarter of the shortest frame interval (of the
#: AIF's times): exactly that quarter since stop 26 (0.15 s at 0.61 s stress frames), not
#: 0.2 s halved until below it (0.1 s). Over the 65 runs of ``benchmarks/bench_accuracy.py``
#: the same 61 met all targets (summed condition error 562% against 559%, delay RMS 0.077 /
#: 0.097 s against 0.077 / 0.098 s); ``qperf-viewer analyze`` took 1.8 CPU-s (about 25%)
#: less, ``benchmarks/bench_analyze.py --baseline``, 3 alternated pairs.
FINE_DT_S = 0.2
#: ... but not below this (s): one frame per heartbeat is at least 0.2 s apart, and two frames
#: a few ms apart (a duplicated or odd trigger time) made the grid so fine that one region fit
#: took 99 s and a 900-pixel map 22 GB (4 ms apart, 60 frames).
FINE_DT_MIN_S = 0.05


@dataclass
class MbfMaps:
    """Fitted maps (or region values), all finite, with the spatial shape of the tissue input.

    mbf_ml_min_g: blood flow, mL/min/g. delay_s: bolus-arrival delay of the tissue vs the AIF
        (s; maps: the shared reference delay, see ``PIXEL_DELAY_OFFSETS_S`` of the model).
    r2: coefficient of determination of the fit (frames used). residual_rms: RMS residual
        (mmol/L). reliable: bool, fit usable for reporting. status: uint8 status bits
        (``STATUS_*``). flags: data-quality notes for the whole map.
    ps_ml_min_g / vb / ve: BTEX only (None for Fermi): permeability-surface product (plasma,
        mL/min/g), blood volume and interstitial volume fractions (mL/mL tissue).
    params: the model's shape parameters (``fermi.SHAPE_PARAMS`` / ``btex.SHAPE_PARAMS``).
    reference_delay_s: maps only: the map-level delay fitted on its mean myocardium-like curve
        (pass it as ``delay_s`` to :func:`fit_curves` for the segments of the same slice).
    fit_frames: indices of the frames used by the fit (Fermi: the first pass).
    """

    model: str
    mbf_ml_min_g: np.ndarray
    delay_s: np.ndarray
    r2: np.ndarray
    residual_rms: np.ndarray
    reliable: np.ndarray
    status: np.ndarray
    hematocrit: float
    flags: list[str] = field(default_factory=list)
    ps_ml_min_g: np.ndarray | None = None
    vb: np.ndarray | None = None
    ve: np.ndarray | None = None
    params: dict[str, np.ndarray] = field(default_factory=dict)
    reference_delay_s: float = 0.0
    fit_frames: np.ndarray | None = None

    def arrays(self) -> dict[str, np.ndarray]:
        """All maps as a flat dict (for ``np.savez``), flags joined in a string array."""
        out: dict[str, np.ndarray] = {
            "mbf_ml_min_g": self.mbf_ml_min_g,
            "delay_s": self.delay_s,
            "r2": self.r2,
            "residual_rms": self.residual_rms,
            "reliable": self.reliable,
            "status": self.status,
            "model": np.array(self.model),
            "hematocrit": np.array(self.hematocrit),
            "flags": np.array(self.flags, dtype=str),
            "reference_delay_s": np.array(self.reference_delay_s),
        }
        for name in ("ps_ml_min_g", "vb", "ve"):
            val = getattr(self, name)
            if val is not None:
                out[name] = val
        for name, val in self.params.items():
            out[f"param_{name}"] = val
        return out


# --------------------------------------------------------------------------------------------
# Input checks and preprocessing


def _as_times(times_s: np.ndarray, n: int, what: str) -> np.ndarray:
    t = np.asarray(times_s, dtype=float).reshape(-1)
    if t.size != n:
        raise InputError(f"{what} has {t.size} values but the curves have {n} frames.")
    if not np.all(np.isfinite(t)):
        raise InputError(f"{what} contains non-finite values.")
    if n > 1 and np.any(np.diff(t) <= 0):
        raise InputError(f"{what} must be strictly increasing (one time per frame, seconds).")
    return t


def _clean_aif(aif: np.ndarray) -> tuple[np.ndarray, bool]:
    """Fill non-finite AIF samples by interpolation; False when too few are finite."""
    a = np.asarray(aif, dtype=float).copy()
    ok = np.isfinite(a)
    if ok.sum() < 3:
        return np.zeros_like(a), False
    if not ok.all():
        idx = np.arange(a.size)
        a[~ok] = np.interp(idx[~ok], idx[ok], a[ok])
    return a, True


def baseline_frames(aif: np.ndarray) -> np.ndarray:
    """Indices of the pre-contrast frames: those before the AIF foot.

    The foot is the last frame before the AIF peak whose enhancement (over the median of the
    first frames) is below 5% of the peak enhancement. Empty when the bolus arrives at once.
    """
    a = np.asarray(aif, dtype=float)
    if a.size < 3:
        return np.arange(0)
    smooth = np.convolve(np.pad(a, 1, mode="edge"), np.ones(3) / 3.0, mode="valid")
    p = int(np.argmax(smooth))
    if p < 1:
        return np.arange(0)
    b0 = float(np.median(a[: max(1, min(3, p))]))
    amp = float(smooth[p] - b0)
    if not amp > 0:
        return np.arange(0)
    low = np.nonzero(a[:p] - b0 <= 0.05 * amp)[0]
    if low.size == 0:
        return np.arange(0)
    foot = int(low[-1])  # last low frame before the peak: the start of the rise
    return np.arange(0, max(foot, 1))


@dataclass
class _Prepared:
    aif: np.ndarray  # baseline-subtracted AIF (blood), (Ta,)
    aif_times: np.ndarray
    curves: np.ndarray  # (N, T) baseline-subtracted, invalid rows zeroed
    times: np.ndarray
    invalid: np.ndarray  # (N,) bool
    aif_ok: bool
    flags: list[str]
    foot: int = 0  # first tissue frame at or after the start of the AIF rise
    peak: int = 0  # AIF peak frame
    scale: float = 1.0  # AIF and curves were divided by this (the AIF peak)
    foot_time: float = 0.0  # time of the first frame of the AIF rise (s)


def _prepare(
    aif: np.ndarray,
    tissue: np.ndarray,
    times_s: np.ndarray,
    aif_times_s: np.ndarray | None,
    subtract_baseline: bool,
) -> tuple[_Prepared, tuple[int, ...]]:
    aif_arr = np.asarray(aif)
    if aif_arr.ndim != 1:
        raise InputError(f"The AIF must be one curve (T,), not an array of shape {aif_arr.shape}.")
    tis = np.asarray(tissue)
    if tis.ndim < 1 or tis.shape[-1] < 3:
        raise InputError(
            f"The tissue array must be (..., T) with time last and T >= 3, not {tis.shape}."
        )
    if not np.issubdtype(tis.dtype, np.number) or not np.issubdtype(aif_arr.dtype, np.number):
        raise InputError("The AIF and tissue arrays must be numeric.")
    n_t = tis.shape[-1]
    times = _as_times(times_s, n_t, "times_s")
    if aif_times_s is None:
        if aif_arr.size != n_t:
            raise InputError(
                f"The AIF has {aif_arr.size} frames but the tissue has {n_t} (time last); "
                "give the AIF's own times to interpolate it."
            )
        aif_times = times
    else:
        aif_times = _as_times(aif_times_s, aif_arr.size, "aif_times_s")
    spatial = tis.shape[:-1]
    curves = tis.reshape(-1, n_t).astype(float, copy=True)
    invalid = ~np.all(np.isfinite(curves), axis=1)
    curves[invalid] = 0.0
    a, ok = _clean_aif(aif_arr)
    flags: list[str] = []
    if ok and not np.all(np.isfinite(aif_arr)):
        flags.append("AIF had non-finite samples (interpolated)")
    base = baseline_frames(a) if ok else np.arange(0)
    if ok:
        amp = float(a.max() - (np.median(a[base]) if base.size else a[0]))
        if not (amp > 0) or int(np.argmax(a)) == 0:
            ok = False
    if not ok:
        flags.append("AIF unusable: no first-pass enhancement")
    if subtract_baseline and ok:
        if base.size:
            a = a - float(np.median(a[base]))
            # tissue baseline over the same frames (tissue arrives after the AIF foot)
            t_base = aif_times[base[-1]]
            tb = np.nonzero(times <= t_base)[0]
            if tb.size:
                curves = curves - curves[:, tb].mean(axis=1, keepdims=True)
        else:
            flags.append("no pre-contrast frames: baseline not subtracted")
    peak = int(np.argmax(a)) if ok else 0
    if ok and peak >= a.size - 2:
        flags.append("AIF peak at the end of the series: first pass may be truncated")
    foot_aif = int(base[-1]) + 1 if base.size else 0
    foot_time = float(aif_times[min(foot_aif, aif_times.size - 1)])
    foot = int(np.searchsorted(times, foot_time - 1e-9))
    # Work in units of the AIF peak: exact invariance to a common scaling, and tissue values
    # that cannot be tissue (over 1e6 x the blood peak) are treated as invalid input.
    scale = float(np.max(np.abs(a))) if ok else 1.0
    scale = scale if np.isfinite(scale) and scale > 0 else 1.0
    a = a / scale
    with np.errstate(over="ignore", invalid="ignore"):
        curves = curves / scale
        huge = ~(np.max(np.abs(curves), axis=1) < 1e6)
    invalid = invalid | huge
    curves[huge] = 0.0
    prep = _Prepared(a, aif_times, curves, times, invalid, ok, flags, foot, peak, scale, foot_time)
    return prep, spatial


# --------------------------------------------------------------------------------------------
# Model evaluation on a fine grid


class _Problem:
    """One AIF + frame times + model: builds unit-amplitude model curves.

    The AIF is interpolated with a monotone cubic (PCHIP: no overshoot, smaller error than
    linear at the bolus peak) onto a fine uniform grid, zero before its first sample and
    held after its last; for BTEX it is divided by (1 - Hct) (plasma input).
    """

    def __init__(
        self,
        model: types.ModuleType,
        aif: np.ndarray,
        aif_times: np.ndarray,
        times: np.ndarray,
        hematocrit: float,
        dt_fine_s: float | None = None,
    ):
        self.model = model
        self.times = np.asarray(times, dtype=float)
        scale = 1.0 / (1.0 - hematocrit) if getattr(model, "PLASMA_INPUT", False) else 1.0
        steps = np.diff(aif_times)
        dt = FINE_DT_S if dt_fine_s is None else float(dt_fine_s)
        if dt_fine_s is None and steps.size:  # at most a quarter of the shortest AIF interval
            dt = max(min(dt, float(steps.min()) / 4.0), FINE_DT_MIN_S)
        dt = max(dt, 1e-3)
        self.dt = dt
        self.t0 = float(min(self.times[0], aif_times[0]))
        t_end = float(self.times[-1]) + DELAY_BOUNDS_S[1] + 2 * dt
        self.n = int(np.ceil((t_end - self.t0) / dt)) + 2
        q = np.arange(self.n)
        self.ca = _interp_aif(aif_times, aif * scale, self.t0 + (q - 0.5) * dt)
        self.nfft = int(2 ** np.ceil(np.log2(2 * self.n)))
        self.ca_f = np.fft.rfft(self.ca, self.nfft)
        frame = float(np.median(np.diff(self.times))) if self.times.size > 1 else 1.0
        self.delay_range = (max(DELAY_BOUNDS_S[0], -0.5 * frame), DELAY_BOUNDS_S[1])
        self.weights: np.ndarray | None = None

    def with_times(self, times: np.ndarray, weights: np.ndarray | None = None) -> _Problem:
        """Same AIF and fine grid, sampled at other frame times (a subset, e.g. a window),
        optionally multiplied by per-frame ``weights`` (square roots of least-squares
        weights; the data must be weighted the same way)."""
        other = object.__new__(_Problem)
        other.__dict__.update(self.__dict__)
        other.times = np.asarray(times, dtype=float)
        other.weights = None if weights is None else np.asarray(weights, dtype=float)
        return other

    def fine(self, shape: np.ndarray, cache: bool = False) -> np.ndarray:
        """Unit-amplitude tissue curves on the fine grid ``t0 + m dt``: (M, n).

        cache: keep the residue cells (AIF-independent) for reuse by later dictionaries, and
        the curves themselves for later problems with the same AIF and fine grid (e.g. the
        free fit and the delay scan of one slice)."""
        key = None
        if cache:
            shape = np.ascontiguousarray(shape, dtype=float)
            key = (
                self.model.__name__, getattr(self.model, "FLOW_RD", None),
                getattr(self.model, "FLOW_UNITS", None), self.dt, self.n,
                self.nfft, hash(self.ca.tobytes()), shape.shape, hash(shape.tobytes()),
            )  # fmt: skip
            with _BANK_LOCK:
                hit = _FINE.get(key)
            if hit is not None:
                return hit
        out = self._fine(shape, cache)
        if key is not None:
            out.flags.writeable = False
            with _BANK_LOCK:
                if len(_FINE) >= 4:
                    _FINE.pop(next(iter(_FINE)))
                _FINE[key] = out
        return out

    def _fine(self, shape: np.ndarray, cache: bool) -> np.ndarray:
        r = _residue_bank(self.model, self.dt, self.n, shape) if cache else None
        if r is None:
            r = self.model.residue_cells(self.dt, self.n, shape)
        out = np.fft.irfft(np.fft.rfft(r, self.nfft, axis=1) * self.ca_f, self.nfft, axis=1)
        return out[:, : self.n] * self.dt

    def _positions(self, delays: np.ndarray):
        pos = (self.times[None, :] - delays.reshape(-1, 1) - self.t0) / self.dt
        i0 = np.clip(np.floor(pos).astype(np.int64), 0, self.n - 2)
        f = np.clip(pos - i0, 0.0, 1.0)
        return i0, f, pos < 0

    def sample_grid(self, fine: np.ndarray, delays: np.ndarray) -> np.ndarray:
        """Fine curves (M, n) sampled at ``times - d`` for every delay d (n_d,): (M, n_d, T)."""
        i0, f, before = self._positions(np.asarray(delays, dtype=float))
        out = fine[:, i0] * (1.0 - f) + fine[:, i0 + 1] * f
        out = np.where(before[None], 0.0, out)
        return out if self.weights is None else out * self.weights

    def sample_rows(self, fine: np.ndarray, delays: np.ndarray) -> np.ndarray:
        """Fine curves (M, n) sampled at ``times - delays[m]`` row by row: (M, T)."""
        i0, f, before = self._positions(np.asarray(delays, dtype=float))
        rows = np.arange(fine.shape[0])[:, None]
        out = fine[rows, i0] * (1.0 - f) + fine[rows, i0 + 1] * f
        out = np.where(before, 0.0, out)
        return out if self.weights is None else out * self.weights

    def curves(self, params: np.ndarray) -> np.ndarray:
        """Unit-amplitude model curves at the frame times for rows ``(shape..., delay)``."""
        p = np.asarray(params, dtype=float)
        return self.sample_rows(self.fine(p[:, :-1]), p[:, -1])


_BANK: dict[tuple, np.ndarray] = {}
#: Dictionary curves on the fine grid (AIF-dependent), the last few (see ``_Problem.fine``).
_FINE: dict[tuple, np.ndarray] = {}
_BANK_LOCK = threading.Lock()  # slices may be mapped on several threads


def _residue_bank(mod: types.ModuleType, dt: float, n: int, shape: np.ndarray) -> np.ndarray:
    """Residue cells of a dictionary grid, cached per (model, dt, grid) for a length >= n."""
    shape = np.ascontiguousarray(shape, dtype=float)
    key = (
        mod.__name__,
        id(mod.residue_cells),
        getattr(mod, "FLOW_RD", None),
        getattr(mod, "FLOW_UNITS", None),
        round(dt, 9),
        shape.shape,
        hash(shape.tobytes()),
    )
    with _BANK_LOCK:
        bank = _BANK.get(key)
    if bank is None or bank.shape[1] < n:
        n_alloc = int(np.ceil(n / 256.0) * 256)
        bank = mod.residue_cells(dt, n_alloc, shape)
        with _BANK_LOCK:
            if key not in _BANK and len(_BANK) >= 8:
                _BANK.pop(next(iter(_BANK)))
            _BANK[key] = bank
    return bank[:, :n]


def _interp_aif(t: np.ndarray, a: np.ndarray, x: np.ndarray) -> np.ndarray:
    if t.size >= 3:
        y = Pchip(t, a)(x)
        y = np.where(x < t[0], 0.0, np.where(x > t[-1], a[-1], y))
        return np.nan_to_num(y, nan=0.0)
    return np.interp(x, t, a, left=0.0, right=a[-1])


# --------------------------------------------------------------------------------------------
# Bolus-arrival delay (model-free start and prior)


def _estimate_delays(
    problem: _Problem, curves: np.ndarray, foot: int, *, frac: float = 0.3, order: int = 0
) -> np.ndarray:
    """Bolus-arrival delay of each (low-noise) curve from its upslope.

    Early on, while every tracer molecule is still in the tissue, ``C(t) = F * int Ca(t-d)``
    (``order=0``; ``order=1`` adds a first-order loss term ``-F*lambda * int int Ca`` for
    longer windows). For each delay on a 0.05 s grid the coefficients are solved by least
    squares over the frames from two before the AIF foot to the last frame below ``frac`` of
    the curve's maximum; the delay with the smallest residual (parabolic refinement) is
    returned, within ``problem.delay_range``.
    """
    grid = np.arange(problem.delay_range[0], problem.delay_range[1] + 1e-9, 0.05)
    cum = np.cumsum(problem.ca) * problem.dt
    cum2 = np.cumsum(cum) * problem.dt
    x1 = problem.sample_grid(cum[None, :], grid)[0]  # (D, T)
    x2 = -problem.sample_grid(cum2[None, :], grid)[0]
    n, t = curves.shape
    smooth = np.apply_along_axis(lambda c: np.convolve(c, np.ones(3) / 3.0, "same"), 1, curves)
    out = np.zeros(n)
    k_start = max(0, foot - 2)
    for i in range(n):
        c = curves[i]
        peak = float(smooth[i, k_start:].max()) if t > k_start else 0.0
        if not peak > 0:
            continue
        above = np.nonzero(smooth[i, k_start:] >= frac * peak)[0]
        k1 = k_start + (int(above[0]) if above.size else t - k_start) - 1
        k1 = max(k1, k_start + 2)
        w = slice(k_start, min(k1 + 1, t))
        a11 = np.einsum("dt,dt->d", x1[:, w], x1[:, w])
        a22 = np.einsum("dt,dt->d", x2[:, w], x2[:, w])
        a12 = np.einsum("dt,dt->d", x1[:, w], x2[:, w])
        b1 = x1[:, w] @ c[w]
        b2 = x2[:, w] @ c[w]
        det = a11 * a22 - a12**2
        ok2 = det > 1e-12 * np.maximum(a11 * a22, 1e-300)
        with np.errstate(divide="ignore", invalid="ignore"):
            f1 = np.where(ok2, (a22 * b1 - a12 * b2) / np.where(ok2, det, 1.0), 0.0)
            f2 = np.where(ok2, (a11 * b2 - a12 * b1) / np.where(ok2, det, 1.0), 0.0)
            two = ok2 & (f1 > 0) & (f2 >= 0) & (order > 0)
            one = np.where(a11 > 0, b1 / np.where(a11 > 0, a11, 1.0), 0.0)
        ss = float(c[w] @ c[w])
        expl = np.where(two, f1 * b1 + f2 * b2, np.where(one > 0, one * b1, 0.0))
        sse = ss - expl
        j = int(np.argmin(sse))
        d = grid[j]
        if 0 < j < grid.size - 1:
            den = sse[j - 1] - 2 * sse[j] + sse[j + 1]
            if den > 0:
                d += 0.05 * float(np.clip(0.5 * (sse[j - 1] - sse[j + 1]) / den, -0.5, 0.5))
        out[i] = d
    return out


# --------------------------------------------------------------------------------------------
# Search


def _axis_transform(axis: np.ndarray) -> tuple[np.ndarray, bool]:
    axis = np.asarray(axis, dtype=float)
    logt = bool(np.all(axis > 0) and axis.max() / axis.min() > 4.0)
    return (np.log(axis) if logt else axis), logt


def _interp_axis(axis: np.ndarray, frac_index: np.ndarray) -> np.ndarray:
    tr, logt = _axis_transform(axis)
    v = np.interp(frac_index, np.arange(axis.size), tr)
    return np.exp(v) if logt else v


@dataclass
class _Fit:
    amplitude: np.ndarray  # (N,)
    shape: np.ndarray  # (N, D)
    delay: np.ndarray  # (N,)
    sse: np.ndarray  # (N,)
    at_bound: np.ndarray  # (N,) bool


def _dictionary(
    problem: _Problem, axes: tuple[np.ndarray, ...], delays: np.ndarray, to_shape=None, fine=None
):
    """Normalised atoms (T, K) float32, their norms (K,) and the grid dims.

    axes: lattice axes; ``to_shape`` maps lattice coordinates (M, D) to shape parameters
    (identity when None); fine: the lattice's fine-grid curves (M, n) when already known."""
    if fine is None:
        mesh = np.meshgrid(*axes, indexing="ij")
        shapes = np.stack([m.reshape(-1) for m in mesh], axis=1)
        if to_shape is not None:
            shapes = to_shape(shapes)
        # fixed grids are reused across slices and exams; per-map lattices are not
        fine = problem.fine(shapes, cache=to_shape is None)
    atoms = problem.sample_grid(fine, delays)
    dims = tuple(a.size for a in axes) + (delays.size,)
    atoms = atoms.reshape(-1, atoms.shape[-1])
    norms = np.sqrt(np.einsum("kt,kt->k", atoms, atoms))
    good = norms > 1e-12 * max(float(norms.max()), 1e-300)
    safe = np.where(good, norms, np.inf)
    bhat = np.ascontiguousarray((atoms / safe[:, None]).T, dtype=np.float32)
    return bhat, safe, dims


def _prior_penalty(
    axes: tuple[np.ndarray, ...], prior_sd: tuple[float, ...], n_delays: int
) -> np.ndarray:
    """Squared standardised distance (K,) of every dictionary atom (lattice x delays, in
    :func:`_dictionary` order) from the middle node of each lattice axis."""
    if len(prior_sd) < len(axes):
        raise ValueError(f"{len(prior_sd)} prior SDs for {len(axes)} lattice axes")
    sds = prior_sd[: len(axes)]
    z = [(ax - ax[(ax.size - 1) // 2]) / float(sd) for ax, sd in zip(axes, sds, strict=True)]
    mesh = np.meshgrid(*z, np.zeros(n_delays), indexing="ij")
    return sum(m**2 for m in mesh[:-1]).reshape(-1)


def _grid_search(
    problem: _Problem,
    curves: np.ndarray,
    axes: tuple[np.ndarray, ...],
    delays: np.ndarray,
    to_shape=None,
    prior_sd: tuple[float, ...] | None = None,
    fine: np.ndarray | None = None,
) -> _Fit:
    """Global dictionary search + separable parabolic refinement, vectorised over curves.

    The dictionary is a lattice over ``axes`` (shape parameters, or lattice coordinates
    mapped to them by ``to_shape``) times ``delays``; the parabolic step works in lattice
    index space. prior_sd: SD per lattice axis of a Gaussian prior centred on the middle
    node of each axis; the node (and its parabolic refinement) then maximises the explained
    energy minus the curve's noise variance per frame times the squared standardised
    distance (maximum a posteriori); the returned sum of squares stays the plain one.
    fine: the lattice's fine-grid curves when already computed (:func:`_fine_on`)."""
    bhat, safe, dims = _dictionary(problem, axes, delays, to_shape, fine)
    n = curves.shape[0]
    nd = len(dims)
    pen = None if prior_sd is None else _prior_penalty(axes, prior_sd, delays.size)
    pen32 = None if pen is None else pen.astype(np.float32)
    dof = max(curves.shape[1] - 4, 1)
    strides = np.array([int(np.prod(dims[i + 1 :])) for i in range(nd)], dtype=np.int64)
    amp = np.zeros(n)
    frac = np.zeros((n, nd))
    score = np.zeros(n)
    for start in range(0, n, _CHUNK):
        c = curves[start : start + _CHUNK]
        corr = c.astype(np.float32) @ bhat  # (n_c, K)
        best = np.argmax(corr, axis=1)
        rows = np.arange(c.shape[0])
        obj = None
        if pen is not None:
            top = np.maximum(corr[rows, best].astype(float), 0.0)
            s2 = np.maximum(np.einsum("nt,nt->n", c, c) - top**2, 0.0) / dof
            # in float32 and in place (the (chunk, K) products dominate the search's own time)
            obj = np.maximum(corr, np.float32(0.0))
            np.square(obj, out=obj)
            obj -= s2.astype(np.float32)[:, None] * pen32[None, :]
            best = np.argmax(obj, axis=1)
        f0 = corr[rows, best].astype(float)
        a0 = f0 / safe[best]
        idx = np.stack(np.unravel_index(best, dims), axis=1)  # (n_c, nd)
        amp_c = a0.copy()
        score_c = f0.copy()
        frac_c = idx.astype(float)
        for d in range(nd):
            lo_ok = idx[:, d] > 0
            hi_ok = idx[:, d] < dims[d] - 1
            m_lo = np.where(lo_ok, best - strides[d], best)
            m_hi = np.where(hi_ok, best + strides[d], best)
            fm = corr[rows, m_lo].astype(float)
            fp = corr[rows, m_hi].astype(float)
            am = fm / safe[m_lo]
            ap = fp / safe[m_hi]
            denom = fm - 2.0 * f0 + fp
            if obj is None:
                om, o0, op, o_den = fm, f0, fp, denom
            else:  # the step follows the penalised objective
                om = obj[rows, m_lo].astype(float)
                o0 = obj[rows, best].astype(float)
                op = obj[rows, m_hi].astype(float)
                o_den = om - 2.0 * o0 + op
            inner = lo_ok & hi_ok & (o_den < 0)
            with np.errstate(divide="ignore", invalid="ignore"):
                delta = np.where(inner, 0.5 * (om - op) / np.where(inner, o_den, -1.0), 0.0)
            delta = np.clip(delta, -0.5, 0.5)
            frac_c[:, d] += delta
            amp_c += delta * (ap - am) / 2.0 + delta**2 * (ap - 2.0 * a0 + am) / 2.0
            score_c += delta * (fp - fm) / 2.0 + delta**2 * denom / 2.0
        sl = slice(start, start + c.shape[0])
        amp[sl] = np.where(f0 > 0, np.maximum(amp_c, 0.0), 0.0)
        score[sl] = np.where(f0 > 0, np.maximum(score_c, f0), 0.0)
        frac[sl] = frac_c
    shape = np.stack([_interp_axis(ax, frac[:, i]) for i, ax in enumerate(axes)], axis=1)
    if to_shape is not None:
        shape = to_shape(shape)
    delay = _interp_axis(delays, frac[:, -1]) if delays.size > 1 else np.full(n, delays[0])
    energy = np.einsum("nt,nt->n", curves, curves)
    sse = np.maximum(energy - score**2, 0.0)
    idx = np.round(frac).astype(np.int64)
    # informative: the transit parameter (first shape axis) at the slow end of the grid
    edge = (idx[:, 0] >= dims[0] - 1) if dims[0] > 1 else np.zeros(n, dtype=bool)
    return _Fit(amp, shape, delay, sse, edge)


def _grid_starts(
    problem: _Problem,
    curves: np.ndarray,
    axes: tuple[np.ndarray, ...],
    delays: np.ndarray,
    n_starts: int,
) -> np.ndarray:
    """Starting points (N, S, D+1) for the local fits: the best ``n_starts`` local maxima of
    the dictionary score of each curve (delays (N, n_d) per curve, or (n_d,) shared)."""
    from scipy.ndimage import maximum_filter

    mesh = np.meshgrid(*axes, indexing="ij")
    shapes = np.stack([m.reshape(-1) for m in mesh], axis=1)
    fine = problem.fine(shapes, cache=True)
    n = curves.shape[0]
    delays = np.asarray(delays, dtype=float)
    per_curve = delays.ndim == 2
    out = np.zeros((n, n_starts, shapes.shape[1] + 1))
    shared = None if per_curve else problem.sample_grid(fine, delays)
    for i in range(n):
        dl = delays[i] if per_curve else delays
        atoms = problem.sample_grid(fine, dl) if per_curve else shared  # (Ks, n_d, T)
        nrm = np.sqrt(np.einsum("kdt,kdt->kd", atoms, atoms))
        dot = np.einsum("kdt,t->kd", atoms, curves[i])
        with np.errstate(divide="ignore", invalid="ignore"):
            score = np.where((nrm > 0) & (dot > 0), dot / np.where(nrm > 0, nrm, 1.0), 0.0)
        grid_score = score.reshape(tuple(a.size for a in axes) + (dl.size,))
        peaks = (grid_score == maximum_filter(grid_score, size=3, mode="nearest")) & (
            grid_score > 0
        )
        cand = np.flatnonzero(peaks)
        if cand.size == 0:
            cand = np.array([int(np.argmax(grid_score))])
        cand = cand[np.argsort(-grid_score.reshape(-1)[cand])][:n_starts]
        while cand.size < n_starts:
            cand = np.concatenate([cand, cand[:1]])
        ks, kd = np.unravel_index(cand, (shapes.shape[0], dl.size))
        out[i, :, :-1] = shapes[ks]
        out[i, :, -1] = dl[kd]
    return out


#: Levenberg-Marquardt stop: a row stops after ``LM_STALL`` steps in a row that each lower its
#: sum of squares by less than ``LM_GAIN_TOL`` (relative; for a rejected step, its linearised
#: gain), or when its damping reaches 1e7.
LM_GAIN_TOL = 1e-5
LM_STALL = 3
#: Hold a parameter on its bound when the step points outwards (projected LM). Without it,
#: BTEX delay-scan fits with tc on its lower bound stopped after 25 iterations up to 7% above
#: the least sum of squares (flow up to 13% off).
LM_ACTIVE_SET = True
#: The Jacobian's delay column resamples the rows' own fine-grid curves (same values as a
#: fresh evaluation, one model evaluation less per iteration of a free-delay fit).
LM_REUSE_FINE = True


def _damped_step(reg: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Solve ``reg delta = -g`` per row ((M, P, P), (M, P)); diagonal fallback."""
    try:
        delta = -np.linalg.solve(reg, g[:, :, None])[:, :, 0]
    except np.linalg.LinAlgError:
        delta = -g / np.maximum(np.einsum("mpp->mp", reg), 1e-300)
    return np.nan_to_num(delta, nan=0.0, posinf=0.0, neginf=0.0)


def _local_fit(
    problem: _Problem,
    curves: np.ndarray,
    start: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    free: np.ndarray,
    iterations: int = 40,
) -> _Fit:
    """Batched Levenberg-Marquardt on the exact model, amplitude by variable projection.

    curves (M, T); start (M, D+1) rows ``(shape..., delay)``; lo/hi (D+1,) bounds; free
    (D+1,) bool (fixed parameters keep their start value). Positive parameters with a wide
    range are fitted in log space. Forward-difference Jacobians; per-row damping; a parameter
    on a bound whose step points outwards is held there for that step (``LM_ACTIVE_SET``).
    """
    m, t = curves.shape
    dim = start.shape[1]
    lo = np.broadcast_to(np.asarray(lo, dtype=float), (m, dim))
    hi = np.broadcast_to(np.asarray(hi, dtype=float), (m, dim))
    lo_c, hi_c = lo.min(axis=0), hi.max(axis=0)
    logt = (lo_c > 0) & (hi_c / np.where(lo_c > 0, lo_c, 1.0) > 4.0)  # (dim,)
    tlo = np.where(logt, np.log(np.where(lo > 0, lo, 1.0)), lo)
    thi = np.where(logt, np.log(np.where(hi > 0, hi, 1.0)), hi)

    def to_x(p: np.ndarray) -> np.ndarray:
        return np.clip(np.where(logt, np.log(np.maximum(p, 1e-300)), p), tlo, thi)

    def to_p(x: np.ndarray) -> np.ndarray:
        return np.where(logt, np.exp(x), x)

    def evaluate(x: np.ndarray, rows: np.ndarray | None = None, fine: np.ndarray | None = None):
        # fine: the rows' fine-grid curves when only the delay differs from theirs
        c = curves if rows is None else curves[rows]
        p = to_p(x)
        if fine is None:
            fine = problem.fine(p[:, :-1])
        b = problem.sample_rows(fine, p[:, -1])
        dot = np.einsum("mt,mt->m", b, c)
        nrm = np.einsum("mt,mt->m", b, b)
        with np.errstate(divide="ignore", invalid="ignore"):
            a = np.where((nrm > 0) & (dot > 0), dot / np.where(nrm > 0, nrm, 1.0), 0.0)
        r = c - a[:, None] * b
        return r, np.einsum("mt,mt->m", r, r), a, fine

    x = to_x(np.asarray(start, dtype=float))
    r, sse, amp, fine_x = evaluate(x)
    idx = np.flatnonzero(free)
    h = np.where(logt, 0.01, (hi_c - lo_c) * 1e-3)[idx]
    lam = np.full(m, 1e-2)
    active = np.ones(m, dtype=bool)
    stall = np.zeros(m, dtype=int)
    for _ in range(iterations):
        a = np.flatnonzero(active)
        if a.size == 0:
            break
        xa, ra = x[a], r[a]
        jac = np.empty((a.size, t, idx.size))
        for j, k in enumerate(idx):
            xh = xa.copy()
            step = np.where(xa[:, k] + h[j] > thi[a, k], -h[j], h[j])
            xh[:, k] += step
            reuse = LM_REUSE_FINE and k == dim - 1
            rj, _, _, _ = evaluate(xh, a, fine_x[a] if reuse else None)
            jac[:, :, j] = (rj - ra) / step[:, None]
        g = np.einsum("mtp,mt->mp", jac, ra)
        hess = np.einsum("mtp,mtq->mpq", jac, jac)
        diag = np.einsum("mpp->mp", hess)
        damp = lam[a, None] * diag + 1e-12 * (diag.max(axis=1, keepdims=True) + 1e-300)
        reg = hess + damp[:, :, None] * np.eye(idx.size)[None]
        delta = _damped_step(reg, g)
        if LM_ACTIVE_SET:
            # a parameter on a bound whose step points outwards is held there and the others
            # are solved for without it (a clipped full step crawls along the bound)
            span = 1e-9 * (thi[a][:, idx] - tlo[a][:, idx])
            held = ((xa[:, idx] <= tlo[a][:, idx] + span) & (delta < 0)) | (
                (xa[:, idx] >= thi[a][:, idx] - span) & (delta > 0)
            )
            rows = np.flatnonzero(held.any(axis=1) & ~held.all(axis=1))
            if rows.size:
                h_ = held[rows]
                keep = ~(h_[:, :, None] | h_[:, None, :])
                eye = np.eye(idx.size, dtype=bool)[None]
                reg_h = np.where(keep, reg[rows], 0.0) + np.where(eye & h_[:, :, None], 1.0, 0.0)
                delta[rows] = np.where(h_, 0.0, _damped_step(reg_h, np.where(h_, 0.0, g[rows])))
        x_try = xa.copy()
        x_try[:, idx] = np.clip(xa[:, idx] + delta, tlo[a][:, idx], thi[a][:, idx])
        r_try, sse_try, amp_try, fine_try = evaluate(x_try, a)
        better = sse_try < sse[a]
        gain = np.where(better, (sse[a] - sse_try) / np.maximum(sse[a], 1e-300), 0.0)
        ok = a[better]
        x[ok] = x_try[better]
        r[ok] = r_try[better]
        sse[ok] = sse_try[better]
        amp[ok] = amp_try[better]
        fine_x[ok] = fine_try[better]
        lam[a] = np.where(better, np.maximum(lam[a] * 0.3, 1e-7), np.minimum(lam[a] * 10.0, 1e7))
        # a step counts towards the stop when it gains too little, or, when rejected, when
        # even its linearised gain is too small (the row is at its minimum); other rejected
        # steps only raise the damping (counting them left fits at their dictionary start
        # after three rejections at the initial damping)
        d_x = x_try[:, idx] - xa[:, idx]
        lin = 2.0 * np.einsum("mp,mp->m", g, d_x) + np.einsum("mp,mpq,mq->m", d_x, hess, d_x)
        pred = np.maximum(-lin, 0.0) / np.maximum(sse[a], 1e-300)
        small = np.where(better, gain <= LM_GAIN_TOL, pred <= LM_GAIN_TOL)
        stall[a] = np.where(small, stall[a] + 1, 0)
        active[a] = (stall[a] < LM_STALL) & (lam[a] < 1e7)
    p = to_p(x)
    tol = 1e-3 * (thi - tlo)
    at_bound = (x[:, 0] >= thi[:, 0] - tol[:, 0]) & free[0]
    at_bound |= (x[:, -1] >= thi[:, -1] - tol[:, -1]) & free[-1]
    return _Fit(amp, p[:, :-1], p[:, -1], sse, at_bound)


# --------------------------------------------------------------------------------------------
# Orchestration


def _window(
    mod: types.ModuleType, prep: _Prepared, delay: float = 0.0, pixels: bool = False
) -> tuple[np.ndarray, np.ndarray | None]:
    """Frames used for the fit and their weights (square roots; None = all weights 1).

    All frames, or for models that ask for it the first pass of the tissue: up to the AIF
    peak + ``FIRST_PASS_WINDOW`` (pixel maps: ``PIXEL_FIRST_PASS_WINDOW`` where the model
    has it) x its rise time, shifted by the tissue's bolus-arrival ``delay``, with a linear
    taper of the least-squares weight over one frame interval around that end (so the
    estimate does not jump when a frame crosses it). Region fits of models with
    ``FIRST_PASS_TAPER`` instead weight the frames after the (delayed) AIF peak by a linear
    ramp from 1 there to 0 at the window's end."""
    n_t = prep.times.size
    w = getattr(mod, "FIRST_PASS_WINDOW", None)
    if pixels and w is not None:
        w = getattr(mod, "PIXEL_FIRST_PASS_WINDOW", w)
    if w is None or not prep.aif_ok:
        return np.arange(n_t), None
    at = prep.aif_times
    t_peak, t_foot = at[prep.peak], prep.foot_time
    end = t_peak + max(delay, 0.0) + w * max(t_peak - t_foot, 0.0)
    step = float(np.median(np.diff(prep.times))) if n_t > 1 else 1.0
    ls_w = np.clip((end + 0.5 * step - prep.times) / step, 0.0, 1.0)
    if not pixels and getattr(mod, "FIRST_PASS_TAPER", False):
        t_top = t_peak + max(delay, 0.0)
        ramp = np.clip((end - prep.times) / max(end - t_top, 1e-6), 0.0, 1.0)
        ls_w = np.where(prep.times <= t_top, 1.0, ramp)
    frames = np.flatnonzero(ls_w > 0)
    first_after = int(np.searchsorted(prep.times, t_foot + max(delay, 0.0)))
    need = min(n_t, max(first_after + 5, 6))
    frames = np.arange(max(int(frames.max()) + 1 if frames.size else 0, need))
    weights = np.sqrt(np.maximum(ls_w[frames], 0.0))
    weights[: max(need - 1, 0)] = np.maximum(weights[: max(need - 1, 0)], 1.0)
    return frames, weights


def _typical_curve(prep: _Prepared) -> np.ndarray:
    """Robust mean of the myocardium-like curves: the high-SNR curve on which a map's
    reference delay (and, for BTEX, the shared ``ke``) is fitted.

    Myocardium-like: peak enhancement 2-30% of the AIF's, reached after the AIF peak (blood
    and partial-volume pixels peak with or before the LV blood). The mean is taken over those
    between the 10th and 90th percentile of peak enhancement. Falls back to all curves.
    """
    if not (~prep.invalid).any():
        return np.zeros(prep.curves.shape[1])
    return prep.curves[_typical_rows(prep)].mean(axis=0)


def _typical_rows(prep: _Prepared) -> np.ndarray:
    """Row indices (into ``prep.curves``) of the curves :func:`_typical_curve` averages
    (empty when no curve is valid)."""
    valid = np.flatnonzero(~prep.invalid)
    if valid.size == 0:
        return valid
    c = prep.curves[valid]
    peak_blood = float(prep.aif.max())
    pad = np.concatenate([c[:, :1], c, c[:, -1:]], axis=1)
    sm = (pad[:, :-2] + pad[:, 1:-1] + pad[:, 2:]) / 3.0
    pk = sm.max(axis=1)
    t_pk = prep.times[np.argmax(sm, axis=1)]
    t_aif = prep.aif_times[prep.peak]
    plausible = (pk > 0.02 * peak_blood) & (pk < 0.3 * peak_blood)
    sel = plausible & (t_pk > t_aif)
    if sel.sum() < 5:
        sel = plausible
    if sel.sum() < 5:
        sel = np.ones(c.shape[0], dtype=bool)
    lo, hi = np.percentile(pk[sel], [10, 90])
    core = sel & (pk >= lo) & (pk <= hi)
    return valid[core if core.sum() >= 3 else sel]


def _reference_delay(
    mod: types.ModuleType,
    problem_all: _Problem,
    problem: _Problem,
    curve_all: np.ndarray,
    frames: np.ndarray,
    foot: int,
) -> float:
    """Bolus-arrival delay of one high-SNR curve (e.g. the mean of a slice's myocardium).

    BTEX fits it (free-delay Levenberg-Marquardt from the upslope start); Fermi takes the
    model-free upslope estimate (fitting it would trade delay for its shoulder shape)."""
    c = curve_all[None, :]
    if getattr(mod, "FIT_DELAY", False):
        cw = c[:, frames] if problem.weights is None else c[:, frames] * problem.weights
        fit = _fit_regions(mod, problem_all, problem, c, cw, foot, "each")
        return float(fit.delay[0])
    return float(_estimate_delays(problem_all, c, foot, frac=0.3, order=0)[0])


#: Region fits with one fixed delay per curve (a delay scan of one curve, as in
#: :func:`qperf_viewer.pipeline.slices.reference_delay`): Levenberg-Marquardt from the best
#: ``SCAN_STARTS`` dictionary atoms (plus ``start_shape`` when given), ``SCAN_ITERATIONS``
#: iterations each. From the best atom alone, fits near the true delay stopped in a local
#: minimum (residual 40-360x the optimum's) and noise-free rest delays came out up to 0.11 s
#: late; with 3 atoms and 40 iterations the scan found the optimum but the analysis of a
#: benchmark exam took 5.5 s instead of 3.7 s; 2 atoms x 10 iterations plus the free fit's
#: shape found it on the noise-free exams as well (4.0 s; the same 57 of 65 benchmark runs).
SCAN_STARTS = 2
SCAN_ITERATIONS = 10


def _fit_regions(
    mod: types.ModuleType,
    problem_all: _Problem,
    problem: _Problem,
    curves_all: np.ndarray,
    curves: np.ndarray,
    foot: int,
    delay: float | str,
    start_shape: np.ndarray | None = None,
    prior_hct: float | None = None,
) -> _Fit:
    """Accurate fits of a few low-noise curves: dictionary starts, then LM on the exact model.

    delay: a value (s, fixed), ``"shared"`` (one reference delay from the mean curve, fixed
    for all curves) or ``"each"`` (per curve: BTEX fits it, Fermi takes its upslope value).
    start_shape: (N, n_shape) or (n_shape,) shape parameters tried as one more start per curve.
    prior_hct: with the model's ``prior_cost`` (BTEX) and one delay for all curves, choose each
    curve's fit by that penalised cost over a profile of its transit time (:func:`_prior_profile`;
    the hematocrit converts the fits to flow and blood volume); None: least squares alone.
    """
    n = curves.shape[0]
    axes = mod.shape_grid()
    lo_s, hi_s = mod.shape_bounds()
    dim = lo_s.size + 1
    free_delay = False
    if isinstance(delay, str) and delay == "shared":
        d_ref = _reference_delay(
            mod,
            problem_all,
            problem,
            curves_all.mean(axis=0),
            _frames_of(problem, problem_all),
            foot,
        )
        d_est = np.full(n, d_ref)
    elif isinstance(delay, str) and delay == "each":
        d_est = _estimate_delays(problem_all, curves_all, foot, frac=0.3, order=0)
        free_delay = bool(getattr(mod, "FIT_DELAY", False))
    elif isinstance(delay, str):
        raise InputError(f"delay must be a number of seconds, 'shared' or 'each', not {delay!r}.")
    else:
        d_est = np.broadcast_to(np.asarray(delay, dtype=float).reshape(-1), (n,)).copy()
    win_lo, win_hi = getattr(mod, "DELAY_WINDOW_S", (-1.0, 1.5))
    if free_delay:
        offsets = np.arange(max(win_lo, -0.75), min(win_hi, 1.0) + 1e-9, 0.25)
        if offsets.size < 2:
            offsets = np.array([win_lo, win_hi])
        n_starts = 3
    else:
        offsets = np.array([0.0])
        # one delay per curve (a delay scan of one curve): see SCAN_STARTS
        n_starts = SCAN_STARTS if np.ndim(delay) > 0 else 3
    d_range = problem_all.delay_range if free_delay else DELAY_BOUNDS_S
    delays = np.clip(d_est[:, None] + offsets[None, :], *d_range)
    starts = _grid_starts(problem, curves, axes, delays, n_starts)  # (n, S, dim)
    if start_shape is not None:
        extra = np.empty((n, 1, dim))
        extra[:, 0, :-1] = np.clip(np.broadcast_to(start_shape, (n, dim - 1)), lo_s, hi_s)
        extra[:, 0, -1] = starts[:, 0, -1]
        starts = np.concatenate([starts, extra], axis=1)
        n_starts += 1
    rows = starts.reshape(-1, dim)
    rep = np.repeat(np.arange(n), n_starts)
    lo = np.broadcast_to(np.concatenate([lo_s, [0.0]]), (rows.shape[0], dim)).copy()
    hi = np.broadcast_to(np.concatenate([hi_s, [0.0]]), (rows.shape[0], dim)).copy()
    lo[:, -1] = np.clip(d_est[rep] + win_lo, *d_range)
    hi[:, -1] = np.clip(d_est[rep] + win_hi, *d_range)
    free = np.ones(dim, dtype=bool)
    free[-1] = free_delay
    its = SCAN_ITERATIONS if np.ndim(delay) > 0 and not free_delay else 40
    fit = _local_fit(problem, curves[rep], rows, lo, hi, free, its)
    sse = fit.sse.reshape(n, n_starts)
    best = np.argmin(sse, axis=1) + np.arange(n) * n_starts
    out = _Fit(
        fit.amplitude[best], fit.shape[best], fit.delay[best], fit.sse[best], fit.at_bound[best]
    )
    if SIBLING_START and n >= 3 and np.ndim(delay) == 0:
        out = _sibling_round(problem, curves, out, lo[best], hi[best], free, its, lo_s)
    if prior_hct is not None and np.ndim(delay) == 0 and hasattr(mod, "prior_cost"):
        out = _prior_profile(mod, problem, curves, out, lo[best], hi[best], free, its, prior_hct)
    return out


#: Region fits with the blood-volume prior (``fit_curves(prior=True)``, the default for BTEX
#: region fits at one delay): fixed transit times profiled per curve, log-spaced over the
#: bound range; the best by ``prior_cost`` is refined by a parabola in log(tc).
REGION_PRIOR_TC_STEPS = 9


def _prior_profile(mod, problem, curves, fit: _Fit, lo, hi, free, its, hct: float) -> _Fit:
    """``fit`` replaced, per curve, by the fit at fixed transit time that minimises
    ``mod.prior_cost`` (the delay scan's criterion: least squares plus the physiological
    blood-volume prior), where that is lower than the free fit's penalised cost.

    The first shape parameter is the transit time (BTEX's ``tc``). The BTEX least-squares
    surface has a valley where a shorter transit (smaller blood volume)
    trades for a higher flow; on a noise-free phantom segment curve its optimum sat on the
    transit time's lower bound with blood volume 0.010 and flow +17%."""
    n, n_t = curves.shape
    lo_tc, hi_tc = float(lo[:, 0].min()), float(hi[:, 0].max())
    tcs = np.geomspace(lo_tc, min(hi_tc, 25.0), REGION_PRIOR_TC_STEPS)
    m = tcs.size
    fixed = free.copy()
    fixed[0] = False

    def run(tc: np.ndarray, rows_of: np.ndarray) -> _Fit:
        rows = np.concatenate([fit.shape[rows_of], fit.delay[rows_of, None]], axis=1)
        rows[:, 0] = tc
        return _local_fit(
            problem, curves[rows_of], np.clip(rows, lo[rows_of], hi[rows_of]), lo[rows_of],
            hi[rows_of], fixed, its,
        )  # fmt: skip

    def cost(f: _Fit) -> np.ndarray:
        o = mod.outputs(f.amplitude, f.shape, hct)
        c = mod.prior_cost(f.sse, o["vb"], o["mbf_ml_min_g"], n_t)
        return np.where(np.isfinite(f.sse) & (f.amplitude > 0), c, np.inf)

    rep = np.repeat(np.arange(n), m)
    prof = run(np.tile(tcs, n), rep)
    c = cost(prof).reshape(n, m)
    k = np.argmin(c, axis=1)
    # parabola in log(tc) through the best grid point and its neighbours
    x = np.log(tcs)
    kk = np.clip(k, 1, m - 2)
    rows = np.arange(n)
    y0, y1, y2 = c[rows, kk - 1], c[rows, kk], c[rows, kk + 1]
    with np.errstate(invalid="ignore", over="ignore"):
        den = y0 - 2 * y1 + y2
        ok = np.isfinite(den) & (den > 0) & (k == kk)
        off = np.where(ok, 0.5 * (y0 - y2) / np.where(ok, den, 1.0), 0.0)
    step = x[1] - x[0]
    tc_best = np.exp(x[k] + np.clip(off, -0.5, 0.5) * step)
    fine = run(tc_best, rows)
    c_fine = cost(fine)
    c_grid = c[rows, k]
    c_free = cost(fit)
    use_fine = c_fine <= c_grid
    cand_cost = np.where(use_fine, c_fine, c_grid)
    take = np.isfinite(cand_cost) & (cand_cost < c_free)
    if not take.any():
        return fit
    gi = rows * m + k
    grid = _Fit(prof.amplitude[gi], prof.shape[gi], prof.delay[gi], prof.sse[gi], prof.at_bound[gi])
    return _where_fit(take, _where_fit(use_fine, fine, grid), fit)


def _where_fit(mask: np.ndarray, a: _Fit, b: _Fit) -> _Fit:
    """Per row (N,): ``a`` where ``mask``, else ``b``."""

    def sel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.where(mask.reshape((-1,) + (1,) * (x.ndim - 1)), x, y)

    return _Fit(
        sel(a.amplitude, b.amplitude), sel(a.shape, b.shape), sel(a.delay, b.delay),
        sel(a.sse, b.sse), sel(a.at_bound, b.at_bound),
    )  # fmt: skip


#: Region fits of three or more curves at one delay (e.g. a slice's AHA segments) get one
#: more start per curve: the median of all curves' fitted shapes (log space), kept where it
#: lowers the sum of squares. Neighbouring segments share most of their shape, and from the
#: dictionary atoms alone one noise-free segment curve of seed 101 stopped with its transit
#: time on the lower bound (blood volume 0.011, residual 1.7x the optimum's, flow +17%).
SIBLING_START = True


def _sibling_round(problem, curves, fit: _Fit, lo, hi, free, its, lo_s) -> _Fit:
    """``fit`` improved where LM from the median fitted shape finds a lower SSE."""
    pos = np.all(fit.shape > 0, axis=0) & (lo_s > 0)
    shp = np.where(pos, np.log(np.maximum(fit.shape, 1e-300)), fit.shape)
    med = np.median(shp, axis=0)
    med = np.where(pos, np.exp(med), med)
    rows = np.concatenate([np.broadcast_to(med, fit.shape.shape), fit.delay[:, None]], axis=1)
    rows = np.clip(rows, lo, hi)
    again = _local_fit(problem, curves, rows, lo, hi, free, its)
    better = np.isfinite(again.sse) & (again.sse < fit.sse)
    return _where_fit(better, again, fit) if better.any() else fit


def _frames_of(problem: _Problem, problem_all: _Problem) -> np.ndarray:
    """Indices of ``problem``'s frame times within ``problem_all``'s."""
    return np.searchsorted(problem_all.times, problem.times)


#: BTEX pixel maps: the lattice centre is the reference curve's fit with the model's
#: blood-volume prior (``btex.prior_cost``, the criterion of the delay scan), not the least
#: squares fit alone. At a delay shared by a condition's slices the least-squares fit of one
#: slice's mean curve can fall far along the flow / transit-time valley (three_tesla seed 502,
#: apical rest slice: blood volume 0.017, flow +48%), and the prior of the pixel fits pulls
#: the whole slice there (that slice's eroded myocardium read +18.2%; +7.9% since).
LATTICE_CENTRE_PRIOR = True


def _prior_centre(problem, curve, axes, to_shape, delay, mod, hct) -> tuple[np.ndarray, np.ndarray]:
    """Shape (D,) of the node of the pixel lattice (``axes``, ``to_shape``) that minimises
    ``mod.prior_cost`` for one reference ``curve`` (1, T) at ``delay`` (s), and the
    lattice's fine-grid curves (M, n) for reuse by the map's own lattice (:func:`_fine_on`)."""
    fine = _fine_on(problem, axes, to_shape)
    bhat, safe, _ = _dictionary(problem, axes, np.array([float(delay)]), to_shape, fine=fine)
    c = np.asarray(curve, dtype=float).reshape(-1)
    corr = np.maximum(c.astype(np.float32) @ bhat, 0.0).astype(float)
    rss = np.maximum(float(c @ c) - corr**2, 1e-300)
    mesh = np.meshgrid(*axes, indexing="ij")
    shapes = to_shape(np.stack([m.reshape(-1) for m in mesh], axis=1))
    out = mod.outputs(corr / safe, shapes, hct)
    cost = mod.prior_cost(rss, out["vb"], out["mbf_ml_min_g"], c.size)
    cost = np.where(corr > 0, cost, np.inf)
    best = int(np.argmin(cost)) if np.isfinite(cost).any() else cost.size // 2
    return shapes[best], fine


def _fine_on(problem, axes, to_shape, reuse=None) -> np.ndarray:
    """Fine-grid curves (M, n) of the lattice ``axes`` (``to_shape``), in
    :func:`_dictionary` order. reuse: ``(axes, fine)`` of another lattice on the same steps
    (the lattice before re-centring): its nodes are copied, only the others computed."""
    mesh = np.meshgrid(*axes, indexing="ij")
    coords = np.stack([m.reshape(-1) for m in mesh], axis=1)
    dims = tuple(a.size for a in axes)
    if reuse is None:
        return problem.fine(to_shape(coords))
    old_axes, old_fine = reuse
    idx = np.indices(dims).reshape(len(dims), -1).T  # (M, D) new node indices
    old_idx = np.empty_like(idx)
    for d, (new, old) in enumerate(zip(axes, old_axes, strict=True)):
        step = float(old[1] - old[0]) if old.size > 1 else 1.0
        shift = (float(new[0]) - float(old[0])) / step
        if new.size != old.size or abs(shift - round(shift)) > 1e-6:
            return problem.fine(to_shape(coords))  # not the same lattice steps
        old_idx[:, d] = idx[:, d] + int(round(shift))
    inside = np.all((old_idx >= 0) & (old_idx < np.array(dims)), axis=1)
    out = np.empty((idx.shape[0], old_fine.shape[1]))
    if inside.any():
        flat = np.ravel_multi_index(tuple(old_idx[inside].T), dims)
        out[inside] = old_fine[flat]
    if (~inside).any():
        out[~inside] = problem.fine(to_shape(coords[~inside]))
    return out


def _fit(
    aif: np.ndarray,
    tissue: np.ndarray,
    times_s: np.ndarray,
    *,
    model: str,
    hematocrit: float,
    aif_times_s: np.ndarray | None,
    region: bool,
    min_r2: float | None,
    subtract_baseline: bool,
    dt_fine_s: float | None,
    delay_s: float | str | np.ndarray | None,
    reference_curve: np.ndarray | None = None,
    start_shape: np.ndarray | None = None,
    region_prior: bool = False,
) -> MbfMaps:
    if model not in MODELS:
        raise InputError(f"Unknown kinetic model {model!r}; choose one of {sorted(MODELS)}.")
    hct = float(hematocrit)
    if not np.isfinite(hct) or not (0.0 <= hct < 0.9):
        raise InputError(f"Hematocrit {hematocrit!r} is outside [0, 0.9).")
    if isinstance(delay_s, str):
        if not region or delay_s not in ("shared", "each"):
            raise InputError(f"delay_s must be a number of seconds or None, not {delay_s!r}.")
    elif delay_s is not None and np.ndim(delay_s) > 0:
        d_arr = np.asarray(delay_s, dtype=float)
        n_curves = int(np.prod(np.shape(tissue)[:-1]))
        if not region or d_arr.size != n_curves:
            raise InputError(
                "per-curve delays (an array) need fit_curves with one delay per curve, "
                f"not {d_arr.size} delays for {n_curves} curves."
            )
        if not np.all((d_arr >= DELAY_BOUNDS_S[0]) & (d_arr <= DELAY_BOUNDS_S[1])):
            raise InputError(f"delay_s must lie in {DELAY_BOUNDS_S} s.")
        delay_s = d_arr.reshape(-1)
    elif delay_s is not None and not (DELAY_BOUNDS_S[0] <= float(delay_s) <= DELAY_BOUNDS_S[1]):
        raise InputError(f"delay_s must lie in {DELAY_BOUNDS_S} s, not {delay_s!r}.")
    mod = MODELS[model]
    if start_shape is not None:
        start_shape = np.asarray(start_shape, dtype=float)
        n_curves = int(np.prod(np.shape(tissue)[:-1]))
        n_par = len(mod.SHAPE_PARAMS)
        if start_shape.shape not in ((n_par,), (n_curves, n_par)) or not np.all(
            np.isfinite(start_shape)
        ):
            raise InputError(
                f"start_shape must hold {n_par} finite {model} shape parameters "
                f"({', '.join(mod.SHAPE_PARAMS)}) per curve or for all curves."
            )
    ref_row = None
    if reference_curve is not None and not region:
        ref_row = np.asarray(reference_curve, dtype=float).reshape(-1)
        tis = np.asarray(tissue)
        if tis.ndim < 1 or ref_row.size != tis.shape[-1]:
            raise InputError(
                f"reference_curve has {ref_row.size} values for {np.shape(tissue)[-1]} frames."
            )
        if not np.all(np.isfinite(ref_row)):
            ref_row = None
    if ref_row is None:
        prep, spatial = _prepare(aif, tissue, times_s, aif_times_s, subtract_baseline)
    else:
        # prepared with the tissue (same baseline frames and scale), then split off
        tis = np.asarray(tissue)
        both = np.concatenate([tis.reshape(-1, tis.shape[-1]).astype(float), ref_row[None]])
        prep, _ = _prepare(aif, both, times_s, aif_times_s, subtract_baseline)
        spatial = tis.shape[:-1]
        ref_row = prep.curves[-1].copy()
        prep.curves = prep.curves[:-1]
        prep.invalid = prep.invalid[:-1]
    n = prep.curves.shape[0]
    axes = mod.shape_grid()
    n_shape = len(mod.SHAPE_PARAMS)
    status = np.zeros(n, dtype=np.uint8)
    status[prep.invalid] |= STATUS_INVALID_INPUT
    flags = list(prep.flags)
    frames = np.arange(prep.times.size)
    weights = None
    ref_delay = float("nan")
    if prep.aif_ok and n:
        problem_all = _Problem(mod, prep.aif, prep.aif_times, prep.times, hct, dt_fine_s)
        if region:
            typical = None
        elif ref_row is not None and np.max(ref_row) > 0:
            typical = ref_row[None, :]
        else:
            typical = _typical_curve(prep)[None, :]
        if getattr(mod, "FIRST_PASS_WINDOW", None) is not None:
            if delay_s is not None and not isinstance(delay_s, str):
                d_win = float(np.median(delay_s))
            else:
                c0 = prep.curves[~prep.invalid] if region else typical
                c0 = c0.mean(axis=0) if c0.shape[0] else prep.curves.mean(axis=0)
                d_win = float(_estimate_delays(problem_all, c0[None], prep.foot, frac=0.3)[0])
            frames, weights = _window(mod, prep, d_win, pixels=not region)
        problem = problem_all.with_times(prep.times[frames], weights)
        curves = prep.curves[:, frames] if weights is None else prep.curves[:, frames] * weights
        if region:
            spec: float | str = "shared" if delay_s is None else delay_s
            fit = _fit_regions(
                mod, problem_all, problem, prep.curves, curves, prep.foot, spec, start_shape,
                prior_hct=hct if region_prior else None,
            )  # fmt: skip
        else:
            pixel_lattice = getattr(mod, "pixel_lattice", None)
            to_shape = None
            lattice_fine = None
            if pixel_lattice is not None:  # needs the reference shape (and delay)
                spec = "each" if delay_s is None else float(delay_s)
                ref = _fit_regions(
                    mod, problem_all, problem, typical, typical[:, frames], prep.foot, spec
                )
                ref_delay = float(ref.delay[0])
                centre = ref.shape[0]
                if getattr(mod, "LATTICE_FROM_PIXELS", False):
                    # the median shape of the myocardium-like pixels (free grid, no prior)
                    rows = _typical_rows(prep)
                    if rows.size >= 3:
                        first = _grid_search(problem, curves[rows], axes, np.array([ref_delay]))
                        keep = first.amplitude > 0
                        if keep.sum() >= 3:
                            centre = mod.median_shape(first.shape[keep])
                axes, to_shape = pixel_lattice(centre)
                if LATTICE_CENTRE_PRIOR and getattr(mod, "prior_cost", None) is not None:
                    centre, fine = _prior_centre(
                        problem, typical[:, frames], axes, to_shape, ref_delay, mod, hct
                    )
                    old_axes = axes
                    axes, to_shape = pixel_lattice(centre)
                    lattice_fine = _fine_on(problem, axes, to_shape, reuse=(old_axes, fine))
            elif delay_s is None:
                ref_delay = _reference_delay(
                    mod, problem_all, problem, typical[0], frames, prep.foot
                )
            else:
                ref_delay = float(delay_s)
            offsets = np.asarray(getattr(mod, "PIXEL_DELAY_OFFSETS_S", [0.0]), dtype=float)
            delays = np.unique(np.clip(ref_delay + offsets, *DELAY_BOUNDS_S))
            prior_sd = getattr(mod, "PIXEL_PRIOR_SD", None) if to_shape is not None else None
            fit = _grid_search(problem, curves, axes, delays, to_shape, prior_sd, lattice_fine)
    else:
        status[:] |= STATUS_AIF_UNUSABLE
        fit = _Fit(np.zeros(n), np.ones((n, n_shape)), np.zeros(n), np.zeros(n), np.zeros(n, bool))
    curves = prep.curves[:, frames] if weights is None else prep.curves[:, frames] * weights
    amp = np.nan_to_num(fit.amplitude, nan=0.0, posinf=0.0, neginf=0.0)
    out = mod.outputs(amp, fit.shape, hct)
    mbf = out["mbf_ml_min_g"]
    centred = curves - curves.mean(axis=1, keepdims=True)
    sst = np.einsum("nt,nt->n", centred, centred)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(sst > 0, 1.0 - fit.sse / np.where(sst > 0, sst, 1.0), 0.0)
    r2 = np.clip(np.nan_to_num(r2, nan=0.0), -1.0, 1.0)
    rms = np.sqrt(fit.sse / max(curves.shape[1], 1)) * prep.scale
    status[(amp <= 0) & (status & STATUS_AIF_UNUSABLE == 0)] |= STATUS_NO_ENHANCEMENT
    if min_r2 is None:
        min_r2 = float(getattr(mod, "MIN_R2", 0.5))
    status[r2 < min_r2] |= STATUS_POOR_FIT
    lo, hi = MBF_RANGE_ML_MIN_G
    status[(mbf < lo) | (mbf > hi)] |= STATUS_OUT_OF_RANGE
    status[fit.at_bound] |= STATUS_AT_BOUND
    reliable = (status & UNRELIABLE_BITS) == 0
    bad = ~reliable

    def finish(v: np.ndarray, zero_bad: bool = True) -> np.ndarray:
        v = np.nan_to_num(np.asarray(v, dtype=float), nan=0.0, posinf=0.0, neginf=0.0)
        if zero_bad:
            v = np.where(bad, 0.0, v)
        return v.reshape(spatial).astype(np.float32)

    unusable = (status & (STATUS_INVALID_INPUT | STATUS_NO_ENHANCEMENT | STATUS_AIF_UNUSABLE)) > 0
    if n and prep.aif_ok:
        frac_bad = float(bad.mean())
        if frac_bad > 0.2:
            flags.append(f"{100 * frac_bad:.0f}% of fits unreliable")
        frac_edge = float(fit.at_bound.mean())
        if frac_edge > 0.2:
            flags.append(f"{100 * frac_edge:.0f}% of fits at a parameter limit")
    params = {name: finish(fit.shape[:, i]) for i, name in enumerate(mod.SHAPE_PARAMS)}
    maps = MbfMaps(
        model=model,
        mbf_ml_min_g=finish(mbf),
        delay_s=finish(fit.delay),
        r2=np.where(unusable, 0.0, r2).reshape(spatial).astype(np.float32),
        residual_rms=finish(rms, zero_bad=False),
        reliable=reliable.reshape(spatial),
        status=status.reshape(spatial),
        hematocrit=hct,
        flags=flags,
        params=params,
        reference_delay_s=0.0 if not np.isfinite(ref_delay) else ref_delay,
        fit_frames=frames,
    )
    if "ps_ml_min_g" in out:
        maps.ps_ml_min_g = finish(out["ps_ml_min_g"])
        maps.vb = finish(out["vb"])
        maps.ve = finish(out["ve"])
    return maps


def mbf_map(
    aif: np.ndarray,
    tissue: np.ndarray,
    times_s: np.ndarray,
    *,
    model: str = "fermi",
    hematocrit: float = 0.42,
    aif_times_s: np.ndarray | None = None,
    delay_s: float | None = None,
    min_r2: float | None = None,
    subtract_baseline: bool = True,
    dt_fine_s: float | None = None,
    reference_curve: np.ndarray | None = None,
) -> MbfMaps:
    """Pixelwise MBF (mL/min/g) of ``tissue`` (..., T) against the blood ``aif`` (T,).

    times_s: (T,) frame times (s, strictly increasing, irregular allowed). aif_times_s: the
    AIF's own times when it was not resampled to ``times_s`` (it is then interpolated inside
    the fine model grid). model: ``"fermi"`` (default, fast) or ``"btex"``. hematocrit: used
    by BTEX to convert the blood AIF to plasma (reported flow is blood flow either way).
    delay_s: reference bolus-arrival delay of the map (s); by default it is fitted on the mean
    myocardium-like curve (``MbfMaps.reference_delay_s``) and used for every pixel (plus
    ``<model>.PIXEL_DELAY_OFFSETS_S``). min_r2: reliability threshold on R^2 (default the
    model's ``MIN_R2``: 0.5 for BTEX on all frames, lower for Fermi's short first-pass window,
    where the R^2 of a noisy pixel is low even when its flow is right).
    reference_curve: (T,) high-SNR tissue curve (same units and frames as ``tissue``, e.g.
    the mean of the eroded myocardium, free of blood partial volume) on which the reference
    delay and, for BTEX, the centre of the pixel lattice are fitted; default the mean of the
    map's myocardium-like curves.
    Returns :class:`MbfMaps` with the spatial shape ``tissue.shape[:-1]``.
    Raises :class:`InputError` for unusable shapes; garbage values give unreliable zeros.
    """
    return _fit(
        aif,
        tissue,
        times_s,
        model=model,
        hematocrit=hematocrit,
        aif_times_s=aif_times_s,
        region=False,
        min_r2=min_r2,
        subtract_baseline=subtract_baseline,
        dt_fine_s=dt_fine_s,
        delay_s=delay_s,
        reference_curve=reference_curve,
    )


def fit_curves(
    aif: np.ndarray,
    curves: np.ndarray,
    times_s: np.ndarray,
    *,
    model: str = "fermi",
    hematocrit: float = 0.42,
    aif_times_s: np.ndarray | None = None,
    delay_s: float | str | np.ndarray | None = None,
    min_r2: float | None = None,
    subtract_baseline: bool = True,
    dt_fine_s: float | None = None,
    start_shape: np.ndarray | None = None,
    prior: bool | None = None,
) -> MbfMaps:
    """Region fits (e.g. AHA segment-mean curves, low noise): ``curves`` (..., T) -> values of
    shape (...). Same model and conventions as :func:`mbf_map`, refined by a multi-start
    Levenberg-Marquardt fit on the exact model (slower per curve than the maps: meant for tens
    of curves, e.g. the segments of one slice, which share the frame times).

    delay_s: None or ``"shared"`` (default): one bolus-arrival delay for all curves, taken
    from their mean curve (higher SNR; the flow of each curve is very sensitive to its delay,
    which single noisy curves do not pin down); ``"each"``: every curve's own delay; a number:
    that delay (s), e.g. the slice's ``MbfMaps.reference_delay_s``; an array with one delay per
    curve (s, shape ``curves.shape[:-1]``): each curve fitted at its own fixed delay (e.g. one
    curve replicated over a delay scan), with the lighter refinement of :data:`SCAN_STARTS`.

    start_shape: shape parameters of the model (``MbfMaps.params`` in the order of the model's
    ``SHAPE_PARAMS``; (n_shape,) or (..., n_shape)) tried as one more start of every curve's
    local fit, e.g. the free-delay fit of the same curve for a delay scan: from the dictionary
    atoms alone such fits can stop in a local minimum (a blood volume at its lower bound, a
    residual 1000 times the optimum's).

    prior: BTEX only: each curve's fit is chosen by least squares plus the physiological
    blood-volume prior (:func:`btex.prior_cost`, the criterion of the pipeline's delay scan)
    over a profile of transit times (:func:`_prior_profile`), where the data are nearly
    indifferent along the flow / transit-time valley. None (default): on, except for an array
    of delays (a delay scan, which applies the criterion itself). False: least squares alone."""
    if start_shape is not None:
        try:
            start_shape = np.asarray(start_shape, dtype=float)
        except (TypeError, ValueError) as exc:
            raise InputError(f"start_shape must be numbers, not {start_shape!r}.") from exc
        if start_shape.ndim > 1:
            start_shape = start_shape.reshape(-1, start_shape.shape[-1])
    return _fit(
        aif,
        curves,
        times_s,
        model=model,
        hematocrit=hematocrit,
        aif_times_s=aif_times_s,
        region=True,
        min_r2=min_r2,
        subtract_baseline=subtract_baseline,
        dt_fine_s=dt_fine_s,
        delay_s=delay_s,
        start_shape=start_shape,
        region_prior=(np.ndim(delay_s) == 0) if prior is None else bool(prior),
    )


def model_curves(
    aif: np.ndarray,
    times_s: np.ndarray,
    *,
    model: str,
    amplitude_per_s: np.ndarray,
    shape: np.ndarray,
    delay_s: np.ndarray,
    hematocrit: float = 0.42,
    aif_times_s: np.ndarray | None = None,
) -> np.ndarray:
    """Forward model of the fitter (for plots of fitted curves): (M, T) tissue Gd for
    amplitude (M,) (blood flow per s for Fermi, plasma flow per s for BTEX), shape (M, D) and
    delay (M,), with the AIF used as given (no baseline subtraction)."""
    mod = MODELS[model]
    times = np.asarray(times_s, dtype=float)
    a = np.asarray(aif, dtype=float)
    at = times if aif_times_s is None else np.asarray(aif_times_s, dtype=float)
    problem = _Problem(mod, a, at, times, float(hematocrit))
    shp = np.atleast_2d(np.asarray(shape, dtype=float))
    d = np.broadcast_to(np.atleast_1d(np.asarray(delay_s, dtype=float)), (shp.shape[0],))
    rows = np.concatenate([shp, d[:, None]], axis=1)
    amp = np.broadcast_to(np.atleast_1d(np.asarray(amplitude_per_s, dtype=float)), (shp.shape[0],))
    return problem.curves(rows) * amp[:, None]
