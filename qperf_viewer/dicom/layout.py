"""Split a series into slice positions and order each position's frames in time.

A perfusion series may hold one slice or all slices x time. Frames are grouped by plane
(ImageOrientationPatient, then ImagePositionPatient along the plane normal); without
positions, by SliceLocation, StackID/InStackPositionNumber, TriggerTime (constant per slice
in a multi-slice perfusion) or repeated TemporalPositionIdentifier. Within a position frames
are ordered by acquisition time, never by file order or InstanceNumber unless no time exists.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from qperf_viewer.dicom.model import Frame
from qperf_viewer.geometry import SliceGeometry, base_to_apex_normal

_COS_2DEG = float(np.cos(np.radians(2.0)))


@dataclass(eq=False)
class PositionGroup:
    """Frames of one slice position of one series, in acquisition order.

    times_abs: absolute times (s) of the frames, or None when the series has no per-frame
    times (then ``time_source == 'approximate'``). rr_s: median frame interval (s).
    dropped: frames left out, with the reason (different matrix or spacing).
    """

    frames: list[Frame]
    geometry: SliceGeometry | None
    split_by: str
    times_abs: list[float] | None = None
    time_source: str = "approximate"
    rr_s: float | None = None
    dropped: list[tuple[Frame, str]] = field(default_factory=list)

    @property
    def n_frames(self) -> int:
        return len(self.frames)

    def normal(self) -> np.ndarray | None:
        return None if self.geometry is None else base_to_apex_normal(self.geometry)


def _vec(fr: Frame, key: str, n: int) -> tuple[float, ...] | None:
    return fr.vec(key, n)


def _orientation_clusters(frames: list[Frame]) -> list[list[Frame]]:
    reps: list[tuple[np.ndarray, np.ndarray]] = []
    members: list[list[Frame]] = []
    memo: dict[tuple[float, ...], int] = {}
    for fr in frames:
        iop = _vec(fr, "ImageOrientationPatient", 6)
        assert iop is not None
        k = memo.get(iop)
        if k is None:
            r = np.asarray(iop[:3])
            c = np.asarray(iop[3:])
            nr, nc = np.linalg.norm(r), np.linalg.norm(c)
            r = r / nr if nr > 0 else r
            c = c / nc if nc > 0 else c
            for i, (rr, cc) in enumerate(reps):
                if r @ rr > _COS_2DEG and c @ cc > _COS_2DEG:
                    k = i
                    break
            else:
                reps.append((r, c))
                members.append([])
                k = len(reps) - 1
            memo[iop] = k
        members[k].append(fr)
    return members


def _cluster_1d(frames: list[Frame], values: list[float], tol: float) -> list[list[Frame]]:
    order = sorted(range(len(frames)), key=lambda i: values[i])
    groups: list[list[Frame]] = []
    last = None
    for i in order:
        if last is None or values[i] - last > tol:
            groups.append([])
        groups[-1].append(frames[i])
        last = values[i]
    return groups


def split_positions(frames: list[Frame]) -> tuple[list[list[Frame]], str]:
    """Group frames by slice position; returns (groups, how)."""
    if not frames:
        return [], "none"
    if all(
        _vec(f, "ImagePositionPatient", 3) and _vec(f, "ImageOrientationPatient", 6) for f in frames
    ):
        out: list[list[Frame]] = []
        for members in _orientation_clusters(frames):
            iop = np.asarray(_vec(members[0], "ImageOrientationPatient", 6))
            n = np.cross(iop[:3], iop[3:])
            nn = np.linalg.norm(n)
            n = n / nn if nn > 0 else np.array([0.0, 0.0, 1.0])
            thick = float(members[0].get("SliceThickness") or 0.0)
            tol = min(max(0.25 * thick, 0.5), 3.0)
            d = [float(np.dot(_vec(f, "ImagePositionPatient", 3), n)) for f in members]
            out.extend(_cluster_1d(members, d, tol))
        return out, "ImagePositionPatient"
    locs = [f.get("SliceLocation") for f in frames]
    if all(isinstance(v, int | float) for v in locs):
        return _cluster_1d(frames, [float(v) for v in locs], 0.5), "SliceLocation"
    stacks = [(f.get("StackID"), f.get("InStackPositionNumber")) for f in frames]
    if all(s[1] is not None for s in stacks):
        keys = sorted(set(stacks), key=str)
        return [[f for f, s in zip(frames, stacks, strict=True) if s == k] for k in keys], (
            "StackID/InStackPositionNumber"
        )
    trig = [f.get("TriggerTime") for f in frames]
    if all(isinstance(v, int | float) for v in trig):
        counts = Counter(round(float(v)) for v in trig)
        sizes = list(counts.values())
        if 2 <= len(counts) <= 8 and min(sizes) >= 2 and max(sizes) - min(sizes) <= 2:
            keys = sorted(counts)
            return [[f for f in frames if round(float(f.get("TriggerTime"))) == k] for k in keys], (
                "TriggerTime"
            )
    tpi = [f.get("TemporalPositionIdentifier") or f.get("TemporalPositionIndex") for f in frames]
    if all(isinstance(v, int) for v in tpi):
        counts = Counter(tpi)
        k = min(counts.values())
        if k > 1 and all(c == k for c in counts.values()):
            rank: dict[int, list[Frame]] = {}
            for v in counts:
                same = sorted(
                    (f for f, t in zip(frames, tpi, strict=True) if t == v),
                    key=lambda f: (f.time_s if f.time_s is not None else 0.0, _inst_key(f)),
                )
                for r, f in enumerate(same):
                    rank.setdefault(r, []).append(f)
            return [rank[r] for r in sorted(rank)], "TemporalPositionIdentifier"
    return [list(frames)], "single position"


def _inst_key(f: Frame) -> tuple:
    inst = f.record.get("InstanceNumber")
    return (inst if inst is not None else 1 << 30, f.frame_number, f.path)


def _temporal_key(f: Frame) -> tuple:
    tpi = f.get("TemporalPositionIdentifier")
    if tpi is None:
        tpi = f.get("TemporalPositionIndex")
    return (tpi if tpi is not None else 1 << 30, *_inst_key(f))


def _distinct(times: list[float | None]) -> bool:
    if any(t is None for t in times):
        return False
    if len(times) < 2 or len(set(times)) == len(times):
        return True
    return len({round(t, 3) for t in times}) >= 0.9 * len(times)  # type: ignore[arg-type]


def order_frames(frames: list[Frame]) -> tuple[list[Frame], list[float] | None, str]:
    """Frames in acquisition order with their absolute times (or None) and the time source:
    'acquisition', 'content' (ContentTime) or 'approximate' (no per-frame times)."""
    acq = [f.time_s for f in frames]
    if _distinct(acq):
        fs = sorted(frames, key=lambda f: (f.time_s, _temporal_key(f)))
        return fs, [f.time_s for f in fs], "acquisition"  # type: ignore[misc]
    con = [f.content_time_s for f in frames]
    if _distinct(con):
        fs = sorted(frames, key=lambda f: (f.content_time_s, _temporal_key(f)))
        return fs, [f.content_time_s for f in fs], "content"  # type: ignore[misc]
    fs = sorted(frames, key=_temporal_key)
    return fs, None, "approximate"


def _majority_geometry(frames: list[Frame]) -> tuple[SliceGeometry | None, list[tuple[Frame, str]]]:
    def exact(f: Frame):
        ps = f.get("PixelSpacing")
        return (f.get("Rows"), f.get("Columns"), tuple(ps) if isinstance(ps, list) else ps)

    def key(f: Frame):
        ps = _vec(f, "PixelSpacing", 2)
        return (f.rows, f.columns, None if ps is None else tuple(round(x, 3) for x in ps))

    if len({exact(f) for f in frames}) == 1:  # the usual case: nothing to compare
        keys = [key(frames[0])] * len(frames)
    else:
        keys = [key(f) for f in frames]
    counts = Counter(keys)
    best, _ = counts.most_common(1)[0]
    dropped = []
    for f, k in zip(frames, keys, strict=True):
        if k != best:
            what = "matrix" if k[:2] != best[:2] else "pixel spacing"
            dropped.append(
                (
                    f,
                    f"{what} {k[0]}x{k[1]} / {k[2]} mm differs from the other images of the "
                    f"slice ({best[0]}x{best[1]} / {best[2]} mm)",
                )
            )
    ref = next(f for f, k in zip(frames, keys, strict=True) if k == best)
    iop = _vec(ref, "ImageOrientationPatient", 6)
    ipp = _vec(ref, "ImagePositionPatient", 3)
    ps = _vec(ref, "PixelSpacing", 2)
    if best[0] <= 0 or best[1] <= 0:
        return None, dropped
    geom = SliceGeometry(
        orientation=iop if iop else (1.0, 0.0, 0.0, 0.0, 1.0, 0.0),  # type: ignore[arg-type]
        origin_mm=ipp if ipp else (0.0, 0.0, 0.0),  # type: ignore[arg-type]
        pixel_spacing_mm=ps if ps else (1.0, 1.0),  # type: ignore[arg-type]
        shape=(best[0], best[1]),
        slice_thickness_mm=float(ref.get("SliceThickness") or 0.0),
    )
    return geom, dropped


def median_rr(times: list[float] | None) -> float | None:
    """Median positive interval between consecutive times (s)."""
    if not times or len(times) < 2:
        return None
    d = [b - a for a, b in zip(times[:-1], times[1:], strict=True) if b - a > 1e-3]
    return float(statistics.median(d)) if d else None


def series_layout(frames: list[Frame]) -> list[PositionGroup]:
    """Position groups of a series' frames, each ordered in time."""
    groups, how = split_positions(frames)
    out = []
    for g in groups:
        geom, dropped = _majority_geometry(g)
        drop_ids = {id(f) for f, _ in dropped}
        kept = [f for f in g if id(f) not in drop_ids]
        ordered, times, source = order_frames(kept)
        out.append(
            PositionGroup(
                frames=ordered,
                geometry=geom,
                split_by=how,
                times_abs=times,
                time_source=source,
                rr_s=median_rr(times),
                dropped=dropped,
            )
        )
    return out
