"""Persistent settings (QSettings in an INI file under ``config.user_config_dir()``).

Window layout, last and recent folders, thresholds, colour maps, playback. An INI file in the
project's own config folder keeps tests (``QPERF_HOME``) and portable installs self-contained.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QSettings

from qperf_viewer import config

MAX_RECENT = 8

#: Defaults: stress MBF and MPR cut-offs of the published inline (Gadgetron) BTEX method at
#: 1.5 T (Kotecha et al., JACC Cardiovasc Imaging 2019;12:1958-69).
DEFAULTS: dict[str, Any] = {
    "thresholds/stress_mbf": 1.94,
    "thresholds/mpr": 1.49,
    "view/mbf_colormap": "inferno",
    "view/mbf_max": 4.0,
    "view/fps": 10.0,
    "view/loop": True,
    "view/sync_bolus": True,
    "analysis/model": "btex",
}


def settings() -> QSettings:
    path = config.user_config_dir() / "qperf-viewer.ini"
    path.parent.mkdir(parents=True, exist_ok=True)
    return QSettings(str(path), QSettings.Format.IniFormat)


def get(key: str, default: Any = None) -> Any:
    """Typed read: the default's type (or DEFAULTS') decides the conversion."""
    d = DEFAULTS.get(key, default) if default is None else default
    v = settings().value(key, d)
    if isinstance(d, bool):
        return v if isinstance(v, bool) else str(v).lower() in ("1", "true", "yes")
    if isinstance(d, float):
        try:
            return float(v)
        except (TypeError, ValueError):
            return d
    if isinstance(d, int):
        try:
            return int(v)
        except (TypeError, ValueError):
            return d
    return v


def put(key: str, value: Any) -> None:
    s = settings()
    s.setValue(key, value)
    s.sync()


def recent_folders() -> list[str]:
    v = settings().value("files/recent", [])
    if isinstance(v, str):
        v = [v]
    return [str(p) for p in (v or [])]


def add_recent_folder(path: str) -> list[str]:
    items = [path] + [p for p in recent_folders() if p != path]
    items = items[:MAX_RECENT]
    put("files/recent", items)
    put("files/last_folder", path)
    return items
