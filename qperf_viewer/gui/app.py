"""Application start-up: logging, excepthook, QApplication, main window; ``--open`` a folder,
``--analyze`` it, and ``--screenshot`` the window once the work is done, then quit."""

from __future__ import annotations

import argparse
import logging
import sys
import time

log = logging.getLogger("qperf_viewer.gui")

#: Longest wait for --open/--analyze before a screenshot is taken anyway (s).
SCREENSHOT_TIMEOUT_S = 600.0


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="qperf-viewer gui")
    parser.add_argument("--open", metavar="DIR")
    parser.add_argument("--analyze", action="store_true")
    parser.add_argument("--screenshot", metavar="PNG")
    parser.add_argument(
        "--view",
        choices=("images", "report"),
        default="images",
        help="the tab shown (and captured by --screenshot)",
    )
    return parser.parse_args(argv)


def app_icon():
    """The application icon (all sizes from ``resources/icons``); empty when absent."""
    from PySide6.QtGui import QIcon

    from qperf_viewer import config

    icon = QIcon()
    folder = config.resources_dir() / "icons"
    for size in (16, 32, 48, 64, 128, 256, 512):
        p = folder / f"qperf-viewer-{size}.png"
        if p.is_file():
            icon.addFile(str(p))
    return icon


def run_gui(argv: list[str]) -> int:
    """Start the GUI. ``argv``: ``--open DIR``, ``--analyze``, ``--screenshot PNG``."""
    t_start = time.perf_counter()
    args = _parse(argv)
    from PySide6.QtCore import QEventLoop, Qt, QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox

    from qperf_viewer.gui.errors import install_excepthook, setup_logging

    setup_logging()
    owns_app = QApplication.instance() is None
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("qperf-viewer")
    app.setOrganizationName("qperf-viewer")
    app.setDesktopFileName("qperf-viewer")  # matches installer/qperf-viewer.desktop
    app.setWindowIcon(app_icon())
    install_excepthook()
    try:
        from qperf_viewer.gui.main_window import MainWindow

        win = MainWindow()
    except Exception as exc:  # native dialog: matters in a frozen build without a console
        log.exception("start-up failed")
        if not args.screenshot:
            QMessageBox.critical(None, "qperf-viewer could not start", f"{exc}")
        print(f"qperf-viewer: could not start the GUI: {exc}", file=sys.stderr)
        return 1
    win.tabs.setCurrentWidget(win.report if args.view == "report" else win.compare)
    win.show()
    log.info("main window shown after %.2f s", time.perf_counter() - t_start)
    state = {"failed": 0, "rc": 0}
    win.session.failed.connect(lambda *_: state.__setitem__("failed", state["failed"] + 1))
    if args.open:
        QTimer.singleShot(0, lambda: win.open_folder(args.open, analyze=args.analyze))
    if args.screenshot:
        t0 = time.monotonic()

        def finished() -> bool:
            s = win.session
            if state["failed"]:
                return not s.busy
            if args.open and (s.busy or s.exam is None):
                return False
            return not args.analyze or s.result is not None

        def poll() -> None:
            timed_out = time.monotonic() - t0 > SCREENSHOT_TIMEOUT_S
            if not (finished() or timed_out):
                QTimer.singleShot(200, poll)
                return
            if timed_out or state["failed"]:
                state["rc"] = 1
            QTimer.singleShot(400, shoot)

        def shoot() -> None:
            win.session.flush_views()
            win.compare.refresh()
            if args.view == "report":
                win.report.refresh()
            app.processEvents()
            ok = win.grab().save(args.screenshot)
            if not ok:
                state["rc"] = 1
                print(f"qperf-viewer: could not write {args.screenshot}", file=sys.stderr)
            win.close()
            loop.quit()

        QTimer.singleShot(300, poll)
    # An application created here runs its own exec() (aboutToQuit and all); inside a host
    # that already has one (tests, embedding) a local event loop leaves that application as it
    # was: quitting the host's application left its thread pools unable to run Python tasks.
    loop = app if owns_app else QEventLoop()
    if not owns_app:
        win.destroyed.connect(loop.quit)
        win.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    rc = int(loop.exec())
    return rc or state["rc"]
