"""Parallel slices: the thread helper of the pipeline (order, errors, worker count)."""

from __future__ import annotations

import threading
import time

import pytest

from qperf_viewer.pipeline.common import WORKERS_ENV, default_workers, run_parallel


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
