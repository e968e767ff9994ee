"""Shared pieces of the pipeline: constants, stage clock, progress and cancel, small value helpers,
the default output folder.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from qperf_viewer import config
from qperf_viewer.errors import CancelledError

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")

#: progress(fraction in [0, 1], message)
Progress = Callable[[float, str], Any]
#: segmenter(images, times_s, pd_frames, geometry, **context) -> object with ``labels``,
#: ``confidence``, ``lv_centre``, ``rv_insertion_anterior``, ``rv_insertion_inferior``,
#: ``flags`` (e.g. :class:`qperf_viewer.seg.infer.SliceSegmentation`). Context keywords:
#: ``condition``, ``slice_index``, ``series`` (the acquired SliceSeries), ``reference_frame``,
#: ``shifts_px``; segmenters that do not take ``**kwargs`` get only those they name.
Segmenter = Callable[..., Any]

MODELS = {"btex": "BTEX", "fermi": "Fermi"}
#: The MBF map covers the myocardium dilated by this much (mm), so that edits have values.
MAP_MARGIN_MM = 5.0
#: Segment MPR only where rest MBF is at least this (mL/min/g).
MPR_MIN_REST_ML_MIN_G = 0.3
#: A stress heart rate less than this above rest suggests an inadequate vasodilator response.
MIN_STRESS_HR_INCREASE_BPM = 10.0
#: An AIF is usable when its first-pass peak reaches this (mmol/L).
MIN_AIF_PEAK_MMOL_L = 1.0

FLAG_AIF_BLOOD_POOL = (
    "AIF from the LV blood pool of the perfusion images (no usable dual-sequence AIF series): "
    "signal saturation at peak may bias MBF upwards"
)
FLAG_NO_GD = "MBF not computed: no Gd conversion (see the Gd flags); semi-quantitative only"

AIF_DUAL, AIF_POOL, AIF_NONE = "dual-sequence", "blood-pool", "none"


# --------------------------------------------------------------------------------- helpers
class StageClock:
    """Accumulates wall time per stage (s), summed over the threads that run the stage (with
    parallel slices a stage's total can exceed the analysis' wall time)."""

    def __init__(self) -> None:
        self.t: dict[str, float] = {}
        self._lock = threading.Lock()

    @contextmanager
    def __call__(self, stage: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            dt = time.perf_counter() - t0
            with self._lock:
                self.t[stage] = self.t.get(stage, 0.0) + dt


#: Environment variable that sets the number of slices analysed at once (default: up to 2,
#: bounded by the CPU count).
WORKERS_ENV = "QPERF_WORKERS"


def default_workers() -> int:
    """Slices analysed at once: ``$QPERF_WORKERS`` when set (>= 1), else min(2, CPUs).

    Two threads are the measured optimum on a 2-core machine: the heavy numpy/scipy kernels
    release the GIL, so two slices run about 1.7x faster than one after the other."""
    raw = os.environ.get(WORKERS_ENV, "").strip()
    if raw:
        try:
            return max(1, int(raw))
        except ValueError:
            log.warning("%s=%r is not a whole number; using the default", WORKERS_ENV, raw)
    return max(1, min(2, os.cpu_count() or 1))


def run_parallel(fn: Callable[[T], R], items: Sequence[T], workers: int | None) -> list[R]:
    """``[fn(x) for x in items]`` on up to ``workers`` threads (default
    :func:`default_workers`), results in input order. The first exception (in input order)
    is raised after all started calls have finished; ``fn`` should catch what must not stop
    the other items."""
    n = default_workers() if workers is None else max(1, int(workers))
    if n == 1 or len(items) <= 1:
        return [fn(x) for x in items]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(n, len(items)), thread_name_prefix="qperf") as ex:
        futures = [ex.submit(fn, x) for x in items]
        return [f.result() for f in futures]


#: Environment variable: ``0`` keeps the MBF stages on threads (see :func:`run_in_processes`).
PROCESSES_ENV = "QPERF_PROCESSES"
_FORK_JOBS: dict[int, tuple[Callable[..., Any], Sequence[Any]]] = {}
_FORK_IDS = itertools.count()


_BACKGROUND_IMPORTS: list[threading.Thread] = []
_DEFERRED_IMPORTS: list[tuple[str, ...]] = []


def background_import(modules: Sequence[str]) -> None:
    """Import ``modules`` on a daemon thread (e.g. the report writers while the analysis runs).

    Where workers can be forked the import starts once the next :func:`run_in_processes` has
    forked its workers (a fork waits for running imports, so that no worker starts with a
    module half imported; starting after the fork keeps that wait off the critical path);
    otherwise at once."""
    _DEFERRED_IMPORTS.append(tuple(modules))
    if not processes_available():
        _start_deferred_imports()


def _start_deferred_imports() -> None:
    import importlib

    while _DEFERRED_IMPORTS:
        modules = _DEFERRED_IMPORTS.pop(0)

        def load(modules: tuple[str, ...] = modules) -> None:
            for name in modules:
                try:
                    importlib.import_module(name)
                except Exception:  # noqa: BLE001 - the caller's own import reports it later
                    log.debug("background import of %s failed", name, exc_info=True)

        th = threading.Thread(target=load, name="qperf-import", daemon=True)
        _BACKGROUND_IMPORTS.append(th)
        th.start()


def _wait_for_background_imports() -> None:
    while _BACKGROUND_IMPORTS:
        _BACKGROUND_IMPORTS.pop().join()


def processes_available() -> bool:
    """Whether :func:`run_in_processes` can fork workers: a platform with ``fork`` and
    ``$QPERF_PROCESSES`` not set to 0/no/off."""
    import multiprocessing

    if os.environ.get(PROCESSES_ENV, "").strip().lower() in ("0", "no", "off", "false"):
        return False
    return "fork" in multiprocessing.get_all_start_methods()


def _fork_call(job: int, index: int, args: tuple) -> tuple[Any, dict[str, float]]:
    """Runs in a forked worker: the pool's shared function on one inherited item, with a fresh
    stage clock."""
    fn, items = _FORK_JOBS[job]
    clock = StageClock()
    return fn(items[index], clock, *args), clock.t


def _run_payload(payload: bytes) -> tuple[Any, dict[str, float]]:
    """Runs in a worker: a call pickled by :meth:`WorkerPool.submit` in the analysis process."""
    import pickle

    fn, *args = pickle.loads(payload)
    return fn(*args)


def _pickled_call(fn: Callable[..., Any], item: Any, args: tuple) -> tuple[Any, dict[str, float]]:
    """Runs in a worker: ``fn(item, clock, *args)`` on pickled inputs, with a fresh clock."""
    clock = StageClock()
    return fn(item, clock, *args), clock.t


class WorkerPool:
    """One set of forked worker processes for a whole analysis (threads where processes are
    not available), with tasks ``fn(item, clock, *args)``.

    For pure numpy/scipy work that holds the GIL often (motion correction, the kinetic fits:
    two forked workers ran a condition's delay fits 1.9x faster than one, two threads 1.3x).
    One pool serves all stages, so that a stage of one condition runs while the other
    condition is still in an earlier stage (no idle core at a stage boundary) and the workers
    fork once.

    - :meth:`submit_shared` runs ``shared_fn`` on ``shared[i]``: both are inherited by the
      workers when they fork (at the first submit), so they need not be picklable.
    - :meth:`submit` sends a module-level ``fn`` and its inputs by pickling (data made after
      the fork).

    Each task's stage times are added to ``clock``. Tasks of a worker process that dies
    (e.g. killed for memory) are run again on threads of this process, as are all later
    tasks. Without ``fork`` (Windows), with ``$QPERF_PROCESSES=0`` or one worker, tasks run on
    ``workers`` threads of this process with ``clock`` itself. :meth:`check_cancel` stops the
    workers and raises CancelledError when ``cancel`` is set. Use as a context manager.
    """

    def __init__(
        self,
        workers: int | None,
        clock: StageClock,
        *,
        cancel: Any = None,
        shared: Sequence[Any] = (),
        shared_fn: Callable[..., Any] | None = None,
    ) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.n = default_workers() if workers is None else max(1, int(workers))
        self.clock = clock
        self.cancel = cancel
        self.shared, self.shared_fn = shared, shared_fn
        self.processes = self.n > 1 and processes_available()
        self._threads = ThreadPoolExecutor(max_workers=self.n, thread_name_prefix="qperf")
        self._ex: Any = None
        self._broken = False
        self._stopped = False
        self._job = next(_FORK_IDS)
        self._lock = threading.Lock()
        self._queue: list[tuple] = []  # heap of (priority, order, task) not yet sent
        self._order = itertools.count()
        self._running = 0  # tasks sent to the workers and not finished
        if self.processes:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            _wait_for_background_imports()
            _FORK_JOBS[self._job] = (shared_fn, shared)  # before the workers fork
            self._ex = ProcessPoolExecutor(
                max_workers=self.n, mp_context=multiprocessing.get_context("fork")
            )
        else:
            _start_deferred_imports()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def submit_shared(self, index: int, *args: Any, priority: int = 0):
        """Future of ``shared_fn(shared[index], clock, *args)`` (see :meth:`submit`)."""
        if self.shared_fn is None:
            raise ValueError("this pool has no shared function")
        fn, item = self.shared_fn, self.shared[index]
        return self._submit(fn, item, args, (_fork_call, self._job, index, args), priority)

    def submit(self, fn: Callable[..., R], item: Any, *args: Any, priority: int = 0):
        """Future of ``fn(item, clock, *args)``; in a worker process ``fn``, ``item`` and
        ``args`` are pickled (``fn`` must be a module-level function).

        priority: tasks wait in this process until a worker is idle, then the lowest
        priority value goes first (then the order of submission), e.g. work that others
        depend on before work that ends a chain. Call :meth:`pump` as tasks finish."""
        return self._submit(fn, item, args, (_pickled_call, fn, item, args), priority)

    def _submit(self, fn, item, args: tuple, call: tuple, priority: int = 0):
        if self._ex is None or self._broken:
            return self._threads.submit(fn, item, self.clock, *args)
        from concurrent.futures import Future
        from concurrent.futures.process import BrokenProcessPool

        outer: Future = Future()

        def finished(inner) -> None:
            with self._lock:
                self._running -= 1
            try:
                value, times = inner.result()
            except BrokenProcessPool as exc:
                if self._stopped:  # terminated on cancel: nothing is run again
                    outer.set_exception(exc)
                    return
                self._broken = True
                log.warning("a worker process stopped; its task runs on a thread instead")
                self._chain(self._threads.submit(fn, item, self.clock, *args), outer)
                return
            except BaseException as exc:  # noqa: BLE001 - delivered through the future
                outer.set_exception(exc)
                return
            with self.clock._lock:
                for k, v in times.items():
                    self.clock.t[k] = self.clock.t.get(k, 0.0) + v
            outer.set_result(value)

        import pickle

        try:
            # pickled here, not on the pool's feeder thread: a task that cannot be sent fails
            # alone (the pool would otherwise wait for its result for ever, CPython 3.11)
            payload = pickle.dumps(call, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # noqa: BLE001 - delivered through the future
            outer.set_exception(exc)
            return outer
        with self._lock:
            heapq.heappush(
                self._queue,
                (priority, next(self._order), (payload, outer, finished, fn, item, args)),
            )
        self.pump()
        return outer

    def pump(self) -> None:
        """Send waiting tasks to idle workers (call it from the thread that submits, e.g.
        after each wait for finished tasks); raises CancelledError when cancelled."""
        from concurrent.futures.process import BrokenProcessPool

        self.check_cancel()
        while True:
            with self._lock:
                if not self._queue or (self._running >= self.n and not self._broken):
                    return
                payload, outer, finished, fn, item, args = heapq.heappop(self._queue)[2]
                self._running += 1
            if not self._broken:
                try:
                    inner = self._ex.submit(_run_payload, payload)
                except BrokenProcessPool:
                    self._broken = True
                else:
                    _start_deferred_imports()  # the workers are forked (all at the first submit)
                    inner.add_done_callback(finished)
                    continue
            with self._lock:
                self._running -= 1
            self._chain(self._threads.submit(fn, item, self.clock, *args), outer)

    @staticmethod
    def _chain(src, dst) -> None:
        def copy(f) -> None:
            exc = f.exception()
            if exc is not None:
                dst.set_exception(exc)
            else:
                dst.set_result(f.result())

        src.add_done_callback(copy)

    def check_cancel(self) -> None:
        """Stop the workers and raise CancelledError when the analysis is cancelled."""
        if _cancelled(self.cancel):
            self._terminate()
            raise CancelledError(
                "analysis cancelled", hint="Start the analysis again to finish it."
            )

    def _terminate(self) -> None:
        self._stopped = True
        if self._ex is not None:
            for p in list(getattr(self._ex, "_processes", {}).values()):
                p.terminate()

    def close(self) -> None:
        """Wait for the workers and threads to finish their tasks and stop them (workers of a
        cancelled analysis are terminated)."""
        try:
            if self._ex is not None:
                if _cancelled(self.cancel):
                    self._terminate()
                self._ex.shutdown(wait=True, cancel_futures=True)
            self._threads.shutdown(wait=True, cancel_futures=True)
        finally:
            _FORK_JOBS.pop(self._job, None)


def run_in_processes(
    fn: Callable[..., R],
    items: Sequence[T],
    workers: int | None,
    clock: StageClock,
    *,
    args: Sequence[tuple] | None = None,
    cancel: Any = None,
    done: Callable[[int, R], Any] | None = None,
) -> list[R]:
    """``[fn(x, clock, *a) for x, a in zip(items, args)]`` on up to ``workers`` forked
    processes (a :class:`WorkerPool`), results in input order; each worker's stage times are
    added to ``clock``.

    The workers are forked, so ``fn`` and ``items`` need not be picklable (per-item ``args``
    and the results must be); ``fn`` must not rely on side effects in this process: it
    returns what it changes. Runs on threads (with ``clock``) for one worker or item, without
    ``fork`` (Windows) or with ``$QPERF_PROCESSES=0``, and for the items left when a worker
    process dies. The first exception (in input order) is raised after all calls have
    finished; ``cancel`` stops the workers and raises CancelledError. ``done(i, result)`` is
    called as each item finishes (e.g. progress; in this process)."""
    from concurrent.futures import wait

    extra = [()] * len(items) if args is None else [tuple(a) for a in args]
    if len(extra) != len(items):
        raise ValueError(f"{len(extra)} argument tuples for {len(items)} items")
    n = default_workers() if workers is None else max(1, int(workers))

    if n == 1 or len(items) <= 1 or not processes_available():
        _start_deferred_imports()

        def one(i: int) -> R:
            value = fn(items[i], clock, *extra[i])
            if done is not None:
                done(i, value)
            return value

        return run_parallel(one, list(range(len(items))), n)
    results: dict[int, R] = {}
    errors: dict[int, BaseException] = {}
    with WorkerPool(min(n, len(items)), clock, cancel=cancel, shared=items, shared_fn=fn) as pool:
        futures = {pool.submit_shared(i, *extra[i]): i for i in range(len(items))}
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, timeout=0.1)
            for f in finished:
                i = futures[f]
                try:
                    results[i] = f.result()
                except BaseException as exc:  # noqa: BLE001 - raised below, in order
                    errors[i] = exc
                    continue
                if done is not None:
                    done(i, results[i])
            if pending:
                pool.pump()
    if errors:
        raise errors[min(errors)]
    return [results[i] for i in range(len(items))]


def _cancelled(cancel: Any) -> bool:
    try:
        check_cancel(cancel)
    except CancelledError:
        return True
    return False


def check_cancel(cancel: Any) -> None:
    if cancel is None:
        return
    is_set = getattr(cancel, "is_set", None)
    stop = is_set() if is_set is not None else (cancel() if callable(cancel) else cancel)
    if stop:
        raise CancelledError("analysis cancelled", hint="Start the analysis again to finish it.")


def report_progress(progress: Progress | None, fraction: float, message: str) -> None:
    if progress is not None:
        progress(float(min(max(fraction, 0.0), 1.0)), message)


def monotonic_progress(progress: Progress | None) -> Progress | None:
    """``progress`` that never goes back (fractions rounded to 1e-4)."""
    if progress is None:
        return None
    last = [0.0]
    lock = threading.Lock()

    def call(fraction: float, message: str) -> None:
        with lock:  # slices may report from worker threads
            last[0] = max(last[0], round(float(fraction), 4))
            progress(last[0], message)

    return call


def finite_or_none(v: Any) -> float | None:
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def as_point(p: Any) -> tuple[float, float] | None:
    if p is None:
        return None
    a = np.asarray(p, dtype=float).reshape(-1)
    if a.size != 2 or not np.all(np.isfinite(a)):
        return None
    return (float(a[0]), float(a[1]))


def default_output_dir(study_uid: str) -> Path:
    """Where results of a study go without ``--out`` (and in the GUI):
    ``config.user_data_dir() / <StudyInstanceUID>`` (characters outside ``[0-9A-Za-z._-]``
    replaced), so that read-only sources work and reopening finds results and edits."""
    import re

    safe = re.sub(r"[^0-9A-Za-z._-]", "_", str(study_uid)).strip(".") or "unknown-study"
    return config.user_data_dir() / safe
