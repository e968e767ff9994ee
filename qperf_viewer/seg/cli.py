"""``qperf-viewer train``: train the segmentation model and export it to ONNX.

Needs the optional training dependencies (``pip install -e .[train]``: torch, onnx). The
``segment`` command is wired in the pipeline (it needs the DICOM index and motion correction).
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train the segmentation model on phantom exams and export models/qperf_seg.onnx",
        description=(
            "Generate (or reuse) cached phantom exams under WORK/seg_cache, train the U-Net on "
            "CPU with a fixed seed, checkpoint to WORK/seg_ckpt, export the best model to "
            "ONNX with metadata, and evaluate it on held-out exams."
        ),
    )
    p.add_argument("--seed", type=int, default=20260115, help="seed of split, data and weights")
    p.add_argument("--small", action="store_true", help="tiny quick configuration (minutes)")
    p.add_argument(
        "--iters", type=int, help="stage-1 training iterations (default 1600; small 120)"
    )
    p.add_argument(
        "--finetune-iters",
        type=int,
        help="stage-2 iterations of the full recipe (default 800; 0: stage 1 only)",
    )
    p.add_argument("--train-exams", type=int, help="number of training exams (default 72)")
    p.add_argument("--work", default=".work", help="cache/checkpoint folder (default .work)")
    p.add_argument(
        "--models-out",
        help="where to write qperf_seg.onnx + metadata.json (default models/; with --small "
        "WORK/models_small)",
    )
    p.add_argument(
        "--source",
        choices=("phantom", "standin"),
        default="phantom",
        help="training data source (standin: simple ellipses, for debugging)",
    )
    p.add_argument(
        "--finetune",
        metavar="DIR",
        help="also train on user slices in DIR (see models/README.md, 'Fine-tuning')",
    )
    p.add_argument("--init", metavar="CKPT", help="start from this checkpoint's weights")
    p.add_argument("--lr", type=float, help="peak learning rate (default 2e-3)")
    p.add_argument("--jitter-mm", type=float, help="crop-centre jitter SD in mm (default 12)")
    p.add_argument("--ckpt-name", help="checkpoint folder name under WORK (default seg_ckpt)")
    p.add_argument("--export-only", action="store_true", help="export WORK/seg_ckpt/best.pt")
    p.add_argument("--no-eval", action="store_true", help="skip the held-out evaluation")
    p.add_argument("--log", help="also append the log to this file")
    p.set_defaults(handler=_train)

    e = sub.add_parser(
        "evaluate-model",
        help="measure the installed segmentation model on held-out phantom exams and real data",
        description=(
            "Generate (or reuse) the held-out test exams of the training split (seeds never "
            "trained on, held-out variant families included), segment them with the ONNX model "
            "through the app's inference path, and print per-variant metrics; with --real, also "
            "the Dice on hand-labelled real exams. No PyTorch needed."
        ),
    )
    e.add_argument("--models", help="folder with qperf_seg.onnx + metadata.json (default models/)")
    e.add_argument("--seed", type=int, default=20260115, help="seed of the training split")
    e.add_argument("--per-variant", type=int, default=2, help="test exams per variant (default 2)")
    e.add_argument("--work", default=".work", help="cache folder (default .work)")
    e.add_argument(
        "--real", metavar="DIR", help="real labelled exams (e.g. ../shared/data/real_labelled)"
    )
    e.add_argument("--public", metavar="DIR", help="public QPerf examples: overlays for review")
    e.add_argument("--out", default=".work/eval", help="folder for JSON, tables and overlays")
    e.add_argument(
        "--sectors",
        type=int,
        default=0,
        metavar="N",
        help="also run the whole pipeline on N held-out exams per variant: AHA agreement and "
        "segment MBF from automatic vs truth masks on the same maps",
    )
    e.set_defaults(handler=_evaluate)

    x = sub.add_parser(
        "export-training",
        help="write fine-tuning samples from an exam and its saved segmentation corrections",
        description=(
            "Motion-correct and segment the exam in DIR as the app does, apply the corrections "
            "saved for it (RESULTS/edits), and write one training sample per corrected slice "
            "into OUT, for 'qperf-viewer train --finetune OUT'."
        ),
    )
    x.add_argument("dir", help="the exam's DICOM folder")
    x.add_argument("--out", required=True, help="folder for the samples")
    x.add_argument("--results", help="the exam's results folder (default: the user data folder)")
    x.add_argument("--study", help="StudyInstanceUID when DIR holds several studies")
    x.add_argument(
        "--include-automatic", action="store_true", help="also export uncorrected slices"
    )
    x.set_defaults(handler=_export_training)


def _train(args: argparse.Namespace) -> int:
    import logging
    import os
    from pathlib import Path

    # Passive OpenMP waiting: on a shared 2-core machine spinning threads cost up to 4x.
    # Must be set before torch (libgomp) is loaded.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

    from qperf_viewer.errors import InputError

    try:
        import torch  # noqa: F401
    except ImportError as exc:
        raise InputError(
            "training needs PyTorch.", hint="Install the extras: pip install -e '.[train]'."
        ) from exc
    from qperf_viewer import config
    from qperf_viewer.seg.train.run import run_training

    root = logging.getLogger()
    root.setLevel(logging.INFO)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not root.handlers:
        h = logging.StreamHandler()
        h.setFormatter(fmt)
        root.addHandler(h)
    if args.log:
        fh = logging.FileHandler(args.log)
        fh.setFormatter(fmt)
        root.addHandler(fh)
    work = Path(args.work)
    out = (
        Path(args.models_out)
        if args.models_out
        else (work / "models_small" if args.small else config.models_dir())
    )
    summary = run_training(
        source=args.source,
        work_dir=work,
        models_out=out,
        seed=args.seed,
        small=args.small,
        iters=args.iters,
        n_train=args.train_exams,
        finetune_dir=Path(args.finetune) if args.finetune else None,
        export_only=args.export_only,
        evaluate=not args.no_eval,
        init_from=Path(args.init) if args.init else None,
        lr=args.lr,
        jitter_mm=args.jitter_mm,
        ckpt_name=args.ckpt_name,
        finetune_iters=args.finetune_iters,
    )
    m = summary.get("test_metrics", {}).get("overall")
    if m:
        print(
            f"held-out: myo Dice {m['myo_dice']:.4f}, LV Dice {m['lv_dice']:.4f}, "
            f"boundary {m['boundary_px']:.2f} px, Hausdorff {m['hausdorff_mm']:.2f} mm, "
            f"RV angle {m['rv_angle_err_deg']:.1f} deg"
        )
    print(f"model written to {summary['onnx']}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    _training_tools("evaluate-model")
    import json
    import logging
    from pathlib import Path

    from qperf_viewer import config
    from qperf_viewer.errors import InputError
    from qperf_viewer.seg.train.card import phantom_table, real_table, sectors_table
    from qperf_viewer.seg.train.data import build_cache
    from qperf_viewer.seg.train.evaluate import evaluate_model, evaluate_real, render_public
    from qperf_viewer.seg.train.run import HELD_OUT, make_split

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    models = Path(args.models) if args.models else config.models_dir()
    if args.per_variant < 1:
        raise InputError("--per-variant must be at least 1 (test exams per variant).")
    for flag, folder in (("--real", args.real), ("--public", args.public)):
        if folder and not Path(folder).is_dir():
            raise InputError(f"{flag}: no such folder.", path=str(folder), hint="Check the path.")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    split = make_split("phantom", args.seed, 1, 1, args.per_variant)
    paths = build_cache(Path(args.work) / "seg_cache", "phantom", split["test"], cut=False)
    res = evaluate_model(models, paths)
    (out / "seg_eval.json").write_text(json.dumps(res, indent=2))
    text = "## Held-out phantom exams\n\n" + phantom_table(out / "seg_eval.json", HELD_OUT)
    if args.sectors:
        from qperf_viewer.seg.train.evaluate import evaluate_sectors
        from qperf_viewer.seg.train.run import TEST_VARIANTS

        items = [(sd, v) for sd, v in split["test"] if v in TEST_VARIANTS]
        seen: dict[str, int] = {}
        keep = []
        for sd, v in items:
            if seen.get(v, 0) < args.sectors:
                seen[v] = seen.get(v, 0) + 1
                keep.append((sd, v))
        sec = evaluate_sectors(keep, Path(args.work) / "sector_eval", models_dir=models)
        (out / "seg_sectors.json").write_text(json.dumps(sec, indent=2))
        text += "\n## AHA sectors and segment MBF (automatic vs truth masks, same maps)\n\n"
        text += sectors_table(sec)
    if args.real:
        real = evaluate_real(Path(args.real), models_dir=models, overlay_dir=out)
        (out / "seg_real.json").write_text(json.dumps(real, indent=2))
        text += "\n## Real labelled exams\n\n" + real_table(out / "seg_real.json")
    if args.public:
        pub = render_public(Path(args.public), out, models_dir=models)
        (out / "seg_public.json").write_text(json.dumps(pub, indent=2, default=str))
        text += "\n## Public QPerf examples\n\n```\n" + json.dumps(pub, indent=2, default=str)
        text += "\n```\n"
    (out / "tables.md").write_text(text)
    print(text)
    return 0


def _export_training(args: argparse.Namespace) -> int:
    _training_tools("export-training")
    from qperf_viewer.seg.train.user_data import export_training

    paths = export_training(
        args.dir,
        args.out,
        results_dir=args.results,
        study_uid=args.study,
        include_automatic=args.include_automatic,
    )
    for p in paths:
        print(p)
    print(
        f"{len(paths)} training sample(s) written; fine-tune with: qperf-viewer train "
        f"--init CHECKPOINT --finetune {args.out}"
    )
    return 0


def _training_tools(command: str):
    """The training package, or a clear error where it is not installed (the standalone
    bundle leaves it out)."""
    import importlib

    from qperf_viewer.errors import InputError

    try:
        return importlib.import_module("qperf_viewer.seg.train")
    except ImportError as exc:
        raise InputError(
            f"'{command}' needs the training tools, which the standalone application does not "
            "include.",
            hint="Run it from a source install: pip install -e '.[train]'.",
        ) from exc
