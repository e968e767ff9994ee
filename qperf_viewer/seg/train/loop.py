"""Training loop (torch, CPU): CE + soft Dice, AdamW with one-cycle schedule, validation Dice,
regular checkpoints (latest and best) and ONNX export of the best model at the end.

Reproducible from one command: data seeds, split, augmentation stream (one data worker) and
torch seed all derive from ``TrainConfig.seed``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from qperf_viewer.seg.preprocess import PreprocessParams
from qperf_viewer.seg.train.data import N_TEMPORAL_VARIANTS, make_example, temporal_variant
from qperf_viewer.seg.train.model import ResUNet

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Everything that defines a training run (stored in checkpoints and metadata)."""

    seed: int = 20260115
    base: int = 16
    depth: int = 4
    iters: int = 3000
    batch: int = 8
    lr: float = 2e-3
    weight_decay: float = 1e-4
    crop_train: int = 112
    val_every: int = 250
    centre_jitter_mm: float = 12.0
    #: SD of the bolus-arrival shift (s) and of the log time stretch of the cached temporal
    #: variants (the stronger, the more robust to real timing; see data.temporal_variant)
    time_shift_sd_s: float = 1.5
    time_stretch_sd: float = 0.2
    init_from: str = ""
    threads: int = 2
    workers: int = 1
    params: dict = field(default_factory=lambda: PreprocessParams().to_dict())
    data: dict = field(default_factory=dict)

    def digest(self) -> str:
        blob = json.dumps(asdict(self), sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


class ExampleStream(IterableDataset):
    """Endless stream of augmented examples drawn uniformly from ``records``."""

    def __init__(
        self,
        records: list[dict],
        params: PreprocessParams,
        seed: int,
        crop: int,
        jitter_mm: float = 12.0,
        time_aug: tuple[float, float] = (1.5, 0.2),
    ):
        self.records = records
        self.params = params
        self.seed = seed
        self.crop = crop
        self.jitter_mm = jitter_mm
        self.time_aug = time_aug

    def __iter__(self):
        info = get_worker_info()
        wid = info.id if info is not None else 0
        rng = np.random.default_rng([self.seed, wid])
        stage1: dict[tuple[int, int], object] = {}  # temporal variants, computed on first use
        while True:
            i = int(rng.integers(len(self.records)))
            v = int(rng.integers(N_TEMPORAL_VARIANTS))
            rec = self.records[i]
            if (i, v) not in stage1:
                stage1[(i, v)] = temporal_variant(
                    rec, self.params, self.seed * 7919 + i, v, *self.time_aug
                )
            x, y = make_example(
                rec,
                self.params,
                rng,
                crop_size=self.crop,
                enh=stage1[(i, v)],
                centre_jitter_mm=self.jitter_mm,
            )
            yield torch.from_numpy(x), torch.from_numpy(y)


def dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - mean soft Dice over the foreground classes (batch pooled)."""
    p = torch.softmax(logits, dim=1)
    oh = F.one_hot(target, logits.shape[1]).permute(0, 3, 1, 2).float()
    dims = (0, 2, 3)
    inter = (p * oh).sum(dims)
    den = p.sum(dims) + oh.sum(dims)
    dice = (2 * inter + eps) / (den + eps)
    return 1.0 - dice[1:].mean()


def dice_scores(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Hard Dice of LV (1), myocardium (2), RV (3); NaN where both are empty."""
    out = {}
    for name, c in (("lv", 1), ("myo", 2), ("rv", 3)):
        a, b = pred == c, truth == c
        s = a.sum() + b.sum()
        out[name] = float(2 * (a & b).sum() / s) if s else float("nan")
    return out


@torch.no_grad()
def validate(
    model: ResUNet, val_set: list[tuple[np.ndarray, np.ndarray]], device: str = "cpu"
) -> dict[str, float]:
    model.eval()
    scores = []
    for x, y in val_set:
        logits = model(torch.from_numpy(x)[None].to(device))
        pred = logits.argmax(1)[0].cpu().numpy()
        scores.append(dice_scores(pred, y))
    model.train()
    return {k: float(np.nanmean([s[k] for s in scores])) for k in scores[0]}


def train(
    cfg: TrainConfig,
    train_records: list[dict],
    val_records: list[dict],
    out_dir: Path,
    resume: bool = True,
) -> Path:
    """Train; checkpoints ``out_dir/{latest,best}.pt``; returns the best checkpoint path."""
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    params = PreprocessParams.from_dict(cfg.params)
    out_dir.mkdir(parents=True, exist_ok=True)
    # a CUDA device when there is one (the full model on a lent GPU), else the CPU
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = ResUNet(params.n_frames, 4, cfg.base, cfg.depth).to(device)
    n_par = sum(p.numel() for p in model.parameters())
    log.info(
        "model: ResUNet base %d depth %d, %d parameters, on %s", cfg.base, cfg.depth, n_par, device
    )
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt,
        max_lr=cfg.lr,
        total_steps=cfg.iters,
        pct_start=0.1,
        div_factor=10,
        final_div_factor=100,
    )
    start, best = 0, -1.0
    latest, best_path = out_dir / "latest.pt", out_dir / "best.pt"
    if cfg.init_from:
        ck = torch.load(cfg.init_from, weights_only=False, map_location="cpu")
        model.load_state_dict(ck["model"])
        log.info("initialised from %s (iteration %d)", cfg.init_from, ck["iter"])
    if resume and latest.exists():
        ck = torch.load(latest, weights_only=False, map_location=device)
        if ck["config_digest"] == cfg.digest():
            model.load_state_dict(ck["model"])
            opt.load_state_dict(ck["opt"])
            sched.load_state_dict(ck["sched"])
            start, best = ck["iter"], ck["best"]
            log.info("resumed from %s at iteration %d (best myo Dice %.4f)", latest, start, best)
    val_set = [make_example(r, params, None, crop_size=params.crop_px) for r in val_records]
    ds = ExampleStream(
        train_records,
        params,
        cfg.seed + start,
        cfg.crop_train,
        cfg.centre_jitter_mm,
        (cfg.time_shift_sd_s, cfg.time_stretch_sd),
    )
    dl = DataLoader(
        ds,
        batch_size=cfg.batch,
        num_workers=cfg.workers,
        persistent_workers=cfg.workers > 0,
        prefetch_factor=4 if cfg.workers else None,
    )
    it = iter(dl)
    model.train()
    t0 = time.time()
    run_loss = 0.0
    for i in range(start, cfg.iters):
        x, y = next(it)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        logits = model(x)
        loss = F.cross_entropy(logits, y) + dice_loss(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        run_loss += float(loss.detach())
        if (i + 1) % 25 == 0:
            log.info(
                "iter %d/%d loss %.4f lr %.2e %.2f s/iter",
                i + 1,
                cfg.iters,
                run_loss / 25,
                sched.get_last_lr()[0],
                (time.time() - t0) / (i + 1 - start),
            )
            run_loss = 0.0
        if (i + 1) % cfg.val_every == 0 or i + 1 == cfg.iters:
            v = validate(model, val_set, device)
            log.info(
                "iter %d validation Dice: myo %.4f lv %.4f rv %.4f",
                i + 1,
                v["myo"],
                v["lv"],
                v["rv"],
            )
            state = {
                "model": model.state_dict(),
                "opt": opt.state_dict(),
                "sched": sched.state_dict(),
                "iter": i + 1,
                "best": max(best, v["myo"]),
                "config": asdict(cfg),
                "config_digest": cfg.digest(),
                "val": v,
            }
            if v["myo"] > best:
                best = v["myo"]
                torch.save(state, best_path)
                log.info("  new best (myo Dice %.4f) -> %s", best, best_path)
            torch.save(state, latest)
    log.info("training done in %.1f min", (time.time() - t0) / 60)
    return best_path
