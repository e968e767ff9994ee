"""numpy's use of transparent huge pages during the heavy entry points (``analyze_folder``,
``analyze_exam``, ``apply_manual_aif`` and the ``map`` command): the kinetic fits allocate
temporaries of tens of MB anew in every process.

On this project's 2-core reference machine (transparent huge pages in ``madvise`` mode, with
synchronous defragmentation for regions that ask for them) numpy's default ``madvise`` made
the first touch of a fresh 2 MB page cost 50-130 us: a BTEX residue bank that takes 0.1 s
spent 0.4-1.3 s of system time in its first call of a fresh process, and a worker's delay fit
of 0.9 s wall had 0.47 s of system time. Measured 2026-12-05:

- ``qperf-viewer analyze`` (``benchmarks/bench_analyze.py``'s exam, 8 alternated pairs):
  wall -0.49 s (-9%), CPU -1.10 s (-12%), every pair faster;
- ``benchmarks/bench_mbf.py``, 3 alternated pairs: BTEX cold exam 1.99-2.15 s against
  2.45-4.05 s with numpy's default; warm 1.32-1.43 s against 1.22-1.49 s (huge pages help a
  little once the memory is mapped, which a fresh process has not yet done).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager

#: Whether numpy may ``madvise`` huge pages inside :func:`numpy_page_policy`.
NUMPY_HUGEPAGES = False


def _madvise_setter() -> Callable[[bool], bool] | None:
    for name in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            mod = __import__(name, fromlist=["_set_madvise_hugepage"])
        except ImportError:
            continue
        fn = getattr(mod, "_set_madvise_hugepage", None)
        if fn is not None:
            return fn
    return None


@contextmanager
def numpy_page_policy():
    """Applies :data:`NUMPY_HUGEPAGES` for the duration (worker processes forked inside
    inherit it) and restores numpy's previous setting afterwards; a no-op where numpy has no
    such switch. Also a decorator: ``@numpy_page_policy()``."""
    setter = _madvise_setter()
    if setter is None:
        yield
        return
    previous = setter(NUMPY_HUGEPAGES)
    try:
        yield
    finally:
        setter(previous)
