"""Locations of bundled resources and the user's folders (Qt-free).

Resources and models live outside the package in a source checkout (``resources/``,
``models/`` at the repository root); an installed wheel or a frozen bundle gets them through
``QPERF_RESOURCES`` / ``QPERF_MODELS`` or a copy next to the package (``_bundled/``).
User folders follow the XDG base-directory convention on Linux, the platform's usual
folders elsewhere, and can be redirected with ``QPERF_HOME`` (tests use this).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def _first_existing(candidates: list[Path]) -> Path:
    for c in candidates:
        if c.is_dir():
            return c
    return candidates[0]


def resources_dir() -> Path:
    """Folder of bundled resources (fonts, icons, colour maps)."""
    env = os.environ.get("QPERF_RESOURCES")
    cands = [Path(env)] if env else []
    cands += [PACKAGE_DIR.parent / "resources", PACKAGE_DIR / "_bundled" / "resources"]
    if getattr(sys, "frozen", False):  # after the env override, before the rest
        cands.insert(1 if env else 0, Path(getattr(sys, "_MEIPASS", PACKAGE_DIR)) / "resources")
    return _first_existing(cands)


def models_dir() -> Path:
    """Folder of the shipped ONNX model(s) and their cards."""
    env = os.environ.get("QPERF_MODELS")
    cands = [Path(env)] if env else []
    cands += [PACKAGE_DIR.parent / "models", PACKAGE_DIR / "_bundled" / "models"]
    if getattr(sys, "frozen", False):  # after the env override, before the rest
        cands.insert(1 if env else 0, Path(getattr(sys, "_MEIPASS", PACKAGE_DIR)) / "models")
    return _first_existing(cands)


def _user_base(kind: str) -> Path:
    home = os.environ.get("QPERF_HOME")
    if home:
        return Path(home) / kind
    if sys.platform.startswith("win"):
        root = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
        return root / "qperf-viewer" / kind
    if sys.platform == "darwin":
        lib = Path.home() / "Library"
        sub = {"cache": "Caches", "data": "Application Support", "config": "Preferences"}[kind]
        return lib / sub / "qperf-viewer"
    xdg = {"cache": "XDG_CACHE_HOME", "data": "XDG_DATA_HOME", "config": "XDG_CONFIG_HOME"}[kind]
    default = {"cache": ".cache", "data": ".local/share", "config": ".config"}[kind]
    return Path(os.environ.get(xdg, Path.home() / default)) / "qperf-viewer"


def user_cache_dir() -> Path:
    """Caches (index cache, demo exam); safe to delete."""
    return _user_base("cache")


def user_data_dir() -> Path:
    """Analysis results and manual edits, keyed by StudyInstanceUID."""
    return _user_base("data")


def user_config_dir() -> Path:
    return _user_base("config")
