"""`benchmarks/device_check.sh --dry-run`: the GPU machine's script, run on the CPU with tiny
sizes, so that it cannot rot between the days a GPU is lent."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow
SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "device_check.sh"


def test_device_check_dry_run_records_every_step_and_figure(tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ, CNN3D_PYTHON=sys.executable, OMP_NUM_THREADS="1")
    done = subprocess.run(
        ["bash", str(SCRIPT), "--dry-run", str(out)],
        env=env, capture_output=True, text=True, timeout=280,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == [
        "cuda_tests.xml", "figures.json", "gpu.txt", "log.txt",
    ]  # fmt: skip
    figures = json.loads((out / "figures.json").read_text())
    assert figures["dry_run"] is True
    steps = figures["steps"]
    assert list(steps) == [
        "cuda_tests", "model_resnet10", "kinetics_like", "loader_mp4", "loader_jpg",
        "loader_hdf5", "train_hdf5",
    ]  # fmt: skip
    assert all(s["exit"] == 0 for s in steps.values()), steps
    model = figures["model_resnet10"]["rows"]
    assert {(r["model"], r["precision"], r["memory_format"]) for r in model} == {
        (m, p, f)
        for m in ("resnet-10", "r3d_18 (torchvision)")
        for p in ("fp32", "bf16")
        for f in ("channels_last_3d", "contiguous")
    }
    for fmt, source in (("mp4", "video files"), ("jpg", "JPEG folders"), ("hdf5", "HDF5")):
        rows = figures[f"loader_{fmt}"]["rows"]
        assert [(r["source"], r["workers"]) for r in rows] == [(source, 0), (source, 1)]
        assert all(r["clips"] == 3 * 4 and r["failed"] == 0 for r in rows)
    assert [r["kind"] for r in figures["train_hdf5"]["rows"]] == ["model", "loader", "train"]
    if not torch.cuda.is_available():  # no GPU here: the cuda tests were skipped, not lost
        assert "skipped" in (out / "cuda_tests.xml").read_text()
