"""Subcommands ``analyze`` (the one-click analysis and report) and ``segment`` (segmentation,
RV insertion and AHA sectors only) of the one pipeline (:mod:`qperf_viewer.pipeline`).

Exit status: 0 complete; 1 finished with problems (partial exam: a condition or slice missing,
no AIF series, no MBF), with the reasons printed; 2 unusable input (not a perfusion exam,
several studies without ``--study``, unreadable folder, missing model).
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    a = sub.add_parser(
        "analyze",
        help="analyse a stress/rest perfusion exam and write the report (PDF, JSON, DICOM)",
        description="Find the perfusion exam in DIR, then for stress and rest: motion "
        "correction, Gd conversion, segmentation, RV insertion and AHA sectors, AIF, pixelwise "
        "MBF, segment and global values, MPR. Writes report.pdf, results.json, curves.csv, "
        "masks/, segmentation.json and dicom/ (Encapsulated PDF and Secondary Captures) into "
        "OUTDIR. Saved segmentation edits in OUTDIR/edits are applied. Exit status 0 complete, "
        "1 finished with problems (partial exam), 2 unusable input.",
    )
    a.add_argument("dir", metavar="DIR", help="DICOM folder (any depth) of the exam")
    a.add_argument(
        "--out",
        metavar="OUTDIR",
        help="output folder (default: the user's data folder / StudyInstanceUID; never DIR)",
    )
    a.add_argument("--study", metavar="UID", help="StudyInstanceUID when DIR holds several")
    a.add_argument(
        "--model",
        choices=("btex", "fermi"),
        default="btex",
        help="kinetic model of the reported MBF (default btex)",
    )
    a.add_argument("--no-dicom", action="store_true", help="do not write the DICOM exports")
    a.add_argument("-q", "--quiet", action="store_true", help="print only the report path")
    a.add_argument(
        "--thresholds",
        metavar="JSON",
        help="site-specific report thresholds (keys of ThresholdSet.to_dict: name, citation, "
        "stress_mbf_ml_min_g, mpr, model, aif_source, field_strength_t); default: the "
        "literature set printed in the report",
    )
    q = a.add_argument_group("quantification (recorded in results.json)")
    q.add_argument(
        "--hematocrit",
        type=float,
        default=0.42,
        metavar="HCT",
        help="large-vessel hematocrit, 0.2-0.7 (default 0.42); BTEX works in plasma and "
        "reports blood flow",
    )
    q.add_argument(
        "--r1",
        type=float,
        default=4.5,
        metavar="L_PER_MMOL_S",
        help="relaxivity of the agent in L/(mmol s) (default 4.5); scales Gd values, not MBF",
    )
    q.add_argument(
        "--default-ts-ms",
        type=float,
        default=None,
        metavar="MS",
        help="saturation time for series without InversionTime (flagged); without it such "
        "series get no Gd, MBF or MPR",
    )
    q.add_argument(
        "--already-gd",
        action="store_true",
        help="the perfusion and AIF pixel values are Gd concentrations (mmol/L): no signal "
        "conversion (a header marker does the same per series; see docs/CONVENTIONS.md)",
    )
    _add_position_arg(a)
    a.set_defaults(handler=_analyze)

    s = sub.add_parser(
        "segment",
        help="segment the perfusion exam: masks, RV insertion points, AHA sectors",
        description="Motion correction, segmentation, RV insertion and AHA sectors of the "
        "perfusion exam in DIR; writes OUTDIR/masks/<condition>_slice<k>.npz (labels, aha) and "
        "OUTDIR/segmentation.json.",
    )
    s.add_argument("dir", metavar="DIR", help="DICOM folder (any depth) of the exam")
    s.add_argument("--out", metavar="OUTDIR", required=True, help="output folder (never DIR)")
    s.add_argument("--study", metavar="UID", help="StudyInstanceUID when DIR holds several")
    _add_position_arg(s)
    s.set_defaults(handler=_segment)


def _progress_printer(enabled: bool):
    import sys

    if not enabled:
        return None
    last = [""]

    def show(fraction: float, message: str) -> None:
        if message != last[0]:
            last[0] = message
            print(f"[{100 * fraction:3.0f}%] {message}", file=sys.stderr, flush=True)

    return show


def _fmt(v: float | None, unit: str = "", digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}{unit}"


def summary_lines(run) -> list[str]:
    """Console summary of a :class:`qperf_viewer.pipeline.FolderRun`."""
    res = run.result
    ex = res.exam
    lines = [f"Study {ex.study_instance_uid} ({ex.patient_name or 'no name'}, {ex.study_date})"]
    for name in ("stress", "rest"):
        cr = res.conditions.get(name)
        if cr is None:
            lines.append(f"  {name}: not available")
            continue
        n_ok = sum(1 for sv in cr.segments.values() if sv.mbf is not None)
        if res.model == "none":
            n_seg = sum(1 for sr in cr.slices if sr.segmentation is not None)
            lines.append(f"  {name}: {len(cr.slices)} slice(s), {n_seg} segmented")
            continue
        lines.append(
            f"  {name}: {len(cr.slices)} slice(s), AIF {cr.aif_source}, "
            f"HR {_fmt(cr.heart_rate_bpm, ' bpm', 0)}, global MBF "
            f"{_fmt(cr.global_mbf, ' mL/min/g')} ({n_ok}/16 segments with a value)"
        )
    if res.conditions and res.model != "none":
        lines.append(f"  MPR (global): {_fmt(res.mpr_global)}   kinetic model: {res.model}")
    return lines


def print_run(run, quiet: bool, what: str) -> None:
    import sys

    if not quiet:
        for line in summary_lines(run):
            print(line)
        for p in run.problems:
            print(f"  input: {p}", file=sys.stderr)
        for n in run.notes:
            print(f"  note: {n}")
    if what == "report" and "report.pdf" in run.files:
        print(f"Report: {run.files['report.pdf']}")
    if not quiet:
        print(f"Outputs in {run.out_dir}: {', '.join(sorted(run.files))}")
        if run.status:
            print("Finished with problems (exit status 1): see the notes above.", file=sys.stderr)


def _analyze(args: argparse.Namespace) -> int:
    from qperf_viewer.pipeline import analyze_folder

    run = analyze_folder(
        args.dir,
        out_dir=args.out,
        study_uid=args.study,
        model=args.model,
        progress=_progress_printer(getattr(args, "verbose", False)),
        dicom=not args.no_dicom,
        positions=_positions(args),
        thresholds=_thresholds(args),
        options=_options(args),
    )
    print_run(run, args.quiet, "report")
    return run.status


def _segment(args: argparse.Namespace) -> int:
    from qperf_viewer.pipeline import segment_folder

    run = segment_folder(
        args.dir,
        out_dir=args.out,
        study_uid=args.study,
        progress=_progress_printer(getattr(args, "verbose", False)),
        positions=_positions(args),
    )
    print_run(run, False, "segmentation")
    return run.status


def _options(args: argparse.Namespace):
    from qperf_viewer.results import QuantOptions

    return QuantOptions(
        r1_l_per_mmol_s=args.r1,
        default_ts_ms=args.default_ts_ms,
        hematocrit=args.hematocrit,
        already_gd=args.already_gd,
    )


def _positions(args: argparse.Namespace):
    from qperf_viewer.pipeline.edits import parse_position_overrides

    return parse_position_overrides(args.position) if args.position else None


def _thresholds(args: argparse.Namespace):
    if not args.thresholds:
        return None
    from qperf_viewer.report.thresholds import load_thresholds

    return load_thresholds(args.thresholds)


def _add_position_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--position",
        action="append",
        default=[],
        metavar="COND:K=POS",
        help="override a slice position, e.g. stress:3=mid or rest:1=none (slices 0-based, "
        "basal to apical; saved to OUTDIR/edits/positions.json and used on later runs)",
    )
