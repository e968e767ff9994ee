"""qperf-viewer: quantitative myocardial perfusion MRI review and reporting.

The package is split into a Qt-free core (``dicom``, ``phantom``, ``quant``, ``seg``,
``sectors``, ``report`` data, ``pipeline``) and a thin PySide6 GUI (``gui``).
"""

import os as _os

# onnxruntime queues telemetry unless this is set before it is imported (see PLATFORM.md).
_os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

__version__ = "0.1.0"
