"""How numbers, dates and names are written in the report (Qt-free).

No NaN is ever printed: a value that is missing shows as an em dash, with a marker that the
report's footnotes explain.
"""

from __future__ import annotations

import math

from qperf_viewer.results import SegmentValue

DASH = "\u2014"
#: Marker of a covered segment whose value is not reliable (footnote on the page).
UNRELIABLE_MARK = "*"
NOT_COVERED_NOTE = f"{DASH}  segment not covered by the acquired slices"
LAYER_NOTE = (
    "endo / epi: inner / outer half of the wall without its border pixels (blood spill, "
    f"partial volume); {DASH} in a valued segment: wall too thin to split"
)
UNRELIABLE_NOTE = (
    f"{DASH}{UNRELIABLE_MARK}  unreliable: too few reliable pixels in the segment (value withheld)"
)

NOT_COVERED, UNRELIABLE, OK = "not covered", "unreliable", "ok"


def segment_status(sv: SegmentValue | None) -> str:
    """'ok' (has a reliable value), 'unreliable' (covered, no reliable value), 'not covered'."""
    if sv is None or sv.n_pixels <= 0 and sv.mbf is None:
        return NOT_COVERED
    if sv.mbf is None or not sv.reliable or not math.isfinite(sv.mbf):
        return UNRELIABLE
    return OK


def fmt_number(v: float | None, digits: int = 2) -> str:
    """A finite number with ``digits`` decimals, else an em dash."""
    if v is None or not math.isfinite(float(v)):
        return DASH
    return f"{float(v):.{digits}f}"


def fmt_segment(sv: SegmentValue | None, digits: int = 2) -> str:
    """Segment MBF as printed: '2.31', '—' (not covered) or '—*' (unreliable)."""
    st = segment_status(sv)
    if st == OK:
        return fmt_number(sv.mbf, digits)
    return DASH if st == NOT_COVERED else DASH + UNRELIABLE_MARK


def fmt_layer(v: float | None, sv: SegmentValue | None, digits: int = 2) -> str:
    """Endo/epi value of a segment: printed only when the segment itself is reliable."""
    if segment_status(sv) != OK:
        return fmt_segment(sv, digits)
    return fmt_number(v, digits)


def fmt_mpr(v: float | None, stress: SegmentValue | None, rest: SegmentValue | None) -> str:
    """Segment MPR: a value, '—*' when a covered input is unreliable, else '—'."""
    if v is not None and math.isfinite(v):
        return f"{v:.2f}"
    if UNRELIABLE in (segment_status(stress), segment_status(rest)):
        return DASH + UNRELIABLE_MARK
    return DASH


def fmt_date(da: str) -> str:
    """DICOM DA 'YYYYMMDD' -> 'YYYY-MM-DD' (other strings unchanged, '' -> em dash)."""
    da = (da or "").strip()
    if len(da) == 8 and da.isdigit():
        return f"{da[:4]}-{da[4:6]}-{da[6:]}"
    return da or DASH


def fmt_time(tm: str) -> str:
    """DICOM TM 'HHMMSS(.ffff)' -> 'HH:MM'."""
    tm = (tm or "").strip()
    if len(tm) >= 4 and tm[:4].isdigit():
        return f"{tm[:2]}:{tm[2:4]}"
    return tm


def fmt_name(pn: str) -> str:
    """DICOM PN 'FAMILY^GIVEN^MIDDLE^PREFIX^SUFFIX' -> 'FAMILY, GIVEN MIDDLE'."""
    parts = [p.strip() for p in (pn or "").split("^")]
    if not parts or not parts[0]:
        return " ".join(p for p in parts if p) or DASH
    given = " ".join(p for p in parts[1:3] if p)
    return f"{parts[0]}, {given}" if given else parts[0]


def fmt_field(t: float | None) -> str:
    return DASH if t is None else f"{t:g} T"


def fmt_hr(bpm: float | None) -> str:
    return DASH if bpm is None or not math.isfinite(bpm) else f"{bpm:.0f} bpm"
