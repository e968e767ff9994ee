"""Motion-correction accuracy on synthetic exams (run on demand).

For each exam (generated in memory) every slice of stress and rest is motion-corrected
(:func:`qperf_viewer.quant.motion.correct_series`) and its shifts are compared with the
phantom's true displacements, relative to the chosen reference frame, over the dynamic frames.
Printed per exam: each slice's RMS misalignment (px) and the worst frame; then the mean of the
slice RMS values, the worst slice and the worst frame over all exams. A variant takes seed
``--seed`` + its place in the full list (as in ``bench_accuracy.py``'s default run). Target
(quantification issue): below 0.5 px RMS.

    python benchmarks/bench_motion.py [--seed 301] [--variants a,b,...] [--noiseless]
        [--band-limit F]

``--noiseless`` renders the exams without noise and without the k-space window (sharp,
not band-limited images); ``--band-limit`` sets ``motion.BAND_LIMIT_FROM`` (0 = off) to
compare with the registration on unfiltered frames.
"""

from __future__ import annotations

import argparse

import numpy as np

VARIANTS = (
    "standard", "three_tesla", "no_motion", "four_slices", "two_slices", "hypertrophy",
    "subendocardial", "transmural", "normal", "mirrored", "dark_rim", "philips", "no_aif",
)  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--seed", type=int, default=301,
        help="seed of 'standard'; each variant takes seed + its place in the full list",
    )  # fmt: skip
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--noiseless", action="store_true")
    ap.add_argument("--band-limit", type=float, default=None)
    args = ap.parse_args()

    from qperf_viewer.phantom.generate import generate_exam
    from qperf_viewer.quant import motion

    if args.band_limit is not None:
        motion.BAND_LIMIT_FROM = float(args.band_limit)
    print(f"BAND_LIMIT_FROM {motion.BAND_LIMIT_FROM}, noiseless {args.noiseless}")
    per_slice: list[tuple[float, float]] = []
    for variant in (v for v in args.variants.split(",") if v):
        seed = args.seed + (VARIANTS.index(variant) if variant in VARIANTS else 0)
        ph = generate_exam(seed, variant, noiseless=args.noiseless)
        rows = []
        for cond, cd in ph.exam.conditions.items():
            for ss, st in zip(cd.slices, ph.truth[cond].slices, strict=True):
                _, res = motion.correct_series(ss)
                d = np.asarray(st.displacement_px, dtype=float)
                err = (res.shifts_px - (d - d[res.reference_frame]))[ss.dynamic_frames]
                e = np.hypot(*err.T)
                rows.append((float(np.sqrt(np.mean(e**2))), float(e.max())))
        per_slice += rows
        rms = ", ".join(f"{r:.2f}" for r, _ in rows)
        print(f"{variant:15s} {seed}: slice RMS [{rms}] px, worst frame "
              f"{max(w for _, w in rows):.2f} px", flush=True)  # fmt: skip
    a = np.asarray(per_slice)
    print(
        f"{a.shape[0]} slices: mean slice RMS {a[:, 0].mean():.3f} px, worst slice "
        f"{a[:, 0].max():.3f} px, worst frame {a[:, 1].max():.2f} px (target 0.5 px)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
