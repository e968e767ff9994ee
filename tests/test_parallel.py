"""Parallel slices: the thread and process helpers of the pipeline (order, errors, worker
count, stage times, fallback, cancel)."""

from __future__ import annotations

import os
import threading
import time

import pytest

from qperf_viewer.errors import CancelledError
from qperf_viewer.pipeline.common import (
    PROCESSES_ENV,
    WORKERS_ENV,
    StageClock,
    default_workers,
    processes_available,
    run_in_processes,
    run_parallel,
)


def test_run_parallel_keeps_input_order_and_uses_threads():
    seen: set[str] = set()

    def slow_square(x: int) -> int:
        seen.add(threading.current_thread().name)
        time.sleep(0.02 * (5 - x))  # later items finish first
        return x * x

    assert run_parallel(slow_square, [1, 2, 3, 4], workers=2) == [1, 4, 9, 16]
    assert len(seen) == 2 and all(n.startswith("qperf") for n in seen)
    seen.clear()
    assert run_parallel(slow_square, [3, 1], workers=1) == [9, 1]
    assert seen == {threading.current_thread().name}  # inline, no pool
    assert run_parallel(slow_square, [], workers=2) == []


def test_run_parallel_raises_the_first_error_after_the_others_finish():
    done: list[int] = []

    def work(x: int) -> int:
        if x == 1:
            raise ValueError("bad item 1")
        time.sleep(0.05)
        done.append(x)
        return x

    with pytest.raises(ValueError, match="bad item 1"):
        run_parallel(work, [0, 1, 2, 3], workers=2)
    assert sorted(done) == [0, 2, 3]


def test_default_workers_from_environment(monkeypatch):
    monkeypatch.setenv(WORKERS_ENV, "3")
    assert default_workers() == 3
    monkeypatch.setenv(WORKERS_ENV, "0")
    assert default_workers() == 1
    monkeypatch.setenv(WORKERS_ENV, "many")
    assert 1 <= default_workers() <= 2
    monkeypatch.delenv(WORKERS_ENV)
    assert 1 <= default_workers() <= 2


def _square_in_worker(x: int, clock: StageClock, offset: int = 0) -> tuple[int, int]:
    with clock("work"):
        time.sleep(0.01)
    return x * x + offset, os.getpid()


@pytest.mark.skipif(not processes_available(), reason="no fork on this platform")
def test_run_in_processes_forks_workers_keeps_order_and_merges_stage_times():
    clock = StageClock()
    items = [3, 1, 4, 1, 5]
    out = run_in_processes(
        _square_in_worker, items, 2, clock, args=[(k,) for k in range(len(items))]
    )
    assert [v for v, _ in out] == [9 + 0, 1 + 1, 16 + 2, 1 + 3, 25 + 4]
    pids = {p for _, p in out}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2  # forked workers did the work
    assert clock.t["work"] >= 5 * 0.01  # the workers' stage times came back


def test_run_in_processes_falls_back_to_threads(monkeypatch):
    monkeypatch.setenv(PROCESSES_ENV, "0")
    clock = StageClock()
    out = run_in_processes(_square_in_worker, [2, 3], 2, clock)
    assert [v for v, _ in out] == [4, 9] and {p for _, p in out} == {os.getpid()}
    assert clock.t["work"] >= 2 * 0.01
    monkeypatch.delenv(PROCESSES_ENV)
    one = run_in_processes(_square_in_worker, [2, 3], 1, StageClock())
    assert {p for _, p in one} == {os.getpid()}  # one worker: inline


@pytest.mark.skipif(not processes_available(), reason="no fork on this platform")
def test_run_in_processes_survives_a_dying_worker_and_raises_errors_in_order():
    parent = os.getpid()

    def fragile(x: int, clock: StageClock) -> int:
        if x == 2 and os.getpid() != parent:
            os._exit(3)  # a worker dies (e.g. killed for memory): redone on a thread
        if x == 4:
            raise ValueError("bad item 4")
        return 10 * x

    assert run_in_processes(fragile, [1, 2, 3], 2, StageClock()) == [10, 20, 30]
    with pytest.raises(ValueError, match="bad item 4"):
        run_in_processes(fragile, [1, 4, 5], 2, StageClock())


@pytest.mark.skipif(not processes_available(), reason="no fork on this platform")
def test_run_in_processes_stops_on_cancel():
    cancel = threading.Event()

    def slow(x: int, clock: StageClock) -> int:
        time.sleep(30)
        return x

    threading.Timer(0.3, cancel.set).start()
    t = time.perf_counter()
    with pytest.raises(CancelledError):
        run_in_processes(slow, [1, 2], 2, StageClock(), cancel=cancel)
    assert time.perf_counter() - t < 10


@pytest.mark.skipif(not processes_available(), reason="no fork on this platform")
def test_background_imports_finish_before_workers_fork(monkeypatch):
    """No worker may start with a module half imported by a background import."""
    import qperf_viewer.pipeline.common as common

    started = threading.Event()
    release = threading.Event()

    class SlowImport(threading.Thread):
        def run(self) -> None:
            started.set()
            release.wait(5)

    th = SlowImport(daemon=True)
    monkeypatch.setattr(common, "_BACKGROUND_IMPORTS", [th])
    th.start()
    started.wait(5)
    threading.Timer(0.3, release.set).start()
    out = run_in_processes(_square_in_worker, [2, 3], 2, StageClock())
    assert [v for v, _ in out] == [4, 9]
    assert not th.is_alive() and common._BACKGROUND_IMPORTS == []


UNPICKLABLE_TASK = """
from qperf_viewer.pipeline.common import StageClock, WorkerPool

def square(x, clock):
    return x * x

for good in (False, True, False, True):
    with WorkerPool(2, StageClock(), shared=[1, 2], shared_fn=square) as pool:
        bad = [pool.submit(square, lambda: 1) for _ in range(4)]  # cannot be sent to a worker
        for f in bad[: 4 if good else 1]:  # without: leave while the others are on their way
            # PicklingError or AttributeError, by Python version
            assert isinstance(f.exception(timeout=30), Exception), "no error for an unsendable task"
        if good:  # and other tasks still run
            assert pool.submit_shared(1).result() == 4 and pool.submit(square, 3).result() == 9
print("closed")
"""


@pytest.mark.skipif(not processes_available(), reason="no fork on this platform")
def test_worker_pool_reports_an_unsendable_task_and_still_closes():
    """A task whose inputs fail to pickle fails alone; closing the pool afterwards must not
    wait for ever (CPython's process pool keeps waiting for that task's result)."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", UNPICKLABLE_TASK], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "closed" and "Traceback" not in out.stderr


def _started_at(seconds: float, clock: StageClock) -> float:
    t = time.time()
    time.sleep(seconds)
    return t


@pytest.mark.skipif(not processes_available(), reason="no fork on this platform")
def test_worker_pool_sends_waiting_tasks_by_priority():
    """Tasks wait in the analysis process until a worker is idle; then the lowest priority
    value goes first, e.g. a condition's delay fits before the other condition's maps."""
    from concurrent.futures import FIRST_COMPLETED, wait

    from qperf_viewer.pipeline.common import WorkerPool

    with WorkerPool(2, StageClock()) as pool:
        busy = [pool.submit(_started_at, 0.4) for _ in range(2)]  # both workers busy
        late = [pool.submit(_started_at, 0.2, priority=2) for _ in range(2)]
        early = [pool.submit(_started_at, 0.2, priority=p) for p in (1, 0)]
        pending = set(busy + late + early)
        while pending:
            _, pending = wait(pending, timeout=0.05, return_when=FIRST_COMPLETED)
            pool.pump()
    assert max(f.result() for f in early) < min(f.result() for f in late)
    assert min(f.result() for f in early) > max(f.result() for f in busy)
