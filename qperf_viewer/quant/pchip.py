"""Monotone piecewise-cubic Hermite interpolation (PCHIP) in numpy.

Knot derivatives by the weighted harmonic mean of the neighbouring secant slopes (Fritsch &
Butland, SIAM J Sci Stat Comput 1984), zero where the data turn (a local extremum stays at its
knot: no overshoot, Fritsch & Carlson, SIAM J Numer Anal 1980), and the three-point end
derivative clipped to keep the end interval monotone (Moler, Numerical Computing with MATLAB,
2004, ``pchip``). The same interpolant as ``scipy.interpolate.PchipInterpolator``, here so that
the analysis does not import ``scipy.interpolate`` (about 0.15 s of CPU in every process that
runs a kinetic fit or a Gd look-up table).

Knots ``x`` (K,) strictly increasing, values ``y`` (K,); queries of any shape.
"""

from __future__ import annotations

import numpy as np


def _end_slope(h0: float, h1: float, m0: float, m1: float) -> float:
    """Shape-preserving three-point derivative at an end knot (secants m0 next to it)."""
    d = ((2.0 * h0 + h1) * m0 - h0 * m1) / (h0 + h1)
    if np.sign(d) != np.sign(m0):
        return 0.0
    if np.sign(m0) != np.sign(m1) and abs(d) > 3.0 * abs(m0):
        return 3.0 * m0
    return float(d)


def slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Knot derivatives (K,) of the PCHIP interpolant (dy/dx units)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    h = np.diff(x)
    m = np.diff(y) / h
    if x.size == 2:
        return np.array([m[0], m[0]])
    d = np.zeros(x.size)
    w1 = 2.0 * h[1:] + h[:-1]
    w2 = h[1:] + 2.0 * h[:-1]
    same = (np.sign(m[1:]) == np.sign(m[:-1])) & (m[1:] != 0) & (m[:-1] != 0)
    m_lo = np.where(same, m[:-1], 1.0)
    m_hi = np.where(same, m[1:], 1.0)
    d[1:-1] = np.where(same, (w1 + w2) / (w1 / m_lo + w2 / m_hi), 0.0)
    d[0] = _end_slope(h[0], h[1], m[0], m[1])
    d[-1] = _end_slope(h[-1], h[-2], m[-1], m[-2])
    return d


class Pchip:
    """PCHIP interpolant of knots ``(x, y)``; calling it on queries returns values of their
    shape, NaN outside ``[x[0], x[-1]]`` (no extrapolation)."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x = np.asarray(x, dtype=np.float64).reshape(-1)
        self.y = np.asarray(y, dtype=np.float64).reshape(-1)
        if self.x.size < 2 or self.x.size != self.y.size:
            raise ValueError("PCHIP needs at least two knots and one value per knot.")
        if not np.all(np.diff(self.x) > 0):
            raise ValueError("PCHIP knots must be strictly increasing.")
        self.d = slopes(self.x, self.y)

    def __call__(self, xq: np.ndarray) -> np.ndarray:
        q = np.asarray(xq, dtype=np.float64)
        x, y, d = self.x, self.y, self.d
        i = np.clip(np.searchsorted(x, q, side="right") - 1, 0, x.size - 2)
        h = x[i + 1] - x[i]
        s = (q - x[i]) / h
        s2 = s * s
        s3 = s2 * s
        out = (
            (2.0 * s3 - 3.0 * s2 + 1.0) * y[i]
            + (s3 - 2.0 * s2 + s) * h * d[i]
            + (-2.0 * s3 + 3.0 * s2) * y[i + 1]
            + (s3 - s2) * h * d[i + 1]
        )
        return np.where((q < x[0]) | (q > x[-1]) | np.isnan(q), np.nan, out)
