"""Every backbone family exports to ONNX with a dynamic batch and passes `cnn3d export`'s parity
check (against the PyTorch network, in float64). I3D, X3D, SlowFast and MC3 have theirs beside
their goldens; these are the others, each at its smallest configuration: pytorchvideo's
single-pathway ResNets at a quarter width and one block a stage (`shallow_networks`: the block
kinds are what the export must handle),
S3D, and the I3D-ResNet-50 of the VAD releases with its non-local blocks.

Slow, C2D and I3D-R are CSN's and R(2+1)D-R's network with other temporal kernels (the same
block kinds, one class): they run with CNN3D_ALL_EXPORTS=1 (each takes 5-10 s here)."""

import os

import pytest

from cnn3d.cli import main
from helpers import family_checkpoint

ALL = os.environ.get("CNN3D_ALL_EXPORTS") == "1"
CASES = [
    *(
        [("slow", 50, {"width": 16}), ("c2d", 50, {"width": 16}), ("i3d_r", 50, {"width": 16})]
        if ALL
        else []
    ),  # fmt: skip
    ("csn", 50, {"width": 16}),
    ("r2plus1d_r", 50, {"width": 16}),
    ("s3d", 22, {}),
    ("i3d_nl", 50, {"nonlocal_blocks": True}),
]


@pytest.mark.slow
@pytest.mark.parametrize("family,depth,options", CASES, ids=[c[0] for c in CASES])
def test_each_family_exports_to_onnx_with_a_dynamic_batch_and_parity(
    family, depth, options, tmp_path, capsys, shallow_networks
):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    import onnxruntime as ort

    out = tmp_path / f"{family}.onnx"
    checkpoint = family_checkpoint(tmp_path, family, depth, options)
    assert main(["export", str(checkpoint), str(out)]) == 0
    assert "parity passed" in capsys.readouterr().out
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[0] == "batch"
