"""The numpy PCHIP (qperf_viewer.quant.pchip) against scipy's, and its shape preservation."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy.interpolate import PchipInterpolator

from qperf_viewer.quant.pchip import Pchip


def test_pchip_matches_scipy_on_random_knots():
    rng = np.random.default_rng(0)
    for trial in range(200):
        x = np.unique(rng.uniform(0.0, 60.0, int(rng.integers(2, 40))))
        if x.size < 2:
            continue
        y = rng.normal(0.0, 1.0, x.size) if trial % 3 else np.cumsum(rng.uniform(0, 1, x.size))
        if trial % 5 == 0:
            y[int(rng.integers(0, x.size))] = y[0]  # flat pieces and repeated values
        q = np.concatenate([rng.uniform(x[0] - 1.0, x[-1] + 1.0, 300), x])
        want = PchipInterpolator(x, y, extrapolate=False)(q)
        got = Pchip(x, y)(q)
        assert np.array_equal(np.isnan(want), np.isnan(got)), trial
        ok = ~np.isnan(want)
        np.testing.assert_allclose(got[ok], want[ok], rtol=0, atol=1e-12 * np.abs(y).max())


def test_pchip_is_monotone_without_overshoot_at_a_bolus_peak():
    t = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0])
    a = np.array([0.0, 0.0, 0.2, 4.0, 6.0, 2.0, 1.0, 0.8])  # AIF-like, mmol/L
    q = np.linspace(0.0, 8.0, 801)
    v = Pchip(t, a)(q)
    assert v.max() <= a.max() + 1e-12 and v.min() >= -1e-12  # no overshoot, no undershoot
    rise = (q >= 1.0) & (q <= 4.0)
    assert np.all(np.diff(v[rise]) >= -1e-12)  # monotone where the data are
    np.testing.assert_allclose(Pchip(t, a)(t), a, atol=1e-12)  # interpolates the knots


def test_pchip_rejects_bad_knots():
    with pytest.raises(ValueError, match="strictly increasing"):
        Pchip(np.array([0.0, 1.0, 1.0]), np.array([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match="two knots"):
        Pchip(np.array([0.0]), np.array([1.0]))


def test_the_analysis_modules_do_not_import_scipy_interpolate():
    # the kinetic fits and the Gd look-up run in every worker process; scipy.interpolate costs
    # about 0.15 s of CPU to import in each
    code = (
        "import sys, qperf_viewer.quant.mapping, qperf_viewer.quant.gd, "
        "qperf_viewer.pipeline.analyze; print('scipy.interpolate' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
