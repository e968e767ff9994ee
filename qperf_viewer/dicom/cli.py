"""``qperf-viewer index DIR [--json]``: list a folder's studies, series roles, assembled
stress/rest slices and problems (or print them as versioned JSON)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "index",
        help="index a DICOM folder: studies, series roles, stress/rest slices, problems",
        description="Scan a folder tree (any depth, any file names) and print its patients, "
        "studies, series with their roles, the assembled stress/rest slices (basal to apical) "
        "and every file that could not be used. Exit status 1 when errors were found.",
    )
    p.add_argument("dir", metavar="DIR", help="folder (or single file) to index")
    p.add_argument(
        "--json",
        action="store_true",
        help="print the index as JSON (schema qperf-viewer/index/1, see docs/index_schema.md)",
    )
    p.add_argument("--no-cache", action="store_true", help="ignore and do not update the cache")
    p.set_defaults(handler=_run)


def _fmt_frames(idx: tuple[int, ...]) -> str:
    if not idx:
        return "none"
    if list(idx) == list(range(idx[0], idx[-1] + 1)) and len(idx) > 1:
        return f"{idx[0]}-{idx[-1]}"
    return ",".join(str(i) for i in idx)


def format_index(index) -> str:
    """Human-readable summary of a :class:`qperf_viewer.dicom.model.StudyIndex`."""
    lines = []
    n_st = len(index.studies)
    lines.append(
        f"{index.root}: {len(index.patients)} patient(s), {n_st} study(ies), "
        f"{index.n_files} file(s), {index.n_instances} image file(s) "
        f"({index.n_from_cache} headers from cache) in {index.elapsed_s:.2f} s"
    )
    for pat in index.patients:
        lines.append(f"Patient {pat.patient_name or '(no name)'}  ID {pat.patient_id or '-'}")
        for st in pat.studies:
            lines.append(
                f"  Study {st.study_date or '?'} {st.study_description!r}  "
                f"UID {st.study_instance_uid}"
            )
            for se in st.series:
                role = se.role + (f" ({se.condition})" if se.role == "aif" else "")
                hr = f" HR {se.heart_rate_bpm:.0f}" if se.heart_rate_bpm else ""
                lines.append(
                    f"    #{se.series_number if se.series_number is not None else '-':>4} "
                    f"{se.description[:40]:<40} {role:<13} {se.n_frames:>4} img "
                    f"{se.n_positions} pos{hr}  [{se.role_reason}]"
                )
            for name, c in st.conditions.items():
                hr = f"HR {c.heart_rate_bpm:.0f} bpm" if c.heart_rate_bpm else "HR unknown"
                aif = "AIF series" if c.aif is not None else "no AIF series"
                flags = f"  flags: {'; '.join(c.flags)}" if c.flags else ""
                lines.append(f"    {name}: {len(c.slices)} slice(s), {hr}, {aif}{flags}")
                shown = list(c.slices) + ([c.aif] if c.aif is not None else [])
                for sl in shown:
                    label = "AIF" if sl is c.aif else f"{sl.slice_index} {sl.position or '-'}"
                    t = sl.times_s
                    span = f"{t[0]:.1f}-{t[-1]:.1f} s" if t else "-"
                    ts = f"TS {sl.ts_ms:.0f} ms" if sl.ts_ms is not None else "TS ?"
                    dy, dx = sl.pixel_spacing_mm
                    lines.append(
                        f"      {label:<10} {sl.n_frames:>3} frames {span:<14} "
                        f"PD {_fmt_frames(sl.pd_frames):<5} {ts:<10} {sl.rows}x{sl.columns} "
                        f"{dy:.2f}x{dx:.2f} mm  at {sl.location_mm:.1f} mm"
                    )
    problems = index.all_problems
    if problems:
        lines.append(f"Problems ({len(problems)}):")
        for p in problems:
            lines.append(f"  [{p.severity}] {p}")
    else:
        lines.append("No problems.")
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> int:
    import json
    import sys

    from qperf_viewer.dicom.jsonio import index_to_json
    from qperf_viewer.dicom.scan import scan_folder

    index = scan_folder(args.dir, use_cache=not args.no_cache)
    if args.json:
        json.dump(index_to_json(index), sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print(format_index(index))
    return 1 if any(p.severity == "error" for p in index.all_problems) else 0
