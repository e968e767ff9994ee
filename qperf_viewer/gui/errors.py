"""GUI error handling: log file, error dialogs, excepthook (one wrapper for all failures).

Every failure the user sees is a dialog with a plain message (``QPerfError.user_message()``
when the core raised one), the technical details folded away, and the path of the log file
under ``config.user_data_dir()/logs``. Dialogs are non-blocking (``open()``), so that tests
and screenshot runs never hang on them.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

from qperf_viewer import config
from qperf_viewer.errors import CancelledError, QPerfError

log = logging.getLogger("qperf_viewer.gui")

#: Dialogs shown so far (message, details); tests read it, the app never grows it without bound.
SHOWN: list[tuple[str, str]] = []


def log_path() -> Path:
    return config.user_data_dir() / "logs" / "qperf-viewer.log"


def setup_logging() -> Path:
    """Send the package's log records to a rotating file; returns its path."""
    path = log_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger("qperf_viewer")
    if not any(getattr(h, "_qperf_gui", False) for h in root.handlers):
        h = logging.handlers.RotatingFileHandler(path, maxBytes=2_000_000, backupCount=3)
        h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        h._qperf_gui = True  # type: ignore[attr-defined]
        root.addHandler(h)
        root.setLevel(min(root.level or logging.INFO, logging.INFO))
    return path


def user_message(exc: BaseException) -> str:
    """A sentence for the user: the core's own message, else the exception's text."""
    if isinstance(exc, QPerfError):
        return exc.user_message()
    text = str(exc) or type(exc).__name__
    return f"Unexpected error: {text}"


def show_error(
    parent: QWidget | None, title: str, message: str, details: str = ""
) -> QMessageBox | None:
    """Log and show a non-blocking error dialog; returns it (None without a QApplication)."""
    log.error("%s: %s\n%s", title, message, details)
    SHOWN.append((message, details))
    del SHOWN[:-50]
    if QApplication.instance() is None:
        print(f"{title}: {message}", file=sys.stderr)
        return None
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Critical)
    box.setWindowTitle(title)
    box.setText(message)
    box.setInformativeText(f"Details are in the log file:\n{log_path()}")
    if details:
        box.setDetailedText(details)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.setWindowModality(Qt.WindowModality.WindowModal)
    box.open()
    return box


def show_exception(parent: QWidget | None, title: str, exc: BaseException, tb: str = "") -> None:
    if isinstance(exc, CancelledError):
        log.info("%s: cancelled", title)
        return
    details = tb or "".join(traceback.format_exception(exc))
    show_error(parent, title, user_message(exc), details)


@contextlib.contextmanager
def error_dialog(parent: QWidget | QObject | None, title: str) -> Iterator[None]:
    """``with error_dialog(self, "Could not export"):`` shows any failure as a dialog
    (after Slicer's ``tryWithErrorDisplay``)."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - shown to the user and logged
        widget = parent if isinstance(parent, QWidget) else None
        show_exception(widget, title, exc)


def install_excepthook() -> None:
    """Route uncaught exceptions (e.g. in slots) to the log and an error dialog."""
    previous = sys.excepthook

    def hook(etype, value, tb):
        if issubclass(etype, KeyboardInterrupt):
            previous(etype, value, tb)
            return
        details = "".join(traceback.format_exception(etype, value, tb))
        try:
            parent = QApplication.activeWindow() if QApplication.instance() else None
            show_error(parent, "qperf-viewer: unexpected error", user_message(value), details)
        except Exception:  # noqa: BLE001 - never fail inside the hook
            previous(etype, value, tb)

    sys.excepthook = hook
