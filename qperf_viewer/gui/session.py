"""The GUI's one session object: holds the core results and says when they change.

Widgets never call the core; they read what the session holds (or get it passed in) and ask
the session to act. Long calls run as :class:`~qperf_viewer.gui.workers.Task` off the GUI
thread. Segmentation edits are undoable commands; each one makes a new manual
:class:`~qperf_viewer.results.Segmentation` (parent: the automatic one), re-aggregates segment
values through ``apply_edit`` and is autosaved beside the analysis output.

Views refresh through :meth:`Session.update_view`. An exam or a result that arrives from a
background task is delivered in steps: each view's refresh runs in its own turn of the event
loop (repaints and input in between) so that no single step blocks the window for long, and
the work that follows (saving, the next analysis, curve fits: :meth:`Session.after_views`)
starts after them; the session stays :attr:`~Session.busy` until then. Changes made on the
GUI thread (selection, edits, undo) refresh the views at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack

from qperf_viewer.exam import CONDITIONS, PerfusionExam, SliceSeries
from qperf_viewer.gui import backend as be
from qperf_viewer.gui.workers import Task, TaskRunner
from qperf_viewer.results import AnalysisResult, Segmentation, SliceResult

log = logging.getLogger(__name__)

IMAGE_KINDS = {"raw": "Raw", "moco": "Motion-corrected", "gd": "Gd (mmol/L)"}
REVIEW_STATES = ("pending", "accepted", "edited", "rejected")


class EditCommand(QUndoCommand):
    """Replace one slice's segmentation (None rejects the slice)."""

    def __init__(self, session: Session, condition: str, k: int, old, new, text: str):
        super().__init__(text)
        self.session, self.condition, self.k, self.old, self.new = session, condition, k, old, new

    def redo(self) -> None:
        self.session._set_segmentation(self.condition, self.k, self.new)

    def undo(self) -> None:
        self.session._set_segmentation(self.condition, self.k, self.old)


class Session(QObject):
    busy_changed = Signal(bool)
    progress = Signal(float, str)  # fraction (-1 unknown), message
    status = Signal(str)
    folder_changed = Signal(str)
    index_changed = Signal(object)  # index JSON document (dict) or None
    exam_changed = Signal(object)  # PerfusionExam or None
    result_changed = Signal(object)  # AnalysisResult or None
    selection_changed = Signal()  # condition / slice / image kind
    review_changed = Signal()
    failed = Signal(str, object, str)  # title, exception, traceback

    def __init__(self, backend: Any = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.backend = backend or be.CoreBackend()
        self.runner = TaskRunner(self)
        self.runner.busy_changed.connect(self._busy_update)
        self._busy_shown = False
        # view refreshes queued while a background result is delivered (one per loop turn)
        self._staging = 0
        self._pending: dict[Callable[[], Any], None] = {}
        self._step_timer = QTimer(self)
        self._step_timer.setSingleShot(True)
        self._step_timer.setInterval(0)
        self._step_timer.timeout.connect(self._step)
        self.undo_stack = QUndoStack(self)
        self.folder: Path | None = None
        self.index: Any = None
        self.index_json: dict | None = None
        self.study_uid: str | None = None
        self.roles: dict[str, str] = {}
        self.exam: PerfusionExam | None = None
        self.result: AnalysisResult | None = None
        self.model = "btex"
        self.condition = "stress"
        self.slice_index = 0
        self.image_kind = "raw"
        self.review: dict[tuple[str, int], str] = {}
        self.output_dir: Path | None = None
        self.analyze_after_load = False
        self.auto_save_outputs = True
        #: the report thresholds (ThresholdSet) the saved report uses; set by the report pane
        self.thresholds = None
        self._task: Task | None = None
        self.restored_edits: list[tuple[str, int]] = []
        #: conditions whose saved hand-drawn AIF region was re-applied on reopening
        self.restored_aif: list[str] = []

    # --- state queries -------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """A task runs, or the views have not all shown its result yet."""
        return self.runner.busy or bool(self._pending)

    def _busy_update(self, *_: Any) -> None:
        busy = self.busy
        if busy != self._busy_shown:
            self._busy_shown = busy
            self.busy_changed.emit(busy)

    # --- view refreshes ------------------------------------------------------------------------
    def update_view(self, refresh: Callable[[], Any]) -> None:
        """Run a view's ``refresh`` now, or, while a background result is being delivered,
        queue it (once) for its own turn of the event loop."""
        if self._staging:
            self._pending[refresh] = None
            return
        if refresh in self._pending:
            del self._pending[refresh]
            self._busy_update()
        refresh()

    def after_views(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` (start background work, say) once the queued view refreshes have run:
        at once when none are queued."""
        if self._staging or self._pending:
            self._pending[fn] = None
            if not self._staging:
                self._step_timer.start()
            return
        fn()

    @contextlib.contextmanager
    def _staged(self) -> Iterator[None]:
        """Deliver what a background task produced: view refreshes asked for inside are
        queued and run one per event-loop turn."""
        self._staging += 1
        try:
            yield
        finally:
            self._staging -= 1
            if not self._staging and self._pending:
                self._busy_update()
                self._step_timer.start()

    def _step(self) -> None:
        try:
            if self._pending:
                refresh = next(iter(self._pending))
                del self._pending[refresh]
                refresh()
        finally:
            if self._pending:
                self._step_timer.start()
            else:
                self._step_timer.stop()
                self._busy_update()

    def flush_views(self) -> None:
        """Run the queued view refreshes now (before a screenshot, for example)."""
        while self._pending:
            self._step()

    def drop_view_updates(self) -> None:
        """Forget the queued view refreshes (the window is closing)."""
        self._pending.clear()
        self._step_timer.stop()
        self._busy_update()

    def conditions(self) -> list[str]:
        ex = self.exam
        return [c for c in CONDITIONS if ex is not None and c in ex.conditions]

    def n_slices(self, condition: str | None = None) -> int:
        c = condition or self.condition
        if self.exam is None or c not in self.exam.conditions:
            return 0
        return len(self.exam.conditions[c].slices)

    def paired_index(self, condition: str) -> int:
        """The slice of ``condition`` shown beside the current one: the current slice in the
        current condition; in the other, the slice with the same position (basal/mid/apical),
        else the one nearest along the base-to-apex axis, so side-by-side views compare the
        same myocardium even when the two conditions have different slice counts."""
        k = self.slice_index
        if condition == self.condition or self.exam is None:
            return k
        cur = self.series()
        other = self.exam.conditions.get(condition)
        if cur is None or other is None or not other.slices:
            return k
        if cur.position is not None:
            for j, ss in enumerate(other.slices):
                if ss.position == cur.position:
                    return j
        dist = [abs(ss.location_mm - cur.location_mm) for ss in other.slices]
        return int(np.argmin(dist))

    def series(self, condition: str | None = None, k: int | None = None) -> SliceSeries | None:
        c = condition or self.condition
        k = self.slice_index if k is None else k
        if self.exam is None or c not in self.exam.conditions:
            return None
        sl = self.exam.conditions[c].slices
        return sl[min(k, len(sl) - 1)] if sl else None

    def slice_result(
        self, condition: str | None = None, k: int | None = None
    ) -> SliceResult | None:
        c = condition or self.condition
        k = self.slice_index if k is None else k
        if self.result is None or c not in self.result.conditions:
            return None
        sl = self.result.conditions[c].slices
        return sl[min(k, len(sl) - 1)] if sl else None

    def stack(
        self, condition: str | None = None, k: int | None = None, kind: str | None = None
    ) -> tuple[np.ndarray | None, str, str]:
        """(images (T, Y, X), unit, kind actually shown) for a slice and image kind.

        Falls back to raw images when the kind is not available (no analysis, Gd impossible).
        """
        kind = kind or self.image_kind
        sr = self.slice_result(condition, k)
        if kind == "gd" and sr is not None and sr.gd is not None:
            return sr.gd, "mmol/L", "gd"
        if kind in ("moco", "gd") and sr is not None and sr.corrected is not None:
            return sr.corrected, "a.u.", "moco"
        ss = self.series(condition, k)
        if ss is None:
            return None, "", "raw"
        return ss.images, ("mmol/L" if ss.units == "gd" else "a.u."), "raw"

    def review_state(self, condition: str, k: int) -> str:
        return self.review.get((condition, k), "pending")

    # --- selection -----------------------------------------------------------------------------
    def set_selection(
        self, condition: str | None = None, slice_index: int | None = None, kind: str | None = None
    ) -> None:
        changed = False
        if condition is not None and condition != self.condition:
            self.condition, changed = condition, True
        if slice_index is not None:
            n = max(self.n_slices(), 1)
            k = int(np.clip(slice_index, 0, n - 1))
            if k != self.slice_index:
                self.slice_index, changed = k, True
        if kind is not None and kind in IMAGE_KINDS and kind != self.image_kind:
            self.image_kind, changed = kind, True
        if changed:
            self.selection_changed.emit()

    def toggle_condition(self) -> None:
        conds = self.conditions()
        if len(conds) == 2:
            self.set_selection(
                condition=conds[1 - conds.index(self.condition)]
                if self.condition in conds
                else conds[0]
            )

    def step_slice(self, delta: int) -> None:
        self.set_selection(slice_index=self.slice_index + delta)

    # --- opening -------------------------------------------------------------------------------
    def open_folder(self, path: str | Path, analyze: bool = False) -> Task | None:
        """Index a folder in the background, then load its exam (and analyse it)."""
        path = Path(path)
        if not path.is_dir():
            from qperf_viewer.errors import InputError

            self.failed.emit(
                "Could not open folder",
                InputError(
                    "This is not a folder.",
                    path=str(path),
                    hint="Choose or drop the folder that holds the exam's DICOM files.",
                ),
                "",
            )
            return None
        self.cancel()
        self.folder = path
        self.analyze_after_load = analyze
        self.roles = {}
        self.folder_changed.emit(str(path))
        self.status.emit(f"Indexing {path} ...")
        task = Task("Indexing", self.backend.scan_folder, path)
        task.signals.finished.connect(self._indexed)
        return self._start(task, "Could not index the folder")

    def _indexed(self, index: Any) -> None:
        self.index = index
        try:
            self.index_json = self.backend.index_to_json(index)
        except Exception as exc:  # noqa: BLE001 - a browser without a tree is still usable
            log.exception("index_to_json failed")
            self.index_json = None
            self.failed.emit("Could not list the index", exc, "")
        self.index_changed.emit(self.index_json)
        studies = (self.index_json or {}).get("studies", [])
        uid = studies[0]["study_instance_uid"] if len(studies) == 1 else None
        if len(studies) > 1:
            uid = self._best_study(studies)
            self.status.emit(
                f"{len(studies)} studies found; showing {uid}. Pick another in the browser."
            )
        self.load_study(uid)

    @staticmethod
    def _best_study(studies: list[dict]) -> str:
        def score(s):
            roles = [x.get("role", "") for x in s.get("series", [])]
            return (("stress" in roles) + ("rest" in roles), len(roles))

        return max(studies, key=score)["study_instance_uid"]

    def load_study(self, study_uid: str | None = None) -> Task | None:
        self.study_uid = study_uid
        task = Task("Loading exam", self._load_exam, self.index, study_uid, self.roles or None)
        task.signals.finished.connect(self._loaded)
        self.status.emit("Loading images ...")
        return self._start(task, "Could not load the exam")

    def _load_exam(self, index, study_uid, roles, progress=None, cancel=None):  # worker thread
        exam = be.call_with_supported(
            self.backend.load_exam, index, study_uid, roles, progress=progress, cancel=cancel
        )
        from qperf_viewer.gui.display import prepare_stacks

        prepare_stacks(exam)  # what the cine views compute from the images, off the GUI thread
        import qperf_viewer.pipeline  # noqa: F401 - imported here, not by set_exam on the GUI thread

        return exam

    def set_role(self, series_uid: str, role: str) -> Task | None:
        """User override of a series' role; re-assembles the exam."""
        self.roles[series_uid] = role
        self.status.emit(f"Role of {series_uid} set to {role}; reloading.")
        self.analyze_after_load = self.result is not None
        return self.load_study(self.study_uid)

    def _loaded(self, exam: PerfusionExam) -> None:
        with self._staged():
            self._deliver_exam(exam)

    def _deliver_exam(self, exam: PerfusionExam) -> None:
        self.set_exam(exam)
        saved = self.saved_edits()
        if self.analyze_after_load or saved:
            self.analyze_after_load = False
            if saved:
                # reopening an exam brings its corrections back: they need the analysis
                self.status.emit(
                    f"{len(saved)} saved segmentation edit(s) found in {self.output_dir}: "
                    "analysing to restore them."
                )
            self.after_views(self.analyze)

    def saved_edits(self) -> list[Path]:
        """Saved segmentation edits (``edits/*.npz``) of the open exam's output folder."""
        if self.output_dir is None:
            return []
        edits = self.output_dir / "edits"
        return sorted([*edits.glob("*_slice*.npz"), *edits.glob("aif_*.npz")])

    def set_exam(self, exam: PerfusionExam | None) -> None:
        """Show an assembled exam (drops results and the undo history)."""
        self.exam = exam
        self.result = None
        self.undo_stack.clear()
        self.review = {}
        self.restored_edits = []
        self.output_dir = be.default_output_dir(exam.study_instance_uid) if exam else None
        if self.folder is not None and self.output_dir is not None:
            try:
                self.output_dir.resolve().relative_to(self.folder.resolve())
                self.output_dir = be.default_output_dir(exam.study_instance_uid + "_out")
                log.warning("output folder was inside the DICOM folder; moved")
            except ValueError:
                pass
        conds = self.conditions()
        if conds and self.condition not in conds:
            self.condition = conds[0]
        self.slice_index = min(self.slice_index, max(self.n_slices() - 1, 0))
        self.exam_changed.emit(exam)  # views redraw everything (result and selection too)
        if exam is not None:
            n = sum(len(c.slices) for c in exam.conditions.values())
            self.status.emit(f"Loaded {', '.join(conds) or 'no conditions'} ({n} slices).")

    # --- analysis ------------------------------------------------------------------------------
    def analyze(self, quantify: bool = True) -> Task | None:
        """Run the pipeline on the open exam in the background; ``quantify=False`` stops after
        motion correction, segmentation and sectors (for a quick segmentation review)."""
        if self.exam is None:
            return None
        task = Task(
            "Analysis" if quantify else "Segmentation",
            self.backend.analyze_exam,
            self.exam,
            model=self.model,
            quantify=quantify,
        )
        task.signals.finished.connect(self._analyzed)
        self.status.emit(
            "Analysing (motion correction, segmentation, MBF) ..."
            if quantify
            else "Segmenting (motion correction, segmentation, sectors) ..."
        )
        return self._start(task, "The analysis failed")

    def segment_only(self) -> Task | None:
        return self.analyze(quantify=False)

    def _analyzed(self, result: AnalysisResult) -> None:
        with self._staged():
            self.set_result(result)
            self.restore_edits()
            if self.auto_save_outputs:
                self.after_views(self.save_outputs)  # in the background, once shown

    def save_outputs(self) -> Task | None:
        """Write results.json, report.pdf, masks, curves.csv and DICOM exports of the current
        result (edits included) into the output folder, in the background."""
        fn = getattr(self.backend, "write_outputs", None)
        if fn is None or self.result is None or self.output_dir is None:
            return None
        out = self.output_dir
        task = Task("Saving results", fn, self.result, out, thresholds=self.thresholds)
        task.signals.finished.connect(lambda _: self.status.emit(f"Results saved in {out}"))
        return self._start(task, "Could not save the results")

    def set_result(self, result: AnalysisResult | None) -> None:
        self.result = result
        self.undo_stack.clear()
        self.result_changed.emit(result)
        if result is not None:
            self.status.emit(
                "Analysis done." + (f" Flags: {'; '.join(result.flags)}" if result.flags else "")
            )

    # --- manual AIF -----------------------------------------------------------------------------
    def set_manual_aif(
        self, condition: str, k: int, mask: np.ndarray | None, save: bool = True
    ) -> Task | None:
        """Re-fit ``condition`` with the AIF from a region (bool (Y, X) on slice ``k``);
        ``mask=None`` returns to the automatic AIF. Manual segmentation edits are kept. The
        region is saved beside the analysis (``edits/aif_<condition>.npz``, as the command
        line's ``analyze`` applies it) and restored when the exam is reopened."""
        if self.result is None or condition not in self.result.conditions:
            return None
        if save and self.output_dir is not None:
            from qperf_viewer.pipeline.edits import save_aif_region

            try:
                save_aif_region(self.output_dir / "edits", condition, k, mask)
            except OSError as exc:
                self.failed.emit("Could not save the AIF region", exc, "")
        task = Task("AIF re-fit", self.backend.manual_aif, self.result, condition, k, mask)
        task.signals.finished.connect(self._aif_refitted)
        self.status.emit(
            "Re-fitting MBF with the "
            + ("manual" if mask is not None else "automatic")
            + " AIF ..."
        )
        return self._start(task, "Could not re-fit with this AIF")

    def reset_manual_aif(self) -> Task | None:
        return self.set_manual_aif(self.condition, self.slice_index, None)

    def _aif_refitted(self, result: AnalysisResult) -> None:
        old = self.result
        for cond, cr in old.conditions.items() if old is not None else []:
            for k, sr in enumerate(cr.slices):
                seg = sr.segmentation
                if cond in result.conditions and (seg is None or seg.source == "manual"):
                    result = self.backend.apply_edit(result, cond, k, seg)
        self.result = result
        with self._staged():
            self.result_changed.emit(result)
        self.status.emit("MBF re-fitted.")

    def cancel(self) -> None:
        self.runner.cancel_all()

    def wait_idle(self, msecs: int = 60000) -> bool:
        return self.runner.wait(msecs)

    def run_task(self, task: Task, fail_title: str) -> Task:
        """Run ``task`` in the background with the session's progress, status and error
        reporting (a failure becomes an error dialog titled ``fail_title``)."""
        return self._start(task, fail_title)

    def _start(self, task: Task, fail_title: str) -> Task:
        self._task = task
        task.signals.progress.connect(self.progress)
        task.signals.failed.connect(lambda exc, tb: self.failed.emit(fail_title, exc, tb))
        task.signals.failed.connect(lambda exc, tb: self.status.emit(f"{fail_title}: {exc}"))
        task.signals.cancelled.connect(lambda: self.status.emit(f"{task.name} cancelled."))
        return self.runner.start(task)

    # --- segmentation review and edits ------------------------------------------------------------
    def automatic_segmentation(self, condition: str, k: int) -> Segmentation | None:
        sr = self.slice_result(condition, k)
        if sr is None:
            return None
        return sr.automatic or (
            sr.segmentation if sr.segmentation and sr.segmentation.source == "automatic" else None
        )

    def make_manual(self, condition: str, k: int, **changes: Any) -> Segmentation | None:
        """A manual Segmentation derived from the slice's current one with ``changes``."""
        sr = self.slice_result(condition, k)
        base = sr.segmentation if sr is not None else None
        if base is None:
            base = self.automatic_segmentation(condition, k)
        if base is None:
            return None
        auto = self.automatic_segmentation(condition, k)
        parent = auto.content_hash() if auto is not None else base.parent_hash
        return dataclasses.replace(base, source="manual", parent_hash=parent, **changes)

    def edit_segmentation(
        self, condition: str, k: int, seg: Segmentation | None, text: str
    ) -> None:
        """Undoable replacement of a slice's segmentation (None rejects the slice)."""
        sr = self.slice_result(condition, k)
        if sr is None:
            return
        self.undo_stack.push(EditCommand(self, condition, k, sr.segmentation, seg, text))

    def _set_segmentation(self, condition: str, k: int, seg: Segmentation | None) -> None:
        if self.result is None:
            return
        try:
            new = self.backend.apply_edit(self.result, condition, k, seg)
        except Exception as exc:  # noqa: BLE001 - shown, state unchanged
            self.failed.emit("Could not apply the edit", exc, "")
            return
        self.result = new
        key = (condition, k)
        prev = self.review.get(key, "pending")
        if seg is None:
            self.review[key] = "rejected"
        elif prev != "accepted":
            self.review[key] = "edited" if seg.source == "manual" else "pending"
        self._autosave(condition, k, seg)
        self.result_changed.emit(new)
        self.review_changed.emit()

    def set_review(self, condition: str, k: int, state: str) -> None:
        """Accept or reject a slice; rejecting removes it from the segment values (undoable)."""
        sr = self.slice_result(condition, k)
        if sr is None:
            return
        if state == "rejected":
            if sr.segmentation is not None:
                self.edit_segmentation(condition, k, None, f"Reject {condition} slice {k + 1}")
            self.review[(condition, k)] = "rejected"
        else:
            if sr.segmentation is None:
                seg = self._last_segmentation(condition, k)
                self.edit_segmentation(condition, k, seg, f"Restore {condition} slice {k + 1}")
            self.review[(condition, k)] = state
        self._save_review()
        self.review_changed.emit()

    def _last_segmentation(self, condition: str, k: int) -> Segmentation | None:
        path = be.edit_path(self.output_dir, condition, k) if self.output_dir else None
        if path is not None and path.is_file():
            try:
                return be.load_edit(path)
            except Exception:  # noqa: BLE001
                log.exception("could not read %s", path)
        return self.automatic_segmentation(condition, k)

    def revert_to_automatic(self, condition: str, k: int) -> None:
        auto = self.automatic_segmentation(condition, k)
        if auto is not None:
            self.edit_segmentation(condition, k, auto, f"Revert {condition} slice {k + 1}")

    def _autosave(self, condition: str, k: int, seg: Segmentation | None) -> None:
        if self.output_dir is None:
            return
        try:
            path = be.edit_path(self.output_dir, condition, k)
            if seg is not None and seg.source == "manual":
                be.save_edit(self.output_dir, condition, k, seg)
            elif seg is not None and path.is_file():
                path.unlink()  # back to automatic
            self._save_review()
        except Exception as exc:  # noqa: BLE001 - the edit stays applied; the user is told
            self.failed.emit("Could not save the edit", exc, "")

    def _save_review(self) -> None:
        if self.output_dir is not None:
            be.save_review(
                self.output_dir, {k: v for k, v in self.review.items() if v != "pending"}
            )

    def restore_edits(self) -> list[tuple[str, int]]:
        """Re-apply saved manual edits and review states of this exam (after analysis)."""
        self.restored_edits = []
        if self.result is None or self.output_dir is None:
            return []
        review = be.load_review(self.output_dir)
        for (cond, k), path in be.list_edits(self.output_dir).items():
            if self.slice_result(cond, k) is None:
                continue
            try:
                seg = be.load_edit(path, self.series(cond, k).images.shape[1:])
                auto = self.automatic_segmentation(cond, k)
                if auto is not None and seg.parent_hash and seg.parent_hash != auto.content_hash():
                    self.status.emit(
                        f"Edit of {cond} slice {k + 1} was made on another automatic "
                        "result; restored anyway, please review it."
                    )
                if review.get((cond, k)) != "rejected":
                    self.result = self.backend.apply_edit(self.result, cond, k, seg)
                self.restored_edits.append((cond, k))
            except Exception as exc:  # noqa: BLE001
                self.failed.emit(f"Could not restore the edit {path.name}", exc, "")
        for (cond, k), state in review.items():
            if state == "rejected" and self.slice_result(cond, k) is not None:
                self.result = self.backend.apply_edit(self.result, cond, k, None)
        self.review = {**review, **{key: review.get(key, "edited") for key in self.restored_edits}}
        if self.restored_edits or review:
            self.status.emit(f"Restored {len(self.restored_edits)} saved edit(s).")
            self.result_changed.emit(self.result)
            self.review_changed.emit()
        self._restore_aif_regions()
        return self.restored_edits

    def _restore_aif_regions(self) -> None:
        """Re-fit the conditions whose AIF region was drawn by hand in an earlier session."""
        from qperf_viewer.pipeline.edits import load_aif_regions

        self.restored_aif = []
        try:
            regions = load_aif_regions(self.output_dir / "edits")
        except Exception as exc:  # noqa: BLE001 - a bad file must not stop the rest
            self.failed.emit("Could not restore the saved AIF region", exc, "")
            return
        from qperf_viewer.pipeline.aif import AIF_SERIES_INDEX

        for cond, (k, mask) in regions.items():
            if k == AIF_SERIES_INDEX or self.slice_result(cond, k) is not None:
                self.restored_aif.append(cond)
                self.set_manual_aif(cond, k, mask, save=False)
