"""Installer: bundle manifest and spec, entry script, icons, .desktop file, Linux install script,
resource/model lookup in a bundle-like layout, and the bundle itself: built with PyInstaller
(about 30 s, 370 MB) and smoke-tested (about 40 s) in the default run, as CI does; skip it
locally with ``QPERF_SKIP_BUNDLE=1`` (``QPERF_TEST_BUNDLE_REUSE=1`` tests an existing ``dist/``):

    python -m pytest tests/test_installer.py -q -k bundle
"""

from __future__ import annotations

import ast
import configparser
import importlib.util
import os
import shutil
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from qperf_viewer import __version__, config
from qperf_viewer.seg import infer

REPO = Path(__file__).resolve().parents[1]
INSTALLER = REPO / "installer"
ICONS = REPO / "resources" / "icons"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, INSTALLER / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


bm = _load("bundle_manifest")


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


# ---------------------------------------------------------------- manifest and spec


def test_manifest_names_the_model_files_the_app_loads():
    assert bm.REQUIRED_MODEL_FILES == (infer.MODEL_FILE, infer.METADATA_FILE)
    assert bm.MODEL_CARD == "README.md"


def test_manifest_lists_qt_plugins():
    plugins = bm.QT_PLUGINS
    assert {"qoffscreen", "qxcb"} <= set(plugins["platforms"])
    assert {"qsvg", "qjpeg"} <= set(plugins["imageformats"])
    assert plugins["printsupport"]
    assert "PySide6.QtPrintSupport" in bm.HIDDEN_IMPORTS


def test_excludes_training_and_test_tools_but_no_runtime_dependency():
    for name in ("torch", "onnx", "onnxscript", "pytest", "hypothesis", "pypdfium2", "ruff",
                 "IPython", "matplotlib", "tkinter", "qperf_viewer.seg.train"):  # fmt: skip
        assert name in bm.EXCLUDES, name
    runtime = ("PySide6", "PySide6.QtPrintSupport", "PySide6.QtOpenGL", "pyqtgraph",
               "onnxruntime", "scipy", "scipy.ndimage", "pydicom", "numpy", "qperf_viewer",
               "qperf_viewer.gui", "qperf_viewer.seg.infer")  # fmt: skip
    for dep in runtime:
        hit = [e for e in bm.EXCLUDES if dep == e or dep.startswith(e + ".")]
        assert not hit, f"{dep} excluded by {hit}"


def _analysis_call() -> ast.Call:
    tree = ast.parse((INSTALLER / "qperf-viewer.spec").read_text())
    calls = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "Analysis"
    ]
    assert len(calls) == 1
    return calls[0]


def test_spec_uses_manifest_entry_and_collects_all_subcommands():
    call = _analysis_call()
    kw = {k.arg: ast.unparse(k.value) for k in call.keywords}
    assert kw["excludes"] == "list(bm.EXCLUDES)"
    assert kw["datas"] == "datas"
    assert kw["binaries"] == "plugin_binaries"
    assert kw["hiddenimports"] == "hiddenimports"
    assert "entry.py" in ast.unparse(call.args[0])
    text = (INSTALLER / "qperf-viewer.spec").read_text()
    assert "bm.data_files(" in text and "bm.qt_plugin_files(" in text
    # the CLI imports its subcommand modules by name: the spec must list them all
    assert (
        'collect_submodules(\n    "qperf_viewer"' in text
        or 'collect_submodules("qperf_viewer"' in text
    )
    assert "COLLECT(" in text and "BUNDLE(" in text  # one-folder; .app on macOS


def test_data_files_take_resources_and_model(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    for n in ("qperf_seg.onnx", "metadata.json", "README.md", ".gitkeep", "qperf_seg.onnx.tmp"):
        (models / n).write_bytes(b"x")
    pairs, warnings = bm.data_files(models=models)
    dest = {Path(s).name: d for s, d in pairs}
    assert dest["qperf_seg.onnx"] == "models"
    assert dest["metadata.json"] == "models"
    assert dest["README.md"] == "models"
    assert dest["DejaVuSans.ttf"] == "resources/fonts"
    assert dest["qperf-viewer.png"] == "resources/icons"
    assert dest["qperf-viewer.svg"] == "resources/icons"
    assert ".gitkeep" not in dest and "qperf_seg.onnx.tmp" not in dest
    assert warnings == []


def test_data_files_refuse_a_missing_model_with_a_clear_message(tmp_path):
    with pytest.raises(bm.BundleInputError, match="qperf_seg.onnx, metadata.json"):
        bm.data_files(models=tmp_path)
    pairs, warnings = bm.data_files(models=tmp_path, allow_no_model=True)
    assert not any(d == "models" for _, d in pairs)
    assert any("WITHOUT the model" in w for w in warnings)


def test_models_source_follows_env(monkeypatch, tmp_path):
    monkeypatch.delenv("QPERF_BUNDLE_MODELS", raising=False)
    assert bm.models_source() == REPO / "models"
    monkeypatch.setenv("QPERF_BUNDLE_MODELS", str(tmp_path))
    assert bm.models_source() == tmp_path.resolve()


def test_qt_plugin_files_in_installed_pyside6():
    import PySide6

    pairs, absent = bm.qt_plugin_files(Path(PySide6.__file__).resolve().parent)
    got = {(Path(s).name, d) for s, d in pairs}
    assert ("libqoffscreen.so", "PySide6/Qt/plugins/platforms") in got
    assert ("libqxcb.so", "PySide6/Qt/plugins/platforms") in got
    assert ("libcupsprintersupport.so", "PySide6/Qt/plugins/printsupport") in got
    assert "platforms/qoffscreen" not in absent


def test_qt_plugin_files_windows_layout(tmp_path):
    plat = tmp_path / "plugins" / "platforms"
    plat.mkdir(parents=True)
    (plat / "qoffscreen.dll").write_bytes(b"")
    (plat / "qoffscreenx.dll").write_bytes(b"")  # a different plugin: not matched
    pairs, absent = bm.qt_plugin_files(tmp_path)
    assert pairs == [(str(plat / "qoffscreen.dll"), "PySide6/plugins/platforms")]
    assert "platforms/qxcb" in absent and "printsupport/cupsprintersupport" in absent


def test_entry_script_runs_the_cli():
    r = subprocess.run(
        [sys.executable, str(INSTALLER / "entry.py"), "--version"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"qperf-viewer {__version__}"


def test_shell_scripts_parse():
    for name in ("build.sh", "smoke_test.sh", "install-linux.sh"):
        r = subprocess.run(["bash", "-n", str(INSTALLER / name)], capture_output=True, text=True)
        assert r.returncode == 0, f"{name}: {r.stderr}"


# ---------------------------------------------------------------- resources / models lookup


def test_config_finds_copies_through_env(monkeypatch, tmp_path):
    res = tmp_path / "bundle" / "resources"
    shutil.copytree(REPO / "resources", res)
    models = tmp_path / "bundle" / "models"
    models.mkdir()
    monkeypatch.setenv("QPERF_RESOURCES", str(res))
    monkeypatch.setenv("QPERF_MODELS", str(models))
    assert config.resources_dir() == res
    assert config.models_dir() == models
    assert (config.resources_dir() / "fonts" / "DejaVuSans.ttf").is_file()
    assert (config.resources_dir() / "icons" / "qperf-viewer.png").is_file()


def test_config_finds_frozen_layout_and_env_still_wins(monkeypatch, tmp_path):
    meipass = tmp_path / "_internal"
    (meipass / "resources").mkdir(parents=True)
    (meipass / "models").mkdir()
    monkeypatch.delenv("QPERF_RESOURCES", raising=False)
    monkeypatch.delenv("QPERF_MODELS", raising=False)
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(meipass), raising=False)
    assert config.resources_dir() == meipass / "resources"
    assert config.models_dir() == meipass / "models"
    other = tmp_path / "site_models"  # IT swaps in another model without rebuilding
    other.mkdir()
    monkeypatch.setenv("QPERF_MODELS", str(other))
    assert config.models_dir() == other


# ---------------------------------------------------------------- icons and desktop entry


def test_icon_svg_is_current_and_pngs_have_their_sizes():
    icons = _load("make_icons")
    svg = (ICONS / "qperf-viewer.svg").read_text()
    assert svg == icons.svg_text(), "run installer/make_icons.py after changing the drawing"
    root = ET.fromstring(svg)
    assert root.get("viewBox") == "0 0 256 256"
    assert len(root.findall(".//{http://www.w3.org/2000/svg}path")) == 16  # AHA segments
    for s in icons.PNG_SIZES:
        assert _png_size((ICONS / f"qperf-viewer-{s}.png").read_bytes()) == (s, s)
    assert _png_size((ICONS / "qperf-viewer.png").read_bytes()) == (256, 256)


def test_ico_and_icns_containers():
    icons = _load("make_icons")
    ico = (ICONS / "qperf-viewer.ico").read_bytes()
    reserved, kind, count = struct.unpack("<HHH", ico[:6])
    assert (reserved, kind, count) == (0, 1, len(icons.ICO_SIZES))
    for i, s in enumerate(icons.ICO_SIZES):
        w, h, _, _, _, _, size, off = struct.unpack("<BBBBHHII", ico[6 + 16 * i : 22 + 16 * i])
        assert (w or 256, h or 256) == (s, s)
        assert _png_size(ico[off : off + size]) == (s, s)
    icns = (ICONS / "qperf-viewer.icns").read_bytes()
    assert icns[:4] == b"icns" and struct.unpack(">I", icns[4:8])[0] == len(icns)
    pos, seen = 8, {}
    while pos < len(icns):
        t, n = icns[pos : pos + 4].decode(), struct.unpack(">I", icns[pos + 4 : pos + 8])[0]
        seen[t] = _png_size(icns[pos + 8 : pos + n])[0]
        pos += n
    assert seen == icons.ICNS_TYPES


def test_desktop_entry_template():
    cp = configparser.ConfigParser(interpolation=None)
    cp.optionxform = str
    cp.read(INSTALLER / "qperf-viewer.desktop")
    e = cp["Desktop Entry"]
    assert e["Type"] == "Application"
    assert e["Name"] == "qperf-viewer"
    assert e["Exec"] == "@LAUNCHER@ gui"
    assert e["Icon"] == "qperf-viewer"
    assert e["Terminal"] == "false"
    assert e["Categories"].endswith(";") and "Science" in e["Categories"].split(";")


def test_install_linux_installs_and_removes(tmp_path):
    bundle = tmp_path / "bundle"
    (bundle / "_internal" / "resources").mkdir(parents=True)
    shutil.copytree(ICONS, bundle / "_internal" / "resources" / "icons")
    exe = bundle / "qperf-viewer"
    exe.write_text('#!/bin/sh\necho "fake qperf-viewer $*"\n')
    exe.chmod(0o755)
    prefix = tmp_path / "prefix with space"
    env = {**os.environ, "HOME": str(tmp_path / "home")}
    script = str(INSTALLER / "install-linux.sh")
    r = subprocess.run(
        ["bash", script, "--prefix", str(prefix), "--bundle", str(bundle)],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    launcher = prefix / "bin" / "qperf-viewer"
    out = subprocess.run([str(launcher), "--version"], capture_output=True, text=True).stdout
    assert out.strip() == "fake qperf-viewer --version"
    assert (prefix / "lib" / "qperf-viewer" / "qperf-viewer").is_file()
    desktop = (prefix / "share" / "applications" / "qperf-viewer.desktop").read_text()
    assert f'Exec="{launcher}" gui' in desktop
    assert f"TryExec={launcher}\n" in desktop
    hicolor = prefix / "share" / "icons" / "hicolor"
    assert _png_size((hicolor / "256x256" / "apps" / "qperf-viewer.png").read_bytes()) == (256, 256)
    assert (hicolor / "scalable" / "apps" / "qperf-viewer.svg").is_file()
    r = subprocess.run(
        ["bash", script, "--prefix", str(prefix), "--uninstall"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert [p for p in prefix.rglob("*") if p.is_file()] == []


def test_install_linux_without_bundle_says_how_to_build(tmp_path):
    r = subprocess.run(
        ["bash", str(INSTALLER / "install-linux.sh"), "--prefix", str(tmp_path),
         "--bundle", str(tmp_path / "nothing")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 2
    assert "installer/build.sh" in r.stderr


# ---------------------------------------------------------------- the real bundle (slow)


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("QPERF_SKIP_BUNDLE") == "1",
    reason="QPERF_SKIP_BUNDLE=1: the standalone bundle is not built (about 70 s)",
)
@pytest.mark.skipif(
    importlib.util.find_spec("PyInstaller") is None,
    reason="PyInstaller is not installed (pip install -e '.[test]' brings it)",
)
def test_bundle_builds_and_passes_smoke_test():
    env = {k: v for k, v in os.environ.items() if k not in ("QPERF_HOME", "QT_QPA_PLATFORM")}
    env["PYTHON"] = sys.executable
    reuse = os.environ.get("QPERF_TEST_BUNDLE_REUSE") == "1"
    if not (reuse and (REPO / "dist" / "qperf-viewer" / "qperf-viewer").is_file()):
        b = subprocess.run(
            ["bash", str(INSTALLER / "build.sh"), "--python", sys.executable],
            capture_output=True, text=True, env=env, timeout=1800,
        )  # fmt: skip
        print(b.stdout)
        assert b.returncode == 0, b.stderr[-3000:]
    s = subprocess.run(
        ["bash", str(INSTALLER / "smoke_test.sh")],
        capture_output=True, text=True, env=env, timeout=1800,
    )  # fmt: skip
    print(s.stdout)
    assert s.returncode == 0, s.stdout[-3000:] + s.stderr[-2000:]
    assert "smoke_test.sh: all checks passed" in s.stdout
