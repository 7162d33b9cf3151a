"""Engines on the same windows: PyTorch eager (fp32, and cnn3d's default bf16 where the CPU has
it), PyTorch compiled, ONNX Runtime fp32 and static int8, OpenVINO fp32 and bf16, each with its
speed and its agreement with fp32 PyTorch, on the demo's trained network and its held-out
videos (`make demo` first, or `cnn3d demo --output DIR`).

The demo's windows of every held-out video (the validation subset; `last.pth`, two windows a
video, as the demo reports its accuracy), centre crop;
clips/s is the median of 3 timed passes over all windows after a warm-up pass, batches of 8.
Agreement: the share of windows (and of videos, scores averaged) whose top-1 class is fp32
PyTorch's; accuracy: video top-1 against the labels.

    .venv/bin/python benchmarks/engines.py [--demo demo_output] [--threads 2] [--no-compiled]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from cnn3d.data.annotations import read_annotations
from cnn3d.data.dataset import VideoDataset
from cnn3d.data.index import index_subset
from cnn3d.data.network_input import normalize
from cnn3d.data.transforms import EvalTransform
from cnn3d.export import export_model, load_exported
from cnn3d.models import load_model
from cnn3d.precision import default_amp

BATCH = 8


def windows(demo: Path, model):
    """(normalised windows, their video index, the videos' labels) of the validation videos."""
    spec = model.spec
    annotation = demo / "data" / "synthetic_01.json"
    videos, _ = index_subset(read_annotations(annotation), "validation", demo / "data" / "videos")
    # the demo's own test protocol: two full windows per 40-frame video (frames 0-30 and
    # 9-39 at stride 2)
    dataset = VideoDataset(videos, EvalTransform(spec.sample_size, "center"), "test",
                           spec.clip_length, spec.t_stride, window_stride=9)  # fmt: skip
    items = [dataset[i] for i in range(len(dataset))]
    clips = normalize(torch.stack([item["clip"] for item in items]), spec.normalization)
    return clips, np.array([item["video"] for item in items]), np.asarray(videos.labels)


def timed(run, clips) -> tuple[float, np.ndarray]:
    """(clips/s, logits) of `run` over all clips in batches."""

    def one_pass():
        return np.concatenate(
            [np.asarray(run(clips[i : i + BATCH])) for i in range(0, len(clips), BATCH)]
        )

    logits = one_pass()  # warm-up (and compilation)
    seconds = []
    for _ in range(3):
        start = time.perf_counter()
        one_pass()
        seconds.append(time.perf_counter() - start)
    return len(clips) / statistics.median(seconds), logits


def torch_runner(model, bf16: bool, compiled: bool = False):
    net = model.to(memory_format=torch.channels_last_3d)
    if compiled:
        net = torch.compile(net)

    def run(x):
        with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            return net(x.contiguous(memory_format=torch.channels_last_3d)).float().numpy()

    return run


def openvino_runner(path: Path, precision: str):
    import openvino as ov

    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": precision})
    return lambda x: compiled(x.numpy())["logits"]


def int8_model(path: Path, calibration: torch.Tensor) -> Path:
    """ONNX Runtime's static QDQ int8 quantisation, calibrated on `calibration` clips."""
    from onnxruntime.quantization import CalibrationDataReader, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(
                [{"clips": calibration[i : i + 1].numpy()} for i in range(len(calibration))]
            )

        def get_next(self):
            return next(self.batches, None)

    out = path.with_name("model.int8.onnx")
    quantize_static(str(path), str(out), Reader(), weight_type=QuantType.QInt8,
                    activation_type=QuantType.QInt8)  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", default="demo_output")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--no-compiled",
        action="store_true",
        help="leave out PyTorch compiled (its compilation takes about a minute)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    demo = Path(args.demo)
    checkpoint = demo / "run" / "last.pth"  # what the demo reports its accuracy of
    model = load_model(checkpoint, fold_bn=True)
    clips, video_of, labels = windows(demo, model)
    tmp = Path(tempfile.mkdtemp(prefix="cnn3d-engines-"))
    onnx_path = tmp / "model.onnx"
    parity = export_model(checkpoint, onnx_path)
    print(f"{len(clips)} windows of {len(labels)} videos; export: {parity.describe()}")

    engines = [("PyTorch eager fp32 (the reference)", torch_runner(model, False))]
    if default_amp(torch.device("cpu")):
        engines.append(("PyTorch eager bf16 (cnn3d's default here)", torch_runner(model, True)))
    if not args.no_compiled:
        compiled = torch_runner(load_model(checkpoint, fold_bn=True), False, True)
        engines.append(("PyTorch compiled fp32", compiled))
    exported = load_exported(onnx_path, "onnxruntime")
    engines.append(("ONNX Runtime fp32", lambda x: exported(x)[1].numpy()))
    try:
        int8 = load_exported(
            int8_model(onnx_path, clips[:: max(1, len(clips) // 64)]), "onnxruntime"
        )
        engines.append(
            ("ONNX Runtime int8 (static QDQ, 64 calibration windows)", lambda x: int8(x)[1].numpy())
        )
    except Exception as error:  # noqa: BLE001 (a quantiser that fails is reported, not fatal)
        print(f"ONNX Runtime int8: not measured ({type(error).__name__}: {error})")
    engines.append(("OpenVINO fp32", openvino_runner(onnx_path, "f32")))
    engines.append(("OpenVINO bf16", openvino_runner(onnx_path, "bf16")))

    rows, reference, base_speed = [], None, None
    for name, run in engines:
        speed, logits = timed(run, clips)
        if reference is None:
            reference, base_speed = logits, speed
        window_agree = float(np.mean(logits.argmax(1) == reference.argmax(1)))
        video_scores = np.stack(
            [
                torch.tensor(logits[video_of == v]).softmax(1).mean(0).numpy()
                for v in range(len(labels))
            ]
        )
        reference_video = np.stack(
            [
                torch.tensor(reference[video_of == v]).softmax(1).mean(0).numpy()
                for v in range(len(labels))
            ]
        )
        video_agree = float(np.mean(video_scores.argmax(1) == reference_video.argmax(1)))
        accuracy = float(np.mean(video_scores.argmax(1) == labels))
        error = float(np.max(np.abs(logits - reference)))
        rows.append((name, speed, speed / base_speed, window_agree, video_agree, accuracy, error))
        print(rows[-1], flush=True)
    print(
        "\n| engine | clips/s | vs eager fp32 | top-1 agreement, windows | videos | video top-1 | max abs logit diff |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, speed, ratio, wa, va, acc, err in rows:
        print(
            f"| {name} | {speed:.1f} | {ratio:.2f} | {100 * wa:.1f}% | {100 * va:.1f}% | {100 * acc:.1f}% | {err:.2g} |"
        )
    (tmp / "engines.json").write_text(json.dumps(rows))


if __name__ == "__main__":
    main()
