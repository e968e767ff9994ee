"""Benchmark: pixelwise MBF of a typical exam (stress + rest, 3 slices x ~5,000 myocardial-region
pixels x 60 frames) for each kinetic model. Prints pixels per second and total seconds against
the targets (Fermi <= 0.5 s, BTEX <= 3 s for the whole exam on the 2-core machine).

Run: ``python benchmarks/bench_mbf.py [--pixels 5000] [--frames 60] [--repeat 2]``.
Curves come from the phantom's forward model with per-pixel noise; the first exam of a
process also builds the cached residue banks (reported as 'cold'). The runs use numpy's page
policy of the ``map`` command and the analysis (``qperf_viewer.numpy_pages``; ``--huge-pages``
keeps numpy's default instead).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time

import numpy as np
from machine_speed import describe

from qperf_viewer.numpy_pages import numpy_page_policy
from qperf_viewer.phantom import kinetics as K
from qperf_viewer.quant import mbf_map

TARGETS_S = {"fermi": 0.5, "btex": 3.0}


def make_exam(n_pix: int, n_frames: int, seed: int = 0) -> list[tuple]:
    """[(aif, tissue (n_pix, T), times)] for 3 slices of stress and 3 of rest."""
    rng = np.random.default_rng(seed)
    fine = np.arange(-5.0, 120.0, 0.02)
    slices = []
    for hr, lo, hi, base in ((95.0, 1.0, 3.5, 0.0), (65.0, 0.6, 1.4, 0.25)):
        aif_fine = K.aif_curve(fine, arrival_s=8.0, peak_gd_mmol_l=5.5, baseline_gd_mmol_l=base)
        # a few hundred distinct curves, tiled with independent noise
        n_unique = 300
        mbf = rng.uniform(lo, hi, n_unique)
        for k in range(3):
            rr = rng.normal(60.0 / hr, 0.02 * 60.0 / hr, n_frames)
            times = 0.15 * k + np.concatenate([[0.0], np.cumsum(rr[:-1])])
            clean = K.tissue_curves(times, fine, aif_fine, mbf, 1.3, 0.1, 0.22, 0.42, 0.7)
            tissue = clean[rng.integers(0, n_unique, n_pix)] + rng.normal(
                0, 0.02, (n_pix, n_frames)
            )
            aif = np.interp(times, fine, aif_fine) + rng.normal(0, 0.01, n_frames)
            slices.append((aif, tissue.astype(np.float32), times))
    return slices


def run(model: str, exam: list[tuple]) -> tuple[float, float]:
    """(wall s, CPU s of this process, all threads) for mapping the whole exam."""
    t0, c0 = time.perf_counter(), time.process_time()
    for aif, tissue, times in exam:
        maps = mbf_map(aif, tissue, times, model=model)
        assert np.all(np.isfinite(maps.mbf_ml_min_g))
    return time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pixels", type=int, default=5000)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--huge-pages", action="store_true", help="numpy's default page policy")
    args = ap.parse_args()
    exam = make_exam(args.pixels, args.frames)
    n_total = sum(t.shape[0] for _, t, _ in exam)
    print(f"exam: {len(exam)} slices (stress + rest), {n_total} pixels, {args.frames} frames")
    print(f"cores available: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}")
    print("(wall time depends on other load on the machine; CPU time is this process's)")
    policy = "numpy's default" if args.huge_pages else "off (as in the map command)"
    print(f"numpy huge pages: {policy}")
    print(describe()[1])
    policy_cm = contextlib.nullcontext() if args.huge_pages else numpy_page_policy()
    with policy_cm:  # for the whole run, as the map command does
        for model in ("fermi", "btex"):
            cold, cold_cpu = run(model, exam)
            warm, cpu = min(run(model, exam) for _ in range(max(1, args.repeat)))
            target = TARGETS_S[model]
            verdict = "OK" if warm <= target else "over target"
            print(
                f"{model:6s} whole exam: {warm:6.2f} s warm ({cold:6.2f} s cold), CPU {cpu:6.2f} s "
                f"(cold {cold_cpu:6.2f} s), {n_total / warm:9.0f} pixels/s, "
                f"target <= {target:.1f} s: {verdict}"
            )


if __name__ == "__main__":
    main()
