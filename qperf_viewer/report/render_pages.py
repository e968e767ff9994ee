"""The two report pages, drawn on a :class:`~.render.Canvas` in A4 millimetres (QtGui).

Page 1: header, stress / rest / MPR bulls-eyes, summary (global and territory values, heart
rates), thresholds with citation, per-segment table with endo/epi, notes and QC flags.
Page 2: per-slice peak-enhancement images and MBF maps with contours and sector lines, AIF and
myocardial curves, slice table. Both: footer with versions, date, thresholds and intended use.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field

import numpy as np
from PySide6.QtCore import Qt

from qperf_viewer.sectors import N_SEGMENTS, SEGMENT_NAMES, TERRITORY_OF_SEGMENT

from .data import INTENDED_USE, ConditionReport, ReportData
from .render import (
    ACCENT,
    ALERT,
    ALERT_FILL,
    BAND,
    INK,
    MUTED,
    RULE,
    Canvas,
)
from .render_bullseye import draw_bullseye, draw_colour_bar
from .render_images import (
    ENDO_RGB,
    EPI_RGB,
    RV_RGB,
    Series,
    draw_map_tile,
    draw_peak_tile,
    draw_plot,
    heart_crop,
)
from .text import (
    DASH,
    LAYER_NOTE,
    NOT_COVERED_NOTE,
    OK,
    UNRELIABLE_NOTE,
    fmt_date,
    fmt_field,
    fmt_hr,
    fmt_layer,
    fmt_mpr,
    fmt_name,
    fmt_number,
    fmt_segment,
    fmt_time,
    segment_status,
)

A = Qt.AlignmentFlag
PAGE_W, PAGE_H = 210.0, 297.0
MARGIN = 12.0
CONTENT_W = PAGE_W - 2 * MARGIN
N_PAGES = 2
BULLSEYE_R = 25.5
TILE = 40.0
MBF_RANGE = (0.0, 4.0)
MPR_RANGE = (0.0, 4.0)
SLICE_RGB = {"basal": (31, 119, 180), "mid": (44, 160, 44), "apical": (214, 39, 40)}


@dataclass
class PageLayout:
    """Where things were drawn (mm from the top-left), for tests that read the PDF back.

    bullseye_text: (panel, segment) -> text box of the value; panel 'stress' | 'rest' | 'mpr'.
    """

    page: int
    bullseye_text: dict[tuple[str, int], tuple[float, float, float, float]] = field(
        default_factory=dict
    )
    table_rows: dict[int, tuple[float, float, float, float]] = field(default_factory=dict)


# --------------------------------------------------------------------------- common
def _footer(c: Canvas, data: ReportData, page: int):
    y = PAGE_H - 20.0
    c.line(MARGIN, y, PAGE_W - MARGIN, y, rgb=RULE, width_mm=0.3)
    v = data.versions
    sw = f"qperf-viewer {v.get('qperf-viewer', '')}".strip()
    model = v.get("segmentation model", "")
    kin = data.quant_model
    parts = [sw, f"segmentation model: {model}" if model else "", f"MBF model: {kin}"]
    c.text(MARGIN, y + 1.0, CONTENT_W, 3.0, " \u00b7 ".join(p for p in parts if p), 6.2, rgb=MUTED)
    thr = data.thresholds
    if thr is not None:
        cut = []
        if thr.stress_mbf_ml_min_g is not None:
            cut.append(f"stress MBF < {thr.stress_mbf_ml_min_g:g} mL/min/g")
        if thr.mpr is not None:
            cut.append(f"MPR < {thr.mpr:g}")
        app = data.threshold_applicability()
        thr_text = f"Thresholds: {thr.name} ({', '.join(cut)}; {thr.method_text()})"
        thr_text += "" if app.applies else " \u2014 not applied to this exam"
    else:
        thr_text = "Thresholds: none"
    c.text(MARGIN, y + 4.0, CONTENT_W, 3.0, thr_text, 6.2, rgb=MUTED)
    created = _fmt_created(data.created)
    c.text(
        MARGIN,
        y + 7.0,
        CONTENT_W - 25,
        3.0,
        f"Results created {created}"
        + (" \u00b7 includes manual segmentation edits" if data.edited else "")
        + f" \u00b7 {INTENDED_USE}",
        6.2,
        bold=True,
        rgb=INK,
    )
    c.text(
        PAGE_W - MARGIN - 25,
        y + 7.0,
        25,
        3.0,
        f"Page {page} of {N_PAGES}",
        6.2,
        rgb=MUTED,
        align=A.AlignRight | A.AlignVCenter,
    )


def _fmt_created(iso: str) -> str:
    if not iso:
        return DASH
    try:
        return _dt.datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return iso


def _title_band(c: Canvas, title: str, subtitle: str):
    c.text(MARGIN, 9.0, 130, 7.0, title, 14.0, bold=True, rgb=ACCENT)
    c.text(MARGIN, 16.2, 140, 4.0, subtitle, 8.0, rgb=MUTED)
    bw = 50.0
    bx = PAGE_W - MARGIN - bw
    c.rect(bx, 10.0, bw, 9.0, fill=(255, 255, 255), stroke=ALERT, width_mm=0.4)
    c.text(bx, 10.4, bw, 4.2, "RESEARCH USE ONLY", 7.5, bold=True, rgb=ALERT, align=A.AlignCenter)
    c.text(bx, 14.4, bw, 4.0, "Not a medical device", 6.5, rgb=ALERT, align=A.AlignCenter)
    c.line(MARGIN, 22.0, PAGE_W - MARGIN, 22.0, rgb=ACCENT, width_mm=0.5)


def _kv(c: Canvas, x, y, w, key, value):
    c.text(x, y, w, 2.8, key.upper(), 5.6, rgb=MUTED)
    c.text(x, y + 2.6, w, 3.6, c.elide(value or DASH, w, 8.0, True), 8.0, bold=True, rgb=INK)


def _patient_block(c: Canvas, data: ReportData, y: float) -> float:
    h = data.header
    c.rect(MARGIN, y, CONTENT_W, 20.5, fill=BAND)
    col = CONTENT_W / 4
    x = [MARGIN + 3 + k * col for k in range(4)]
    sex = f" ({h.patient_sex})" if h.patient_sex else ""
    exam = fmt_date(h.study_date) + (f" {fmt_time(h.study_time)}" if h.study_time else "")
    cond = data.stress or data.rest
    aif = cond.aif_source if cond and cond.aif_source else "none"
    _kv(c, x[0], y + 1.5, col - 4, "Patient", fmt_name(h.patient_name))
    _kv(c, x[0], y + 10.5, col - 4, "Patient ID", h.patient_id)
    _kv(c, x[1], y + 1.5, col - 4, "Birth date (sex)", fmt_date(h.patient_birth_date) + sex)
    _kv(c, x[1], y + 10.5, col - 4, "Exam date", exam)
    _kv(c, x[2], y + 1.5, col - 4, "Field strength", fmt_field(h.field_strength_t))
    _kv(c, x[2], y + 10.5, col - 4, "Stress agent", h.stress_agent or "not recorded")
    _kv(c, x[3], y + 1.5, col - 4, "MBF model / AIF", f"{data.quant_model} / {aif}")
    _kv(
        c,
        x[3],
        y + 10.5,
        col - 4,
        "Accession / institution",
        " / ".join(v for v in (h.accession_number, h.institution) if v) or DASH,
    )
    return y + 20.5


# --------------------------------------------------------------------------- page 1
def _highlights(data: ReportData) -> tuple[set[int], set[int]]:
    return data.highlighted()


def _panel_bullseye(
    c: Canvas,
    layout: PageLayout,
    panel: str,
    title: str,
    subtitle: str,
    x0: float,
    y0: float,
    w: float,
    cond: ConditionReport | None,
    mpr: dict[int, float | None] | None,
    data: ReportData,
    highlight: set[int],
    missing: str,
):
    c.text(x0, y0, w, 4.5, title, 9.5, bold=True, rgb=INK, align=A.AlignHCenter | A.AlignTop)
    c.text(x0, y0 + 4.6, w, 3.2, subtitle, 6.6, rgb=MUTED, align=A.AlignHCenter | A.AlignTop)
    r = BULLSEYE_R
    cx, cy = x0 + w / 2, y0 + 13.5 + r
    if panel == "mpr":
        vals = dict(mpr or {})
        st, re = data.stress, data.rest
        texts, status = {}, {}
        for s in range(1, N_SEGMENTS + 1):
            svs, svr = (st.segment(s) if st else None), (re.segment(s) if re else None)
            texts[s] = fmt_mpr(vals.get(s), svs, svr)
            if vals.get(s) is not None:
                status[s] = OK
            elif texts[s].endswith("*"):
                status[s] = "unreliable"
            else:
                status[s] = "not covered"
        vmin, vmax, unit = *MPR_RANGE, "stress / rest"
        available = mpr is not None and st is not None and re is not None
    else:
        vals = {s: cond.segment(s).mbf for s in range(1, N_SEGMENTS + 1)} if cond else {}
        texts = {s: fmt_segment(cond.segment(s)) for s in range(1, N_SEGMENTS + 1)} if cond else {}
        status = (
            {s: segment_status(cond.segment(s)) for s in range(1, N_SEGMENTS + 1)} if cond else {}
        )
        vmin, vmax, unit = *MBF_RANGE, "mL/min/g"
        available = cond is not None
    if not available:
        c.rect(cx - r, cy - r, 2 * r, 2 * r, fill=(248, 248, 248), stroke=RULE)
        c.text(cx - r, cy - 4, 2 * r, 8, missing, 7.0, rgb=MUTED, align=A.AlignCenter, wrap=True)
    else:
        boxes = draw_bullseye(c, cx, cy, r, vals, texts, status, vmin, vmax, highlight)
        for s, b in boxes.items():
            layout.bullseye_text[(panel, s)] = b
    thr = data.thresholds
    mark = None
    if thr is not None and data.threshold_applicability().applies:
        mark = (
            thr.mpr if panel == "mpr" else (thr.stress_mbf_ml_min_g if panel == "stress" else None)
        )
    draw_colour_bar(c, cx - 22, cy + r + 6.0, 40, 2.4, vmin, vmax, "", threshold=mark)
    c.text(cx - 30, cy + r + 11.6, 60, 2.8, unit, 5.8, rgb=MUTED, align=A.AlignCenter)


def _summary(c: Canvas, data: ReportData, x, y, w) -> float:
    c.text(x, y, w, 4.0, "Summary", 9.0, bold=True, rgb=ACCENT)
    y += 5.0
    cols = [("", 0.31), ("Stress MBF", 0.23), ("Rest MBF", 0.23), ("MPR", 0.23)]
    xs = [x]
    for _, f in cols[:-1]:
        xs.append(xs[-1] + f * w)
    c.rect(x, y, w, 4.2, fill=BAND)
    for (name, f), xx in zip(cols, xs, strict=True):
        c.text(
            xx + 1,
            y,
            f * w - 2,
            4.2,
            name,
            6.3,
            bold=True,
            rgb=INK,
            align=A.AlignRight | A.AlignVCenter if name else A.AlignLeft | A.AlignVCenter,
        )
    y += 4.2
    st, re = data.stress, data.rest
    thr = data.thresholds
    applies = thr is not None and data.threshold_applicability().applies
    rows = [
        ("Global", st.global_mbf if st else None, re.global_mbf if re else None, data.mpr_global)
    ]
    for terr, v in data.territory_values().items():
        rows.append((terr, v["stress"], v["rest"], v["mpr"]))
    for k, (name, a, b, m) in enumerate(rows):
        bold = k == 0
        vals = [fmt_number(a), fmt_number(b), fmt_number(m)]
        for j, (txt, xx) in enumerate(zip(vals, xs[1:], strict=True)):
            low = False
            if applies and j == 0 and a is not None and thr.stress_mbf_ml_min_g is not None:
                cut = thr.global_stress_mbf_ml_min_g if k == 0 else thr.stress_mbf_ml_min_g
                low = cut is not None and a < cut
            if applies and j == 2 and m is not None and thr.mpr is not None:
                low = m < thr.mpr
            if low:
                c.rect(xx, y + 0.2, cols[j + 1][1] * w, 3.8, fill=ALERT_FILL)
            c.text(
                xx + 1,
                y,
                cols[j + 1][1] * w - 2,
                4.2,
                txt,
                7.2,
                bold=bold or low,
                rgb=ALERT if low else INK,
                align=A.AlignRight | A.AlignVCenter,
            )
        c.text(x + 1, y, cols[0][1] * w, 4.2, name, 7.0, bold=bold, rgb=INK)
        c.line(x, y + 4.2, x + w, y + 4.2, rgb=(215, 220, 228), width_mm=0.15)
        y += 4.2
    y += 1.2
    hr_s = fmt_hr(st.heart_rate_bpm if st else None)
    hr_r = fmt_hr(re.heart_rate_bpm if re else None)
    c.text(x + 1, y, w, 3.6, f"Heart rate: stress {hr_s}, rest {hr_r}", 7.0, rgb=INK)
    y += 3.8
    if st and st.heart_rate_bpm and re and re.heart_rate_bpm:
        ratio = st.heart_rate_bpm / re.heart_rate_bpm
        delta = st.heart_rate_bpm - re.heart_rate_bpm
        note = f"HR response {delta:+.0f} bpm ({(ratio - 1) * 100:+.0f} %)"
        weak = delta < 10
        c.text(
            x + 1,
            y,
            w,
            3.4,
            note + (" \u2014 possibly inadequate stress" if weak else ""),
            6.4,
            bold=weak,
            rgb=ALERT if weak else MUTED,
        )
        y += 3.6
    return y


def _thresholds_block(c: Canvas, data: ReportData, x, y, w) -> float:
    c.text(x, y, w, 4.0, "Thresholds", 9.0, bold=True, rgb=ACCENT)
    y += 5.0
    thr = data.thresholds
    if thr is None:
        c.text(x, y, w, 4, "No thresholds configured: no segments highlighted.", 6.8, rgb=INK)
        return y + 4.5
    app = data.threshold_applicability()
    cut = []
    if thr.stress_mbf_ml_min_g is not None:
        cut.append(f"stress MBF < {thr.stress_mbf_ml_min_g:g} mL/min/g")
    if thr.mpr is not None:
        cut.append(f"MPR < {thr.mpr:g}")
    lines = [
        (f"Segments with {' or '.join(cut)} are outlined in red ({thr.endpoint}).", False, INK),
    ]
    if thr.global_stress_mbf_ml_min_g is not None:
        lines.append(
            (
                f"Global stress MBF < {thr.global_stress_mbf_ml_min_g:g} mL/min/g: "
                f"{thr.global_endpoint}.",
                False,
                INK,
            )
        )
    lines.append((f"Source: {thr.citation}. doi:{thr.doi}", False, MUTED))
    lines.append((f"Derived for: {thr.method_text()}.", False, MUTED))
    status = "Applied to this exam." if app.applies else f"Not applied to this exam ({app.reason})."
    if app.caution:
        status += f" Caution: {app.caution}."
    lines.append((status, True, INK if app.applies else ALERT))
    for text, bold, rgb in lines:
        h = c.wrapped_height(text, w, 6.4, bold)
        c.text(
            x,
            y,
            w,
            h + 0.5,
            text,
            6.4,
            bold=bold,
            rgb=rgb,
            wrap=True,
            align=A.AlignLeft | A.AlignTop,
        )
        y += h + 0.9
    return y


def _segment_table(c: Canvas, data: ReportData, layout: PageLayout, y: float) -> float:
    low_mbf, low_mpr = _highlights(data)
    cols = [
        ("#", 7),
        ("Segment", 36),
        ("Territory", 15),
        ("MBF", 15),
        ("endo", 14),
        ("epi", 14),
        ("MBF", 15),
        ("endo", 14),
        ("epi", 14),
        ("MPR", 15),
        ("MPR endo", 14),
    ]
    scale = CONTENT_W / sum(w for _, w in cols)
    cols = [(n, w * scale) for n, w in cols]
    xs = [MARGIN]
    for _, w in cols[:-1]:
        xs.append(xs[-1] + w)
    c.text(
        MARGIN,
        y,
        CONTENT_W,
        4.0,
        "Segments (AHA 16-segment model; MBF in mL/min/g, median "
        "of reliable pixels; endo/epi: inner/outer half of the wall)",
        8.0,
        bold=True,
        rgb=ACCENT,
    )
    y += 5.0
    # group header
    c.rect(MARGIN, y, CONTENT_W, 3.6, fill=BAND)
    groups = [("Stress", 3, 6), ("Rest", 6, 9), ("Reserve", 9, 11)]
    for name, a, b in groups:
        gx, gw = xs[a], sum(w for _, w in cols[a:b])
        c.text(gx, y, gw, 3.6, name, 6.6, bold=True, rgb=INK, align=A.AlignCenter)
        c.line(gx + 1, y + 3.5, gx + gw - 1, y + 3.5, rgb=RULE, width_mm=0.15)
    y += 3.6
    c.rect(MARGIN, y, CONTENT_W, 3.6, fill=BAND)
    for k, ((name, w), xx) in enumerate(zip(cols, xs, strict=True)):
        al = A.AlignLeft if k in (1, 2) else A.AlignRight
        c.text(xx + 1, y, w - 2, 3.6, name, 6.2, bold=True, rgb=INK, align=al | A.AlignVCenter)
    y += 3.6
    st, re = data.stress, data.rest
    rh = 3.75
    for s in range(1, N_SEGMENTS + 1):
        if s in (7, 13):
            c.line(MARGIN, y, MARGIN + CONTENT_W, y, rgb=RULE, width_mm=0.25)
        svs = st.segment(s) if st else None
        svr = re.segment(s) if re else None
        mpr = data.mpr(s)
        mpr_endo = None
        if svs and svr and segment_status(svs) == OK and segment_status(svr) == OK:
            if svs.endo is not None and svr.endo is not None and svr.endo >= 0.3:
                mpr_endo = svs.endo / svr.endo
        cells = [
            str(s),
            SEGMENT_NAMES[s],
            TERRITORY_OF_SEGMENT[s],
            fmt_segment(svs) if st else DASH,
            fmt_layer(svs.endo, svs) if st else DASH,
            fmt_layer(svs.epi, svs) if st else DASH,
            fmt_segment(svr) if re else DASH,
            fmt_layer(svr.endo, svr) if re else DASH,
            fmt_layer(svr.epi, svr) if re else DASH,
            fmt_mpr(mpr, svs, svr) if st and re else DASH,
            fmt_number(mpr_endo)
            if mpr is not None
            else (DASH if not (st and re) else fmt_mpr(None, svs, svr)),
        ]
        if s % 2 == 0:
            c.rect(MARGIN, y, CONTENT_W, rh, fill=(247, 249, 252))
        for k, ((_, w), xx, txt) in enumerate(zip(cols, xs, cells, strict=True)):
            low = (k == 3 and s in low_mbf) or (k == 9 and s in low_mpr)
            if low:
                c.rect(xx + 0.3, y + 0.2, w - 0.6, rh - 0.4, fill=ALERT_FILL)
            al = A.AlignLeft if k in (1, 2) else A.AlignRight
            bold = low or k in (3, 6, 9)
            rgb = ALERT if low else (MUTED if k in (4, 5, 7, 8, 10) else INK)
            c.text(xx + 1, y, w - 2, rh, txt, 6.5, bold=bold, rgb=rgb, align=al | A.AlignVCenter)
        layout.table_rows[s] = (MARGIN, y, CONTENT_W, rh)
        y += rh
    c.line(MARGIN, y, MARGIN + CONTENT_W, y, rgb=RULE, width_mm=0.25)
    return y


def _bullet_list(c: Canvas, x, y, w, items, max_y, size=6.4, rgb=INK) -> float:
    for k, item in enumerate(items):
        h = c.wrapped_height(item, w - 3, size)
        if y + h > max_y:
            rest = len(items) - k
            c.text(x, y, w, 3, f"+ {rest} more (see results.json)", size, rgb=MUTED)
            return y + 3.2
        c.text(x, y, 3, 3, "\u2022", size, rgb=rgb)
        c.text(
            x + 3, y, w - 3, h + 0.5, item, size, rgb=rgb, wrap=True, align=A.AlignLeft | A.AlignTop
        )
        y += h + 0.5
    return y


def paint_page1(c: Canvas, data: ReportData) -> PageLayout:
    layout = PageLayout(page=1)
    _title_band(
        c,
        "Quantitative Stress Perfusion CMR",
        "Myocardial blood flow (MBF) and myocardial perfusion reserve (MPR)",
    )
    y = _patient_block(c, data, 24.0) + 3.0
    low_mbf, low_mpr = _highlights(data)
    w = CONTENT_W / 3
    st, re = data.stress, data.rest
    sub_s = f"mL/min/g \u00b7 HR {fmt_hr(st.heart_rate_bpm)}" if st else "mL/min/g"
    sub_r = f"mL/min/g \u00b7 HR {fmt_hr(re.heart_rate_bpm)}" if re else "mL/min/g"
    _panel_bullseye(
        c,
        layout,
        "stress",
        "Stress MBF",
        sub_s,
        MARGIN,
        y,
        w,
        st,
        None,
        data,
        low_mbf,
        "Stress not acquired or not analysable",
    )
    _panel_bullseye(
        c,
        layout,
        "rest",
        "Rest MBF",
        sub_r,
        MARGIN + w,
        y,
        w,
        re,
        None,
        data,
        set(),
        "Rest not acquired or not analysable",
    )
    _panel_bullseye(
        c,
        layout,
        "mpr",
        "Perfusion reserve (MPR)",
        "stress MBF / rest MBF",
        MARGIN + 2 * w,
        y,
        w,
        None,
        data.mpr_segments if st and re else None,
        data,
        low_mpr,
        "MPR needs stress and rest",
    )
    y += 13.5 + 2 * BULLSEYE_R + 15.0
    half = CONTENT_W * 0.46
    y_sum = _summary(c, data, MARGIN, y, half)
    y_thr = _thresholds_block(c, data, MARGIN + half + 6.0, y, CONTENT_W - half - 6.0)
    y = max(y_sum, y_thr) + 2.0
    y = _segment_table(c, data, layout, y) + 1.2
    foot = [
        NOT_COVERED_NOTE,
        UNRELIABLE_NOTE,
        LAYER_NOTE,
        "Red outline / red cell: below threshold. Territories: usual coronary supply "
        "(Cerqueira 2002); individual anatomy varies.",
    ]
    for t in foot:
        c.text(MARGIN, y, CONTENT_W, 2.8, t, 5.8, rgb=MUTED)
        y += 2.8
    y += 1.5
    c.text(MARGIN, y, CONTENT_W, 4.0, "Notes and quality control", 8.0, bold=True, rgb=ACCENT)
    y += 4.6
    items = _qc_items(data)
    if not items:
        items = ["No quality issues detected."]
    _bullet_list(c, MARGIN, y, CONTENT_W, items, PAGE_H - 22.0)
    _footer(c, data, 1)
    return layout


def _qc_items(data: ReportData) -> list[str]:
    items = list(data.notes)
    if data.edited:
        items.append("Manual segmentation edits were used for this report.")
    for name, cond in data.conditions.items():
        items.append(f"{name.capitalize()} AIF: {cond.aif_source or 'none'}")
    items += list(data.qc_flags)
    for name, cond in data.conditions.items():
        items += [f"{name}: {f}" for f in cond.flags]
        for sl in cond.slices:
            items += [
                f"{name} slice {sl.slice_index + 1} ({sl.position or 'extra'}): {f}"
                for f in sl.flags
            ]
    seen, out = set(), []
    for it in items:
        if it not in seen:
            seen.add(it)
            out.append(it)
    return out


# --------------------------------------------------------------------------- page 2
def _small_header(c: Canvas, data: ReportData):
    h = data.header
    c.text(MARGIN, 9.0, 110, 6.0, "Images and curves", 12.5, bold=True, rgb=ACCENT)
    who = (
        f"{fmt_name(h.patient_name)} \u00b7 ID {h.patient_id or DASH} \u00b7 exam "
        f"{fmt_date(h.study_date)}"
    )
    c.text(
        PAGE_W - MARGIN - 110,
        9.5,
        110,
        5.0,
        who,
        7.5,
        bold=True,
        rgb=INK,
        align=A.AlignRight | A.AlignVCenter,
    )
    c.text(
        PAGE_W - MARGIN - 110,
        14.0,
        110,
        4.0,
        "RESEARCH USE ONLY \u00b7 not a medical device",
        6.2,
        bold=True,
        rgb=ALERT,
        align=A.AlignRight | A.AlignVCenter,
    )
    c.line(MARGIN, 19.0, PAGE_W - MARGIN, 19.0, rgb=ACCENT, width_mm=0.5)


def _condition_block(c: Canvas, data: ReportData, name: str, y: float) -> float:
    cond = data.conditions.get(name)
    title = f"{name.capitalize()}"
    if cond is not None:
        title += (
            f"  \u00b7  HR {fmt_hr(cond.heart_rate_bpm)}  \u00b7  AIF {cond.aif_source or 'none'}"
        )
    c.text(MARGIN, y, 120, 4.5, title, 9.0, bold=True, rgb=INK)
    y += 5.0
    tile, gap = TILE, 2.0
    if cond is None or not cond.slices:
        c.rect(MARGIN, y, CONTENT_W, 20, fill=(248, 248, 248), stroke=RULE)
        c.text(
            MARGIN,
            y,
            CONTENT_W,
            20,
            f"{name.capitalize()}: no images",
            8,
            rgb=MUTED,
            align=A.AlignCenter,
        )
        return y + 22.0
    slices = sorted(cond.slices, key=lambda s: s.slice_index)[:3]
    for k, sl in enumerate(slices):
        x = MARGIN + k * (tile + gap)
        label = f"{sl.position or 'slice'} (slice {sl.slice_index + 1})"
        c.text(x, y, tile, 3.2, label, 6.5, bold=True, rgb=INK, align=A.AlignHCenter | A.AlignTop)
        crop = heart_crop(sl) if (sl.labels is not None or sl.peak_image is not None) else None
        if crop is None:
            c.rect(x, y + 3.5, tile, 2 * tile + gap, fill=(0, 0, 0))
            continue
        draw_peak_tile(c, sl, x, y + 3.5, tile, crop)
        draw_map_tile(c, sl, x, y + 3.5 + tile + gap, tile, *MBF_RANGE, crop=crop)
    # row captions
    xr = MARGIN + 3 * (tile + gap)
    c.text(xr, y + 3.5, 12, 6, "peak\nimage", 5.6, rgb=MUTED, align=A.AlignLeft | A.AlignTop)
    draw_colour_bar(
        c,
        xr + 0.5,
        y + 3.5 + tile + gap + 6.0,
        2.6,
        tile - 10.0,
        *MBF_RANGE,
        "mL/min/g",
        vertical=True,
    )
    c.text(xr, y + 3.5 + tile + gap, 12, 4, "MBF", 5.6, rgb=MUTED, align=A.AlignLeft | A.AlignTop)
    # curves on the right
    px = xr + 10.0
    pw = PAGE_W - MARGIN - px
    t0 = cond.t0_s
    aif_series = []
    if cond.aif is not None:
        aif_series.append(
            Series(
                np.asarray(cond.aif.times_s) - t0,
                np.asarray(cond.aif.values),
                (20, 20, 20),
                "AIF",
                width_mm=0.45,
            )
        )
    myo_series = []
    for sl in slices:
        rgb = SLICE_RGB.get(sl.position or "", (120, 120, 120))
        for cv in sl.curves:
            if cv.name in ("lv_blood", "blood_pool", "lv"):
                aif_series.append(
                    Series(
                        np.asarray(cv.times_s) - t0,
                        np.asarray(cv.values),
                        rgb,
                        f"LV {sl.position or sl.slice_index + 1}",
                        dashed=True,
                        width_mm=0.25,
                    )
                )
            elif cv.name in ("myocardium", "myo"):
                myo_series.append(
                    Series(
                        np.asarray(cv.times_s) - t0,
                        np.asarray(cv.values),
                        rgb,
                        sl.position or f"slice {sl.slice_index + 1}",
                    )
                )
    unit = (
        cond.aif.unit
        if cond.aif is not None
        else (slices[0].curves[0].unit if slices[0].curves else "")
    )
    ph = tile + 1.5
    draw_plot(c, px, y + 1.0, pw, ph, aif_series, "Arterial input and blood pool", "time (s)", unit)
    draw_plot(c, px, y + 3.5 + tile + gap, pw, ph, myo_series, "Myocardium", "time (s)", unit)
    return y + 3.5 + 2 * tile + gap + 2.0


def _slice_table(c: Canvas, data: ReportData, y: float) -> float:
    c.text(MARGIN, y, CONTENT_W, 4.0, "Slices", 8.0, bold=True, rgb=ACCENT)
    y += 4.8
    cols = [
        ("Condition", 17),
        ("Slice", 10),
        ("Position", 15),
        ("Location (mm)", 20),
        ("Stress\u2013rest (mm)", 22),
        ("Segm. confidence", 23),
        ("Edited", 12),
        ("Flags", 67),
    ]
    scale = CONTENT_W / sum(w for _, w in cols)
    cols = [(n, w * scale) for n, w in cols]
    c.rect(MARGIN, y, CONTENT_W, 3.6, fill=BAND)
    x = MARGIN
    for name, w in cols:
        c.text(x + 1, y, w - 2, 3.6, name, 6.0, bold=True, rgb=INK)
        x += w
    y += 3.6
    for name, cond in data.conditions.items():
        for sl in sorted(cond.slices, key=lambda s: s.slice_index):
            off = data.alignment_mm.get(sl.position or "")
            cells = [
                name,
                str(sl.slice_index + 1),
                sl.position or "extra",
                fmt_number(sl.location_mm, 1),
                fmt_number(off, 1),
                fmt_number(sl.confidence, 2),
                "yes" if sl.edited else "no",
                "; ".join(sl.flags) or DASH,
            ]
            x = MARGIN
            for (_, w), txt in zip(cols, cells, strict=True):
                c.text(x + 1, y, w - 2, 3.4, txt, 6.0, rgb=INK)
                x += w
            y += 3.4
            c.line(MARGIN, y, MARGIN + CONTENT_W, y, rgb=(220, 224, 230), width_mm=0.12)
    return y


def paint_page2(c: Canvas, data: ReportData) -> PageLayout:
    _small_header(c, data)
    y = 21.5
    for name in ("stress", "rest"):
        y = _condition_block(c, data, name, y) + 2.0
    y = _slice_table(c, data, y + 1.0) + 2.0
    legend = [
        (ENDO_RGB, "endocardial contour"),
        (EPI_RGB, "epicardial contour"),
        (RV_RGB, "RV contour and insertion points"),
        ((255, 255, 255), "AHA sector lines and segment numbers"),
    ]
    x = MARGIN
    c.rect(MARGIN, y, CONTENT_W, 5.0, fill=(40, 40, 40))
    for rgb, txt in legend:
        c.line(x + 2, y + 2.5, x + 6, y + 2.5, rgb=rgb, width_mm=0.6)
        c.text(x + 7, y, 45, 5.0, txt, 6.0, rgb=(235, 235, 235))
        x += 7 + c.text_width(txt, 6.0) + 5
    y += 6.2
    note = (
        "Images and maps at the motion-correction reference frame, in the DICOM pixel grid "
        "(as acquired). Peak enhancement: frame of maximal mean myocardial signal. Times: "
        "seconds from the condition's first saturation-recovery (non-PD) frame. Grey "
        "myocardial pixels: unreliable fit."
    )
    h = c.wrapped_height(note, CONTENT_W, 6.0)
    c.text(
        MARGIN,
        y,
        CONTENT_W,
        h + 0.5,
        note,
        6.0,
        rgb=MUTED,
        wrap=True,
        align=A.AlignLeft | A.AlignTop,
    )
    _footer(c, data, 2)
    return PageLayout(page=2)


PAINTERS = {1: paint_page1, 2: paint_page2}
