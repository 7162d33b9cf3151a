"""`cnn3d benchmark model|loader|train`: clips/s on this machine, and whether the loader or the
model is the limit (one table, a verdict in words, and `--output` JSON)."""

from __future__ import annotations

from ..values import depth, non_negative_int, positive_float, positive_int
from . import checks
from .common import add_clip_shape, add_data_paths, add_device, add_parser, add_prefetch

MEMORY_FORMATS = ("channels_last", "contiguous")


def add(sub) -> None:
    p = add_parser(sub, "benchmark", "clips/s of a model, of your data's loader, or of both")
    bsub = p.add_subparsers(dest="what", required=True)
    model = add_parser(bsub, "model", "training and inference clips/s on tensors on the device")
    add_model_options(model)
    add_clip_options(model)
    add_common(model, steps=20)
    model.add_argument(
        "--compare",
        nargs="*",
        default=[],
        choices=("r3d_18", "r2plus1d_18", "mc3_18"),
        help="torchvision's video models, run beside at the same settings",
    )
    model.set_defaults(run=run_model)
    loader = add_parser(bsub, "loader", "clips/s of the real loader over your data, no model")
    add_loader_options(loader, many_workers=True)
    add_clip_options(loader)
    add_common(loader, steps=None)
    loader.set_defaults(run=run_loader)
    train = add_parser(bsub, "train", "the model, the loader, and both together on your data")
    add_model_options(train, many=False)
    add_loader_options(train, many_workers=False)
    add_clip_options(train)
    add_common(train, steps=200)
    train.set_defaults(run=run_train)


def add_model_options(p, many: bool = True) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", default="resnet", help="family (see `cnn3d models`)")
    g.add_argument(
        "--model-depth", "--model_depth", type=depth, help="depth (default: the family's)"
    )
    g.add_argument(
        "--input-type",
        "--input",
        dest="input_type",
        choices=("rgb", "flow"),
        default="rgb",
        help="3 or 2 channels (as train's --input-type)",
    )
    g.add_argument(
        "--n-classes", "--n_classes", type=positive_int, default=400, help="classes of the head"
    )
    g.add_argument(
        "--precision",
        nargs="+" if many else None,
        choices=("fp32", "bf16", "fp16"),
        default=["fp32"] if many else None,
        help="autocast precision"
        + (
            " (several: one row each)"
            if many
            else "; default: what `cnn3d train` runs on the device (bf16 on GPUs and on CPUs "
            "with native bf16, fp16 on GPUs without bf16, fp32 elsewhere)"
        ),
    )
    g.add_argument(
        "--memory-format",
        nargs="+" if many else None,
        choices=MEMORY_FORMATS,
        default=["channels_last"] if many else "channels_last",
        help="the input's and weights' layout" + (" (several: one row each)" if many else ""),
    )


def add_clip_options(p) -> None:
    g = p.add_argument_group("clips")
    add_clip_shape(g)
    g.add_argument(
        "--batch-size", "--batch_size", type=positive_int, default=32, help="clips per step"
    )


def add_loader_options(p, many_workers: bool) -> None:
    g = p.add_argument_group("data")
    add_data_paths(g, "the videos' root", "the annotation file")
    g.add_argument("--subset", default="training", help="which subset's videos")
    g.add_argument(
        "--loader",
        "--mode",
        dest="loader",
        choices=("train", "val"),
        default="train",
        help="which loader: train (a random multi-scale crop per video) or val (3 centre clips "
        "per video); --mode is the older spelling",
    )
    g.add_argument(
        "--workers",
        "--n_threads",
        type=non_negative_int,
        nargs="+" if many_workers else None,
        default=[4] if many_workers else 4,
        help="DataLoader workers" + (" (several: one row each)" if many_workers else ""),
    )
    add_prefetch(g)
    g.add_argument("--batches", type=positive_int, default=50, help="batches timed")


def add_common(p, steps: int | None) -> None:
    g = p.add_argument_group("run")
    add_device(g)
    if steps is not None:
        g.add_argument("--steps", type=positive_int, default=steps, help="steps timed")
        g.add_argument("--warmup", type=non_negative_int, default=3, help="untimed steps first")
    g.add_argument(
        "--max-seconds",
        type=positive_float,
        default=60.0,
        help="stop timing a row after this long (at least 3 steps are timed)",
    )
    g.add_argument(
        "--output",
        "-o",
        help="write the rows, the machine and the verdict as JSON (default: printed only)",
    )


def model_settings(args, device):
    """One setting per family, precision and memory format asked for; no precision given:
    the one `cnn3d train` would use on `device`."""
    from ..benchmark import TORCHVISION, ModelSetting, default_precision

    if args.precision is None:
        precisions = [default_precision(device)]
    elif isinstance(args.precision, list):
        precisions = args.precision
    else:
        precisions = [args.precision]
    formats = args.memory_format if isinstance(args.memory_format, list) else [args.memory_format]
    families = [(args.model, args.model_depth)] + [(n, None) for n in getattr(args, "compare", [])]
    settings = []
    for family, family_depth in families:
        if family in TORCHVISION and args.input_type == "flow":
            continue  # torchvision's models take RGB only
        for precision in precisions:
            for fmt in formats:
                settings.append(
                    ModelSetting(
                        family,
                        family_depth,
                        args.clip_length,
                        args.sample_size,
                        args.batch_size,
                        precision,
                        fmt == "channels_last",
                        args.n_classes,
                        2 if args.input_type == "flow" else 3,
                    )  # fmt: skip
                )
    return settings


def loader_setting(args, workers: int):
    from ..benchmark import LoaderSetting

    return LoaderSetting(
        args.video_path, args.annotation_path, args.subset, args.loader, workers, args.batch_size,
        args.clip_length, args.sample_size, args.prefetch, args.batches,
    )  # fmt: skip


def device_of(args):
    from ..runtime import RuntimeConfig, prepare_device

    return prepare_device(RuntimeConfig(device=args.device).torch_device())


def timing_of(args):
    from ..benchmark import Timing

    return Timing(args.warmup, args.steps, args.max_seconds)


def check_model(args) -> None:
    from ..benchmark import TORCHVISION
    from ..models.zoo import canonical_family

    if args.model not in TORCHVISION:
        canonical_family(args.model)  # an unknown family: one line naming the known ones


def run_model(args) -> int:
    from ..benchmark import bench_model, verdict

    check_model(args)
    device = device_of(args)
    rows = [shown(bench_model(s, device, timing_of(args))) for s in model_settings(args, device)]
    ours = [r for r in rows if "torchvision" not in r["model"]]
    text = verdict(None, max(r["train_clips_s"] for r in ours))
    return report(args, device, rows, text)


def run_loader(args) -> int:
    from ..benchmark import bench_loader, verdict

    checks.input_file(args.annotation_path, "the annotation file")
    checks.input_folder(args.video_path, "the videos")
    device = device_of(args)
    rows = [
        shown(bench_loader(loader_setting(args, w), device, args.max_seconds)) for w in args.workers
    ]
    best = max(rows, key=lambda r: r["clips_s"])
    text = verdict(best["clips_s"], None)
    return report(args, device, rows, text)


def run_train(args) -> int:
    from ..benchmark import Timing, bench_loader, bench_model, bench_train, verdict

    check_model(args)
    checks.input_file(args.annotation_path, "the annotation file")
    checks.input_folder(args.video_path, "the videos")
    device = device_of(args)
    (setting,) = model_settings(args, device)
    loader = loader_setting(args, args.workers)
    timing = Timing(args.warmup, min(args.steps, 20), args.max_seconds)
    rows = [
        shown(bench_model(setting, device, timing)),
        shown(bench_loader(loader, device, args.max_seconds)),
        shown(bench_train(setting, loader, device, args.steps, args.max_seconds)),
    ]
    text = verdict(
        rows[1]["clips_s"],
        rows[0]["train_clips_s"],
        workers=args.workers,
        source=rows[1]["source"],
        data_wait_share=rows[2]["data_wait_share"],
        model=setting,
    )
    return report(args, device, rows, text)


def shown(row: dict) -> dict:
    """`row`, printed as soon as it is measured (a long run shows its progress)."""
    print(table([row]), flush=True)
    return row


def report(args, device, rows: list[dict], text: str) -> int:
    """The verdict after the rows already printed, and the JSON where asked."""
    from ..benchmark import machine
    from ..files import write_json

    print(f"\n{text}")
    if args.output:
        write_json(args.output, {"machine": machine(device), "rows": rows, "verdict": text})
        print(f"written to {args.output}")
    return 0


def table(rows: list[dict]) -> str:
    lines = []
    for row in rows:
        if row["kind"] == "model":
            lines.append(
                f"model   {row['model']:<26}{row['precision']:>6} {row['memory_format']:<17}"
                f"batch {row['batch']:<4} train {row['train_clips_s']:>9,.1f} clips/s "
                f"({row['train_step_ms']:,.1f} ms/step)  inference {row['infer_clips_s']:>9,.1f}"
                " clips/s"
            )
        elif row["kind"] == "loader":
            lines.append(
                f"loader  {row['source']:<18} {row['workers']:>2} workers  {row['clips_s']:>9,.1f}"
                f" clips/s   per clip: decode {row['decode_ms']:.1f} ms, transform "
                f"{row['transform_ms']:.1f} ms, collate {row['collate_ms']:.2f} ms, to the "
                f"device {row['copy_ms']:.2f} ms; one worker {row['worker_clips_s']:.1f} clips/s;"
                f" {row['batch_mb_uint8']:.1f} MB/batch ({row['failed']} unreadable)"
            )
        else:
            lines.append(
                f"train   {row['model']:<26}{row['precision']:>6} {row['workers']:>2} workers"
                f"  {row['clips_s']:>9,.1f} clips/s over {row['steps']} steps, waiting for "
                f"data {row['data_wait_share']:.0%} of the time"
            )
    return "\n".join(lines)
