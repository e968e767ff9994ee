"""DICOM exports of the report for storing back to PACS (Qt-free; pydicom).

- Encapsulated PDF Storage (1.2.840.10008.5.1.4.1.1.104.1) of report.pdf;
- Secondary Capture Image Storage (1.2.840.10008.5.1.4.1.1.7), RGB, of the bulls-eye page and
  of the MBF maps with contours (many PACS viewers show these but not PDFs).

Both carry the patient and study identity of the exam (same StudyInstanceUID, so PACS files
them with the study), a new series each, ``BurnedInAnnotation`` YES (the pictures show the
patient's name and ID), and are read back after writing; files are written atomically.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from qperf_viewer.errors import QPerfError

from ._atomic import atomic_write
from .data import ExamHeader, ReportData

ENCAPSULATED_PDF_STORAGE = "1.2.840.10008.5.1.4.1.1.104.1"
SECONDARY_CAPTURE_STORAGE = "1.2.840.10008.5.1.4.1.1.7"
PDF_SERIES_NUMBER = 9901
SC_SERIES_NUMBER = 9902


class DicomExportError(QPerfError):
    """A DICOM export could not be written or did not read back identically."""


@dataclass(frozen=True)
class ExportedInstance:
    path: Path
    sop_class_uid: str
    sop_instance_uid: str
    series_instance_uid: str


def _now() -> tuple[str, str]:
    now = _dt.datetime.now()
    return now.strftime("%Y%m%d"), now.strftime("%H%M%S")


def _base(
    header: ExamHeader,
    sop_class: str,
    modality: str,
    series_uid: str,
    series_no: int,
    series_description: str,
    software_version: str,
) -> Dataset:
    ds = Dataset()
    date, time = _now()
    ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.InstanceCreationDate, ds.InstanceCreationTime = date, time
    # Patient
    ds.PatientName = header.patient_name
    ds.PatientID = header.patient_id
    ds.PatientBirthDate = header.patient_birth_date
    ds.PatientSex = header.patient_sex
    # General Study (the exam's study)
    ds.StudyInstanceUID = header.study_instance_uid or generate_uid()
    ds.StudyDate = header.study_date
    ds.StudyTime = header.study_time
    ds.ReferringPhysicianName = header.referring_physician
    ds.StudyID = header.study_id
    ds.AccessionNumber = header.accession_number
    if header.study_description:
        ds.StudyDescription = header.study_description
    # Series and equipment
    ds.Modality = modality
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_no
    ds.SeriesDescription = series_description
    ds.Manufacturer = "qperf-viewer"
    ds.SoftwareVersions = software_version
    ds.InstanceNumber = 1
    ds.ContentDate, ds.ContentTime = date, time
    ds.BurnedInAnnotation = "YES"
    return ds


def _file_meta(ds: Dataset) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return meta


def encapsulated_pdf(
    pdf: bytes,
    header: ExamHeader,
    software_version: str = "",
    title: str = "Quantitative stress perfusion CMR report",
    series_uid: str | None = None,
) -> Dataset:
    """An Encapsulated PDF Storage dataset of ``pdf`` in the exam's study."""
    if not pdf.startswith(b"%PDF"):
        raise DicomExportError("The report to encapsulate is not a PDF.")
    ds = _base(
        header,
        ENCAPSULATED_PDF_STORAGE,
        "DOC",
        series_uid or generate_uid(),
        PDF_SERIES_NUMBER,
        "qperf-viewer report (PDF)",
        software_version,
    )
    ds.ConversionType = "WSD"
    ds.AcquisitionDateTime = ds.ContentDate + ds.ContentTime
    ds.DocumentTitle = title
    ds.ConceptNameCodeSequence = []
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocumentLength = len(pdf)
    ds.EncapsulatedDocument = pdf + (b"\0" if len(pdf) % 2 else b"")
    ds.file_meta = _file_meta(ds)
    return ds


def secondary_capture(
    rgb: np.ndarray,
    header: ExamHeader,
    description: str,
    software_version: str = "",
    series_uid: str | None = None,
    instance_number: int = 1,
) -> Dataset:
    """A Secondary Capture Image Storage dataset of an RGB picture ``(Y, X, 3)`` uint8."""
    a = np.asarray(rgb)
    if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
        raise DicomExportError(
            f"Secondary Capture needs (Y, X, 3) uint8 RGB, got {a.shape} {a.dtype}."
        )
    ds = _base(
        header,
        SECONDARY_CAPTURE_STORAGE,
        "OT",
        series_uid or generate_uid(),
        SC_SERIES_NUMBER,
        "qperf-viewer report images",
        software_version,
    )
    ds.InstanceNumber = instance_number
    ds.ConversionType = "WSD"
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.DerivationDescription = description
    ds.ImageComments = description
    ds.PatientOrientation = ""
    ds.LossyImageCompression = "00"
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "RGB"
    ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = int(a.shape[0]), int(a.shape[1])
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = np.ascontiguousarray(a).tobytes()
    ds.file_meta = _file_meta(ds)
    return ds


def _verify(path: Path, ds: Dataset):
    back = pydicom.dcmread(path)
    if (
        back.SOPClassUID != ds.SOPClassUID
        or back.SOPInstanceUID != ds.SOPInstanceUID
        or back.StudyInstanceUID != ds.StudyInstanceUID
    ):
        raise DicomExportError(
            "Written DICOM reads back with different identifiers.", path=str(path)
        )
    if ds.SOPClassUID == ENCAPSULATED_PDF_STORAGE:
        n = int(back.EncapsulatedDocumentLength)
        if bytes(back.EncapsulatedDocument)[:n] != bytes(ds.EncapsulatedDocument)[:n]:
            raise DicomExportError("Encapsulated PDF reads back differently.", path=str(path))
    else:
        want = np.frombuffer(ds.PixelData, np.uint8).reshape(ds.Rows, ds.Columns, 3)
        if not np.array_equal(back.pixel_array, want):
            raise DicomExportError(
                "Secondary Capture pixels read back differently.", path=str(path)
            )


def write_dicom(path: str | Path, ds: Dataset) -> ExportedInstance:
    """Write a dataset atomically, read it back and check it before it replaces ``path``."""

    def write(tmp: Path):
        ds.save_as(tmp, enforce_file_format=True)
        _verify(tmp, ds)

    try:
        p = atomic_write(path, write)
    except (OSError, ValueError, AttributeError) as exc:
        raise DicomExportError(f"Cannot write DICOM: {exc}.", path=str(path)) from exc
    return ExportedInstance(
        p, str(ds.SOPClassUID), str(ds.SOPInstanceUID), str(ds.SeriesInstanceUID)
    )


def export_report_dicom(
    out_dir: str | Path,
    data: ReportData,
    pdf: bytes,
    pictures: list[tuple[str, str, np.ndarray]],
) -> list[ExportedInstance]:
    """Write ``report_pdf.dcm`` and one Secondary Capture per picture into ``out_dir``.

    pictures: (file stem, description, RGB (Y, X, 3) uint8), e.g. from
    :func:`qperf_viewer.report.pdf.render_page_image` (bulls-eye page) and
    :func:`qperf_viewer.report.pdf.render_maps_image` (MBF maps); all in one SC series.
    """
    out = Path(out_dir)
    version = data.versions.get("qperf-viewer", "")
    done = [write_dicom(out / "report_pdf.dcm", encapsulated_pdf(pdf, data.header, version))]
    sc_series = generate_uid()
    for k, (stem, description, rgb) in enumerate(pictures, start=1):
        ds = secondary_capture(rgb, data.header, description, version, sc_series, k)
        done.append(write_dicom(out / f"{stem}.dcm", ds))
    return done
