"""Polynomial I1 approximation shared by the phantom and the BTEX fit."""

from __future__ import annotations

import numpy as np
from scipy.special import i1, i1e

from qperf_viewer.quant import btex
from qperf_viewer.special import I1_LARGE, I1_SMALL, I1_SPLIT, horner


def test_i1_polynomials_match_scipy_on_both_sides_of_the_split():
    small = np.linspace(1e-6, I1_SPLIT, 400)
    large = np.linspace(I1_SPLIT + 1e-6, 200.0, 400)
    approx_small = small * horner(I1_SMALL, (small / I1_SPLIT) ** 2)
    approx_large = horner(I1_LARGE, I1_SPLIT / large) / np.sqrt(large)  # I1(z) exp(-z)
    assert np.max(np.abs(approx_small / i1(small) - 1.0)) < 1e-7  # measured 1.3e-8
    assert np.max(np.abs(approx_large / i1e(large) - 1.0)) < 1e-6  # measured 5.5e-7
    # a wrong coefficient is seen (the test can fail)
    bad = list(I1_SMALL)
    bad[-2] *= 1.001
    off = small * horner(tuple(bad), (small / I1_SPLIT) ** 2) / i1(small) - 1.0
    assert np.max(np.abs(off)) > 1e-4


def test_btex_exchange_tails_match_the_scipy_bessel_form():
    """The fit's outflow tails (polynomial I1) against the same tails with ``scipy.special.i1e``
    over kappa 0.02-20 and ke 0.002-2 1/s (the fit's bounds): within 1e-6."""
    rng = np.random.default_rng(3)
    kappa, ke, h, n = rng.uniform(0.02, 20, 300), rng.uniform(0.002, 2, 300), 0.25, 400
    anti, tail = btex._exchange_tails(kappa, ke, h, n)
    k, e = kappa[:, None], ke[:, None]
    u = (np.arange(n) * h)[None, :]
    z = 2.0 * np.sqrt(k * e * u)
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.where(
            u > 0,
            np.exp(-((np.sqrt(k) - np.sqrt(e * u)) ** 2))
            * i1e(z)
            * 2
            * k
            * e
            / np.where(z > 0, z, 1),
            np.exp(-k) * k * e,
        )
    steps = np.cumsum(0.5 * (g[:, 1:] + g[:, :-1]), axis=1) * h
    cum = np.concatenate([np.zeros((g.shape[0], 1)), steps], axis=1)
    want = np.clip(1.0 - np.exp(-k) - cum, 0.0, 1.0)
    assert np.max(np.abs(tail - want)) < 1e-6
    assert np.all(np.isfinite(anti))
