"""DICOM dates and times as numbers.

DICOM TM values are clock times, not numbers: ``100000`` to ``100117`` is 77 s, not 117 s.
Everything here returns seconds. Absolute times are ``days * 86400 + seconds of day`` where
``days`` is the proleptic Gregorian ordinal of the date (or 0 when the date is unknown);
:func:`unwrap_clock` makes dateless clock times that cross midnight monotonic.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from functools import lru_cache

DAY_S = 86400.0


def parse_da(s: str | None) -> int | None:
    """DA 'YYYYMMDD' (also 'YYYY.MM.DD', 'YYYY-MM-DD') -> date ordinal, None if invalid."""
    return _parse_da(s) if isinstance(s, str) else None


@lru_cache(maxsize=4096)
def _parse_da(s: str) -> int | None:
    if not s:
        return None
    s = s.strip().replace(".", "").replace("-", "")
    if len(s) < 8 or not s[:8].isdigit():
        return None
    try:
        return _dt.date(int(s[:4]), int(s[4:6]), int(s[6:8])).toordinal()
    except ValueError:
        return None


def parse_tm(s: str | None) -> float | None:
    """TM 'HHMMSS.FFFFFF' (any trailing part optional; also 'HH:MM:SS.frac') -> s of day."""
    return _parse_tm(s) if isinstance(s, str) else None


@lru_cache(maxsize=65536)
def _parse_tm(s: str) -> float | None:
    n = len(s)
    if n >= 6 and s[:6].isdigit() and (n == 6 or (s[6] == "." and s[7:].isdigit())):
        hh, mm, ss = int(s[0:2]), int(s[2:4]), float(s[4:]) if n > 7 else float(s[4:6])
        if hh <= 23 and mm <= 59 and ss < 61.0:
            return hh * 3600.0 + mm * 60.0 + ss
        return None
    if not s:
        return None
    s = s.strip().replace(":", "")
    if not s:
        return None
    frac = 0.0
    if "." in s:
        s, f = s.split(".", 1)
        f = f.strip()
        if f and not f.isdigit():
            return None
        frac = float("0." + f) if f else 0.0
    if not s.isdigit() or len(s) < 2 or len(s) > 6 or len(s) % 2:
        return None
    hh = int(s[0:2])
    mm = int(s[2:4]) if len(s) >= 4 else 0
    ss = int(s[4:6]) if len(s) >= 6 else 0
    if hh > 23 or mm > 59 or ss > 60:
        return None
    return hh * 3600.0 + mm * 60.0 + ss + frac


def parse_dt(s: str | None) -> tuple[int | None, float | None]:
    """DT 'YYYYMMDDHHMMSS.FFFFFF&ZZXX' -> (date ordinal, s of day); the offset is ignored
    (times of one exam share it)."""
    if not s or not isinstance(s, str):
        return None, None
    s = s.strip()
    for sign in ("+", "-"):
        i = s.find(sign, 4)
        if i > 0:
            s = s[:i]
    day = parse_da(s[:8]) if len(s) >= 8 else None
    clock = parse_tm(s[8:]) if len(s) > 8 else (0.0 if day is not None else None)
    return day, clock


def unwrap_clock(clocks: Sequence[float]) -> list[float]:
    """Seconds of day of one exam (no dates) -> monotonic seconds across midnight.

    The exam is taken to start after the largest gap on the 24-hour circle, so times just
    after midnight come after times just before it (an exam is much shorter than a day).
    """
    if not clocks:
        return []
    vals = sorted({c % DAY_S for c in clocks})
    gaps = [(vals[0] + DAY_S - vals[-1], vals[0])]  # wrap gap: start at the earliest
    gaps += [(b - a, b) for a, b in zip(vals[:-1], vals[1:], strict=False)]
    _gap, start = max(gaps)
    return [c % DAY_S + (DAY_S if c % DAY_S < start else 0.0) for c in clocks]


def absolute_times(
    days: Sequence[int | None], clocks: Sequence[float | None]
) -> list[float | None]:
    """Absolute seconds for frames of one study from (date ordinal, seconds of day) pairs.

    Dates are used when every timed frame has one and the result spans less than 12 hours
    (some scanners stamp every image with the series date even after midnight); otherwise
    the dateless clock times are unwrapped across midnight. Times are relative to midnight
    of the earliest date (or 0), so they stay small enough for float64 microseconds.
    """
    idx = [i for i, c in enumerate(clocks) if c is not None]
    out: list[float | None] = [None] * len(clocks)
    if not idx:
        return out
    if all(days[i] is not None for i in idx):
        d0 = min(days[i] for i in idx)  # type: ignore[type-var]
        vals = [(days[i] - d0) * DAY_S + clocks[i] for i in idx]  # type: ignore[operator]
        if max(vals) - min(vals) < DAY_S / 2:
            for i, v in zip(idx, vals, strict=True):
                out[i] = v
            return out
    vals = unwrap_clock([clocks[i] for i in idx])  # type: ignore[misc]
    for i, v in zip(idx, vals, strict=True):
        out[i] = v
    return out
