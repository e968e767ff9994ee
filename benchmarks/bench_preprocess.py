"""Benchmark of the pre-processing of an exam: motion correction and signal -> Gd.

Generates one synthetic exam (in memory), then times, per slice and for the whole exam
(all slices of stress and rest, plus the AIF series): ``correct_series`` (motion correction
and resampling) and ``signal_to_gd`` on the corrected series. Prints wall-clock times (best
of ``--repeat``) and, for information, the residual misalignment against the phantom truth.

    python benchmarks/bench_preprocess.py [--seed 0] [--variant standard] [--repeat 3]

Target on the 2-core reference machine: motion correction < 0.3 s per slice of ~60 frames
144x192. Small dense linear algebra is slow with a multi-threaded BLAS on a busy machine; set
``OPENBLAS_NUM_THREADS=1`` to compare like with like.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _best(fn, repeat: int):
    best, out = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--variant", default="standard")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)

    from qperf_viewer.phantom import generate_exam
    from qperf_viewer.quant.gd import signal_to_gd
    from qperf_viewer.quant.motion import correct_series

    t0 = time.perf_counter()
    ex = generate_exam(args.seed, args.variant)
    t_gen = time.perf_counter() - t0
    print(f"exam seed {args.seed} variant {args.variant!r} generated in {t_gen:.1f} s")
    b0 = ex.exam.field_strength_t
    tot_moco = tot_gd = slice_moco = slice_gd = 0.0
    n_slices = 0
    print(f"{'series':<16}{'frames x rows x cols':>22}{'moco s':>9}{'Gd s':>8}{'resid px':>10}")
    for cond, cd in ex.exam.conditions.items():
        for k, s in enumerate(cd.slices):
            t_m, (cs, res) = _best(lambda s=s: correct_series(s), args.repeat)
            t_g, _ = _best(lambda cs=cs: signal_to_gd(cs, field_strength_t=b0), args.repeat)
            d = ex.truth[cond].slices[k].displacement_px
            err = res.shifts_px - (d - d[res.reference_frame])
            resid = float(np.sqrt((err**2).sum(axis=1).mean()))
            shape = "x".join(str(v) for v in s.images.shape)
            print(f"{cond + ' slice ' + str(k):<16}{shape:>22}{t_m:>9.3f}{t_g:>8.3f}{resid:>10.2f}")
            tot_moco += t_m
            tot_gd += t_g
            slice_moco += t_m
            slice_gd += t_g
            n_slices += 1
        if cd.aif is not None:
            a = cd.aif
            t_m, (ca, _) = _best(lambda a=a: correct_series(a), args.repeat)
            t_g, _ = _best(lambda ca=ca: signal_to_gd(ca, field_strength_t=b0), args.repeat)
            shape = "x".join(str(v) for v in a.images.shape)
            print(f"{cond + ' AIF':<16}{shape:>22}{t_m:>9.3f}{t_g:>8.3f}{'':>10}")
            tot_moco += t_m
            tot_gd += t_g
    k = max(n_slices, 1)
    print(f"per slice (mean of {n_slices}): moco {slice_moco / k:.3f} s, Gd {slice_gd / k:.3f} s")
    print(
        f"whole exam (slices + AIF series): moco {tot_moco:.2f} s, Gd {tot_gd:.2f} s,"
        f" total {tot_moco + tot_gd:.2f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
