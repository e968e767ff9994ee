"""Geometry of the AHA bulls-eye plot and its colour scale (Qt-free; drawn by
:mod:`.render_bullseye`).

Cerqueira et al., Circulation 2002;105:539-542: rings from outside in are basal (segments 1-6),
mid (7-12) and apical (13-16); the apex (17) is not measured by short-axis perfusion and stays
blank. Display angles are mathematical (degrees counter-clockwise from 3 o'clock, y up):
anterior at the top, septum on the left, inferior at the bottom, lateral on the right, as on a
short-axis image seen from the apex; segment numbers increase counter-clockwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qperf_viewer.sectors import TERRITORY_OF_SEGMENT

#: (inner, outer) radius of each ring as a fraction of the plot radius.
RINGS: dict[str, tuple[float, float]] = {
    "basal": (0.75, 1.0),
    "mid": (0.5, 0.75),
    "apical": (0.25, 0.5),
}
APEX_RADIUS = 0.25


@dataclass(frozen=True)
class Wedge:
    """One segment of the plot: radii (fractions) and angles (degrees, CCW from 3 o'clock)."""

    segment: int
    r_inner: float
    r_outer: float
    start_deg: float
    span_deg: float

    @property
    def mid_deg(self) -> float:
        return self.start_deg + self.span_deg / 2.0

    @property
    def r_mid(self) -> float:
        return 0.5 * (self.r_inner + self.r_outer)

    def centre(self) -> tuple[float, float]:
        """Centre of the wedge (x right, y up) as fractions of the plot radius."""
        t = np.radians(self.mid_deg)
        return float(self.r_mid * np.cos(t)), float(self.r_mid * np.sin(t))


def wedge(segment: int) -> Wedge:
    if 1 <= segment <= 6:
        r0, r1 = RINGS["basal"]
        return Wedge(segment, r0, r1, (60.0 + 60.0 * (segment - 1)) % 360.0, 60.0)
    if 7 <= segment <= 12:
        r0, r1 = RINGS["mid"]
        return Wedge(segment, r0, r1, (60.0 + 60.0 * (segment - 7)) % 360.0, 60.0)
    if 13 <= segment <= 16:
        r0, r1 = RINGS["apical"]
        return Wedge(segment, r0, r1, (45.0 + 90.0 * (segment - 13)) % 360.0, 90.0)
    raise ValueError(f"AHA segment must be 1-16, got {segment}")


WEDGES: dict[int, Wedge] = {s: wedge(s) for s in range(1, 17)}


def segment_at(r: float, angle_deg: float) -> int | None:
    """Segment under a point of the plot (radius fraction, display angle), None outside."""
    for w in WEDGES.values():
        if w.r_inner <= r < w.r_outer and (angle_deg - w.start_deg) % 360.0 < w.span_deg:
            return w.segment
    return None


def territory_edges(step_deg: float = 15.0):
    """Edges between coronary territories: ``(radials, arcs)``.

    radials: (angle_deg, r0, r1); arcs: (r, start_deg, span_deg), all in plot fractions.
    """
    radials = []
    for r0, r1 in RINGS.values():
        rm = 0.5 * (r0 + r1)
        angles = sorted({w.start_deg for w in WEDGES.values() if w.r_inner == r0})
        for a in angles:
            before = segment_at(rm, a - 1e-3)
            after = segment_at(rm, a + 1e-3)
            if TERRITORY_OF_SEGMENT[before] != TERRITORY_OF_SEGMENT[after]:
                radials.append((a, r0, r1))
    arcs = []
    for r in (RINGS["basal"][0], RINGS["mid"][0]):
        run_start = None
        for k in range(int(360 / step_deg) + 1):
            a = k * step_deg + step_deg / 2
            inside = segment_at(r - 1e-3, a % 360)
            outside = segment_at(r + 1e-3, a % 360)
            differ = TERRITORY_OF_SEGMENT[inside] != TERRITORY_OF_SEGMENT[outside]
            if differ and run_start is None:
                run_start = k * step_deg
            if not differ and run_start is not None:
                arcs.append((r, run_start, k * step_deg - run_start))
                run_start = None
    return radials, arcs


#: Territory label positions (display angle, deg) outside the plot.
TERRITORY_LABEL_ANGLES = {"LAD": 120.0, "RCA": 240.0, "LCX": 0.0}


# --------------------------------------------------------------------------- colours
#: Anchors (position 0..1, RGB) of the perfusion colour scale: dark blue (low) through cyan,
#: green and yellow to red (high), as in common MBF maps.
PERFUSION_ANCHORS = (
    (0.00, (20, 20, 110)),
    (0.15, (30, 70, 200)),
    (0.32, (20, 160, 210)),
    (0.48, (60, 185, 110)),
    (0.62, (200, 215, 60)),
    (0.78, (245, 160, 40)),
    (1.00, (200, 35, 35)),
)


def colour_lut(anchors=PERFUSION_ANCHORS, n: int = 256) -> np.ndarray:
    """(n, 3) uint8 colour table interpolated between anchors."""
    pos = np.array([a[0] for a in anchors])
    rgb = np.array([a[1] for a in anchors], dtype=float)
    x = np.linspace(0.0, 1.0, n)
    out = np.stack([np.interp(x, pos, rgb[:, k]) for k in range(3)], axis=1)
    return np.round(out).astype(np.uint8)


LUT = colour_lut()


def colour_of(
    value: float, vmin: float, vmax: float, lut: np.ndarray = LUT
) -> tuple[int, int, int]:
    """RGB of a value on the scale (clipped)."""
    f = 0.0 if vmax <= vmin else (float(value) - vmin) / (vmax - vmin)
    i = int(round(np.clip(f, 0.0, 1.0) * (len(lut) - 1)))
    r, g, b = lut[i]
    return int(r), int(g), int(b)


def text_colour_on(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black or white, whichever reads better on ``rgb`` (relative luminance)."""
    r, g, b = (c / 255.0 for c in rgb)
    lum = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return (0, 0, 0) if lum > 0.45 else (255, 255, 255)


def apply_lut(values: np.ndarray, vmin: float, vmax: float, lut: np.ndarray = LUT) -> np.ndarray:
    """(Y, X) values -> (Y, X, 3) uint8 RGB; non-finite values map to the lowest colour."""
    v = np.nan_to_num(np.asarray(values, dtype=float), nan=vmin, posinf=vmax, neginf=vmin)
    f = np.clip((v - vmin) / max(vmax - vmin, 1e-12), 0.0, 1.0)
    return lut[np.round(f * (len(lut) - 1)).astype(int)]
