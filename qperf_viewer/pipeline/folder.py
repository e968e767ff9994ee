"""Folder-level runs: index a DICOM folder, pick the study, analyse, write the outputs."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

from qperf_viewer.errors import InputError
from qperf_viewer.exam import (
    CONDITIONS,
)
from qperf_viewer.numpy_pages import numpy_page_policy
from qperf_viewer.pipeline.analyze import analyze_exam, exit_status, partial_notes
from qperf_viewer.pipeline.common import (
    Progress,
    Segmenter,
    StageClock,
    background_import,
    check_cancel,
    default_output_dir,
    monotonic_progress,
    report_progress,
)
from qperf_viewer.pipeline.outputs import write_outputs
from qperf_viewer.results import (
    AnalysisResult,
)


# ---------------------------------------------------------------------------- folders
@dataclasses.dataclass
class FolderRun:
    """Outcome of :func:`analyze_folder` / :func:`segment_folder`.

    status: 0 complete, 1 finished with problems (see ``notes``). files: output name -> path.
    problems: what the folder scan found wrong with files or series (errors and warnings).
    """

    result: AnalysisResult
    out_dir: Path
    files: dict[str, Path]
    status: int
    notes: list[str]
    problems: list[str]


def _study_line(st) -> str:
    conds = ", ".join(st.conditions) or "no perfusion"
    date = st.study_date or "no date"
    return f"{st.study_instance_uid}  {date}  {st.study_description or '-'}  ({conds})"


def select_study(index, study_uid: str | None = None):
    """The study to analyse: ``study_uid``'s, else the only perfusion study of the folder.

    Raises NoPerfusionExamError when the folder holds none, and InputError listing the
    studies (pass one with ``--study``) when it holds several."""
    from qperf_viewer.dicom import pick_study
    from qperf_viewer.errors import NoPerfusionExamError

    if study_uid:
        return pick_study(index, study_uid)
    perf = [st for st in index.studies if st.conditions]
    if not perf:
        n_img = getattr(index, "n_instances", 0)
        roles = sorted({se.role for st in index.studies for se in st.series})
        what = (
            f"{len(index.studies)} study(ies), {n_img} image(s), series roles: "
            f"{', '.join(roles) or 'none'}"
            if n_img
            else "no readable DICOM images"
        )
        raise NoPerfusionExamError(
            f"not a perfusion exam: no stress or rest perfusion series found ({what})",
            path=str(index.root),
            hint="Choose the folder of a stress/rest perfusion exam; 'qperf-viewer index DIR' "
            "lists what the folder holds.",
        )
    if len(perf) > 1:
        lines = "; ".join(_study_line(st) for st in perf)
        raise InputError(
            f"the folder holds {len(perf)} perfusion studies: {lines}",
            path=str(index.root),
            hint="Choose one with --study UID.",
        )
    return perf[0]


def _check_out_dir(out: Path, src: Path) -> None:
    o, s = out.expanduser().resolve(), src.expanduser().resolve()
    if s.is_dir() and (o == s or s in o.parents):
        raise InputError(
            f"the output folder {o} is inside the DICOM folder {s}",
            hint="Source folders are never written to; choose another --out.",
        )


def _index_problems(index, study) -> list[str]:
    probs = list(index.problems) + list(getattr(study, "all_problems", []))
    return [f"[{p.severity}] {p}" for p in probs if p.severity in ("error", "warning")]


@numpy_page_policy()
def analyze_folder(
    path: str | Path,
    *,
    out_dir: str | Path | None = None,
    study_uid: str | None = None,
    model: str = "btex",
    segmenter: Segmenter | None = None,
    progress: Progress | None = None,
    cancel: Any = None,
    quantify: bool = True,
    pdf: bool = True,
    dicom: bool = True,
    use_cache: bool = True,
    positions: dict[str, dict[int, str | None]] | None = None,
    thresholds=None,
    options=None,
    workers: int | None = None,
) -> FolderRun:
    """Index ``path``, pick the study (``study_uid`` or the only perfusion study), analyse it
    (saved edits in ``<out>/edits/`` applied: segmentations, slice positions, AIF regions)
    and write the outputs (:func:`write_outputs`)
    into ``out_dir`` (default :func:`default_output_dir`; never inside ``path``).

    quantify: False runs only motion correction, segmentation and sectors and writes only
    ``masks/`` and ``segmentation.json`` (the ``segment`` command). positions: slice-position
    overrides {condition: {slice index: position or None}}, merged into (and saved as)
    ``<out>/edits/positions.json``; saved overrides apply on every later run. thresholds: the
    report's :class:`~qperf_viewer.report.thresholds.ThresholdSet` (default: literature set).
    options: :class:`~qperf_viewer.results.QuantOptions` (r1, default TS, hematocrit,
    already-Gd), recorded in results.json. workers: slices analysed at once (threads; default
    ``$QPERF_WORKERS`` or min(2, CPUs)).
    Raises InputError / NoPerfusionExamError for unusable input, ModelError, CancelledError.
    """
    from qperf_viewer.dicom import load_exam, scan_folder

    t0 = time.perf_counter()
    clock = StageClock()
    progress = monotonic_progress(progress)
    src = Path(path).expanduser()
    if out_dir is not None:
        _check_out_dir(Path(out_dir), src)
    report_progress(progress, 0.0, "reading DICOM headers")
    with clock("index"):
        index = scan_folder(
            src,
            progress=lambda d, n: report_progress(
                progress, 0.08 * d / max(n, 1), "reading DICOM headers"
            ),
            cancel=cancel,
            use_cache=use_cache,
        )
        study = select_study(index, study_uid)
    out = Path(out_dir) if out_dir is not None else default_output_dir(study.study_instance_uid)
    _check_out_dir(out, src)
    check_cancel(cancel)
    with clock("load"):
        exam = load_exam(
            index,
            study.study_instance_uid,
            progress=lambda d, n: report_progress(
                progress, 0.08 + 0.07 * d / max(n, 1), "loading pixels"
            ),
            cancel=cancel,
        )
    edits = out / "edits"
    pos_notes = _slice_positions(exam, edits, positions)

    def sub(lo: float, hi: float) -> Progress | None:
        if progress is None:
            return None
        return lambda f, msg: report_progress(progress, lo + (hi - lo) * f, msg)

    if (pdf or dicom) and quantify:  # the report writers (Qt, pydicom: ~0.4 s of imports)
        background_import(("qperf_viewer.report.dicom_export", "qperf_viewer.report.pdf"))
    result = analyze_exam(
        exam,
        model=model,
        segmenter=segmenter,
        progress=sub(0.15, 0.85),
        cancel=cancel,
        edits=edits if edits.is_dir() else None,
        quantify=quantify,
        options=options,
        workers=workers,
    )
    result.flags += pos_notes
    if quantify and edits.is_dir():
        from qperf_viewer.pipeline.analyze import apply_manual_aif
        from qperf_viewer.pipeline.edits import load_aif_regions

        for cond, (k, mask) in load_aif_regions(edits).items():
            if cond in result.conditions:
                with clock("manual_aif"):
                    result = apply_manual_aif(result, cond, k, mask, cancel=cancel)
    result.timings_s.update({k: round(v, 4) for k, v in clock.t.items()})
    errors = [p for p in list(index.problems) + list(study.all_problems) if p.severity == "error"]
    if errors:
        result.flags.append(
            f"{len(errors)} file(s) or series in the folder could not be used (first: "
            f"{errors[0].reason}); a slice may be missing: see 'qperf-viewer index' for the list"
        )
    check_cancel(cancel)
    files = write_outputs(
        result,
        out,
        quantified=quantify,
        pdf=pdf,
        dicom=dicom,
        progress=sub(0.85, 1.0),
        started=t0,
        thresholds=thresholds,
    )
    result.timings_s["total"] = round(time.perf_counter() - t0, 4)
    notes = partial_notes(result)
    for name in CONDITIONS:
        if name not in result.conditions:
            notes.insert(
                0,
                f"{name.capitalize()} perfusion not available"
                + ("; MPR not computed." if quantify else "."),
            )
    report_progress(progress, 1.0, "done")
    return FolderRun(
        result=result,
        out_dir=out,
        files=files,
        status=exit_status(result),
        notes=notes,
        problems=_index_problems(index, study),
    )


def segment_folder(
    path: str | Path,
    *,
    out_dir: str | Path | None = None,
    study_uid: str | None = None,
    segmenter: Segmenter | None = None,
    progress: Progress | None = None,
    cancel: Any = None,
    positions: dict[str, dict[int, str | None]] | None = None,
) -> FolderRun:
    """Motion correction, segmentation, RV insertion and AHA sectors only: writes
    ``masks/<condition>_slice<k>.npz`` (``labels``, ``aha``) and ``segmentation.json``."""
    return analyze_folder(
        path,
        out_dir=out_dir,
        study_uid=study_uid,
        segmenter=segmenter,
        progress=progress,
        cancel=cancel,
        quantify=False,
        positions=positions,
    )


def _slice_positions(exam, edits: Path, positions) -> list[str]:
    """Apply saved (``edits/positions.json``) and new slice-position overrides to ``exam``;
    new ones are merged into the saved file (atomically). Returns notes for the report."""
    from qperf_viewer.pipeline.edits import (
        POSITIONS_FILE,
        apply_position_overrides,
        load_position_overrides,
    )

    path = edits / POSITIONS_FILE
    saved = load_position_overrides(path) if path.is_file() else {}
    if positions:
        for cond, ov in positions.items():
            saved.setdefault(cond, {}).update(ov)
    if not saved:
        return []
    notes = apply_position_overrides(exam, saved)
    if positions:
        import json
        import os
        import tempfile

        edits.mkdir(parents=True, exist_ok=True)
        doc = {c: {str(k): v for k, v in sorted(m.items())} for c, m in saved.items()}
        fd, tmp = tempfile.mkstemp(dir=edits, prefix=".positions-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent=2)
        os.replace(tmp, path)
    return notes
