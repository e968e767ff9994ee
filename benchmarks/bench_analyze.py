"""Benchmark of the one-click analysis: ``qperf-viewer analyze`` end to end as a fresh process.

Generates a synthetic stress+rest exam once (``standard`` variant: 3 slices per condition and
a dual-sequence AIF series each, about 470 DICOM files; kept in ``benchmarks/out/analyze_exam``,
git-ignored), then runs ``python -m qperf_viewer analyze DIR --out OUT`` in a fresh process
(interpreter start, imports, model load, index, pixel load, motion correction, segmentation,
Gd, AIF, MBF maps, report PDF, DICOM exports, results.json) and prints the wall time with the
per-stage breakdown from ``results.json`` and the child's peak resident memory, each with its
ratio to the target on this 2-core machine: total <= 5 s, peak memory < 1.5 GB. The time of a
fixed reference workload (``machine_speed.py``) is printed too, and the best wall time in units
of it, so that runs on different days can be compared.

The first run has an empty header cache (a new folder), the next ones reuse it. Without the
shipped ONNX model (``models/qperf_seg.onnx``) the child runs the same pipeline with the
phantom's truth masks as segmenter and says so (model load and inference are then missing).
Each run's CPU time (user + system, the child and its worker processes) is printed too: on a
shared machine wall times drift by tens of percent within an hour, CPU time much less.

``--baseline DIR`` compares with other code (e.g. ``git worktree add /tmp/base <rev>``):
runs alternate between this checkout and ``DIR`` (as ``PYTHONPATH``), and the mean
difference per pair of wall and CPU time is printed, so that drift hits both alike.

    python benchmarks/bench_analyze.py [--repeat N] [--model btex|fermi] [--variant V]
        [--baseline DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine_speed import describe

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "out"
TARGET_S, TARGET_MB = 5.0, 1536.0
STAGES = (
    "index", "load", "model_load", "moco", "segmentation", "gd", "sectors", "qc", "aif", "mbf",
    "aggregate", "write_masks", "write_curves", "report_pdf", "dicom_export",
)  # fmt: skip

CHILD_TRUTH = """
import sys
sys.path.insert(0, {tests!r})
from test_pipeline import TruthSegmenter
from qperf_viewer.pipeline import analyze_folder
run = analyze_folder({src!r}, out_dir={out!r}, model={model!r}, segmenter=TruthSegmenter({exam!r}))
print("Report:", run.files.get("report.pdf"))
sys.exit(run.status)
"""


def _exam(variant: str, seed: int) -> Path:
    exam = OUT / f"analyze_exam_{variant}_{seed}"
    from qperf_viewer.phantom.truth_io import is_current

    if not is_current(exam):  # missing, or from an older generator version
        shutil.rmtree(exam, ignore_errors=True)
        t = time.perf_counter()
        from qperf_viewer.phantom.cli import write_phantom

        _, files = write_phantom(exam, seed, variant)
        print(f"generated {variant} seed {seed}: {len(files)} files in "
              f"{time.perf_counter() - t:.1f} s", flush=True)  # fmt: skip
    return exam


def _have_model() -> bool:
    from qperf_viewer import config

    return (config.models_dir() / "qperf_seg.onnx").is_file()


def _cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _run_child(
    exam: Path, out: Path, home: Path, model: str, truth: bool, code: Path = REPO
) -> tuple[float, int, float]:
    """(wall s, exit status, CPU s) of one fresh analysis process running the code in
    ``code`` (a checkout)."""
    env = dict(os.environ, QPERF_HOME=str(home), QT_QPA_PLATFORM="offscreen")
    if code != REPO:
        env["PYTHONPATH"] = str(code)
    src = str(exam / "dicom")
    if truth:
        code = CHILD_TRUTH.format(tests=str(REPO / "tests"), src=src, out=str(out),
                                  model=model, exam=str(exam))  # fmt: skip
        cmd = [sys.executable, "-c", code]
    else:
        cmd = [sys.executable, "-m", "qperf_viewer", "analyze", src, "--out", str(out),
               "--model", model, "--quiet"]  # fmt: skip
    cpu0, t = _cpu_children(), time.perf_counter()
    res = subprocess.run(cmd, cwd=code, env=env, capture_output=True, text=True)
    dt, cpu = time.perf_counter() - t, _cpu_children() - cpu0
    if res.returncode not in (0, 1):
        print(res.stdout + res.stderr, file=sys.stderr)
        raise SystemExit(f"analysis failed with exit status {res.returncode}")
    return dt, res.returncode, cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=2, help="runs (the first with a cold cache)")
    ap.add_argument("--model", choices=("btex", "fermi"), default="btex")
    ap.add_argument("--variant", default="standard")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--baseline", type=Path, help="other checkout to alternate with")
    args = ap.parse_args()
    if args.baseline is not None and not (args.baseline / "qperf_viewer").is_dir():
        raise SystemExit(f"--baseline {args.baseline}: not a qperf-viewer checkout")
    exam = _exam(args.variant, args.seed)
    n_files = sum(1 for p in (exam / "dicom").rglob("*") if p.is_file())
    truth = not _have_model()
    seg = "phantom truth masks (no models/qperf_seg.onnx: model load and inference NOT timed)" \
        if truth else "shipped ONNX model"  # fmt: skip
    print(f"exam: {exam.name}, {n_files} files; segmentation: {seg}; model {args.model}")
    print(f"machine: {os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.1f}")
    ref_s, ref_line = describe()
    print(ref_line, flush=True)
    home = Path(tempfile.mkdtemp(prefix="qperf_bench_home_"))
    rows, base = [], []
    try:
        for _ in range(args.repeat):
            for code, into in ((REPO, rows), (args.baseline, base)):
                if code is None:
                    continue
                out = Path(tempfile.mkdtemp(prefix="qperf_bench_out_"))
                dt, status, cpu = _run_child(exam, out, home, args.model, truth, code)
                timings = json.loads((out / "results.json").read_text())["timings_s"]
                into.append((dt, status, timings, cpu))
                shutil.rmtree(out, ignore_errors=True)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    print()
    print(f"{'stage':<16}" + "".join(f"{'run ' + str(k + 1):>10}" for k in range(len(rows))))
    for st in STAGES:
        vals = [r[2].get(st) for r in rows]
        if any(v is not None for v in vals):
            print(f"{st:<16}" + "".join(f"{(v or 0.0):>10.2f}" for v in vals))
    print(f"{'pipeline total':<16}" + "".join(f"{r[2].get('total', 0.0):>10.2f}" for r in rows))
    print(f"{'startup+imports':<16}"
          + "".join(f"{r[0] - r[2].get('total', 0.0):>10.2f}" for r in rows))  # fmt: skip
    print(f"{'process wall':<16}" + "".join(f"{r[0]:>10.2f}" for r in rows))
    print(f"{'exit status':<16}" + "".join(f"{r[1]:>10d}" for r in rows))
    print(f"{'CPU (s)':<16}" + "".join(f"{r[3]:>10.2f}" for r in rows))
    if base:
        print(f"{'baseline wall':<16}" + "".join(f"{r[0]:>10.2f}" for r in base))
        print(f"{'baseline CPU':<16}" + "".join(f"{r[3]:>10.2f}" for r in base))
        dw = [a[0] - b[0] for a, b in zip(rows, base, strict=True)]
        dc = [a[3] - b[3] for a, b in zip(rows, base, strict=True)]
        mw = sum(b[0] for b in base) / len(base)
        mc = sum(b[3] for b in base) / len(base)
        print(f"this code - baseline ({args.baseline}), mean of {len(dw)} alternated pairs: "
              f"wall {sum(dw) / len(dw):+.2f} s ({100 * sum(dw) / len(dw) / mw:+.0f}%), "
              f"CPU {sum(dc) / len(dc):+.2f} s ({100 * sum(dc) / len(dc) / mc:+.0f}%)")  # fmt: skip
    cold, best = rows[0][0], min(r[0] for r in rows)
    print()
    print(f"end-to-end wall, cold header cache: {cold:.2f} s  (target {TARGET_S:.0f} s, "
          f"ratio {cold / TARGET_S:.2f})")  # fmt: skip
    print(
        f"end-to-end wall, best of {len(rows)}:       {best:.2f} s  (ratio {best / TARGET_S:.2f})"
    )
    ref_after = describe()[0]
    ref_mean = 0.5 * (ref_s + ref_after)
    print(f"best wall / reference workload: {best / ref_mean:.1f}  (the reference took "
          f"{ref_s:.3f} s before the runs, {ref_after:.3f} s after)")  # fmt: skip
    which = "either code's analysis process" if base else "the analysis process"
    print(f"peak resident memory of {which}: {peak_mb:.0f} MB  (target < "
          f"{TARGET_MB:.0f} MB, ratio {peak_mb / TARGET_MB:.2f})")  # fmt: skip
    if truth:
        print("NOTE: no ONNX model yet; the figures exclude model load and inference.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
