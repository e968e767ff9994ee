"""Accuracy of the exported model: held-out phantom exams per variant and the real labelled
validation exams (never used for training), plus overlays for human review."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from qperf_viewer.geometry import SliceGeometry
from qperf_viewer.seg.infer import segment_series
from qperf_viewer.seg.metrics import dice, insertion_angle_error_deg, myo_boundary_metrics
from qperf_viewer.seg.train.data import load_cached

log = logging.getLogger(__name__)


def record_geometry(rec: dict) -> SliceGeometry:
    """SliceGeometry of a cached record (origin is not needed for naming, kept anyway)."""
    return SliceGeometry(
        orientation=tuple(float(v) for v in rec["orientation"]),
        origin_mm=tuple(float(v) for v in rec["origin_mm"]),
        pixel_spacing_mm=tuple(float(v) for v in rec["spacing_mm"]),
        shape=tuple(int(v) for v in rec["labels"].shape),
    )


def evaluate_record(rec: dict, models_dir: Path) -> dict:
    """Metrics of one phantom slice through the full inference path."""
    geom = record_geometry(rec)
    seg = segment_series(
        np.asarray(rec["images"], np.float32),
        rec["times_s"],
        rec["pd_frames"],
        geom,
        models_dir=models_dir,
    )
    truth = np.asarray(rec["labels"])
    sp = geom.pixel_spacing_mm
    m = myo_boundary_metrics(seg.labels, truth, sp)
    m["lv_dice"] = dice(seg.labels == 1, truth == 1)
    m["rv_dice"] = dice(seg.labels == 3, truth == 3)
    c = tuple(rec["lv_centre"])
    errs = []
    for pred, key in ((seg.rv_insertion_anterior, "rv_ant"), (seg.rv_insertion_inferior, "rv_inf")):
        t = rec[key]
        if np.all(np.isfinite(t)):
            errs.append(insertion_angle_error_deg(c, pred, tuple(t), sp))
    errs = [e for e in errs if np.isfinite(e)]  # a missing predicted point gives NaN
    m["rv_angle_err_deg"] = float(np.mean(errs)) if errs else float("nan")
    m["rv_angle_max_deg"] = float(np.max(errs)) if errs else float("nan")
    m["confidence"] = seg.confidence
    m["flags"] = ";".join(seg.flags)
    m["time_ms"] = seg.timings_ms["total"]
    m["variant"] = str(rec["variant"])
    m["seed"] = int(rec["seed"])
    m["condition"] = str(rec["condition"])
    m["slice_index"] = int(rec["slice_index"])
    return m


def summarise(rows: list[dict]) -> dict:
    keys = [
        "myo_dice",
        "lv_dice",
        "rv_dice",
        "boundary_px",
        "boundary_mm",
        "hausdorff_mm",
        "rv_angle_err_deg",
        "rv_angle_max_deg",
        "confidence",
        "time_ms",
    ]
    out = {"n_slices": len(rows)}
    for k in keys:
        v = np.array([r[k] for r in rows], dtype=float)
        v = v[np.isfinite(v)]
        out[k] = float(v.mean()) if v.size else float("nan")
    v = np.array([r["hausdorff_mm"] for r in rows], float)
    out["hausdorff_mm_p95"] = (
        float(np.percentile(v[np.isfinite(v)], 95)) if np.isfinite(v).any() else float("nan")
    )
    out["myo_dice_min"] = float(np.nanmin([r["myo_dice"] for r in rows]))
    out["n_flagged"] = int(sum(bool(r["flags"]) for r in rows))
    return out


def evaluate_model(models_dir: Path, test_paths: list[Path]) -> dict:
    """Per-variant and overall summaries over cached (full field of view) test exams."""
    rows = []
    for p in test_paths:
        for rec in load_cached(p):
            rows.append(evaluate_record(rec, models_dir))
    by_var: dict[str, list[dict]] = {}
    for r in rows:
        by_var.setdefault(r["variant"], []).append(r)
    res = {
        "overall": summarise(rows),
        "per_variant": {v: summarise(rs) for v, rs in by_var.items()},
    }
    res["slices"] = rows
    return res


def evaluate_exam_sectors(
    seed: int,
    variant: str,
    work_dir: Path,
    model: str = "fermi",
    models_dir: Path | None = None,
) -> dict:
    """What the automatic segmentation changes downstream, on one phantom exam through the
    whole pipeline (DICOM, motion correction, Gd, AIF, pixelwise MBF): the share of myocardial
    pixels (in both the automatic and the truth mask) whose AHA segment agrees with the
    truth's, and per segment the MBF (mL/min/g) from the automatic masks minus the MBF from the
    truth masks (moved to the same reference frame) on the same pixel maps."""
    from qperf_viewer.phantom.cli import write_phantom
    from qperf_viewer.phantom.truth_segmenter import TruthSegmenter
    from qperf_viewer.pipeline.folder import analyze_folder
    from qperf_viewer.sectors import segment_values

    src = work_dir / f"exam_{variant}_{seed}"
    if not (src / "truth").is_dir():
        write_phantom(src, seed, variant)
    from qperf_viewer.pipeline.segmenter import OnnxSegmenter

    run = analyze_folder(
        src / "dicom", out_dir=work_dir / f"out_{variant}_{seed}", model=model, pdf=False,
        dicom=False, segmenter=OnnxSegmenter(models_dir),
    )  # fmt: skip
    truth = TruthSegmenter(src)
    agree = total = 0
    diffs: list[float] = []
    for cond, cr in run.result.conditions.items():
        maps, valids, t_aha, t_lab, sps = [], [], [], [], []
        for sr in cr.slices:
            if sr.mbf is None or sr.aha is None or sr.segmentation is None:
                continue
            lab_t = truth.moved(cond, sr.slice_index, sr.reference_frame)
            aha_t = truth.moved(cond, sr.slice_index, sr.reference_frame, key="aha")
            both = (lab_t == 2) & (sr.segmentation.labels == 2)
            agree += int(np.sum(sr.aha[both] == aha_t[both]))
            total += int(both.sum())
            maps.append(sr.mbf)
            valids.append(sr.mbf_valid)
            t_aha.append(aha_t)
            t_lab.append(lab_t)
            sps.append(sr.series.geometry.pixel_spacing_mm)
        if not maps:
            continue
        tv = segment_values(maps, valids, t_aha, t_lab, sps)
        for k, v in cr.segments.items():
            if v.mbf is not None and tv[k].mbf is not None:
                diffs.append(float(v.mbf) - float(tv[k].mbf))
    return {
        "seed": seed,
        "variant": variant,
        "aha_agreement": agree / total if total else float("nan"),
        "segment_mbf_diffs": diffs,
        "bias": float(np.mean(diffs)) if diffs else float("nan"),
        "mean_abs": float(np.mean(np.abs(diffs))) if diffs else float("nan"),
    }


def evaluate_sectors(
    items: list[tuple[int, str]],
    work_dir: Path,
    model: str = "fermi",
    models_dir: Path | None = None,
) -> dict:
    """:func:`evaluate_exam_sectors` over exams (segmented with the model in ``models_dir``,
    default the installed one); pooled AHA agreement and segment MBF bias."""
    rows = [evaluate_exam_sectors(s, v, work_dir, model, models_dir) for s, v in items]
    d = np.concatenate([r["segment_mbf_diffs"] for r in rows]) if rows else np.zeros(0)
    ag = np.array([r["aha_agreement"] for r in rows], float)
    return {
        "exams": rows,
        "aha_agreement_mean": float(np.nanmean(ag)) if rows else float("nan"),
        "aha_agreement_min": float(np.nanmin(ag)) if rows else float("nan"),
        "segment_mbf_bias": float(d.mean()) if d.size else float("nan"),
        "segment_mbf_mean_abs": float(np.abs(d).mean()) if d.size else float("nan"),
        "segment_mbf_max_abs": float(np.abs(d).max()) if d.size else float("nan"),
        "n_segments": int(d.size),
        "model": model,
    }


# --------------------------------------------------------------------------------------------
# real data


def evaluate_real(
    root: Path,
    models_dir: Path | None = None,
    overlay_dir: Path | None = None,
    moco: bool = True,
    only: tuple[str, ...] | None = None,
) -> dict:
    """Dice of myocardium and LV on the real labelled exams (validation only).

    Each slice is motion-corrected (qperf_viewer.quant.motion when available) and segmented;
    the automatic labels refer to the reference frame of the correction and are compared with
    that frame's manual labels when it is labelled, else with those of the labelled frame
    nearest in time, moved into the reference grid by that frame's estimated shift.
    only: evaluate just the slices whose name (e.g. 'P01_stress_mid') contains one of these.
    """
    from qperf_viewer.seg.train.realdata import load_real_labelled

    rows = []
    tiles = []
    for s in load_real_labelled(root):
        if only is not None and not any(o in s.name for o in only):
            continue
        imgs, ref, shifts = s.images, None, None
        if moco:
            try:
                from qperf_viewer.quant.motion import correct_motion

                mr = correct_motion(imgs, (), pixel_spacing_mm=s.geometry.pixel_spacing_mm)
                imgs, ref, shifts = mr.corrected, int(mr.reference_frame), mr.shifts_px
            except ImportError:
                pass
        seg = segment_series(imgs, s.times_s, (), s.geometry, models_dir=models_dir)
        cands = list(s.labelled)
        if ref is not None and ref in cands:
            k = ref
            how = "reference frame"
        elif ref is not None:
            # the labelled frame nearest in time to the reference (not the best-matching one,
            # which would flatter the score)
            k = min(cands, key=lambda f: abs(f - ref))
            how = "labelled frame nearest the reference, moved by its estimated shift"
        else:
            k = max(cands, key=lambda f: dice(seg.labels == 2, s.labels[f] == 2))
            how = "best-matching labelled frame"
        truth = s.labels[k]
        if shifts is not None and k != ref:
            # the hand label of frame k into the reference grid (the app's own shift estimate;
            # the breath moves the heart by several pixels between frames)
            from qperf_viewer.quant.motion import apply_shifts

            truth = apply_shifts(truth, shifts[k : k + 1], direction="to_reference")[0]
        m = {
            "name": s.name,
            "myo_dice": dice(seg.labels == 2, truth == 2),
            "lv_dice": dice(seg.labels == 1, truth == 1),
            "frame": int(k),
            "compared_with": how,
            "confidence": seg.confidence,
            "flags": ";".join(seg.flags),
        }
        m.update(myo_boundary_metrics(seg.labels, truth, s.geometry.pixel_spacing_mm))
        rows.append(m)
        if overlay_dir is not None:
            from qperf_viewer.seg.overlay import overlay

            c = seg.lv_centre or (s.images.shape[1] / 2, s.images.shape[2] / 2)
            r0, c0 = int(c[0]) - 30, int(c[1]) - 30
            win = (slice(max(r0, 0), r0 + 60), slice(max(c0, 0), c0 + 60))
            pts = [p for p in (seg.rv_insertion_anterior, seg.rv_insertion_inferior) if p]
            pts = [(p[0] - win[0].start, p[1] - win[1].start) for p in pts]
            peak = int(np.argmax(imgs[:, win[0], win[1]].mean(axis=(1, 2))))
            tiles.append(
                overlay(
                    imgs[min(peak + 5, len(imgs) - 1)][win],
                    seg.labels[win],
                    pts,
                    zoom=4,
                    outline_labels=truth[win],
                )
            )
        log.info(
            "%s myo Dice %.3f LV Dice %.3f (%s %d)", s.name, m["myo_dice"], m["lv_dice"], how, k
        )
    if overlay_dir is not None and tiles:
        from qperf_viewer.seg.overlay import montage, write_png

        overlay_dir.mkdir(parents=True, exist_ok=True)
        name = "seg_real_labelled.png" if only is None else "seg_real_labelled_subset.png"
        write_png(overlay_dir / name, montage(tiles, 4))
    summ = {
        "myo_dice_mean": float(np.mean([r["myo_dice"] for r in rows])),
        "lv_dice_mean": float(np.mean([r["lv_dice"] for r in rows])),
        "myo_dice_min": float(np.min([r["myo_dice"] for r in rows])),
        "hausdorff_mm_mean": float(np.mean([r["hausdorff_mm"] for r in rows])),
        "slices": rows,
    }
    return summ


def render_public(root: Path, out_dir: Path, models_dir: Path | None = None) -> dict:
    """Overlays of the automatic segmentation on the public QPerf examples (human review).

    rest_gd.npz: Gd crop (Y, X, T), 0.5 s frames, pixel spacing not given (2.0 mm assumed);
    aif_lv_example1.npz: low-resolution AIF series (Y, X, T), spacing not given (5.6 mm
    assumed), with manual LV (1) / RV (2) labels. Returns LV/myo numbers for the log.
    """
    from qperf_viewer.seg.overlay import montage, overlay, write_png

    out_dir.mkdir(parents=True, exist_ok=True)
    res: dict = {}
    z = np.load(root / "rest_gd.npz")
    gd = np.moveaxis(z["gd"], -1, 0).astype(np.float32)
    t = np.arange(gd.shape[0]) * float(z["dt_s"])
    geom = _plain_geometry(gd.shape[1:], 2.0)
    seg = segment_series(gd, t, (), geom, models_dir=models_dir)
    peak = int(z["peak"])
    myo_ref = z["myocardium_mask"]
    res["rest_gd"] = {
        "flags": seg.flags,
        "confidence": seg.confidence,
        "reference_myo_covered": float(np.mean(seg.labels[myo_ref] == 2)),
    }
    pts = [p for p in (seg.rv_insertion_anterior, seg.rv_insertion_inferior) if p]
    tiles = [
        overlay(gd[min(peak + k, len(gd) - 1)], seg.labels if k >= 10 else None, pts, zoom=6)
        for k in (0, 10, 20)
    ]
    write_png(out_dir / "seg_public_rest_gd.png", montage(tiles, 3))
    z = np.load(root / "aif_lv_example1.npz")
    imgs = np.moveaxis(z["images"], -1, 0).astype(np.float32)
    t = np.arange(imgs.shape[0]) * 1.0
    geom = _plain_geometry(imgs.shape[1:], 5.6)
    seg = segment_series(imgs, t, (), geom, models_dir=models_dir)
    lab = z["labels"]
    truth = np.where(lab == 1, 1, np.where(lab == 2, 3, 0))
    res["aif"] = {
        "lv_dice": dice(seg.labels == 1, truth == 1),
        "rv_dice": dice(seg.labels == 3, truth == 3),
        "flags": seg.flags,
    }
    k = int(np.argmax(imgs.reshape(len(imgs), -1).max(axis=1)))
    write_png(
        out_dir / "seg_public_aif.png",
        montage([overlay(imgs[k], seg.labels, zoom=6, outline_labels=truth)], 1),
    )
    return res


def _plain_geometry(shape, spacing_mm: float) -> SliceGeometry:
    """A short-axis-like geometry for data without DICOM headers (image up = anterior)."""
    return SliceGeometry(
        orientation=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
        origin_mm=(0.0, 0.0, 0.0),
        pixel_spacing_mm=(spacing_mm, spacing_mm),
        shape=(int(shape[0]), int(shape[1])),
    )
