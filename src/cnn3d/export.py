"""`cnn3d export`: a checkpoint as ONNX, TorchScript or `torch.export` (.pt2), with proof that
the exported graph computes what the checkpoint does.

The exported network takes the normalised float clips [N, C, T, H, W] (N free) and returns
(features, logits): the pooled features of the last stage and the class scores, what
`classify` and `features` use. Each file carries the model's card as JSON metadata (the
`cnn3d` key: spec with normalisation, clip size, class names, channel count; the input's
layout), so an engine knows how to feed it without the checkpoint.

Parity is always checked: the checkpoint and the exported file (run through ONNX Runtime for
ONNX) score the same clips, a few real-looking ones (moving shapes, `data.synthetic`, through
the model's own evaluation transform and normalisation) and a few random ones, at two batch
sizes; the export fails when the largest logit difference relative to the logits' range
exceeds `tolerance`, or when a top-1 choice differs where PyTorch's two best logits are further
apart than that difference (a disagreement a near tie cannot explain).
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import UsageError
from .files import EXPORTED_SUFFIXES

FORMATS = dict(zip(EXPORTED_SUFFIXES, ("onnx", "pt2", "torchscript"), strict=True))
METADATA_KEY = "cnn3d"
OPSET = 18
TOLERANCE = 1e-4  # fp32: largest |logit difference| / (max logit - min logit)


@dataclass(frozen=True)
class Parity:
    """How the exported model agrees with the checkpoint on `n_clips` clips."""

    n_clips: int
    max_abs_error: float  # of the logits
    max_rel_error: float  # max |difference| / the reference logits' range
    top1_agreement: float  # fraction of clips with the same top-1 class
    unexplained: int  # top-1 differences where the reference's margin exceeds the error
    tolerance: float

    @property
    def passed(self) -> bool:
        return self.max_rel_error <= self.tolerance and self.unexplained == 0

    def describe(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        return (
            f"parity {verdict} on {self.n_clips} clips: max abs error {self.max_abs_error:.3g}, "
            f"max relative error {self.max_rel_error:.3g} (tolerance {self.tolerance:g}), top-1 "
            f"agreement {100 * self.top1_agreement:.1f}%"
            + (f", {self.unexplained} unexplained by near ties" if self.unexplained else "")
        )


def export_format(path: str | os.PathLike) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise UsageError(f"{path}: export writes .onnx (ONNX), .ts (TorchScript) or .pt2 files")
    return FORMATS[suffix]


def metadata(spec) -> dict:
    return {
        "format": "cnn3d-export",
        "spec": spec.to_dict(),
        "input": "float32 clips [N, C, T, H, W], normalised: (pixel * value_range / 255 - mean) "
        "/ std, per channel",
        "outputs": ["features", "logits"],
        "opset": OPSET,
    }


def parity_clips(spec, channels: int, n_real: int = 4, n_random: int = 4) -> torch.Tensor:
    """Normalised float clips: moving shapes through the model's evaluation transform, and
    standard-normal noise (a wider range of inputs than any video gives)."""
    from .data.network_input import normalize
    from .data.synthetic import CLASSES, synthesize_video
    from .data.transforms import EvalTransform

    rng = np.random.default_rng(0)
    transform = EvalTransform(spec.sample_size, "center")
    clips = []
    for k in range(n_real):
        frames = synthesize_video(CLASSES[k % len(CLASSES)], rng, spec.clip_length, 120, 160)
        clip = transform(torch.from_numpy(frames).permute(0, 3, 1, 2))
        clips.append(clip[:channels])
    real = normalize(torch.stack(clips), spec.normalization)
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(n_random, *real.shape[1:], generator=generator)
    return torch.cat([real, noise])


def compare(reference: torch.Tensor, exported: torch.Tensor, tolerance: float) -> Parity:
    reference, exported = reference.double(), exported.double()
    error = (reference - exported).abs()
    spread = (reference.amax(1) - reference.amin(1)).clamp_min(1e-12)
    top2 = reference.topk(min(2, reference.shape[1]), 1).values
    margin = top2[:, 0] - top2[:, -1]
    differ = reference.argmax(1) != exported.argmax(1)
    unexplained = differ & (margin > 2 * error.amax(1))
    return Parity(
        n_clips=len(reference),
        max_abs_error=float(error.max()),
        max_rel_error=float((error.amax(1) / spread).max()),
        top1_agreement=float((~differ).double().mean()),
        unexplained=int(unexplained.sum()),
        tolerance=tolerance,
    )


def export_model(
    checkpoint: str | os.PathLike, out: str | os.PathLike, tolerance: float = TOLERANCE
) -> Parity:
    """Export `checkpoint` to `out` (format from the suffix) and check parity; the file is
    written only when parity passes (a failed export leaves `out` as it was)."""
    from .models import input_channels, load_model
    from .models.features import FeatureExtractor

    fmt = export_format(out)
    model = load_model(checkpoint)
    spec = model.spec
    channels = input_channels(model)
    heads = FeatureExtractor(model).eval()
    clips = parity_clips(spec, channels)
    card = json.dumps(metadata(spec))
    out = Path(out)
    tmp = out.with_name(f".{out.stem}.partial{out.suffix}")  # (the suffix says the format)
    try:
        with torch.no_grad():
            write_exported(heads, clips[:2], tmp, fmt, card)
            reference = torch.cat([heads(clips[:3])[1], heads(clips[3:])[1]])
        runner = load_exported(tmp, engine="onnxruntime" if fmt == "onnx" else "torch")
        exported = torch.cat([runner(clips[:3])[1], runner(clips[3:])[1]])  # batches 3 and 5
        parity = compare(reference, exported, tolerance)
        if parity.passed:
            os.replace(tmp, out)  # the same folder: atomic
        return parity
    finally:
        tmp.unlink(missing_ok=True)


def write_exported(heads, example: torch.Tensor, path: Path, fmt: str, card: str) -> None:
    batch = torch.export.Dim("batch", min=1, max=4096)
    if fmt == "onnx":
        import onnx

        program = torch.onnx.export(
            heads, (example,), dynamo=True, input_names=["clips"],
            output_names=["features", "logits"], dynamic_shapes=({0: batch},),
            opset_version=OPSET, verbose=False,
        )  # fmt: skip
        proto = program.model_proto
        entry = proto.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, card
        onnx.save(proto, str(path))
    elif fmt == "pt2":
        program = torch.export.export(heads, (example,), dynamic_shapes=({0: batch},))
        torch.export.save(program, str(path), extra_files={f"{METADATA_KEY}.json": card})
    else:
        with warnings.catch_warnings():  # PyTorch deprecates TorchScript; it still runs
            warnings.simplefilter("ignore", FutureWarning)
            traced = torch.jit.trace(heads, (example,), check_trace=False)
            torch.jit.save(traced, str(path), _extra_files={f"{METADATA_KEY}.json": card})


class Exported:
    """An exported model as `iter_model` runs one: `(features, logits) = runner(clips)` on
    float CPU clips, and `spec` from the file's metadata."""

    def __init__(self, path: str | os.PathLike, engine: str):
        from .models.zoo import ModelSpec

        self.path, self.engine = Path(path), engine
        card, self._run = open_engine(self.path, engine)
        if card.get("format") != "cnn3d-export":
            raise UsageError(f"{path}: not a model exported by cnn3d (no cnn3d metadata)")
        self.spec = ModelSpec.from_dict(card["spec"])
        self.channels = int(self.spec.options.get("n_input_channels", 3))

    def __call__(self, clips: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features, logits = self._run(clips.float().contiguous())
        return features, logits


def load_exported(path: str | os.PathLike, engine: str = "auto") -> Exported:
    if engine == "auto":
        engine = "onnxruntime" if export_format(path) == "onnx" else "torch"
    return Exported(path, engine)


def open_engine(path: Path, engine: str):
    """(the card, a function clips -> (features, logits)) for an exported file."""
    fmt = export_format(path)
    if engine in ("onnxruntime", "openvino") and fmt != "onnx":
        raise UsageError(f"{path}: --engine {engine} runs .onnx files (cnn3d export ... x.onnx)")
    if engine == "torch" and fmt == "onnx":
        raise UsageError(f"{path}: an .onnx file runs with --engine onnxruntime or openvino")
    if engine == "onnxruntime":
        return _onnxruntime(path)
    if engine == "openvino":
        return _openvino(path)
    extra = {f"{METADATA_KEY}.json": ""}
    if fmt == "pt2":
        program = torch.export.load(str(path), extra_files=extra)
        module = program.module()
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            module = torch.jit.load(str(path), _extra_files=extra)
    card = json.loads(extra[f"{METADATA_KEY}.json"] or "{}")

    def run(clips):
        with torch.no_grad():
            return module(clips)

    return card, run


def _onnxruntime(path: Path):
    try:
        import onnxruntime as ort
    except ImportError:
        raise UsageError(
            "--engine onnxruntime needs onnxruntime (pip install onnxruntime)"
        ) from None
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    card = json.loads(session.get_modelmeta().custom_metadata_map.get(METADATA_KEY, "{}"))

    def run(clips):
        features, logits = session.run(["features", "logits"], {"clips": clips.numpy()})
        return torch.from_numpy(features), torch.from_numpy(logits)

    return card, run


def _openvino(path: Path):
    try:
        import openvino as ov
    except ImportError:
        raise UsageError("--engine openvino needs OpenVINO (pip install openvino)") from None
    import onnx

    card = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})

    def run(clips):
        result = compiled(clips.numpy())
        return torch.from_numpy(result["features"]), torch.from_numpy(result["logits"])

    return json.loads(card.get(METADATA_KEY, "{}")), run


def parity_report(parity: Parity) -> dict:
    return asdict(parity) | {"passed": parity.passed}
