"""Benchmark of the DICOM study index: files per second, cold (no header cache) and warm.

Generates four synthetic exams once (``qperf-viewer phantom OUT --seed N --variant V``; kept
in ``benchmarks/out/index_exams``, git-ignored), then indexes the folder holding all four
(>= 1,500 files) several times and prints files/s with the ratio to the target on a 2-core
machine: cold >= 1,000 files/s, warm >= 20,000 files/s. "Cold" means an empty header cache
(the operating system's file cache is warm after the first pass, as when a user re-opens a
folder after deleting the cache); the first pass is reported separately.

    python benchmarks/bench_index.py [--out DIR] [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMS = (("standard", 101), ("four_slices", 102), ("philips", 103), ("junk", 104))
TARGET_COLD, TARGET_WARM = 1000.0, 20000.0


def _generate(out: Path) -> Path:
    """Four exams under ``out`` (made once); returns the folder to index."""
    out.mkdir(parents=True, exist_ok=True)
    for variant, seed in EXAMS:
        exam = out / f"{variant}_{seed}"
        if (exam / "dicom").is_dir() and any((exam / "dicom").rglob("*")):
            continue
        shutil.rmtree(exam, ignore_errors=True)
        cmd = [sys.executable, "-m", "qperf_viewer", "phantom", str(exam), "--seed", str(seed),
               "--variant", variant]  # fmt: skip
        t = time.perf_counter()
        res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        if res.returncode != 0 or not (exam / "dicom").is_dir():
            # the phantom CLI may not exist yet: the same generator, in process
            from qperf_viewer.phantom.dicom_writer import write_exam
            from qperf_viewer.phantom.generate import generate_exam

            write_exam(generate_exam(seed, variant), exam / "dicom")
        print(f"generated {variant} seed {seed} in {time.perf_counter() - t:.1f} s", flush=True)
    return out


def _scan(root: Path, home: Path) -> tuple[float, float, int, int]:
    """(wall s, CPU s of this process, files, files from cache) of one scan."""
    os.environ["QPERF_HOME"] = str(home)
    from qperf_viewer.dicom import scan_folder

    t, c = time.perf_counter(), time.process_time()
    index = scan_folder(root)
    dt, dc = time.perf_counter() - t, time.process_time() - c
    return dt, dc, index.n_files, index.n_from_cache


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "index_exams")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    root = _generate(args.out)
    old_home = os.environ.get("QPERF_HOME")
    cold, warm, cold_cpu, warm_cpu = [], [], [], []
    first = None
    try:
        for i in range(args.repeat):
            with tempfile.TemporaryDirectory(prefix="qperf_bench_") as home:
                dt, dc, n, hits = _scan(root, Path(home))
                assert hits == 0
                if first is None:
                    first = (dt, n)
                cold.append(n / dt)
                cold_cpu.append(n / max(dc, 1e-9))
                for _ in range(5):
                    dt, dc, n, hits = _scan(root, Path(home))
                    assert hits == n, (hits, n)
                    warm.append(n / dt)
                    warm_cpu.append(n / max(dc, 1e-9))
            print(
                f"pass {i + 1}: cold {cold[-1]:8.0f} files/s, warm {max(warm[-5:]):8.0f} files/s",
                flush=True,
            )
    finally:
        if old_home is None:
            os.environ.pop("QPERF_HOME", None)
        else:
            os.environ["QPERF_HOME"] = old_home
    n_files = first[1]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    c, w = statistics.median(cold), statistics.median(warm)
    cc, wc = statistics.median(cold_cpu), statistics.median(warm_cpu)
    print(f"\nindex of {n_files} files in 4 exams ({os.cpu_count()} CPU cores, load {load:.1f})")
    print(f"first pass (cold OS cache possible): {first[1] / first[0]:8.0f} files/s")
    print(
        f"cold (no header cache), median     : {c:8.0f} files/s  "
        f"= {c / TARGET_COLD:.2f} x target {TARGET_COLD:.0f}   (per CPU second: {cc:.0f})"
    )
    print(
        f"warm (header cache), median        : {w:8.0f} files/s  "
        f"= {w / TARGET_WARM:.2f} x target {TARGET_WARM:.0f}   (per CPU second: {wc:.0f})"
    )
    print("(files per CPU second: what an idle machine would reach; wall time suffers when")
    print(" other processes share the cores.)")
    if n_files < 1500:
        print(f"note: only {n_files} files (< 1,500)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
