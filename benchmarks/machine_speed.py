"""A fixed reference workload that says how fast this machine runs right now.

The benchmarks' wall times drift with the machine's state: on the same 2-core machine and the
same code, ``bench_mbf.py``'s BTEX map took 1.37 s one day and 2.39 s two days later, and
``qperf-viewer analyze`` 4.5 s and 7.5 s. The benchmarks print this workload's time beside
their own so that figures from different days can be compared (divide by the reference).

The workload is plain numpy/scipy on fixed data and does not call project code, so that it
stays the same when the project's code changes: real FFT convolutions, an element gather,
a Bessel-function evaluation and element-wise arithmetic, the operations that dominate the
analysis (kinetic fits, motion correction). One thread; about 0.3 s on an unloaded core.
"""

from __future__ import annotations

import time

import numpy as np


def _workload() -> float:
    from scipy.special import i1e

    rng = np.random.default_rng(7)
    x = rng.standard_normal((256, 512))
    k = np.fft.rfft(rng.standard_normal(512), 1024)
    idx = rng.integers(0, x.size, size=(256, 512))
    acc = 0.0
    for _ in range(20):
        y = np.fft.irfft(np.fft.rfft(x, 1024, axis=1) * k, 1024, axis=1)[:, :512]
        z = x.ravel().take(idx)
        w = i1e(np.abs(z) * 3.0) * np.exp(-np.abs(y) * 0.1)
        acc += float(np.cumsum(w, axis=1)[:, -1].sum())
    return acc


def reference_seconds(repeat: int = 3) -> float:
    """Best wall time (s) of ``repeat`` runs of the reference workload."""
    best = float("inf")
    for _ in range(max(1, int(repeat))):
        t = time.perf_counter()
        _workload()
        best = min(best, time.perf_counter() - t)
    return best


def describe(repeat: int = 3) -> tuple[float, str]:
    """(seconds, one printable line) of the reference workload."""
    s = reference_seconds(repeat)
    return s, (
        f"machine reference workload (benchmarks/machine_speed.py): {s:.3f} s, best of "
        f"{repeat} (divide wall times by it to compare days)"
    )


if __name__ == "__main__":
    print(describe()[1])
