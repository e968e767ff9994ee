"""``qperf-viewer gui``: open the desktop application."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gui", help="open the desktop application (the default without a command)")
    p.add_argument("--open", metavar="DIR", help="exam folder to open")
    p.add_argument("--analyze", action="store_true", help="run the analysis after opening")
    p.add_argument("--screenshot", metavar="PNG", help="save a screenshot of the window and quit")
    p.add_argument("--view", choices=("images", "report"), default="images", help="the tab to show")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from qperf_viewer.gui.app import run_gui

    argv: list[str] = []
    if args.open:
        argv += ["--open", args.open]
    if args.analyze:
        argv.append("--analyze")
    if args.screenshot:
        argv += ["--screenshot", args.screenshot]
    argv += ["--view", args.view]
    return run_gui(argv)
