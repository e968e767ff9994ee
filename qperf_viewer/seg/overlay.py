"""Segmentation overlays as PNG files for human review (numpy + zlib only, no Qt, no PIL)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

#: RGB colours of labels 1 (LV), 2 (myocardium), 3 (RV).
LABEL_COLOURS = {1: (255, 60, 60), 2: (60, 220, 60), 3: (70, 120, 255)}


def write_png(path: str | Path, rgb: np.ndarray) -> None:
    """Write an (H, W, 3) uint8 image as an 8-bit RGB PNG."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w = rgb.shape[:2]
    raw = b"".join(b"\x00" + rgb[i].tobytes() for i in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + tag
            + data
            + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
        )

    png = b"\x89PNG\r\n\x1a\n"
    png += chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 6))
    png += chunk(b"IEND", b"")
    Path(path).write_bytes(png)


def to_grey(image: np.ndarray, lo_pct: float = 1.0, hi_pct: float = 99.5) -> np.ndarray:
    """(H, W) float -> (H, W, 3) uint8 grey with percentile windowing."""
    img = np.asarray(image, dtype=float)
    lo, hi = np.percentile(img, [lo_pct, hi_pct])
    g = np.clip((img - lo) / max(hi - lo, 1e-9), 0, 1)
    g8 = (255 * g).astype(np.uint8)
    return np.stack([g8, g8, g8], axis=-1)


def outline(mask: np.ndarray) -> np.ndarray:
    """Boundary pixels of a boolean mask (4-neighbourhood)."""
    m = np.asarray(mask, dtype=bool)
    p = np.pad(m, 1)
    inner = p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    return m & ~inner


def overlay(
    image: np.ndarray,
    labels: np.ndarray | None = None,
    points: list[tuple[float, float]] | None = None,
    zoom: int = 3,
    fill_alpha: float = 0.0,
    outline_labels: np.ndarray | None = None,
) -> np.ndarray:
    """Grey image with label outlines (and optional fill), reference outlines in yellow
    (``outline_labels``), points as white crosses; upsampled by ``zoom`` (nearest)."""
    rgb = to_grey(image)
    rgb = np.repeat(np.repeat(rgb, zoom, axis=0), zoom, axis=1).astype(float)

    def up(a):
        return np.repeat(np.repeat(a, zoom, axis=0), zoom, axis=1)

    if labels is not None:
        lab = up(np.asarray(labels))
        for v, col in LABEL_COLOURS.items():
            m = lab == v
            if fill_alpha > 0:
                rgb[m] = (1 - fill_alpha) * rgb[m] + fill_alpha * np.array(col)
            rgb[outline(m)] = col
    if outline_labels is not None:
        lab = up(np.asarray(outline_labels))
        for v in (1, 2):
            rgb[outline(lab == v) | outline(lab > 0)] = (255, 230, 0)
    out = np.clip(rgb, 0, 255).astype(np.uint8)
    for r, c in points or []:
        rr, cc = int(round((r + 0.5) * zoom - 0.5)), int(round((c + 0.5) * zoom - 0.5))
        for d in range(-2 * zoom, 2 * zoom + 1):
            for y, x in ((rr + d, cc), (rr, cc + d)):
                if 0 <= y < out.shape[0] and 0 <= x < out.shape[1]:
                    out[y, x] = (255, 255, 255)
    return out


def montage(tiles: list[np.ndarray], ncols: int, gap: int = 4) -> np.ndarray:
    """Tile (H, W, 3) uint8 images into a grid (tiles padded to the largest)."""
    h = max(t.shape[0] for t in tiles)
    w = max(t.shape[1] for t in tiles)
    nrows = (len(tiles) + ncols - 1) // ncols
    out = np.zeros((nrows * (h + gap) - gap, ncols * (w + gap) - gap, 3), dtype=np.uint8)
    for k, t in enumerate(tiles):
        r, c = divmod(k, ncols)
        out[
            r * (h + gap) : r * (h + gap) + t.shape[0], c * (w + gap) : c * (w + gap) + t.shape[1]
        ] = t
    return out
