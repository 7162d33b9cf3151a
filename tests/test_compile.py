"""`--compile`: the compiled network gives the eager network's values, including on a last batch
smaller than the others, and the automatic choice is printed."""

import json
import shutil

import pytest
import torch

from cnn3d.cli import main
from cnn3d.models import build_model, save_model, with_spec
from helpers import frames_with_index, write_mp4


@pytest.fixture
def small_job(tmp_path):
    torch.manual_seed(5)
    model = build_model("resnet", 10, 3, widen_factor=0.25).eval()
    with_spec(model, class_names=["a", "b", "c"], sample_size=32)
    save_model(tmp_path / "m.safetensors", model)
    write_mp4(tmp_path / "v.mp4", frames_with_index(40, 48, 64))  # 3 windows
    return tmp_path


def test_auto_choice_is_printed_and_small_jobs_stay_eager(small_job, capsys):
    argv = ["classify", str(small_job / "v.mp4"), "--checkpoint", str(small_job / "m.safetensors")]
    assert main([*argv, "--no-amp"]) == 0
    assert (
        "torch.compile: off (auto; 3 windows, compiling pays from 2000)" in capsys.readouterr().out
    )


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("c++") is None, reason="inductor needs a C++ compiler")
def test_compiled_classify_equals_eager(small_job, capsys):
    outputs = {}
    for flag in ("--no-compile", "--compile"):
        out = small_job / f"{flag}.json"
        argv = [
            "classify",
            str(small_job / "v.mp4"),
            "--checkpoint",
            str(small_job / "m.safetensors"),
        ]
        # batches of 2: the third window comes alone and is padded for the compiled network
        assert main([*argv, "--no-amp", "--batch-size", "2", flag, "-o", str(out)]) == 0
        outputs[flag] = json.loads(out.read_text())[0]
    printed = capsys.readouterr().out
    assert "torch.compile: on (--compile" in printed and "running uncompiled" not in printed
    eager, compiled = outputs["--no-compile"], outputs["--compile"]
    assert [c["segment"] for c in compiled["clips"]] == [[1, 16], [17, 32], [33, 40]]
    for a, b in zip(eager["clips"], compiled["clips"], strict=True):
        assert b["scores"] == pytest.approx(a["scores"], abs=1e-5)
