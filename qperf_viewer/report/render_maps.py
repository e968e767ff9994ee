"""A dark panel of the MBF maps (stress and rest rows, basal/mid/apical columns) with contours,
sector lines and burned-in identification, for a DICOM Secondary Capture (QtGui)."""

from __future__ import annotations

from PySide6.QtCore import Qt

from .data import ReportData
from .render import Canvas
from .render_bullseye import draw_colour_bar
from .render_images import draw_map_tile, heart_crop
from .render_pages import MBF_RANGE
from .text import DASH, fmt_date, fmt_hr, fmt_name

A = Qt.AlignmentFlag
TILE, GAP, PAD, HEAD, BAR = 50.0, 3.0, 5.0, 13.0, 18.0
LIGHT = (230, 230, 230)
DIM = (160, 160, 160)


def _n_cols(data: ReportData) -> int:
    return max([min(len(c.slices), 3) for c in data.conditions.values()] + [1])


def panel_size_mm(data: ReportData) -> tuple[float, float]:
    n = _n_cols(data)
    rows = max(len(data.conditions), 1)
    return 2 * PAD + n * TILE + (n - 1) * GAP + BAR, HEAD + rows * (TILE + 6.0) + PAD + 4.0


def paint_maps_panel(c: Canvas, data: ReportData):
    w, _ = panel_size_mm(data)
    h = data.header
    c.text(PAD, 2.0, w - 2 * PAD, 5.0, "MBF maps (mL/min/g)", 10.0, bold=True, rgb=LIGHT)
    who = (
        f"{fmt_name(h.patient_name)} \u00b7 ID {h.patient_id or DASH} \u00b7 born "
        f"{fmt_date(h.patient_birth_date)} \u00b7 exam {fmt_date(h.study_date)}"
    )
    c.text(PAD, 7.0, w - 2 * PAD, 4.0, who, 7.0, rgb=LIGHT)
    c.text(
        PAD,
        2.0,
        w - 2 * PAD,
        5.0,
        "RESEARCH USE ONLY \u00b7 not a medical device",
        6.5,
        bold=True,
        rgb=(255, 110, 110),
        align=A.AlignRight | A.AlignVCenter,
    )
    y = HEAD
    for name in ("stress", "rest"):
        cond = data.conditions.get(name)
        if cond is None:
            continue
        c.text(
            PAD,
            y,
            120,
            4.5,
            f"{name.capitalize()} \u00b7 HR {fmt_hr(cond.heart_rate_bpm)}"
            f" \u00b7 {data.quant_model}, AIF {cond.aif_source or 'none'}",
            7.5,
            bold=True,
            rgb=LIGHT,
        )
        for k, sl in enumerate(sorted(cond.slices, key=lambda s: s.slice_index)[:3]):
            x = PAD + k * (TILE + GAP)
            c.text(
                x,
                y + 4.5,
                TILE,
                3.0,
                sl.position or f"slice {sl.slice_index + 1}",
                6.5,
                rgb=DIM,
                align=A.AlignRight | A.AlignVCenter,
            )
            if sl.labels is None and sl.peak_image is None:
                continue
            draw_map_tile(c, sl, x, y + 8.0, TILE - 2.0, *MBF_RANGE, crop=heart_crop(sl))
        y += TILE + 6.0
    n = _n_cols(data)
    bx = PAD + n * (TILE + GAP) + 2.0
    draw_colour_bar(c, bx, HEAD + 14.0, 3.0, TILE, *MBF_RANGE, "mL/min/g", vertical=True, ink=LIGHT)
