"""Dataclasses of the study index: patients > studies > series > instances > frames, plus
the assembled conditions (stress / rest > slices basal to apical).

Times here are seconds. ``Frame.time_s`` is an absolute study time (seconds since midnight of
the study's first date, unwrapped across midnight); slice/AIF ``times_s`` are relative to the
condition's first acquired frame, as in :mod:`qperf_viewer.exam`. Frame numbers are 1-based
inside multi-frame files (1 for single-frame files).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from qperf_viewer.geometry import SliceGeometry

#: Series roles, in display order.
ROLES = ("stress", "rest", "aif", "derived", "localizer", "other")
SEVERITIES = ("error", "warning", "info")


@dataclass
class Problem:
    """Something the user should know about a file, folder or series.

    severity: 'error' (not usable), 'warning' (used with a caveat), 'info' (ignored, harmless).
    hint: what the user can do.
    """

    path: str
    reason: str
    hint: str = ""
    severity: str = "error"

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}." + (f" {self.hint}" if self.hint else "")


@dataclass(eq=False)
class Frame:
    """One 2D image: a single-frame file or one frame of a multi-frame file."""

    path: str
    sop_instance_uid: str
    frame_number: int
    record: dict[str, Any]
    attrs: dict[str, Any]
    time_s: float | None = None
    content_time_s: float | None = None
    _vecs: dict[str, Any] = field(default_factory=dict, repr=False)

    def vec(self, key: str, n: int) -> tuple[float, ...] | None:
        """A multi-valued numeric attribute as a tuple of ``n`` floats, else None (memoised)."""
        try:
            return self._vecs[key]
        except KeyError:
            pass
        v = self.get(key)
        out = None
        if isinstance(v, list | tuple) and len(v) == n:
            try:
                out = tuple(map(float, v))
            except (TypeError, ValueError):
                out = None
        self._vecs[key] = out
        return out

    def get(self, key: str, default: Any = None) -> Any:
        """Attribute of this frame: per-frame value, else the file's."""
        if self.attrs:
            v = self.attrs.get(key)
            if v is not None:
                return v
        return self.record.get(key, default)

    @property
    def rows(self) -> int:
        return int(self.get("Rows", 0) or 0)

    @property
    def columns(self) -> int:
        return int(self.get("Columns", 0) or 0)


@dataclass(eq=False)
class Instance:
    """One file (SOP instance) and its frames."""

    path: str
    sop_instance_uid: str
    record: dict[str, Any]
    frames: list[Frame] = field(default_factory=list)

    @property
    def instance_number(self) -> int | None:
        return self.record.get("InstanceNumber")


@dataclass(eq=False)
class Series:
    """One series with its role.

    role: one of :data:`ROLES`; condition: 'stress' | 'rest' for AIF series (and perfusion).
    role_reason: why it was classified so (shown to the user, who may override it).
    """

    series_instance_uid: str
    series_number: int | None = None
    description: str = ""
    protocol_name: str = ""
    modality: str = ""
    image_type: tuple[str, ...] = ()
    sop_class_uid: str = ""
    instances: list[Instance] = field(default_factory=list)
    role: str = "other"
    role_reason: str = ""
    condition: str | None = None
    heart_rate_bpm: float | None = None
    first_time_s: float | None = None
    last_time_s: float | None = None
    n_positions: int = 0
    max_frames_per_position: int = 0
    ts_ms: float | None = None
    role_set_by_user: bool = False
    groups: list[Any] = field(default_factory=list, repr=False)

    @property
    def frames(self) -> list[Frame]:
        return [fr for inst in self.instances for fr in inst.frames]

    @property
    def n_frames(self) -> int:
        return sum(len(i.frames) for i in self.instances)

    @property
    def text(self) -> str:
        return f"{self.description} {self.protocol_name}".strip()


@dataclass(eq=False)
class SliceIndex:
    """One assembled slice of a condition (frames in acquisition order)."""

    series_instance_uid: str
    geometry: SliceGeometry
    frames: list[Frame]
    times_s: tuple[float, ...]
    pd_frames: tuple[int, ...] = ()
    ts_ms: float | None = None
    position: str | None = None
    slice_index: int = 0
    location_mm: float = 0.0
    trigger_time_ms: float | None = None
    flags: list[str] = field(default_factory=list)
    #: 'gd' when the series header explicitly marks its pixels as Gd concentration (mmol/L,
    #: :func:`qperf_viewer.quant.gd.header_marks_gd`), else 'signal'.
    units: str = "signal"

    @property
    def sop_instance_uids(self) -> tuple[str, ...]:
        return tuple(f.sop_instance_uid for f in self.frames)

    @property
    def frame_numbers(self) -> tuple[int, ...]:
        return tuple(f.frame_number for f in self.frames)

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(f.path for f in self.frames)

    @property
    def rows(self) -> int:
        return self.geometry.shape[0]

    @property
    def columns(self) -> int:
        return self.geometry.shape[1]

    @property
    def pixel_spacing_mm(self) -> tuple[float, float]:
        return self.geometry.pixel_spacing_mm

    @property
    def n_frames(self) -> int:
        return len(self.frames)


@dataclass(eq=False)
class ConditionIndex:
    """Stress or rest: slices ordered basal to apical, optional AIF series."""

    name: str
    slices: list[SliceIndex] = field(default_factory=list)
    aif: SliceIndex | None = None
    heart_rate_bpm: float | None = None
    series_instance_uids: tuple[str, ...] = ()
    series_descriptions: tuple[str, ...] = ()
    origin_time_s: float | None = None
    flags: list[str] = field(default_factory=list)


@dataclass(eq=False)
class Study:
    """One study of one patient."""

    study_instance_uid: str
    patient_id: str = ""
    patient_name: str = ""
    patient_birth_date: str = ""
    study_date: str = ""
    study_time: str = ""
    study_description: str = ""
    accession_number: str = ""
    manufacturer: str = ""
    field_strength_t: float | None = None
    series: list[Series] = field(default_factory=list)
    conditions: dict[str, ConditionIndex] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    assembly_problems: list[Problem] = field(default_factory=list)
    role_overrides: dict[str, str] = field(default_factory=dict)

    @property
    def all_problems(self) -> list[Problem]:
        return self.problems + self.assembly_problems

    def series_by_uid(self, uid: str) -> Series | None:
        for s in self.series:
            if s.series_instance_uid == uid:
                return s
        return None

    @property
    def n_files(self) -> int:
        return sum(len(s.instances) for s in self.series)


@dataclass(eq=False)
class Patient:
    patient_id: str
    patient_name: str = ""
    patient_birth_date: str = ""
    studies: list[Study] = field(default_factory=list)


@dataclass(eq=False)
class StudyIndex:
    """Result of a folder scan.

    n_files: files seen; n_instances: usable DICOM images (after duplicates);
    n_from_cache: headers taken from the cache; elapsed_s: wall time of the scan.
    """

    root: str
    patients: list[Patient] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    n_files: int = 0
    n_instances: int = 0
    n_from_cache: int = 0
    elapsed_s: float = 0.0

    @property
    def studies(self) -> list[Study]:
        return [st for p in self.patients for st in p.studies]

    def study(self, study_instance_uid: str | None = None) -> Study:
        """The study with this UID; without a UID the one perfusion study (see
        :func:`qperf_viewer.dicom.assemble.pick_study`)."""
        from qperf_viewer.dicom.assemble import pick_study

        return pick_study(self, study_instance_uid)

    @property
    def all_problems(self) -> list[Problem]:
        """Folder/file problems followed by every study's series problems."""
        out = list(self.problems)
        for st in self.studies:
            out.extend(st.all_problems)
        return out
