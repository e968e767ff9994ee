"""``qperf-viewer map``: pixelwise MBF from arrays, like the published mapping tool.

``qperf-viewer map --aif aif.npy --tissue tissue.npy (--dt 0.5 | --times-s times.npy)
[--hematocrit 0.42] [--model fermi|btex] -o mbf.npy``

``tissue`` is (..., T) in Gd units (mmol/L) with time on the last axis, ``aif`` is (T,) whole
blood Gd; ``--dt`` is the frame interval in s (uniform sampling, rejected above 5 s) or
``--times-s`` the frame times (T,). The output has tissue's spatial shape, MBF in mL/min/g
(float32 ``.npy``); with a ``.npz`` output all maps, the reliability mask, status bits and
flags are stored (see :class:`qperf_viewer.quant.mapping.MbfMaps`).
"""

from __future__ import annotations

import argparse

MAX_DT_S = 5.0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "map",
        help="pixelwise MBF (mL/min/g) from an AIF and tissue Gd curves in .npy files",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--aif", required=True, help="AIF .npy, shape (T,), whole-blood Gd mmol/L")
    p.add_argument("--tissue", required=True, help="tissue .npy, shape (..., T), Gd mmol/L")
    timing = p.add_mutually_exclusive_group(required=True)
    timing.add_argument("--dt", type=float, help="frame interval in s (uniform sampling)")
    timing.add_argument("--times-s", dest="times_s", help="frame times .npy, shape (T,), s")
    p.add_argument("--hematocrit", type=float, default=0.42, help="default 0.42")
    p.add_argument("--model", choices=("fermi", "btex"), default="fermi", help="default fermi")
    p.add_argument("-o", "--output", required=True, help="output .npy (MBF map) or .npz (all maps)")
    p.set_defaults(handler=_run)


def _load(path: str, what: str):
    import numpy as np

    from qperf_viewer.errors import InputError

    try:
        arr = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise InputError(f"{what} file not found.", path=path) from None
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read {what} as a .npy array ({exc}).", path=path) from None
    if not isinstance(arr, np.ndarray):
        raise InputError(f"{what} must be a single .npy array, not an .npz archive.", path=path)
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise InputError(f"{what} must hold real numbers, not {arr.dtype}.", path=path)
    return arr


def _run(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    import numpy as np

    from qperf_viewer.errors import InputError
    from qperf_viewer.numpy_pages import numpy_page_policy
    from qperf_viewer.quant.mapping import mbf_map

    aif = _load(args.aif, "AIF")
    tissue = _load(args.tissue, "tissue")
    if aif.ndim != 1:
        aif = np.squeeze(aif)
        if aif.ndim != 1:
            raise InputError(f"The AIF must have shape (T,), not {aif.shape}.", path=args.aif)
    if tissue.ndim < 1 or tissue.shape[-1] != aif.size:
        raise InputError(
            f"The tissue array {tissue.shape} must have time on its last axis with as many "
            f"frames as the AIF ({aif.size}).",
            path=args.tissue,
            hint="Move the time axis last, e.g. np.moveaxis(gd, 0, -1) for a (T, Y, X) series.",
        )
    if args.dt is not None:
        if not np.isfinite(args.dt) or args.dt <= 0:
            raise InputError(f"--dt must be a positive number of seconds, not {args.dt}.")
        if args.dt > MAX_DT_S:
            raise InputError(
                f"--dt {args.dt} s is above {MAX_DT_S} s: perfusion frames are one per "
                "heartbeat (about 0.3-1.5 s); is it in milliseconds?"
            )
        times = np.arange(aif.size) * float(args.dt)
    else:
        times = _load(args.times_s, "times").astype(float).reshape(-1)
        if times.size != aif.size:
            raise InputError(
                f"--times-s has {times.size} values for {aif.size} frames.", path=args.times_s
            )
        steps = np.diff(times)
        if steps.size and np.nanmax(steps) > MAX_DT_S:
            raise InputError(
                f"--times-s has a gap of {np.nanmax(steps):.1f} s between frames (> {MAX_DT_S} "
                "s); times must be in seconds."
            )
    if not (0.0 <= args.hematocrit < 0.9):
        raise InputError(f"--hematocrit {args.hematocrit} is outside [0, 0.9).")
    out = Path(args.output)
    if out.suffix.lower() not in (".npy", ".npz"):
        raise InputError("The output must end in .npy or .npz.", path=str(out))
    with numpy_page_policy():  # a fresh process: see qperf_viewer.numpy_pages
        maps = mbf_map(aif, tissue, times, model=args.model, hematocrit=args.hematocrit)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".npz":
        np.savez_compressed(out, **maps.arrays())
    else:
        np.save(out, maps.mbf_ml_min_g)
    n = maps.reliable.size
    n_ok = int(maps.reliable.sum())
    rel = maps.mbf_ml_min_g[maps.reliable]
    med = f"{float(np.median(rel)):.2f}" if rel.size else "n/a"
    print(
        f"{args.model}: {n_ok}/{n} reliable fits, median MBF {med} mL/min/g -> {out}",
        file=sys.stderr,
    )
    for flag in maps.flags:
        print(f"  flag: {flag}", file=sys.stderr)
    return 0 if n_ok else 1
