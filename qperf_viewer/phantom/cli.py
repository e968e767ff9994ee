"""Subcommands ``phantom`` (one synthetic exam: DICOM tree + truth) and ``demo`` (the fixed
demo exam, generated once into the user cache and reused)."""

from __future__ import annotations

import argparse

DEMO_SEED = 2026
DEMO_VARIANT = "demo"


def register(sub) -> None:
    p = sub.add_parser(
        "phantom",
        help="generate a synthetic stress/rest perfusion exam with ground truth",
        description="Write OUT/dicom (the DICOM tree) and OUT/truth (ground truth).",
    )
    p.add_argument("out", metavar="OUT", help="output folder")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--variant", default="standard", help="variant name (see --list-variants)")
    p.add_argument("--list-variants", action="store_true", help="print the variant names and exit")
    p.set_defaults(handler=_phantom)

    d = sub.add_parser("demo", help="generate (once) and print the path of the demo exam")
    d.add_argument("--force", action="store_true", help="regenerate even if present")
    d.set_defaults(handler=_demo)


def write_phantom(out, seed: int, variant: str):
    """Generate one exam and write OUT/dicom and OUT/truth; returns (phantom, files)."""
    from pathlib import Path

    from qperf_viewer.phantom.dicom_writer import write_exam
    from qperf_viewer.phantom.generate import generate_exam
    from qperf_viewer.phantom.truth_io import save_truth

    out = Path(out)
    phantom = generate_exam(seed, variant)
    files = write_exam(phantom, out / "dicom")
    save_truth(phantom, out)
    return phantom, files


def _phantom(args: argparse.Namespace) -> int:
    from qperf_viewer.phantom.variants import list_variants

    if args.list_variants:
        print("\n".join(list_variants()))
        return 0
    if args.variant not in list_variants():
        from qperf_viewer.errors import InputError

        raise InputError(
            f"unknown variant {args.variant!r}; choose one of: {', '.join(list_variants())}"
        )
    _, files = write_phantom(args.out, args.seed, args.variant)
    print(f"{args.out}: {len(files)} DICOM files, truth in {args.out}/truth")
    return 0


def demo_dir():
    """Folder of the demo exam in the user cache (``<cache>/demo``)."""
    from qperf_viewer.config import user_cache_dir

    return user_cache_dir() / "demo"


def ensure_demo(force: bool = False):
    """Generate the demo exam unless a complete one of this generator version exists;
    returns its folder (holding ``dicom/`` and ``truth/``)."""
    import shutil

    from qperf_viewer.phantom.generate import GENERATOR_VERSION

    out = demo_dir()
    marker = out / ".complete"
    stamp = f"{GENERATOR_VERSION} {DEMO_SEED} {DEMO_VARIANT}"
    if not force and marker.is_file() and marker.read_text().strip() == stamp:
        return out
    if out.exists():
        shutil.rmtree(out)
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    write_phantom(tmp, DEMO_SEED, DEMO_VARIANT)
    tmp.rename(out)
    (out / ".complete").write_text(stamp + "\n")
    return out


def _demo(args: argparse.Namespace) -> int:
    """Generate the demo exam once (user cache) and run ``analyze`` on it (the README's main
    command); results go to the user's data folder, the report path is printed."""
    from qperf_viewer.pipeline import analyze_folder
    from qperf_viewer.pipeline_cli import print_run

    exam = ensure_demo(force=args.force)
    print(f"Demo exam: {exam / 'dicom'}")
    run = analyze_folder(exam / "dicom")
    print_run(run, False, "report")
    return run.status
