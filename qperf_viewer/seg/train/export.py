"""Export a checkpoint to ``models/qperf_seg.onnx`` + ``models/metadata.json`` and check that
onnxruntime reproduces torch's output."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import torch

from qperf_viewer import __version__
from qperf_viewer.seg.preprocess import PreprocessParams
from qperf_viewer.seg.train.model import ResUNet

log = logging.getLogger(__name__)

MODEL_FILE = "qperf_seg.onnx"
METADATA_FILE = "metadata.json"
MODEL_VERSION = "1.0.0"


def load_checkpoint(path: Path) -> tuple[ResUNet, dict]:
    ck = torch.load(path, weights_only=False, map_location="cpu")
    cfg = ck["config"]
    params = PreprocessParams.from_dict(cfg["params"])
    model = ResUNet(params.n_frames, 4, cfg["base"], cfg["depth"])
    model.load_state_dict(ck["model"])
    model.eval()
    return model, ck


def export_onnx(checkpoint: Path, models_dir: Path, extra: dict | None = None) -> Path:
    """Write the ONNX model and metadata from ``checkpoint``; returns the ONNX path."""
    model, ck = load_checkpoint(checkpoint)
    cfg = ck["config"]
    params = PreprocessParams.from_dict(cfg["params"])
    models_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = models_dir / MODEL_FILE
    tmp = models_dir / (MODEL_FILE + ".tmp")
    dummy = torch.zeros(1, params.n_frames, params.crop_px, params.crop_px)
    torch.onnx.export(
        model,
        (dummy,),
        str(tmp),
        input_names=["x"],
        output_names=["logits"],
        dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    # weights stored as float16 (half the size), computed in float32: see compact.py
    from qperf_viewer.seg.train.compact import half_weights

    half_weights(tmp, tmp)
    os.replace(tmp, onnx_path)
    # ORT vs torch
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.3, (2, params.n_frames, params.crop_px, params.crop_px)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    got = sess.run(None, {"x": x})[0]
    err = float(np.abs(ref - got).max())
    agree = float(np.mean(ref.argmax(1) == got.argmax(1)))
    log.info("ONNX export %s: max |ORT - torch| = %.2e, labels agree %.5f", onnx_path, err, agree)
    if err > 2e-2 or agree < 0.999:  # float16 weights: logits differ by ~1e-3
        raise RuntimeError(f"ONNX output differs from torch by {err:.3g} ({agree:.4f} agree)")
    sha = hashlib.sha256(onnx_path.read_bytes()).hexdigest()
    meta = {
        "name": "qperf_seg",
        "version": MODEL_VERSION,
        "app_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "framework": f"torch {torch.__version__} -> ONNX opset 17",
        "input": {
            "name": "x",
            "shape": ["batch", params.n_frames, params.crop_px, params.crop_px],
            "dtype": "float32",
            "description": "normalised enhancement frames on the 1 mm crop grid (F, H, W)",
        },
        "output": {
            "name": "logits",
            "shape": ["batch", 4, params.crop_px, params.crop_px],
            "classes": ["background", "lv_blood_pool", "myocardium", "rv_blood_pool"],
        },
        "preprocessing": params.to_dict(),
        "architecture": {
            "type": "ResUNet",
            "base": cfg["base"],
            "depth": cfg["depth"],
            "parameters": int(sum(p.numel() for p in model.parameters())),
        },
        "training": {
            "config_hash": ck["config_digest"],
            "iterations": ck["iter"],
            "seed": cfg["seed"],
            "validation": ck.get("val", {}),
            "data": cfg.get("data", {}),
        },
        "onnx_sha256": sha,
        "ort_max_abs_diff": err,
        "ort_label_agreement": agree,
        "weights": "float16 storage, float32 compute (Cast nodes folded by onnxruntime)",
    }
    if extra:
        meta.update(extra)
    mtmp = models_dir / (METADATA_FILE + ".tmp")
    mtmp.write_text(json.dumps(meta, indent=2, default=str))
    os.replace(mtmp, models_dir / METADATA_FILE)
    return onnx_path
