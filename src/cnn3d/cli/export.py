"""`cnn3d export`: a checkpoint as ONNX, TorchScript or .pt2, parity checked."""

from __future__ import annotations

from ..values import positive_float
from . import checks
from .common import add_parser


def add(sub) -> None:
    p = add_parser(sub, "export", "export a checkpoint to ONNX, TorchScript or torch.export")
    p.add_argument("checkpoint", help="any supported checkpoint")
    p.add_argument(
        "out",
        help="model.onnx (ONNX, dynamic batch), model.pt2 (torch.export) or model.ts "
        "(TorchScript, which PyTorch deprecates); the model's card goes in as metadata",
    )
    p.add_argument(
        "--tolerance",
        type=positive_float,
        default=1e-4,
        help="largest logit difference allowed, relative to the logits' range; the export "
        "also fails on a top-1 difference that a near tie does not explain",
    )
    p.set_defaults(run=run)


def run(args) -> int:
    from ..export import export_format, export_model

    checks.input_file(args.checkpoint, "a checkpoint", checks.CHECKPOINT_SUFFIXES)
    export_format(args.out)
    checks.output_file(args.out, "the exported model")
    parity = export_model(args.checkpoint, args.out, args.tolerance)
    print(parity.describe())
    if not parity.passed:
        print(
            f"{args.out}: not written (the exported graph does not compute what the checkpoint does)"
        )
        return 1
    print(f"wrote {args.out}")
    return 0
