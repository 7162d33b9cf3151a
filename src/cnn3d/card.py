"""Checkpoint cards: what a checkpoint says of itself. Training stores how the run was made
(`train.training_card`: dataset and size, epochs, recipe or config, cnn3d version); `cnn3d
test --record` adds an evaluation (protocol and measured metrics) to a copy; `cnn3d info`
prints the card beside what the weights show (family, depth, options, parameters, GFLOPs per
clip, input, normalisation, classes) and, for the original project's released files, what was
detected and what the original reports for that file (from the matching recipe).
"""

from __future__ import annotations

import time
from pathlib import Path

from . import __version__
from .errors import UsageError
from .files import EXPORTED_SUFFIXES

METRIC_NAMES = {
    "video_top1": "video top-1",
    "video_top5": "video top-5",
    "average_top1_top5": "average of video top-1 and top-5",
    "clip_top1": "clip top-1",
    "mean_class_accuracy": "mean class accuracy",
}


def read_card(path: str | Path) -> dict:
    """The card a checkpoint holds ({} for one without: the original's, torchvision's)."""
    from .models.checkpoint import read_file

    if str(path).endswith(".safetensors"):
        return {}
    card = read_file(path).get("card")
    return dict(card) if isinstance(card, dict) else {}


def evaluation_entry(summary: dict, subset: str, annotation_path, protocol: dict) -> dict:
    """An evaluation for a card: the protocol and the metrics `run_test` measured."""
    metrics = {k: summary[k] for k in (*METRIC_NAMES, "n_videos", "n_clips") if k in summary}
    return {
        "dataset": Path(annotation_path).name,
        "subset": subset,
        "protocol": protocol,
        "metrics": metrics,
        "missing_videos": len(summary.get("missing_videos", [])),
        "unreadable_videos": len(summary.get("unreadable_videos", [])),
        "cnn3d_version": __version__,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def record_evaluation(source: str | Path, destination: str | Path, evaluation: dict) -> None:
    """Write a copy of `source` in cnn3d's format (weights, spec, card; no optimizer state)
    whose card lists `evaluation` after the ones it already had."""
    from .models.checkpoint import load_model, save_model

    if not str(destination).endswith(".pth"):
        raise UsageError(f"{destination}: --record writes a .pth copy (it keeps the card)")
    if Path(destination).resolve() == Path(source).resolve():
        raise UsageError(f"{destination}: --record writes a copy; give another file name")
    card = read_card(source)
    card["evaluations"] = [*card.get("evaluations", []), evaluation]
    save_model(destination, load_model(source), extra={"card": card})


def stored_as(path: Path, normalization: str, release: str | None = None) -> str:
    """How a checkpoint's weights are stored, as detected, in words."""
    from .models.checkpoint import FORMAT_NAME, normalise_keys, read_file, unwrap_state_dict

    obj = read_file(path)
    if obj.get("format") == FORMAT_NAME:
        kept = f"; first released as {release}" if release else ""
        return f"cnn3d's format (the model's spec stored with the weights{kept})"
    if release:
        return f"{release} (detected from its keys; {normalization} input)"
    _, layout = normalise_keys(unwrap_state_dict(obj, path))
    if layout == "torchvision":
        return "torchvision's video model keys (detected; Kinetics-400 classes, its input)"
    era = "2018 release" if normalization == "hara2018" else "2020 release"
    return (
        f"the original project's {era} keys (detected: family and depth from the tensors, "
        f"{normalization} input)"
    )


def describe(path: str | Path) -> list[str]:
    """The lines `cnn3d info` prints."""
    from .models import count_flops, count_parameters, load_model
    from .recipes import recipe_for_release, reported_line

    path = Path(path)
    if path.suffix.lower() in EXPORTED_SUFFIXES:
        return describe_exported(path)
    model = load_model(path)
    spec = model.spec
    card = read_card(path)
    layout = stored_as(path, spec.normalization.name, spec.release)
    options = ", ".join(f"{k}={v}" for k, v in sorted(spec.options.items())) or "defaults"
    flops = count_flops(spec.family, spec.depth, spec.clip_length, spec.sample_size, **spec.options)
    norm = spec.normalization
    lines = [
        f"{path.name}: {spec.arch} ({options})",
        f"  stored as: {layout}",
        f"  parameters: {count_parameters(model) / 1e6:.2f} M; {flops / 1e9:.2f} GFLOPs per "
        f"{spec.clip_length}x{spec.sample_size}x{spec.sample_size} clip (forward, 2 per "
        "multiply-add)",
        f"  input: {spec.clip_length} frames (temporal stride {spec.t_stride}) of "
        f"{spec.sample_size}x{spec.sample_size}, normalisation {norm.name} (pixels x "
        f"{norm.value_range:g}/255, mean {fmt(norm.mean)}, std {fmt(norm.std)}"
        + (", channels in BGR order)" if norm.channel_order == "bgr" else ")"),
        f"  classes: {spec.n_classes}, names "
        + names_source(spec.class_names, card, layout, spec.n_classes),
    ]
    if card:
        lines += training_lines(card)
    for evaluation in card.get("evaluations", []):
        measured = ", ".join(
            f"{METRIC_NAMES.get(k, k)} {100 * v:.2f}"
            for k, v in evaluation["metrics"].items()
            if k in METRIC_NAMES
        )
        lines.append(
            f"  evaluated {evaluation['date']} on {evaluation['dataset']} "
            f"({evaluation['subset']}, {evaluation['metrics'].get('n_videos', '?')} videos; "
            f"{protocol_words(evaluation['protocol'])}): {measured}"
        )
    recipe = recipe_for_release(path.name)
    if recipe is not None:
        lines.append(f"  the original's release {path.name}: recipe {recipe.name} ({recipe.title})")
        for r in recipe.reported:
            lines.append(f"    reported: {reported_line(r)}")
        if not recipe.reported:
            lines.append(f"    reported: none ({recipe.note or 'no number found'})")
    return lines


def describe_exported(path: Path) -> list[str]:
    """What a file written by `cnn3d export` says of itself (its metadata); loading it checks
    its weights against the checksum recorded at export."""
    from .export import CHECKSUM_KEY, load_exported

    exported = load_exported(path)
    spec, norm = exported.spec, exported.spec.normalization
    options = ", ".join(f"{k}={v}" for k, v in sorted(spec.options.items())) or "defaults"
    return [
        f"{path.name}: {spec.arch} ({options}), exported by cnn3d; runs with --engine "
        + ("onnxruntime or openvino" if path.suffix.lower() == ".onnx" else "torch"),
        f"  input: float32 [N, {exported.channels}, {spec.clip_length}, {spec.sample_size}, "
        f"{spec.sample_size}], normalisation {norm.name} (pixels x {norm.value_range:g}/255, "
        f"mean {fmt(norm.mean)}, std {fmt(norm.std)}); outputs features and logits",
        f"  classes: {spec.n_classes}, names "
        + ("stored" if spec.class_names else "not stored (give --class-names NAMES.txt)"),
        f"  weights: match the checksum recorded at export ({CHECKSUM_KEY} {exported.checksum})"
        if exported.checksum
        else "  weights: no checksum recorded (exported by an older cnn3d; damage cannot be told)",
    ]


def names_source(names, card: dict, layout: str, n_classes: int) -> str:
    if not names:
        return "not stored (give --class-names NAMES.txt to name them)"
    if card.get("class_names_from"):
        return f"stored, from {card['class_names_from']}"
    if not layout.startswith("cnn3d") and n_classes == 400:
        return "the bundled Kinetics-400 list (alphabetical, as the original release expects)"
    return "stored in the checkpoint"


def training_lines(card: dict) -> list[str]:
    lines = []
    if "dataset" in card:
        lines.append(
            f"  trained on {card['dataset']} ({card.get('n_training_videos', '?')} training, "
            f"{card.get('n_validation_videos', '?')} validation videos): "
            f"{card.get('epochs_trained', '?')} of {card.get('epochs_planned', '?')} epochs"
            + (f", best validation video top-1 {100 * card['best_score']:.2f}"
               if card.get("best_score", -1) >= 0 else "")
        )  # fmt: skip
    if card.get("recipe"):
        lines.append(f"  recipe: {card['recipe']}")
    if card.get("pretrained_from"):
        lines.append(f"  fine-tuned from: {card['pretrained_from']}")
    config = card.get("config") or {}
    shown = ("model", "model_depth", "lr", "batch_size", "n_epochs", "lr_scheduler", "train_crop")
    settings = ", ".join(f"{k}={config[k]}" for k in shown if config.get(k) is not None)
    if settings:
        lines.append(f"  config: {settings} ({len(config)} options in all)")
    if card.get("cnn3d_version"):
        lines.append(f"  made by cnn3d {card['cnn3d_version']} ({card.get('started', '')})")
    return lines


def protocol_words(protocol: dict) -> str:
    views = protocol.get("views_per_video", "all windows")
    return f"{views} per video, tail {protocol.get('tail')}, {protocol.get('crop', 'center')} crop"


def fmt(values) -> str:
    return "(" + ", ".join(f"{v:g}" for v in values) + ")"
