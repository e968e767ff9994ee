"""DICOM study index (Qt-free): scan a folder tree into patients > studies > series, classify
series roles, assemble stress/rest conditions (slices basal to apical, frame times, PD frames)
and load one study's pixels as a :class:`qperf_viewer.exam.PerfusionExam`.

Public API::

    index = scan_folder(path, progress=None, cancel=None)   # -> StudyIndex (headers only)
    exam = load_exam(index, study_uid=None)                  # -> PerfusionExam (pixels)
    data = index_to_json(index)                              # -> dict, schema qperf-viewer/index/1

Roles can be overridden by the user with ``assemble_study(study, {series_uid: role})``
or ``load_exam(index, study_uid, overrides={...})``.

Names are imported lazily so that ``qperf_viewer.dicom.cli`` (and ``qperf-viewer --help``)
stay fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "scan_folder": "qperf_viewer.dicom.scan",
    "load_exam": "qperf_viewer.dicom.assemble",
    "assemble_study": "qperf_viewer.dicom.assemble",
    "pick_study": "qperf_viewer.dicom.assemble",
    "slice_positions": "qperf_viewer.dicom.assemble",
    "index_to_json": "qperf_viewer.dicom.jsonio",
    "SCHEMA": "qperf_viewer.dicom.jsonio",
    "ROLES": "qperf_viewer.dicom.model",
    "ConditionIndex": "qperf_viewer.dicom.model",
    "Frame": "qperf_viewer.dicom.model",
    "Instance": "qperf_viewer.dicom.model",
    "Patient": "qperf_viewer.dicom.model",
    "Problem": "qperf_viewer.dicom.model",
    "Series": "qperf_viewer.dicom.model",
    "SliceIndex": "qperf_viewer.dicom.model",
    "Study": "qperf_viewer.dicom.model",
    "StudyIndex": "qperf_viewer.dicom.model",
}
__all__ = [
    "ROLES",
    "SCHEMA",
    "ConditionIndex",
    "Frame",
    "Instance",
    "Patient",
    "Problem",
    "Series",
    "SliceIndex",
    "Study",
    "StudyIndex",
    "assemble_study",
    "index_to_json",
    "load_exam",
    "pick_study",
    "scan_folder",
    "slice_positions",
]

if TYPE_CHECKING:
    from qperf_viewer.dicom.assemble import (
        assemble_study,
        load_exam,
        pick_study,
        slice_positions,
    )
    from qperf_viewer.dicom.jsonio import SCHEMA, index_to_json
    from qperf_viewer.dicom.model import (
        ROLES,
        ConditionIndex,
        Frame,
        Instance,
        Patient,
        Problem,
        Series,
        SliceIndex,
        Study,
        StudyIndex,
    )
    from qperf_viewer.dicom.scan import scan_folder


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'qperf_viewer.dicom' has no attribute {name!r}")
    value = getattr(importlib.import_module(mod), name)
    globals()[name] = value
    return value
