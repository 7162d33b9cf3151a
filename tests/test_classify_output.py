"""What `classify` says and writes besides its labels: the precision it runs in (bf16 by
default on CPUs with native bf16, whose probabilities differ from fp32's by about 0.01) as one
stderr line, and -o refused in one line where its name is not a .json file."""

import pytest

import cnn3d.precision
from cnn3d.cli import main
from cnn3d.models import build_model, save_model, with_spec
from helpers import frames_with_index, write_mp4


@pytest.fixture
def job(tmp_path):
    model = build_model("resnet", 10, 3, widen_factor=0.25)
    with_spec(model, class_names=["x", "y", "z"], sample_size=32, clip_length=8)
    save_model(tmp_path / "r10.pth", model)
    write_mp4(tmp_path / "v.mp4", frames_with_index(8, 32, 32))
    return ["classify", str(tmp_path / "v.mp4"), "--checkpoint", str(tmp_path / "r10.pth"),
            "--device", "cpu", "--workers", "0", "--no-progress"]  # fmt: skip


def precision_lines(err):
    return [line for line in err.splitlines() if line.startswith("classify: cpu, ")]


def test_classify_says_the_precision_it_runs_in(job, capsys, monkeypatch):
    assert main([*job, "--no-amp"]) == 0
    assert precision_lines(capsys.readouterr().err) == ["classify: cpu, fp32"]
    # a CPU with native bf16 runs bf16 by default: said, with the way to fp32
    monkeypatch.setattr(cnn3d.precision, "cpu_has_native_bf16", lambda: True)
    assert main(job) == 0
    assert precision_lines(capsys.readouterr().err) == [
        "classify: cpu, bf16 autocast; --no-amp: fp32, probabilities differ by about 0.01"
    ]
    monkeypatch.setattr(cnn3d.precision, "cpu_has_native_bf16", lambda: False)
    assert main(job) == 0
    assert precision_lines(capsys.readouterr().err) == ["classify: cpu, fp32"]


def test_o_that_is_not_a_json_name_is_refused_before_any_work(job, tmp_path, capsys):
    for name in ("labels.h5", "labels"):
        assert main([*job, "-o", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert f"-o {tmp_path / name}: classify writes JSON" in err and "name the file .json" in err
        assert len(err.strip().splitlines()) == 1 and not (tmp_path / name).exists()
        assert not (tmp_path / f"{name}.parts").exists()
    assert main([*job, "-o", str(tmp_path / "labels.json")]) == 0
