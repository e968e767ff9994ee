"""curves.csv: every curve of the report in one long table, for researchers (Qt-free).

Columns ``condition,slice,curve,time_s,value,unit``: ``slice`` is the 0-based slice index
(basal to apical, as in ``masks/<condition>_slice<k>.npz``) or empty for the AIF series;
``time_s`` is seconds from the condition's first non-PD frame (each slice keeps its own frame
times); non-finite samples are left out, so no NaN appears.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator
from pathlib import Path

from ._atomic import atomic_write_text
from .data import ReportData

HEADER = ("condition", "slice", "curve", "time_s", "value", "unit")


def curve_rows(data: ReportData) -> Iterator[tuple[str, str, str, str, str, str]]:
    """The table's rows (strings), stress before rest, AIF first, then slices in order."""
    for name in ("stress", "rest"):
        cond = data.conditions.get(name)
        if cond is None:
            continue
        curves = []
        if cond.aif is not None:
            curves.append(("", cond.aif))
        for sl in sorted(cond.slices, key=lambda s: s.slice_index):
            curves += [(str(int(sl.slice_index)), cv) for cv in sl.curves]
        for slice_txt, cv in curves:
            for t, v in zip(cv.times_s, cv.values, strict=False):
                t, v = float(t), float(v)
                if not (math.isfinite(t) and math.isfinite(v)):
                    continue
                yield (name, slice_txt, cv.name, f"{t - cond.t0_s:.4f}", f"{v:.6g}", cv.unit)


def curves_csv_text(data: ReportData) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(HEADER)
    w.writerows(curve_rows(data))
    return buf.getvalue()


def write_curves_csv(path: str | Path, data: ReportData) -> Path:
    """Write curves.csv atomically."""
    return atomic_write_text(path, curves_csv_text(data))
