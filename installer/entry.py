"""Entry script of the frozen application (PyInstaller): the ``qperf-viewer`` command line.

No arguments open the GUI; ``qperf-viewer --help`` lists the subcommands. The bundle finds its
``resources/`` and ``models/`` through ``qperf_viewer.config`` (``sys._MEIPASS``).
"""

import multiprocessing

if __name__ == "__main__":
    multiprocessing.freeze_support()  # a frozen child process must not re-run the CLI
    from qperf_viewer.cli import run

    run()
