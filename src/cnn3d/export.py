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
apart than that difference (a disagreement a near tie cannot explain). Parity is with PyTorch
in fp32 (what the export computes); PyTorch's bf16 autocast differs from both by more.

The card also records a SHA-256 of the weights as written (`weights_checksum`), and loading
checks it, so a file damaged after export (a flipped bit in a weight that still parses) is named
instead of answering differently. Files exported before the checksum existed load as before.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import logging
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import CheckpointError, Cnn3dError, UsageError
from .files import EXPORTED_SUFFIXES

FORMATS = dict(zip(EXPORTED_SUFFIXES, ("onnx", "pt2", "torchscript"), strict=True))
FORMAT_NAMES = {"onnx": "an ONNX model", "pt2": "a torch.export program", "torchscript": "a "
                "TorchScript module"}  # fmt: skip
METADATA_KEY = "cnn3d"
CHECKSUM_KEY = "weights_sha256"  # in the card; absent from files exported before it existed
# the modules each job needs, and the extra that installs them (pyproject.toml)
EXPORT_EXTRA = "pip install -e '.[export]'"
OPENVINO_EXTRA = "pip install -e '.[openvino]'"
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


def require(modules: tuple[str, ...], job: str, extra: str) -> None:
    """A one-line error naming `extra` when a module `job` needs is not installed (checked
    before any work: an import costs a second, an export minutes)."""
    missing = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise UsageError(f"{job} needs {', '.join(missing)}, not installed: {extra}")


def export_model(
    checkpoint: str | os.PathLike, out: str | os.PathLike, tolerance: float = TOLERANCE
) -> Parity:
    """Export `checkpoint` to `out` (format from the suffix; its folder is made) and check
    parity; the file is written only when parity passes (a failed export leaves `out` as it
    was)."""
    from .models import input_channels, load_model
    from .models.features import FeatureExtractor

    fmt = export_format(out)
    if fmt == "onnx":  # onnxscript writes the graph, onnxruntime runs it for the parity
        require(("onnx", "onnxscript", "onnxruntime"), f"{out}: exporting to ONNX", EXPORT_EXTRA)
    model = load_model(checkpoint)
    spec = model.spec
    channels = input_channels(model)
    heads = FeatureExtractor(model).eval()
    clips = parity_clips(spec, channels)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.partial{out.suffix}")  # (the suffix says the format)
    try:
        with torch.no_grad():
            write_exported(heads, clips[:2], tmp, fmt, metadata(spec))
            reference = torch.cat([heads(clips[:3])[1], heads(clips[3:])[1]])
        runner = load_exported(tmp, engine="onnxruntime" if fmt == "onnx" else "torch")
        exported = torch.cat([runner(clips[:3])[1], runner(clips[3:])[1]])  # batches 3 and 5
        parity = compare(reference, exported, tolerance)
        if parity.passed:
            os.replace(tmp, out)  # the same folder: atomic
        return parity
    finally:
        tmp.unlink(missing_ok=True)


def write_exported(heads, example: torch.Tensor, path: Path, fmt: str, card: dict) -> None:
    """Write `heads` traced on `example` to `path` with `card` as its metadata, plus the
    checksum of the weights as written (`CHECKSUM_KEY`)."""
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
        entry.key, entry.value = METADATA_KEY, with_checksum(card, onnx_weights(proto))
        onnx.save(proto, str(path))
    elif fmt == "pt2":
        program = torch.export.export(heads, (example,), dynamic_shapes=({0: batch},))
        card = with_checksum(card, program_weights(program))
        torch.export.save(program, str(path), extra_files={f"{METADATA_KEY}.json": card})
    else:
        with warnings.catch_warnings():  # PyTorch deprecates TorchScript; it still runs
            warnings.simplefilter("ignore", FutureWarning)
            traced = torch.jit.trace(heads, (example,), check_trace=False)
            card = with_checksum(card, torch_weights(traced.state_dict().items()))
            torch.jit.save(traced, str(path), _extra_files={f"{METADATA_KEY}.json": card})


def with_checksum(card: dict, weights: Iterable[tuple[str, str, tuple, bytes]]) -> str:
    return json.dumps(card | {CHECKSUM_KEY: weights_checksum(weights)})


def weights_checksum(weights: Iterable[tuple[str, str, tuple, bytes]]) -> str:
    """SHA-256 over `(name, dtype, shape, bytes)` of each weight, in the order of their names:
    for each, the line `name dtype shape` then the bytes (C order, the machine's byte order).
    The same weights give the same checksum however the file orders them."""
    digest = hashlib.sha256()
    for name, dtype, shape, data in sorted(weights, key=lambda weight: weight[0]):
        digest.update(f"{name} {dtype} {list(shape)}\n".encode())
        digest.update(data)
    return digest.hexdigest()


def onnx_weights(proto) -> list[tuple[str, str, tuple, bytes]]:
    """An ONNX graph's initializers (its weights) as `weights_checksum` takes them."""
    from onnx import numpy_helper

    weights = []
    for tensor in proto.graph.initializer:
        array = np.ascontiguousarray(numpy_helper.to_array(tensor))
        weights.append((tensor.name, str(array.dtype), array.shape, array.tobytes()))
    return weights


def torch_weights(named) -> list[tuple[str, str, tuple, bytes]]:
    """Named tensors (a state dict's items) as `weights_checksum` takes them; anything else
    (a torch.export program's script objects) is left out."""
    weights = []
    for name, tensor in named:
        if isinstance(tensor, torch.Tensor):
            tensor = tensor.detach().cpu().contiguous()
            data = tensor.reshape(-1).view(torch.uint8).numpy().tobytes()
            weights.append((name, str(tensor.dtype), tuple(tensor.shape), data))
    return weights


def program_weights(program) -> list[tuple[str, str, tuple, bytes]]:
    """A torch.export program's parameters, buffers and lifted constants."""
    named = [(f"state {k}", v) for k, v in program.state_dict.items()]
    named += [(f"constant {k}", v) for k, v in program.constants.items()]
    return torch_weights(named)


class Exported:
    """An exported model as `iter_model` runs one: `(features, logits) = runner(clips)` on
    float CPU clips, and `spec` from the file's metadata. Loading checks the weights against
    the checksum the card records (`checksum`: the recorded one, None for a file exported
    before cnn3d recorded one); a damaged or unreadable file is a `CheckpointError` naming it."""

    def __init__(self, path: str | os.PathLike, engine: str):
        from .models.zoo import ModelSpec

        self.path, self.engine = Path(path), engine
        raw_card, checksum, self._run = open_engine(self.path, engine)
        card = parse_card(self.path, raw_card)
        if card.get("format") != "cnn3d-export":
            raise UsageError(f"{path}: not a model exported by cnn3d (no cnn3d metadata)")
        try:
            self.spec = ModelSpec.from_dict(card["spec"])
        except (KeyError, TypeError, ValueError) as error:
            raise CheckpointError(
                f"{path}: its cnn3d metadata does not describe a model ({type(error).__name__}: "
                f"{error}); the file is damaged: export it again"
            ) from None
        self.channels = int(self.spec.options.get("n_input_channels", 3))
        self.checksum = card.get(CHECKSUM_KEY)
        if self.checksum is not None and checksum != self.checksum:
            raise CheckpointError(
                f"{path}: damaged: its weights do not match the checksum recorded at export "
                f"({CHECKSUM_KEY} {self.checksum[:12]}...); export it again from the checkpoint"
            )

    def __call__(self, clips: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features, logits = self._run(clips.float().contiguous())
        return features, logits


def load_exported(path: str | os.PathLike, engine: str = "auto") -> Exported:
    if engine == "auto":
        engine = "onnxruntime" if export_format(path) == "onnx" else "torch"
    return Exported(path, engine)


def parse_card(path: Path, raw: str | None) -> dict:
    """The card's JSON text as a dict ({} for a file without one)."""
    if not raw:
        return {}
    try:
        card = json.loads(raw)
    except ValueError as error:
        raise CheckpointError(
            f"{path}: its cnn3d metadata is not valid JSON ({error}); the file is damaged: "
            "export it again"
        ) from None
    if not isinstance(card, dict):
        raise CheckpointError(f"{path}: its cnn3d metadata is not a JSON object; export it again")
    return card


def open_engine(path: Path, engine: str):
    """(the card's JSON text, the checksum of the weights as read, a function clips ->
    (features, logits)) for an exported file. A file that cannot be read is a
    `CheckpointError` naming it."""
    fmt = export_format(path)
    if engine in ("onnxruntime", "openvino") and fmt != "onnx":
        raise UsageError(f"{path}: --engine {engine} runs .onnx files (cnn3d export ... x.onnx)")
    if engine == "torch" and fmt == "onnx":
        raise UsageError(f"{path}: an .onnx file runs with --engine onnxruntime or openvino")
    if engine == "onnxruntime":
        require(("onnx", "onnxruntime"), f"{path}: --engine onnxruntime", EXPORT_EXTRA)
    if engine == "openvino":
        require(("onnx", "openvino"), f"{path}: --engine openvino", OPENVINO_EXTRA)
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file (0 bytes); export it again")
    try:
        if fmt == "onnx":
            return _onnx(path, engine)
        return _torch(path, fmt)
    except Cnn3dError:
        raise
    except Exception as error:  # each library has its own: protobuf, zip, ORT, OpenVINO
        reason = (str(error).strip().split(". ")[0].splitlines() or [type(error).__name__])[0]
        raise CheckpointError(
            f"{path}: cannot be read as {FORMAT_NAMES[fmt]} ({reason}); the file is damaged "
            "or not written by cnn3d export: export it again"
        ) from None


def _torch(path: Path, fmt: str):
    extra = {f"{METADATA_KEY}.json": ""}
    if fmt == "pt2":
        # torch.export logs a traceback for a file it cannot read, then fails: the error says it
        with _quiet("torch.export"):
            program = torch.export.load(str(path), extra_files=extra)
        checksum = weights_checksum(program_weights(program))
        module = program.module()
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            module = torch.jit.load(str(path), _extra_files=extra)
        checksum = weights_checksum(torch_weights(module.state_dict().items()))

    def run(clips):
        with torch.no_grad():
            return module(clips)

    return extra[f"{METADATA_KEY}.json"], checksum, run


@contextlib.contextmanager
def _quiet(logger_name: str):
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _onnx(path: Path, engine: str):
    import onnx

    proto = onnx.load(str(path))
    card = {p.key: p.value for p in proto.metadata_props}.get(METADATA_KEY)
    checksum = weights_checksum(onnx_weights(proto))
    del proto  # the engine reads the file itself
    run = _onnxruntime(path) if engine == "onnxruntime" else _openvino(path)
    return card, checksum, run


def _onnxruntime(path: Path):
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def run(clips):
        features, logits = session.run(["features", "logits"], {"clips": clips.numpy()})
        return torch.from_numpy(features), torch.from_numpy(logits)

    return run


def _openvino(path: Path):
    import openvino as ov

    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})

    def run(clips):
        result = compiled(clips.numpy())
        return torch.from_numpy(result["features"]), torch.from_numpy(result["logits"])

    return run
