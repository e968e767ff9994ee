"""Background work with progress and cancel, so that the window never freezes.

A :class:`Task` runs ``fn(*args, progress=..., cancel=..., **kwargs)`` (the two keywords only
when ``fn`` accepts them) on a thread of a
``QThreadPool``; results, failures and progress come back to the GUI thread as queued
signals. ``progress`` accepts the shapes core functions tend to call it with
(``(fraction)``, ``(fraction, message)``, ``(message, fraction)``, ``(done, total[, message])``);
``cancel`` is a :class:`CancelToken`, callable and with ``is_set()``, like a threading.Event.

The GUI thread stays responsive while tasks run (issue 6: event-loop gaps < 100 ms): the
interpreter's switch interval is shortened so that the GUI thread, which releases the GIL at
nearly every Qt call, gets it back within about a millisecond instead of the default 5 ms (a
repaint makes dozens of such calls while a task runs pure-Python loops).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from qperf_viewer.errors import CancelledError
from qperf_viewer.gui.backend import call_with_supported

log = logging.getLogger(__name__)

#: Interpreter switch interval while the GUI runs background tasks (s; Python's default 0.005).
GUI_SWITCH_INTERVAL_S = 0.001


def keep_gui_responsive() -> None:
    """Shorten the interpreter's switch interval to :data:`GUI_SWITCH_INTERVAL_S` (never
    lengthen it): a thread waiting for the GIL gets it after at most that long."""
    if sys.getswitchinterval() > GUI_SWITCH_INTERVAL_S:
        sys.setswitchinterval(GUI_SWITCH_INTERVAL_S)


class CancelToken:
    """Cooperative cancel flag: ``token()`` / ``token.is_set()`` say whether to stop."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    __call__ = is_set

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise CancelledError("Cancelled by the user.")


def parse_progress(*args: Any, **kwargs: Any) -> tuple[float | None, str]:
    """(fraction in [0, 1] or None, message) from a progress call of any common shape."""
    nums = [a for a in args if isinstance(a, int | float) and not isinstance(a, bool)]
    texts = [str(a) for a in args if isinstance(a, str)]
    frac = kwargs.get("fraction")
    msg = str(kwargs.get("message", "")) or " ".join(texts)
    if frac is None and len(nums) >= 2 and nums[1]:
        frac = nums[0] / nums[1]
    elif frac is None and nums:
        frac = nums[0] / 100.0 if nums[0] > 1.0 else nums[0]
    if frac is not None:
        frac = min(max(float(frac), 0.0), 1.0)
    return frac, msg


class TaskSignals(QObject):
    progress = Signal(float, str)  # fraction (-1 unknown), message
    finished = Signal(object)
    failed = Signal(object, str)  # exception, traceback text
    cancelled = Signal()
    done = Signal()  # always last


class Task(QRunnable):
    """One unit of background work; connect to ``task.signals`` before starting."""

    def __init__(self, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self.setAutoDelete(False)
        self.name = name
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.token = CancelToken()
        self.signals = TaskSignals()
        self._last_emit = 0.0

    def progress(self, *args: Any, **kwargs: Any) -> None:
        frac, msg = parse_progress(*args, **kwargs)
        now = time.monotonic()
        if frac is not None and frac < 1.0 and now - self._last_emit < 0.05:
            return  # at most 20 updates a second
        self._last_emit = now
        self._emit(self.signals.progress, -1.0 if frac is None else frac, msg)
        if self.token.is_set():
            raise CancelledError(f"{self.name} cancelled.")

    def cancel(self) -> None:
        self.token.cancel()

    def run(self) -> None:  # worker thread
        try:
            out = call_with_supported(
                self.fn, *self.args, progress=self.progress, cancel=self.token, **self.kwargs
            )
        except CancelledError:
            self._emit(self.signals.cancelled)
        except Exception as exc:  # noqa: BLE001 - handed to the GUI thread
            log.exception("%s failed", self.name)
            self._emit(self.signals.failed, exc, traceback.format_exc())
        else:
            if self.token.is_set():
                self._emit(self.signals.cancelled)
            else:
                self._emit(self.signals.finished, out)
        finally:
            self._emit(self.signals.done)

    def _emit(self, signal, *args) -> None:
        """Emit to the GUI thread; a window closed while the task ran has deleted the
        receiver side: then the result is dropped quietly (the app is closing)."""
        try:
            signal.emit(*args)
        except RuntimeError:
            log.debug("%s finished after its window closed; result dropped", self.name)


class TaskRunner(QObject):
    """Starts tasks on a private pool and keeps them alive until they are done."""

    busy_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None, max_threads: int = 2) -> None:
        super().__init__(parent)
        keep_gui_responsive()
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(max_threads)
        self.running: list[Task] = []

    def start(self, task: Task) -> Task:
        self.running.append(task)
        task.signals.done.connect(lambda t=task: self._done(t))
        if len(self.running) == 1:
            self.busy_changed.emit(True)
        self.pool.start(task)
        return task

    def _done(self, task: Task) -> None:
        if task in self.running:
            self.running.remove(task)
        if not self.running:
            self.busy_changed.emit(False)

    def cancel_all(self) -> None:
        for t in list(self.running):
            t.cancel()

    @property
    def busy(self) -> bool:
        return bool(self.running)

    def wait(self, msecs: int = 30000) -> bool:
        return bool(self.pool.waitForDone(msecs))
