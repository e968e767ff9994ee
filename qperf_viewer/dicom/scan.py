"""Folder scan: walk any tree, read headers (cached), group, classify and assemble.

:func:`scan_folder` is safe to run in a worker thread: it reports progress through a callback
and stops when a cancel flag is set. Source files are only ever opened for reading.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qperf_viewer.dicom import cache as header_cache
from qperf_viewer.dicom.assemble import assemble_study
from qperf_viewer.dicom.group import build_studies
from qperf_viewer.dicom.headers import read_header
from qperf_viewer.dicom.model import Problem, StudyIndex
from qperf_viewer.errors import CancelledError, InputError

log = logging.getLogger(__name__)

#: progress(done, total): files whose headers are read so far, of all files found.
Progress = Callable[[int, int], Any]
_PROGRESS_EVERY_S = 0.1


def _cancelled(cancel: Any) -> bool:
    if cancel is None:
        return False
    is_set = getattr(cancel, "is_set", None)
    if is_set is not None:
        return bool(is_set())
    return bool(cancel()) if callable(cancel) else bool(cancel)


@contextlib.contextmanager
def _no_gc():
    """Pause the cyclic garbage collector while many small objects are made (the index
    makes no reference cycles worth collecting; this halves the warm scan time)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def check_cancel(cancel: Any, path: str) -> None:
    """Raise :class:`CancelledError` when the cancel flag is set."""
    if _cancelled(cancel):
        raise CancelledError("cancelled", path=path)


def walk(root: str) -> tuple[list[tuple[str, int, int]], list[Problem]]:
    """All regular files under ``root`` as (path, size, mtime_ns), sorted by path, plus
    problems for folders that cannot be read. Symbolic links to folders are followed once."""
    files: list[tuple[str, int, int]] = []
    problems: list[Problem] = []
    seen: set[tuple[int, int]] = set()
    stack = [root]
    while stack:
        d = stack.pop()
        try:
            st = os.stat(d)
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            with os.scandir(d) as it:
                entries = list(it)
        except PermissionError:
            problems.append(
                Problem(
                    d,
                    "folder cannot be read: permission denied",
                    "Check the folder permissions (e.g. chmod -R u+rX) or copy it somewhere "
                    "you can read.",
                )
            )
            continue
        except OSError as exc:
            problems.append(
                Problem(d, f"folder cannot be read ({exc.strerror or exc})", "Check the disk.")
            )
            continue
        for e in entries:
            try:
                if e.is_dir():
                    stack.append(e.path)
                elif e.is_file():
                    s = e.stat()
                    files.append((e.path, s.st_size, s.st_mtime_ns))
            except OSError as exc:
                problems.append(
                    Problem(e.path, f"cannot be read ({exc.strerror or exc})", "Check the disk.")
                )
    files.sort()
    return files, problems


def read_headers(
    root: str,
    files: list[tuple[str, int, int]],
    progress: Progress | None = None,
    cancel: Any = None,
    use_cache: bool = True,
) -> tuple[list[tuple[str, dict[str, Any]]], int]:
    """Header records of ``files`` (from the cache where still valid); returns
    (list of (path, record), number taken from the cache). Raises CancelledError."""
    cached = header_cache.load(root) if use_cache else {}
    fresh: header_cache.Entries = {}
    out: list[tuple[str, dict[str, Any]]] = []
    hits = 0
    total = len(files)
    last = time.monotonic()
    prefix = len(root.rstrip(os.sep)) + 1
    cancelled = False
    for i, (path, size, mtime) in enumerate(files):
        rel = path[prefix:] if path.startswith(root) else path
        ent = cached.get(rel)
        if ent is not None and ent[0] == size and ent[1] == mtime:
            rec = ent[2]
            hits += 1
        else:
            if _cancelled(cancel):
                cancelled = True
                break
            rec = read_header(path, size)
        if rec.get("_transient"):  # permission / I/O errors: try again next time
            if rec.get("_severity") != "warning":
                out.append((path, rec))
            continue
        fresh[rel] = (size, mtime, rec)
        out.append((path, rec))
        if progress is not None and (time.monotonic() - last > _PROGRESS_EVERY_S):
            last = time.monotonic()
            progress(i + 1, total)
    if use_cache and (cancelled or hits != len(cached) or hits != len(fresh)):
        header_cache.save(root, {**(cached if cancelled else {}), **fresh})
    if cancelled:
        raise CancelledError("folder scan cancelled", path=root)
    if progress is not None:
        progress(total, total)
    return out, hits


def scan_folder(
    path: str | os.PathLike,
    progress: Progress | None = None,
    cancel: Any = None,
    use_cache: bool = True,
    read_pixels_for_pd: bool = True,
) -> StudyIndex:
    """Index a folder tree (or one file): patients > studies > series, roles, conditions.

    progress: called as ``progress(done, total)`` while headers are read.
    cancel: a ``threading.Event`` (or a callable returning True) that stops the scan with
        :class:`qperf_viewer.errors.CancelledError`.
    use_cache: read and update the persistent header cache.
    read_pixels_for_pd: look at pixel intensities of a slice's first frames to find PD
        frames when no image comment marks them.
    Bad files never raise: they are listed in ``problems``. A path that does not exist
    raises :class:`qperf_viewer.errors.InputError`.
    """
    with _no_gc():
        return _scan(path, progress, cancel, use_cache, read_pixels_for_pd)


def _scan(
    path: str | os.PathLike,
    progress: Progress | None,
    cancel: Any,
    use_cache: bool,
    read_pixels_for_pd: bool,
) -> StudyIndex:
    t_start = time.perf_counter()
    p = Path(path).expanduser()
    if not p.exists():
        raise InputError("no such file or folder", path=str(p), hint="Check the path.")
    root = str(p.resolve())
    if p.is_file():
        st = p.stat()
        files, problems = [(root, st.st_size, st.st_mtime_ns)], []
        records = [(root, read_header(root, st.st_size))]
        hits = 0
    else:
        files, problems = walk(root)
        records, hits = read_headers(root, files, progress, cancel, use_cache)
    if not files and not problems:
        problems.append(
            Problem(root, "the folder is empty", "Choose the folder that holds the DICOM files.")
        )
    patients, more, n_inst = build_studies(records, root)
    problems.extend(more)
    if files and n_inst == 0:
        problems.append(
            Problem(
                root,
                "no usable DICOM images found",
                "Choose the folder that holds the exam's DICOM files (any depth is fine).",
            )
        )
    means = None
    if read_pixels_for_pd:
        from qperf_viewer.dicom.pixels import frame_means

        means = frame_means
    for pat in patients:
        for st in pat.studies:
            assemble_study(st, means=means)
    index = StudyIndex(
        root=root,
        patients=patients,
        problems=problems,
        n_files=len(files),
        n_instances=n_inst,
        n_from_cache=hits,
        elapsed_s=time.perf_counter() - t_start,
    )
    log.info(
        "indexed %s: %d files, %d images, %d from cache, %.2f s",
        root,
        index.n_files,
        index.n_instances,
        hits,
        index.elapsed_s,
    )
    return index
