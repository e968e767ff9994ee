"""Application start-up: QApplication, main window, optional screenshot-and-quit."""

from __future__ import annotations

import argparse
import sys


def run_gui(argv: list[str]) -> int:
    """Start the GUI. ``argv``: ``--open DIR``, ``--analyze``, ``--screenshot PNG``."""
    parser = argparse.ArgumentParser(prog="qperf-viewer gui")
    parser.add_argument("--open")
    parser.add_argument("--analyze", action="store_true")
    parser.add_argument("--screenshot")
    args = parser.parse_args(argv)

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from qperf_viewer.gui.main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("qperf-viewer")
    app.setOrganizationName("qperf-viewer")
    win = MainWindow()
    win.resize(1400, 900)
    win.show()
    if args.screenshot:

        def _shoot() -> None:
            win.grab().save(args.screenshot)
            app.quit()

        QTimer.singleShot(300, _shoot)
    return int(app.exec())
