"""Persistent header cache: one JSON file per scanned folder in ``config.user_cache_dir()``.

Entries are keyed by the file's path relative to the scanned folder and valid while its size
and ``st_mtime_ns`` are unchanged. The cache is written atomically (temporary file + rename);
a missing, unreadable, corrupt or outdated cache is simply rebuilt. Deleting it is always safe.

To stay small and fast to load, records are stored as a shared template per series (the values
all its files have in common) plus each file's differing values.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from qperf_viewer.config import user_cache_dir
from qperf_viewer.dicom.headers import RECORD_VERSION

log = logging.getLogger(__name__)

FORMAT = "qperf-viewer/header-cache/2"

#: relative path -> (size in bytes, st_mtime_ns, header record)
Entries = dict[str, tuple[int, int, dict[str, Any]]]


def cache_file(root: str | os.PathLike) -> Path:
    """Cache file of a scanned folder (by its absolute, resolved path)."""
    key = hashlib.sha1(str(Path(root).resolve()).encode("utf-8", "surrogateescape")).hexdigest()
    return user_cache_dir() / "index" / f"{key[:24]}.json"


def _compact(entries: Entries) -> tuple[list[dict[str, Any]], dict[str, list]]:
    """(templates, rel -> [size, mtime_ns, template index or -1, differing values])."""
    groups: dict[str, list[str]] = {}
    for rel, (_s, _m, rec) in entries.items():
        key = rec.get("SeriesInstanceUID")
        if key is not None:
            groups.setdefault(key, []).append(rel)
    templates: list[dict[str, Any]] = []
    tid_of: dict[str, int] = {}
    for rels in groups.values():
        if len(rels) < 2:
            continue
        common = dict(entries[rels[0]][2])
        for rel in rels[1:]:
            rec = entries[rel][2]
            for k in [k for k, v in common.items() if k not in rec or rec[k] != v]:
                del common[k]
        for rel in rels:
            tid_of[rel] = len(templates)
        templates.append(common)
    files: dict[str, list] = {}
    for rel, (size, mtime, rec) in entries.items():
        tid = tid_of.get(rel, -1)
        if tid < 0:
            files[rel] = [size, mtime, -1, rec]
            continue
        tmpl = templates[tid]
        delta = {k: v for k, v in rec.items() if k not in tmpl}
        missing = [k for k in tmpl if k not in rec]
        if missing:  # cannot happen (template = intersection), kept for safety
            files[rel] = [size, mtime, -1, rec]
        else:
            files[rel] = [size, mtime, tid, delta]
    return templates, files


def load(root: str | os.PathLike) -> Entries:
    """Cached entries of ``root``; empty when there is no valid cache."""
    path = cache_file(root)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        if (
            data.get("format") != FORMAT
            or data.get("version") != RECORD_VERSION
            or data.get("root") != str(Path(root).resolve())
        ):
            return {}
        templates = data["templates"]
        out: Entries = {}
        for k, (size, mtime, tid, rec) in data["files"].items():
            out[k] = (size, mtime, {**templates[tid], **rec} if tid >= 0 else rec)
        return out
    except FileNotFoundError:
        return {}
    except Exception as exc:  # noqa: BLE001 - a corrupt cache is rebuilt, never fatal
        log.info("header cache %s unusable (%s); rebuilding", path, exc)
        return {}


def save(root: str | os.PathLike, entries: Entries) -> None:
    """Write the cache atomically; failures (read-only disk, ...) are logged and ignored."""
    path = cache_file(root)
    templates, files = _compact(entries)
    data = {
        "format": FORMAT,
        "version": RECORD_VERSION,
        "root": str(Path(root).resolve()),
        "templates": templates,
        "files": files,
    }
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.stem, suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, separators=(",", ":"))
        os.replace(tmp, path)
        tmp = None
    except Exception as exc:  # noqa: BLE001 - the cache is an optimisation only
        log.warning("could not write the header cache %s: %s", path, exc)
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
