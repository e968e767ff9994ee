"""Markdown tables for the model card from the evaluation JSON files."""

from __future__ import annotations

import json
from pathlib import Path


def phantom_table(eval_json: Path, held_out: tuple[str, ...]) -> str:
    d = json.loads(Path(eval_json).read_text())
    head = (
        "| variant | slices | myo Dice | LV Dice | RV Dice | boundary px | boundary mm "
        "| Hausdorff mm (mean / p95) | RV angle err deg (mean / max) | flagged |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = []
    items = sorted(d["per_variant"].items()) + [("**all**", d["overall"])]
    for v, m in items:
        tag = f"{v} (held out)" if any(h in v for h in held_out) else v
        rows.append(
            f"| {tag} | {m['n_slices']} | {m['myo_dice']:.3f} (min {m['myo_dice_min']:.3f}) "
            f"| {m['lv_dice']:.3f} | {m['rv_dice']:.3f} | {m['boundary_px']:.2f} "
            f"| {m['boundary_mm']:.2f} | {m['hausdorff_mm']:.1f} / {m['hausdorff_mm_p95']:.1f} "
            f"| {m['rv_angle_err_deg']:.1f} / {m['rv_angle_max_deg']:.1f} | {m['n_flagged']} |"
        )
    return head + "\n".join(rows) + "\n"


def real_table(real_json: Path) -> str:
    d = json.loads(Path(real_json).read_text())
    head = (
        "| slice | myo Dice | LV Dice | boundary mm | Hausdorff mm | compared with | "
        "confidence | flags |\n|---|---|---|---|---|---|---|---|\n"
    )
    rows = [
        f"| {r['name']} | {r['myo_dice']:.3f} | {r['lv_dice']:.3f} | {r['boundary_mm']:.2f} "
        f"| {r['hausdorff_mm']:.1f} | {r['compared_with']} (frame {r['frame']}) "
        f"| {r['confidence']:.2f} | {r['flags']} |"
        for r in d["slices"]
    ]
    rows.append(
        f"| **mean** | {d['myo_dice_mean']:.3f} | {d['lv_dice_mean']:.3f} | | "
        f"{d['hausdorff_mm_mean']:.1f} | | | |"
    )
    return head + "\n".join(rows) + "\n"


def sectors_table(d: dict) -> str:
    """Per-exam AHA agreement and segment MBF differences (automatic - truth masks)."""
    head = (
        "| exam | AHA agreement | segment MBF bias (mL/min/g) | mean abs | segments |\n"
        "|---|---|---|---|---|\n"
    )
    rows = [
        f"| {r['variant']} {r['seed']} | {100 * r['aha_agreement']:.1f}% | {r['bias']:+.3f} "
        f"| {r['mean_abs']:.3f} | {len(r['segment_mbf_diffs'])} |"
        for r in d["exams"]
    ]
    rows.append(
        f"| **all** | {100 * d['aha_agreement_mean']:.1f}% (min "
        f"{100 * d['aha_agreement_min']:.1f}%) | {d['segment_mbf_bias']:+.3f} "
        f"| {d['segment_mbf_mean_abs']:.3f} (max {d['segment_mbf_max_abs']:.3f}) "
        f"| {d['n_segments']} |"
    )
    return head + "\n".join(rows) + "\n"
