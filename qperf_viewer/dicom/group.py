"""Header records -> patients > studies > series > instances > frames, with absolute frame
times (clock times parsed, across midnight) and duplicate SOP instances counted once."""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

from qperf_viewer.dicom import timing
from qperf_viewer.dicom.headers import transfer_syntax_name
from qperf_viewer.dicom.model import Frame, Instance, Patient, Problem, Series, Study

_MR_IMAGE_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.4",  # MR Image Storage
        "1.2.840.10008.5.1.4.1.1.4.1",  # Enhanced MR Image Storage
        "1.2.840.10008.5.1.4.1.1.4.4",  # Legacy Converted Enhanced MR
    }
)


def _frames_of(path: str, uid: str, rec: dict[str, Any]) -> list[Frame]:
    per = rec.get("_frames")
    if per:
        return [Frame(path, uid, i + 1, rec, fr) for i, fr in enumerate(per)]
    return [Frame(path, uid, 1, rec, {})]


def _frame_clock(fr: Frame) -> tuple[int | None, float | None]:
    dt = fr.attrs.get("FrameAcquisitionDateTime")
    if dt:
        return timing.parse_dt(dt)
    rec = fr.record
    tm = timing.parse_tm(rec.get("AcquisitionTime"))
    if tm is not None:
        return timing.parse_da(rec.get("AcquisitionDate")), tm
    if rec.get("AcquisitionDateTime"):
        return timing.parse_dt(rec["AcquisitionDateTime"])
    return None, None


def _content_clock(fr: Frame) -> tuple[int | None, float | None]:
    rec = fr.record
    return timing.parse_da(rec.get("ContentDate")), timing.parse_tm(rec.get("ContentTime"))


def _assign_times(study: Study) -> None:
    """Absolute acquisition times of all frames of a study; content times (ContentTime) too,
    but only when some series lacks distinct per-frame acquisition times."""
    frames = [f for se in study.series for f in se.frames]
    acq = [_frame_clock(f) for f in frames]
    abs_acq = timing.absolute_times([a[0] for a in acq], [a[1] for a in acq])
    for f, t in zip(frames, abs_acq, strict=True):
        f.time_s = t
    need_content = False
    for se in study.series:
        ts = [f.time_s for f in se.frames]
        if any(t is None for t in ts) or len(set(ts)) < len(ts):
            need_content = True
            break
    if not need_content:
        return
    con = [_content_clock(f) for f in frames]
    abs_con = timing.absolute_times([c[0] for c in con], [c[1] for c in con])
    for f, c in zip(frames, abs_con, strict=True):
        f.content_time_s = c


def _pick_duplicates(
    entries: list[tuple[str, dict[str, Any]]],
) -> tuple[list[tuple[str, dict[str, Any]]], list[Problem]]:
    """Keep one file per SOPInstanceUID: the copy in the folder holding most of its series."""
    by_uid: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for path, rec in entries:
        by_uid[rec["SOPInstanceUID"]].append((path, rec))
    if all(len(v) == 1 for v in by_uid.values()):
        return entries, []
    dir_series = Counter((os.path.dirname(p), r.get("SeriesInstanceUID")) for p, r in entries)
    kept, problems = [], []
    for copies in by_uid.values():
        if len(copies) == 1:
            kept.append(copies[0])
            continue
        copies.sort(
            key=lambda pr: (
                -dir_series[(os.path.dirname(pr[0]), pr[1].get("SeriesInstanceUID"))],
                pr[0],
            )
        )
        kept.append(copies[0])
        for path, _rec in copies[1:]:
            problems.append(
                Problem(
                    path,
                    f"duplicate of {copies[0][0]} (same SOPInstanceUID)",
                    "Counted once; nothing to do.",
                    "info",
                )
            )
    return kept, problems


def build_studies(
    entries: Iterable[tuple[str, dict[str, Any]]], root: str
) -> tuple[list[Patient], list[Problem], int]:
    """Group header records (path, record) into patients.

    Returns (patients, problems, number of usable instances). File-level problems come from
    the records; duplicates, several patients and undecodable series are added here.
    """
    problems: list[Problem] = []
    usable: list[tuple[str, dict[str, Any]]] = []
    for path, rec in entries:
        if "_problem" in rec:
            problems.append(
                Problem(path, rec["_problem"], rec.get("_hint", ""), rec.get("_severity", "error"))
            )
            continue
        if not rec.get("SOPInstanceUID"):
            rec = dict(rec, SOPInstanceUID=f"path:{path}")
        usable.append((path, rec))
    usable, dup_problems = _pick_duplicates(usable)
    problems.extend(dup_problems)

    studies: dict[str, Study] = {}
    series_of: dict[tuple[str, str], Series] = {}
    patient_ids: dict[str, Counter] = defaultdict(Counter)
    for path, rec in sorted(usable, key=lambda pr: pr[0]):
        suid = rec["StudyInstanceUID"]
        st = studies.get(suid)
        if st is None:
            st = studies[suid] = Study(
                study_instance_uid=suid,
                patient_id=rec.get("PatientID", ""),
                patient_name=rec.get("PatientName", ""),
                patient_birth_date=rec.get("PatientBirthDate", ""),
                study_date=rec.get("StudyDate", ""),
                study_time=rec.get("StudyTime", ""),
                study_description=rec.get("StudyDescription", ""),
                accession_number=rec.get("AccessionNumber", ""),
                manufacturer=rec.get("Manufacturer", ""),
                field_strength_t=rec.get("MagneticFieldStrength"),
            )
        patient_ids[suid][rec.get("PatientID", "")] += 1
        key = (suid, rec["SeriesInstanceUID"])
        se = series_of.get(key)
        if se is None:
            se = series_of[key] = Series(
                series_instance_uid=rec["SeriesInstanceUID"],
                series_number=rec.get("SeriesNumber"),
                description=rec.get("SeriesDescription", ""),
                protocol_name=rec.get("ProtocolName", ""),
                modality=rec.get("Modality", ""),
                image_type=tuple(rec.get("ImageType") or ()),
                sop_class_uid=rec.get("SOPClassUID", ""),
            )
            st.series.append(se)
        inst = Instance(path, rec["SOPInstanceUID"], rec)
        inst.frames = _frames_of(path, inst.sop_instance_uid, rec)
        se.instances.append(inst)

    n_instances = len(usable)
    patients: dict[tuple[str, str], Patient] = {}
    for st in studies.values():
        ids = patient_ids[st.study_instance_uid]
        if len(ids) > 1:
            st.problems.append(
                Problem(
                    root,
                    f"study {st.study_instance_uid} has images of several patient IDs "
                    f"({', '.join(sorted(i or '(none)' for i in ids))})",
                    "Check that the folder holds one patient's study.",
                    "warning",
                )
            )
        st.series.sort(
            key=lambda s: (
                s.series_number if s.series_number is not None else 1 << 30,
                s.series_instance_uid,
            )
        )
        _assign_times(st)
        for se in st.series:
            _check_decodable(se, st)
        pkey = (st.patient_id, st.patient_name)
        pat = patients.get(pkey)
        if pat is None:
            pat = patients[pkey] = Patient(st.patient_id, st.patient_name, st.patient_birth_date)
        pat.studies.append(st)
    plist = sorted(patients.values(), key=lambda p: (p.patient_name, p.patient_id))
    for p in plist:
        p.studies.sort(key=lambda s: (s.study_date, s.study_time, s.study_instance_uid))
    if len(plist) > 1:
        names = ", ".join(f"{p.patient_name or '?'} ({p.patient_id or 'no ID'})" for p in plist)
        problems.append(
            Problem(
                root,
                f"the folder holds {len(plist)} patients: {names}",
                "Each study is listed separately; choose the one to analyse.",
                "warning",
            )
        )
    return plist, problems, n_instances


def _check_decodable(se: Series, st: Study) -> None:
    bad = [i for i in se.instances if i.record.get("_no_decoder")]
    if not bad:
        return
    ts = transfer_syntax_name(bad[0].record.get("_ts", ""))
    st.problems.append(
        Problem(
            os.path.dirname(bad[0].path),
            f"series {se.series_number} '{se.description}': {len(bad)} of {len(se.instances)} "
            f"files are compressed ({ts}) and no decoder for it is installed",
            "Install a decoder (pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg) "
            "or export the study uncompressed.",
            "error",
        )
    )


def is_mr_image(se: Series) -> bool:
    """Whether a series holds MR images (by modality or SOP class)."""
    return se.modality == "MR" or se.sop_class_uid in _MR_IMAGE_CLASSES
