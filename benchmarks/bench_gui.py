"""GUI benchmarks: cine frame rate with overlays, event-loop latency during an analysis, and
cold start to a shown main window. Prints figures; asserts nothing.

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_gui.py [--frames 200]

Targets (issue 6, this 2-core machine): cine >= 30 fps with overlays at 176x176 and at full
matrix; event-loop latency < 100 ms worst case during a full analysis; cold start < 2 s.
Cine frames are stepped and painted synchronously (both viewers: stress and rest, contours,
RV points, sector lines, MBF map with colour bar), so the figure is what the timer-driven
playback can sustain. The analysis uses the real pipeline on a synthetic exam when it is
available, else a CPU-bound stand-in of the same length.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
os.environ.setdefault("QPERF_HOME", tempfile.mkdtemp(prefix="qperf_bench_gui_"))

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _app():
    from PySide6.QtWidgets import QApplication

    return QApplication.instance() or QApplication(sys.argv[:1])


def _wait(app, cond, timeout_s: float = 300.0) -> None:
    t0 = time.monotonic()
    while not cond():
        app.processEvents()
        time.sleep(0.002)
        if time.monotonic() - t0 > timeout_s:
            raise TimeoutError("timed out")


def cine_fps(shape: tuple[int, int], n_frames: int) -> float:
    """Frames per second of stepping and painting both viewers with all overlays."""
    from qperf_viewer.gui.main_window import MainWindow
    from qperf_viewer.gui.sample_data import SampleBackend
    from qperf_viewer.gui.session import Session

    app = _app()
    session = Session(SampleBackend(n_frames=60, shape=shape))
    win = MainWindow(session)
    win.resize(1600, 1000)
    win.show()
    session.set_exam(session.backend.exam)
    session.analyze()
    _wait(app, lambda: session.result is not None and not session.busy)
    c = win.compare
    for key in ("contours", "rv_points", "sectors", "mbf"):
        c.set_overlay(key, True)
    session.set_selection(slice_index=1)
    canvases = [v.canvas for v in c.viewers.values()]
    for i in range(10):  # warm-up: first paints fill the item caches
        c.set_frame(i)
        app.processEvents()
    t0 = time.perf_counter()
    for i in range(n_frames):
        c.set_frame(i % 60)
        for cv in canvases:
            cv.viewport().repaint()
        app.processEvents()
    dt = time.perf_counter() - t0
    win.close()
    return n_frames / dt


class _TruthSegmenter:
    """The phantom's truth masks at the motion-correction reference frame (when the ONNX
    model is not installed; segmentation is then nearly free, the rest is the real work)."""

    version = "phantom truth (benchmark)"

    def __init__(self, phantom):
        self.truth = phantom.truth

    def __call__(
        self, images, times_s, pd_frames, geometry, *, condition, slice_index, reference_frame, **_
    ):
        import numpy as np
        from scipy import ndimage

        from qperf_viewer.results import Segmentation

        st = self.truth[condition].slices[slice_index]
        d = np.asarray(st.displacement_px[reference_frame], dtype=float)
        labels = ndimage.shift(st.labels, d, order=0, mode="constant", cval=0)

        def move(p):
            return (float(p[0] + d[0]), float(p[1] + d[1]))

        return Segmentation(
            labels.astype(np.uint8),
            move(st.lv_centre),
            move(st.rv_insertion_anterior),
            move(st.rv_insertion_inferior),
            1.0,
        )


def _real_analysis():
    """(exam, analyze, what) with the real pipeline on a synthetic exam, or None."""
    try:
        from qperf_viewer import config
        from qperf_viewer.phantom import generate_exam
        from qperf_viewer.pipeline import analyze_exam
    except ImportError:
        return None
    phantom = generate_exam(seed=3, variant="standard")
    if (config.models_dir() / "qperf_seg.onnx").is_file():
        return phantom.exam, analyze_exam, "ONNX model"
    seg = _TruthSegmenter(phantom)

    def analyze(exam, progress=None, cancel=None):
        return analyze_exam(exam, segmenter=seg, progress=progress, cancel=cancel)

    return phantom.exam, analyze, "truth masks instead of the (absent) ONNX model"


def _gap_timer():
    """A started 5 ms QTimer and the list of gaps (ms) between its ticks."""
    from PySide6.QtCore import QTimer

    gaps: list[float] = []
    last = [time.perf_counter()]

    def tick():
        now = time.perf_counter()
        gaps.append((now - last[0]) * 1000.0)
        last[0] = now

    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(tick)
    timer.start()
    return timer, gaps


def event_loop_latency(stand_in_s: float = 5.0) -> tuple[float, float, float, str]:
    """(worst, p99, median) gap in ms between 5 ms timer ticks while an analysis runs in a
    worker, and what ran."""

    from qperf_viewer.gui.workers import Task, TaskRunner

    app = _app()
    real = _real_analysis()
    if real is not None:
        exam, analyze, seg_what = real
        fn, args = analyze, (exam,)
        what = f"pipeline.analyze_exam on a synthetic exam, {seg_what}"
    else:
        import numpy as np

        def fn(progress=None, cancel=None):
            rng = np.random.default_rng(0)
            t0 = time.monotonic()
            while time.monotonic() - t0 < stand_in_s:
                a = rng.random((300, 300))
                _ = np.linalg.svd(a @ a.T)  # numpy releases the GIL in LAPACK
                _ = np.sort(rng.random(200_000))
                if progress:
                    progress((time.monotonic() - t0) / stand_in_s, "working")

        args, what = (), f"CPU-bound numpy stand-in ({stand_in_s:.0f} s; pipeline not available)"
    runner = TaskRunner()
    timer, gaps = _gap_timer()
    task = Task("bench", fn, *args)
    t0 = time.perf_counter()
    runner.start(task)
    _wait(app, lambda: not runner.busy, 600.0)
    timer.stop()
    wall = time.perf_counter() - t0
    gaps.sort()
    p99 = gaps[int(0.99 * (len(gaps) - 1))] if gaps else float("nan")
    return max(gaps), p99, statistics.median(gaps), f"{what}, {wall:.1f} s"


def window_latency() -> tuple[float, float, float, str]:
    """(worst, p99, median) gap in ms between 5 ms timer ticks in the real main window while
    it opens a synthetic exam folder (index, load), analyses it (CoreBackend with the ONNX
    model), restores edits and saves the outputs (report.pdf, results.json, DICOM). The
    timer starts once the new window has been painted (its first paint belongs to the cold
    start, measured by :func:`cold_start`), as when a user drops a folder on the open window."""

    from qperf_viewer.gui.main_window import MainWindow
    from qperf_viewer.phantom.cli import write_phantom

    app = _app()
    tmp = Path(tempfile.mkdtemp(prefix="qperf-bench-gui-"))
    os.environ["QPERF_HOME"] = str(tmp / "home")
    write_phantom(tmp / "exam", 5, "standard")
    win = MainWindow()
    win.resize(1500, 950)
    win.show()
    t_shown = time.monotonic()
    while time.monotonic() - t_shown < 0.5:  # the first paint of the window
        app.processEvents()
        time.sleep(0.005)
    timer, gaps = _gap_timer()
    t0 = time.perf_counter()
    win.open_folder(str(tmp / "exam" / "dicom"), analyze=True)
    s = win.session
    _wait(app, lambda: s.result is not None and not s.busy, 600.0)
    _wait(app, lambda: (s.output_dir / "results.json").is_file() and not s.busy, 120.0)
    timer.stop()
    wall = time.perf_counter() - t0
    win.close()
    gaps.sort()
    p99 = gaps[int(0.99 * (len(gaps) - 1))] if gaps else float("nan")
    what = f"main window: open + analyse + save a synthetic exam, {wall:.1f} s"
    return max(gaps), p99, statistics.median(gaps), what


CHILD = textwrap.dedent(
    """
    import sys, time
    from qperf_viewer.gui.errors import install_excepthook, setup_logging
    from PySide6.QtWidgets import QApplication
    setup_logging()
    app = QApplication(sys.argv[:1])
    install_excepthook()
    from qperf_viewer.gui.main_window import MainWindow
    w = MainWindow()
    w.show()
    app.processEvents()
    print(time.time(), flush=True)
    """
)


def cold_start(n: int = 3) -> list[float]:
    """Seconds from process launch to a shown main window (fresh interpreter each time)."""
    out = []
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="0")
    for _ in range(n):
        t0 = time.time()
        r = subprocess.run(
            [sys.executable, "-c", CHILD],
            capture_output=True,
            text=True,
            env=env,
            cwd=str(REPO),
            check=True,
        )
        out.append(float(r.stdout.strip().splitlines()[-1]) - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--skip-latency", action="store_true")
    args = ap.parse_args()
    print(f"cores: {os.cpu_count()}  platform: {os.environ['QT_QPA_PLATFORM']}")
    starts = cold_start()
    print(
        f"cold start to shown window: first {starts[0]:.2f} s, then "
        f"{', '.join(f'{s:.2f}' for s in starts[1:])} s  (target < 2 s)"
    )
    for shape, label in (((176, 176), "176x176"), ((288, 384), "full matrix 288x384")):
        fps = cine_fps(shape, args.frames)
        print(f"cine with overlays, 2 viewers, {label}: {fps:.0f} fps  (target >= 30)")
    if not args.skip_latency:
        for fn in (event_loop_latency, window_latency):
            worst, p99, med, what = fn()
            print(
                f"event-loop latency during analysis: worst {worst:.0f} ms, p99 {p99:.0f} ms, "
                f"median {med:.1f} ms  (target worst < 100 ms; {what})"
            )


if __name__ == "__main__":
    threading.current_thread().name = "bench_gui"
    main()
