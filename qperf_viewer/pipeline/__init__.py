"""The one analysis pipeline (Qt-free), used by the CLI, the GUI, batch runs and the tests.

::

    folder ──scan/load──▶ PerfusionExam ──per slice: moco ▸ segmentation ▸ Gd ▸ AHA sectors──▶
      ──per condition: AIF──▶ ──per slice: pixelwise MBF (myocardium dilated by 5 mm)──▶
      ──per condition: segment values, global, semi-quantitative, HR──▶ MPR ──▶ AnalysisResult

Public API

- :func:`analyze_exam` (exam -> :class:`~qperf_viewer.results.AnalysisResult`);
- :func:`apply_edit` (a new segmentation of one slice -> a new result, segment values and
  sectors re-aggregated from the unchanged pixel maps, no re-fit);
- :func:`apply_manual_aif` (re-fit one condition with the AIF from a hand-drawn region);
- :func:`analyze_folder` / :func:`segment_folder` (index a folder, pick the study, run, write
  every output atomically, :func:`write_outputs`);
- :func:`default_output_dir`, :func:`load_edits`, :func:`partial_notes`, :func:`exit_status`.

Conventions (docs/CONVENTIONS.md, issue 5): images ``(T, Y, X)``; maps ``(Y, X)`` in the slice's
DICOM pixel grid at the motion-correction reference frame; points ``(row, col)``; times in s
since the condition's first acquired frame; Gd in mmol/L; MBF in mL/min/g (BTEX by default,
Fermi on request); segment MBF = median of the reliable pixels of the segment; global = mean of
the segments with a value; global MPR = global stress / global rest; segment MPR only where
both are reliable and rest >= 0.3 mL/min/g.

Failures: one bad slice never sinks the rest (it keeps its entry, flagged, and its segments are
'not covered'); a missing model (:class:`~qperf_viewer.errors.ModelError`) and a cancel
(:class:`~qperf_viewer.errors.CancelledError`) stop the run. ``progress(fraction, message)``
is called between steps; ``cancel`` is a callable (or ``threading.Event``) returning True to
stop.

Modules: ``common`` (constants, helpers), ``segmenter`` (ONNX model adapter), ``slices``
(per-slice stages), ``aif``, ``aggregate`` (segment/global values, semi-quantitative, MPR),
``edits``, ``analyze`` (:func:`analyze_exam`), ``outputs`` (writers), ``folder``
(:func:`analyze_folder`). Everything is Qt-free; the PDF writer imports Qt only when called.
"""

from __future__ import annotations

from qperf_viewer.pipeline.aggregate import mpr_of, segment_values_of, semiquant_of
from qperf_viewer.pipeline.analyze import (
    analyze_exam,
    apply_manual_aif,
    exit_status,
    partial_notes,
)
from qperf_viewer.pipeline.common import (
    MAP_MARGIN_MM,
    MIN_STRESS_HR_INCREASE_BPM,
    MODELS,
    MPR_MIN_REST_ML_MIN_G,
    Progress,
    Segmenter,
    default_output_dir,
)
from qperf_viewer.pipeline.edits import apply_edit, apply_saved_edits, load_edits
from qperf_viewer.pipeline.folder import FolderRun, analyze_folder, segment_folder, select_study
from qperf_viewer.pipeline.outputs import (
    SEGMENTATION_SCHEMA,
    report_data,
    segmentation_document,
    write_outputs,
)
from qperf_viewer.pipeline.segmenter import OnnxSegmenter

__all__ = [
    "MAP_MARGIN_MM",
    "MIN_STRESS_HR_INCREASE_BPM",
    "MODELS",
    "MPR_MIN_REST_ML_MIN_G",
    "SEGMENTATION_SCHEMA",
    "FolderRun",
    "OnnxSegmenter",
    "Progress",
    "Segmenter",
    "analyze_exam",
    "analyze_folder",
    "apply_edit",
    "apply_manual_aif",
    "apply_saved_edits",
    "default_output_dir",
    "exit_status",
    "load_edits",
    "mpr_of",
    "partial_notes",
    "report_data",
    "segment_folder",
    "segment_values_of",
    "segmentation_document",
    "select_study",
    "semiquant_of",
    "write_outputs",
]
