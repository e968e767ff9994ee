"""What goes into the standalone bundle: data files, Qt plugins, hidden imports, exclusions.

Imported by ``installer/qperf-viewer.spec`` (PyInstaller) and by ``tests/test_installer.py``;
plain Python, no PyInstaller import. Paths in the bundle are relative to ``sys._MEIPASS``
(the ``_internal/`` folder of the one-folder bundle), where ``qperf_viewer.config`` looks for
``resources/`` and ``models/`` when frozen.
"""

from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "qperf-viewer"
REPO_ROOT = Path(__file__).resolve().parent.parent

#: Model files the app cannot run without (names as in ``qperf_viewer.seg.infer``).
REQUIRED_MODEL_FILES = ("qperf_seg.onnx", "metadata.json")
#: The model card (``models/README.md``); bundled when present, a warning when absent.
MODEL_CARD = "README.md"
#: Files in resources/ or models/ never bundled (placeholders, partial writes).
SKIP_NAMES = (".gitkeep", ".DS_Store")
SKIP_SUFFIXES = (".tmp", ".partial", ".pt", ".ckpt")

#: Qt plugins bundled explicitly (folder -> plugin base names without ``lib``/suffix), on top
#: of what PyInstaller's PySide6 hooks collect. ``offscreen`` runs headless (smoke tests,
#: servers), ``xcb`` is the X11 desktop, ``wayland`` the Wayland desktop; image formats for
#: icons, screenshots and export; ``cups`` printer support for the report's print dialog.
QT_PLUGINS: dict[str, tuple[str, ...]] = {
    "platforms": ("qoffscreen", "qxcb", "qminimal", "qwayland"),
    "imageformats": ("qsvg", "qjpeg", "qgif", "qico", "qtiff", "qwebp"),
    "iconengines": ("qsvgicon",),
    "printsupport": ("cupsprintersupport",),
}

#: Modules the frozen app must contain although nothing imports them statically.
HIDDEN_IMPORTS = (
    "PySide6.QtPrintSupport",
    "PySide6.QtSvg",
    "pyqtgraph",
    "onnxruntime",
    "scipy.ndimage",
    "scipy.optimize",
    "scipy.signal",
    "scipy.interpolate",
    "pydicom",
    "numpy",
)

#: Debian/Ubuntu packages holding system libraries that the xcb (X11) and wayland platform
#: plugins need and PySide6 does not ship; build.sh installs them (as root) so that
#: PyInstaller bundles them and the app does not depend on them on the desktop.
DESKTOP_SYSTEM_PACKAGES = {
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libwayland-cursor.so.0": "libwayland-cursor0",
}

#: Subpackages of qperf_viewer left out (training needs torch; the app runs on onnxruntime).
PACKAGE_EXCLUDES = ("qperf_viewer.seg.train",)

#: Test, training and notebook tools, and Qt bindings other than PySide6: never bundled.
EXCLUDES = (
    # training
    "torch",
    "torchvision",
    "torchaudio",
    "onnx",
    "onnxscript",
    "onnx_ir",
    "sympy",
    "mpmath",
    "networkx",
    # onnxruntime's optional converters/optimisers (they import torch/onnx/sympy)
    "onnxruntime.transformers",
    "onnxruntime.quantization",
    "onnxruntime.tools",
    # tests and development
    "pytest",
    "_pytest",
    "pytestqt",
    "hypothesis",
    "pypdfium2",
    "pypdfium2_raw",
    "ruff",
    # notebooks and plotting
    "IPython",
    "ipykernel",
    "jupyter_client",
    "matplotlib",
    "pandas",
    "tkinter",
    "_tkinter",
    # other Qt bindings pyqtgraph would accept (PySide6.QtOpenGL stays: pyqtgraph imports it)
    "PyQt5",
    "PyQt6",
    "PySide2",
    # optional imports of pydicom (test-data download), numpy/scipy (config dump as YAML)
    "requests",
    "urllib3",
    "cryptography",
    "OpenSSL",
    "charset_normalizer",
    "certifi",
    "idna",
    "yaml",
    *PACKAGE_EXCLUDES,
)


def models_source() -> Path:
    """Folder whose model files are bundled: ``QPERF_BUNDLE_MODELS`` or ``<repo>/models``."""
    env = os.environ.get("QPERF_BUNDLE_MODELS")
    return Path(env).resolve() if env else REPO_ROOT / "models"


def _wanted(p: Path) -> bool:
    return p.is_file() and p.name not in SKIP_NAMES and not p.name.endswith(SKIP_SUFFIXES)


class BundleInputError(RuntimeError):
    """A file the bundle needs is missing (message says which and how to fix it)."""


def data_files(
    resources: Path | None = None, models: Path | None = None, allow_no_model: bool = False
) -> tuple[list[tuple[str, str]], list[str]]:
    """(source file, destination folder in the bundle) pairs for resources/ and models/.

    Returns the pairs and a list of warnings. Raises :class:`BundleInputError` when a
    required model file is missing (unless ``allow_no_model``) or resources/ is empty.
    """
    resources = resources or REPO_ROOT / "resources"
    models = models or models_source()
    pairs: list[tuple[str, str]] = []
    warnings: list[str] = []
    res_files = sorted(p for p in resources.rglob("*") if _wanted(p)) if resources.is_dir() else []
    if not res_files:
        raise BundleInputError(f"no resource files in {resources} (fonts, icons).")
    for p in res_files:
        dest = Path("resources") / p.parent.relative_to(resources)
        pairs.append((str(p), dest.as_posix()))
    missing = [n for n in REQUIRED_MODEL_FILES if not (models / n).is_file()]
    if missing and not allow_no_model:
        raise BundleInputError(
            f"the segmentation model is missing from {models}: {', '.join(missing)}. Train or "
            "copy it there, or point QPERF_BUNDLE_MODELS at a folder holding it "
            "(build.sh --models DIR); --allow-no-model builds without it."
        )
    if missing:
        warnings.append(f"bundle built WITHOUT the model ({', '.join(missing)} missing)")
    if not (models / MODEL_CARD).is_file():
        warnings.append(f"no model card {models / MODEL_CARD}")
    if models.is_dir():
        for p in sorted(models.iterdir()):
            if _wanted(p):
                pairs.append((str(p), "models"))
    return pairs, warnings


def qt_plugin_files(pyside_dir: Path) -> tuple[list[tuple[str, str]], list[str]]:
    """(plugin .so/.dll/.dylib, bundle folder) pairs of :data:`QT_PLUGINS` found in PySide6.

    ``pyside_dir``: the installed PySide6 package folder. Returns pairs and the names of
    plugins not found (reported by the spec; an optional one such as wayland may be absent).
    """
    candidates = [pyside_dir / "Qt" / "plugins", pyside_dir / "plugins"]
    root = next((c for c in candidates if c.is_dir()), candidates[0])
    pairs: list[tuple[str, str]] = []
    absent: list[str] = []
    for folder, names in QT_PLUGINS.items():
        for name in names:
            hits = [
                p
                for p in sorted((root / folder).glob(f"*{name}*"))
                if p.stem.removeprefix("lib") == name and p.suffix in (".so", ".dll", ".dylib")
            ]
            if not hits:
                absent.append(f"{folder}/{name}")
            dest = (Path("PySide6") / root.relative_to(pyside_dir) / folder).as_posix()
            pairs += [(str(h), dest) for h in hits]
    return pairs, absent
