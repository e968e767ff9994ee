"""Main window of the reading workstation."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QMainWindow

from qperf_viewer import __version__


class MainWindow(QMainWindow):
    """Top-level window; the views are added by the GUI issue."""

    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle(f"qperf-viewer {__version__}")
        self.setCentralWidget(QLabel("Drop a perfusion exam folder here"))
        self.statusBar().showMessage("Ready")
