from qperf_viewer.cli import run

run()
