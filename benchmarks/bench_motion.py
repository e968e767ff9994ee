"""Motion-correction accuracy on synthetic exams (run on demand).

For each exam (generated in memory) every slice of stress and rest is motion-corrected
(:func:`qperf_viewer.quant.motion.correct_series`) and its shifts are compared with the
phantom's true displacements, relative to the chosen reference frame, over the dynamic frames.
Printed per exam: each slice's RMS misalignment (px) and the worst frame; then the mean of the
slice RMS values, the worst slice and the worst frame over all exams, and the same RMS figures
with each slice's mean offset removed (the frames' misalignment against each other, which the
curves see; the offset is the reference frame's own error, common to all frames). A variant
takes seed ``--seed`` + its place in the full list (as in ``bench_accuracy.py``'s default
run). Target (quantification issue): below 0.5 px RMS.

    python benchmarks/bench_motion.py [--seed 301] [--variants a,b,...] [--noiseless]
        [--band-limit F] [--reference first-pass|median]

``--noiseless`` renders the exams without noise and without the k-space window (sharp,
not band-limited images); ``--band-limit`` sets ``motion.BAND_LIMIT_FROM`` (0 = off) to
compare with the registration on unfiltered frames; ``--reference median`` picks the reference
frame at the median position of the whole series (``motion.REFERENCE_FROM_FIRST_PASS`` off), as
before stop 24.
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
    ap.add_argument("--reference", choices=("first-pass", "median"), default="first-pass")
    args = ap.parse_args()

    from qperf_viewer.phantom.generate import generate_exam
    from qperf_viewer.quant import motion

    if args.band_limit is not None:
        motion.BAND_LIMIT_FROM = float(args.band_limit)
    motion.REFERENCE_FROM_FIRST_PASS = args.reference == "first-pass"
    print(
        f"BAND_LIMIT_FROM {motion.BAND_LIMIT_FROM}, reference {args.reference}, "
        f"noiseless {args.noiseless}"
    )
    per_slice: list[tuple[float, float, float]] = []
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
                e0 = np.hypot(*(err - err.mean(axis=0)).T)  # frames against each other
                rms, rms0 = float(np.sqrt(np.mean(e**2))), float(np.sqrt(np.mean(e0**2)))
                rows.append((rms, float(e.max()), rms0))
        per_slice += rows
        rms = ", ".join(f"{r[0]:.2f}" for r in rows)
        print(f"{variant:15s} {seed}: slice RMS [{rms}] px, worst frame "
              f"{max(r[1] for r in rows):.2f} px", flush=True)  # fmt: skip
    a = np.asarray(per_slice)
    print(
        f"{a.shape[0]} slices: mean slice RMS {a[:, 0].mean():.3f} px, worst slice "
        f"{a[:, 0].max():.3f} px, worst frame {a[:, 1].max():.2f} px (target 0.5 px)"
    )
    print(
        f"frames against each other (each slice's mean offset removed): mean slice RMS "
        f"{a[:, 2].mean():.3f} px, worst slice {a[:, 2].max():.3f} px"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
