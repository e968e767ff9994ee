"""Segmentation speed on CPU (onnxruntime, 2 intra-op threads), printing ratios to targets.

    python benchmarks/bench_seg.py [--repeat N]

Measures: model load (fresh session), one slice and one 3-slice exam including pre- and
post-processing (phantom exam, motion-corrected with the truth). Targets: <= 60 ms per
slice, <= 150 ms model load.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

import numpy as np  # noqa: E402

TARGET_SLICE_MS = 60.0
TARGET_LOAD_MS = 150.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seed", type=int, default=990002)
    args = ap.parse_args()

    from qperf_viewer.phantom import generate_exam
    from qperf_viewer.seg import infer
    from qperf_viewer.seg.train.data import motion_correct_truth

    t0 = time.perf_counter()
    infer._CACHE.clear()
    model = infer.load_model()
    load_ms = 1e3 * (time.perf_counter() - t0)
    loads = []
    for _ in range(3):
        infer._CACHE.clear()
        t = time.perf_counter()
        infer.load_model()
        loads.append(1e3 * (time.perf_counter() - t))
    model = infer.load_model()
    print(
        f"model: {model.path.name} {model.path.stat().st_size / 1e6:.1f} MB, "
        f"{model.metadata['architecture']}"
    )
    print(
        f"model load: first {load_ms:.0f} ms, then median {np.median(loads):.0f} ms "
        f"(target {TARGET_LOAD_MS:.0f} ms, ratio {np.median(loads) / TARGET_LOAD_MS:.2f})"
    )

    pe = generate_exam(args.seed, "standard")
    cond = pe.exam.conditions["stress"]
    slices = [
        (motion_correct_truth(s.images, st.displacement_px), s)
        for s, st in zip(cond.slices, pe.truth["stress"].slices, strict=True)
    ][:3]
    x = np.zeros((1, model.params.n_frames, model.params.crop_px, model.params.crop_px), np.float32)
    model.session.run(None, {"x": x})  # warm-up
    per_slice, per_exam, onnx_only, runs = [], [], [], []
    parts: dict[str, list[float]] = {}
    for _ in range(args.repeat):
        t = time.perf_counter()
        model.session.run(None, {"x": x})
        onnx_only.append(1e3 * (time.perf_counter() - t))
        te = time.perf_counter()
        for images, s in slices:
            ts = time.perf_counter()
            seg = infer.segment_series(images, s.times_s, s.pd_frames, s.geometry, model=model)
            per_slice.append(1e3 * (time.perf_counter() - ts))
            runs.append(seg.timings_ms["runs"])
            for k, v in seg.timings_ms.items():
                parts.setdefault(k, []).append(v)
        per_exam.append(1e3 * (time.perf_counter() - te))
    ms = float(np.median(per_slice))
    print(f"ONNX forward only: median {np.median(onnx_only):.1f} ms")
    print(
        f"per slice incl. pre/post-processing: median {ms:.1f} ms, max {max(per_slice):.1f} ms "
        f"(target {TARGET_SLICE_MS:.0f} ms, ratio {ms / TARGET_SLICE_MS:.2f}); "
        f"model runs per slice: mean {np.mean(runs):.2f}"
    )
    print(
        f"per 3-slice exam: median {np.median(per_exam):.1f} ms "
        f"(target {3 * TARGET_SLICE_MS:.0f} ms, ratio "
        f"{np.median(per_exam) / (3 * TARGET_SLICE_MS):.2f})"
    )
    print(
        "breakdown (median ms): "
        + ", ".join(f"{k} {np.median(v):.1f}" for k, v in parts.items() if k != "runs")
    )
    print(f"load average: {os.getloadavg()[0]:.2f} (other processes share the 2 cores)")


if __name__ == "__main__":
    main()
