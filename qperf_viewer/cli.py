"""Command line entry point ``qperf-viewer``.

With no subcommand the GUI opens. Each subcommand lives in the module that owns the work and
exposes ``register(subparsers)``; that module imports only ``argparse`` at top level and does
its heavy imports inside the handler, so ``--help`` and ``--version`` stay fast.
Handlers return an exit status (0 success, 1 finished with problems, 2 bad input/usage).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys
from typing import NoReturn

from qperf_viewer import __version__
from qperf_viewer.errors import QPerfError

#: Modules that contribute subcommands, in help order.
COMMAND_MODULES = (
    "qperf_viewer.pipeline_cli",  # analyze
    "qperf_viewer.gui.cli",  # gui
    "qperf_viewer.dicom.cli",  # index
    "qperf_viewer.seg.cli",  # segment, train
    "qperf_viewer.quant.cli",  # map
    "qperf_viewer.phantom.cli",  # phantom, demo
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qperf-viewer",
        description="Quantitative myocardial perfusion MRI: review, segmentation, MBF/MPR report.",
    )
    parser.add_argument("--version", action="version", version=f"qperf-viewer {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):
                continue  # subcommand not built yet
            raise
        mod.register(sub)
    return parser


#: Threads of numpy's OpenBLAS in the application (set before numpy is first imported, when
#: the environment does not say otherwise). The analysis runs its slices on two worker
#: processes of a 2-core machine; a second BLAS thread in each only competed for the cores:
#: one thread took 5% less CPU time end to end (``benchmarks/bench_analyze.py``, 4 alternated
#: runs each).
BLAS_THREADS = "1"


def main(argv: list[str] | None = None) -> int:
    if "numpy" not in sys.modules:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", BLAS_THREADS)
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    handler = getattr(args, "handler", None)
    if handler is None:
        if args.command is None:
            try:
                from qperf_viewer.gui.app import run_gui
            except ImportError as exc:
                print(f"qperf-viewer: the GUI is not available ({exc}).", file=sys.stderr)
                return 2
            return run_gui([])
        parser.print_help()
        return 2
    try:
        return int(handler(args) or 0)
    except QPerfError as exc:
        print(f"qperf-viewer {args.command}: {exc.user_message()}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("qperf-viewer: interrupted", file=sys.stderr)
        return 130


def run(argv: list[str] | None = None) -> NoReturn:
    """Console entry point (``qperf-viewer``, ``python -m qperf_viewer``): :func:`main`, then
    the exit handlers (logging, worker processes) and output flushes, and an immediate exit
    with its status. The interpreter's own teardown (freeing every module and array, Qt and
    onnxruntime objects) is skipped: it took 0.2 s after each ``analyze``, once all results
    were written and closed."""
    try:
        status = main(argv)
    except SystemExit as exc:  # argparse: --help, --version, usage errors
        code = exc.code
        if isinstance(code, str):
            print(code, file=sys.stderr)
        status = code if isinstance(code, int) else (0 if code is None else 1)
    import atexit

    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    if run_exit_handlers is not None:
        run_exit_handlers()
    else:
        logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # closed, or a broken pipe: nothing to do
            stream.flush()
    os._exit(int(status))


if __name__ == "__main__":
    run()
