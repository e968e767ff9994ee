"""Package-level behaviour: entry point, version, Qt-free core, resource lookup."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from qperf_viewer import __version__, config
from qperf_viewer.cli import main

CORE_MODULES = [
    "qperf_viewer.geometry",
    "qperf_viewer.exam",
    "qperf_viewer.errors",
    "qperf_viewer.config",
    "qperf_viewer.cli",
    "qperf_viewer.phantom",
    "qperf_viewer.dicom",
    "qperf_viewer.quant",
    "qperf_viewer.seg",
    "qperf_viewer.sectors",
    "qperf_viewer.pipeline",
]


def test_version_flag(capsys):
    try:
        main(["--version"])
    except SystemExit as exc:
        assert exc.code == 0
    assert __version__ in capsys.readouterr().out


def test_core_is_qt_free():
    """Importing every core module must not load PySide6 or pyqtgraph."""
    code = (
        "import importlib, sys\n"
        f"mods = {CORE_MODULES!r}\n"
        "for m in mods:\n"
        "    try:\n"
        "        importlib.import_module(m)\n"
        "    except ModuleNotFoundError as e:\n"
        "        if not (e.name and m.startswith(e.name)):\n"
        "            raise\n"
        "qt = ('PySide6', 'pyqtgraph', 'shiboken6')\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in qt]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_user_dirs_follow_qperf_home(tmp_path, monkeypatch):
    monkeypatch.setenv("QPERF_HOME", str(tmp_path))
    assert config.user_cache_dir() == tmp_path / "cache"
    assert config.user_data_dir() == tmp_path / "data"


def test_models_and_resources_dirs_exist():
    assert config.models_dir().is_dir()
    assert config.resources_dir().is_dir()


def test_user_folders_are_the_platforms_standard_locations(monkeypatch, tmp_path, qapp):
    """Settings, caches, results and logs go to Qt's standard user locations (the bundled app
    included), never next to the executable; the Qt-free core computes the same folders."""
    from PySide6.QtCore import QStandardPaths as SP

    from qperf_viewer import config

    monkeypatch.delenv("QPERF_HOME", raising=False)
    for var, sub in (("XDG_CACHE_HOME", "c"), ("XDG_DATA_HOME", "d"), ("XDG_CONFIG_HOME", "e")):
        monkeypatch.setenv(var, str(tmp_path / sub))
    pairs = (
        (config.user_cache_dir(), SP.GenericCacheLocation),
        (config.user_data_dir(), SP.GenericDataLocation),
        (config.user_config_dir(), SP.GenericConfigLocation),
    )
    for ours, loc in pairs:
        assert ours == Path(SP.writableLocation(loc)) / "qperf-viewer"
        assert ours.is_relative_to(tmp_path)


def test_app_icon_has_the_bundled_sizes(qapp):
    from qperf_viewer.gui.app import app_icon

    sizes = {(s.width(), s.height()) for s in app_icon().availableSizes()}
    assert {(16, 16), (48, 48), (256, 256)} <= sizes


BLAS_PROBE = """
import contextlib, os, sys
from qperf_viewer.cli import main
assert 'numpy' not in sys.modules, 'numpy imported with the CLI module'
with contextlib.suppress(SystemExit):  # --help ends with SystemExit(0)
    main(['map', '--help'])
print(os.environ.get('OPENBLAS_NUM_THREADS'))
"""


@pytest.mark.parametrize(("preset", "expected"), [(None, "1"), ("2", "2")])
def test_cli_limits_numpy_blas_threads_before_numpy_loads(preset, expected):
    """The analysis runs slices on worker processes; the CLI asks for one OpenBLAS thread
    before numpy is first imported (OpenBLAS reads it once), unless the environment sets it."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    if preset is not None:
        env["OPENBLAS_NUM_THREADS"] = preset
    out = subprocess.run(
        [sys.executable, "-c", BLAS_PROBE], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == expected


@pytest.mark.parametrize(
    ("args", "status", "stream", "text"),
    [
        (["--version"], 0, "stdout", "qperf-viewer"),
        (["analyze", "/no/such/exam"], 2, "stderr", "no such file or folder. Check the path."),
        (["--no-such-option"], 2, "stderr", "unrecognized arguments"),
    ],
)
def test_console_entry_keeps_exit_status_and_flushes_output(args, status, stream, text, tmp_path):
    """``python -m qperf_viewer`` ends with an immediate exit after main(): the status, the
    (piped, so buffered) output and the log messages must all still come out."""
    out = subprocess.run(
        [sys.executable, "-m", "qperf_viewer", "-v", *args] if args[0] == "analyze"
        else [sys.executable, "-m", "qperf_viewer", *args],
        capture_output=True, text=True, timeout=120,
        env={  # buffered output (as in a pipe to another program), then what is not flushed
            **{k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"},
            "QPERF_HOME": str(tmp_path),
        },
    )  # fmt: skip
    assert out.returncode == status
    assert text in getattr(out, stream)


@pytest.mark.parametrize(
    ("message", "hint", "expected"),
    [
        (
            "no such file or folder",
            "Check the path.",
            "/x: no such file or folder. Check the path.",
        ),
        ("the file is empty.", None, "/x: the file is empty."),
        (
            "the folder holds 2 studies: a; b",
            "Choose one.",
            "/x: the folder holds 2 studies: a; b. Choose one.",
        ),
        ("Is this a DICOM file?", "Check it.", "/x: Is this a DICOM file? Check it."),
    ],
)
def test_error_messages_are_sentences(message, hint, expected):
    """What the user reads ends each part with a full stop, also where the raising code left
    it out before a hint."""
    from qperf_viewer.errors import InputError

    assert str(InputError(message, path="/x", hint=hint)) == expected
