"""One-command training run: split, data cache, training, ONNX export, evaluation.

Seeds: training exams use seeds ``seed0 + 1000 + i``, validation ``seed0 + 500000 + i``,
test ``seed0 + 900000 + i`` (disjoint). Two variant families are held out of training and
validation entirely (:data:`HELD_OUT`) and appear only in the test set.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from qperf_viewer.seg.preprocess import PreprocessParams
from qperf_viewer.seg.train.data import build_cache, load_cached

log = logging.getLogger(__name__)

#: Variant families never seen in training or validation (test only): the left-right
#: mirrored anatomy/geometry and Gibbs dark-rim artefacts.
HELD_OUT = ("mirrored", "dark_rim")


#: Variants evaluated on held-out exams: those that change the images (the others differ only
#: in DICOM storage/naming and give the same pixels as 'standard').
TEST_VARIANTS = (
    "standard",
    "mirrored",
    "dark_rim",
    "hypertrophy",
    "no_motion",
    "no_pd",
    "two_slices",
    "four_slices",
    "ge",
    "three_tesla",
    "subendocardial",
    "transmural",
    "square",
    "random",
)


#: The shipped recipe (full configuration): stage 1 from scratch, stage 2 fine-tunes it.
STAGE1 = {"iters": 1600, "time_aug": (0.8, 0.12)}
STAGE2 = {"iters": 800, "lr": 6e-4, "jitter_mm": 20.0, "time_aug": (1.5, 0.2)}


def variants_for(source: str) -> list[str]:
    if source == "standin":
        return ["standin"]
    from qperf_viewer.phantom import list_variants

    return list(list_variants())


def is_held_out(variant: str, seed: int | None = None) -> bool:
    """True for a held-out variant, or a 'random' exam whose drawn options include one."""
    if any(h in variant.lower() for h in HELD_OUT):
        return True
    if variant == "random" and seed is not None:
        from qperf_viewer.phantom.variants import resolve_variant

        o = resolve_variant(variant, seed)
        return bool(o.mirrored or o.dark_rim)
    return False


def _allowed_seed(source: str, variant: str, seed: int) -> int:
    """First seed >= ``seed`` whose exam has no held-out feature."""
    if source != "phantom":
        return seed
    while is_held_out(variant, seed):
        seed += 50000
    return seed


def make_split(
    source: str, seed: int, n_train: int, n_val: int, n_test_per_variant: int
) -> dict[str, list[tuple[int, str]]]:
    """Exams (seed, variant) of the training, validation and test sets."""
    variants = variants_for(source)
    seen = [v for v in variants if not is_held_out(v) and v != "demo"] or variants
    rng = np.random.default_rng(seed)
    base = seed % 100000
    named = [v for v in seen if v != "random"] or seen
    train_items = []
    for i in range(n_train):
        # every third exam draws its options at random ('random'), the rest cycle the variants
        v = "random" if (i % 3 == 2 and "random" in seen) else named[(i - i // 3) % len(named)]
        train_items.append((_allowed_seed(source, v, base + 1000 + i), v))
    val_items = []
    for i in range(n_val):
        v = seen[int(rng.integers(len(seen)))]
        val_items.append((_allowed_seed(source, v, base + 500000 + i), v))
    test_vars = [v for v in variants if source != "phantom" or v in TEST_VARIANTS]
    test_items = [
        (base + 900000 + 100 * j + i, v)
        for j, v in enumerate(test_vars)
        for i in range(n_test_per_variant * (2 if v == "random" else 1))
    ]
    return {"train": train_items, "val": val_items, "test": test_items}


def load_records(paths: list[Path]) -> list[dict]:
    recs: list[dict] = []
    for p in paths:
        recs += load_cached(p)
    return recs


def run_training(
    *,
    source: str = "phantom",
    work_dir: Path,
    models_out: Path,
    seed: int = 20260115,
    small: bool = False,
    iters: int | None = None,
    n_train: int | None = None,
    finetune_dir: Path | None = None,
    export_only: bool = False,
    evaluate: bool = True,
    init_from: Path | None = None,
    lr: float | None = None,
    jitter_mm: float | None = None,
    ckpt_name: str | None = None,
    finetune_iters: int | None = None,
) -> dict:
    """Train (or resume), export the best checkpoint and evaluate it; returns a summary.

    The full configuration is the shipped recipe, in two stages from one command: stage 1
    from scratch (:data:`STAGE1`), stage 2 fine-tunes its best checkpoint with stronger
    temporal augmentation and crop jitter (:data:`STAGE2`, ``finetune_iters`` iterations;
    0 skips it). Explicit ``init_from`` / ``lr`` / ``jitter_mm`` give a single stage."""
    from qperf_viewer.seg.train.export import export_onnx
    from qperf_viewer.seg.train.loop import TrainConfig, train

    if small:
        cfg = TrainConfig(
            seed=seed, base=8, depth=3, iters=iters or 120, batch=4, crop_train=96, val_every=60
        )
        n_tr, n_val, n_test = n_train or 8, 2, 1
    else:
        cfg = TrainConfig(seed=seed, iters=iters or STAGE1["iters"])
        n_tr, n_val, n_test = n_train or 72, 6, 2
    two_stage = not small and init_from is None and lr is None and jitter_mm is None
    if two_stage:
        cfg.time_shift_sd_s, cfg.time_stretch_sd = STAGE1["time_aug"]
    n_ft = STAGE2["iters"] if finetune_iters is None else int(finetune_iters)
    two_stage = two_stage and n_ft > 0
    if init_from is not None:
        cfg.init_from = str(init_from)
    if lr is not None:
        cfg.lr = lr
    if jitter_mm is not None:
        cfg.centre_jitter_mm = jitter_mm
    split = make_split(source, seed, n_tr, n_val, n_test)
    cache = work_dir / "seg_cache"
    t0 = time.time()
    tr_paths = build_cache(cache, source, split["train"])
    va_paths = build_cache(cache, source, split["val"])
    log.info("data ready in %.1f min", (time.time() - t0) / 60)
    train_recs = load_records(tr_paths)
    val_recs = load_records(va_paths)
    if finetune_dir is not None:
        from qperf_viewer.seg.train.user_data import load_user_samples

        user = load_user_samples(finetune_dir)
        log.info("fine-tuning data: %d user slices from %s (weighted x4)", len(user), finetune_dir)
        train_recs += user * 4
    cfg.data = {
        "source": source,
        "train_exams": len(split["train"]),
        "train_slices": len(train_recs),
        "val_exams": len(split["val"]),
        "held_out_families": list(HELD_OUT),
        "variants_train": sorted({v for _, v in split["train"]}),
        "finetune_dir": str(finetune_dir) if finetune_dir else None,
    }
    ck_dir = work_dir / (ckpt_name or ("seg_ckpt_small" if small else "seg_ckpt"))
    best = ck_dir / "best.pt"
    if not export_only:
        best = train(cfg, train_recs, val_recs, ck_dir)
    if two_stage:
        cfg2 = TrainConfig(**{**asdict(cfg), "iters": n_ft, "init_from": str(best)})
        cfg2.lr = STAGE2["lr"]
        cfg2.centre_jitter_mm = STAGE2["jitter_mm"]
        cfg2.time_shift_sd_s, cfg2.time_stretch_sd = STAGE2["time_aug"]
        ft_dir = work_dir / ((ckpt_name or "seg_ckpt") + "_ft")
        best = ft_dir / "best.pt"
        if not export_only:
            log.info("stage 2: fine-tuning %s for %d iterations", cfg2.init_from, n_ft)
            best = train(cfg2, train_recs, val_recs, ft_dir)
        cfg = cfg2
    cmd = _command(small, seed, iters, init_from, lr, jitter_mm, ckpt_name)
    if finetune_iters is not None:
        cmd += f" --finetune-iters {finetune_iters}"
    onnx = export_onnx(best, models_out, extra={"training_command": cmd})
    summary = {"onnx": str(onnx), "config": asdict(cfg), "split": split}
    if evaluate:
        from qperf_viewer.seg.train.evaluate import evaluate_model

        te_paths = build_cache(cache, source, split["test"], cut=False)
        metrics = evaluate_model(models_out, te_paths)
        summary["test_metrics"] = metrics
        (work_dir / ("seg_eval_small.json" if small else "seg_eval.json")).write_text(
            json.dumps(metrics, indent=2)
        )
    log.info("params %s", PreprocessParams.from_dict(cfg.params))
    return summary


def _command(small, seed, iters, init_from, lr, jitter_mm, ckpt_name) -> str:
    c = "qperf-viewer train" + (" --small" if small else "") + f" --seed {seed}"
    for flag, v in (
        ("--iters", iters),
        ("--init", init_from),
        ("--lr", lr),
        ("--jitter-mm", jitter_mm),
        ("--ckpt-name", ckpt_name),
    ):
        if v is not None:
            c += f" {flag} {v}"
    return c
