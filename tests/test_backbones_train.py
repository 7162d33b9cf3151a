"""The field's backbones go where the 2018 families go: `train --pretrain-path` takes each
family's file and fine-tunes it with a new head; a release file (pytorchvideo's `.pyth`) trains
under torchrun with 2 ranks as one process does, and a run killed mid-epoch resumes to the
uninterrupted run's weights."""

import signal
import subprocess
import sys
import time

import pytest
import torch

from cnn3d.models import build_model, load_model, save_model
from cnn3d.models.zoo import FAMILIES
from cnn3d.training.config import TrainConfig
from cnn3d.training.setup import build_training_model
from helpers import ENV, free_port, train_args, update_drift, weights

# the 2018/2020 families are trained by the other tests
NEW = [f for f in FAMILIES if f not in ("resnet", "preresnet", "wideresnet", "resnext",
                                        "densenet", "resnet2p1d")]  # fmt: skip
# (frames, size) each family takes at the least; C3D's fc6 fixes its input at 16 x 112 x 112
SMALL_CLIP = {"c3d": (16, 112)}


def smallest(family):
    depths = FAMILIES[family].depths
    return min(depths, key=lambda d: (isinstance(d, str), d if isinstance(d, int) else 0))


@pytest.mark.slow  # end to end (make test runs it)
@pytest.mark.parametrize("family", NEW)
def test_pretrain_path_fine_tunes_every_new_family_with_a_new_head(family, tmp_path):
    depth = smallest(family)
    torch.manual_seed(0)
    pretrained = build_model(family, depth, 7)
    save_model(tmp_path / "pretrained.pth", pretrained)
    frames, size = SMALL_CLIP.get(family, (8, 32))
    cfg = TrainConfig(
        str(tmp_path), str(tmp_path / "ann.json"), str(tmp_path / "run"),
        pretrain_path=str(tmp_path / "pretrained.pth"), clip_length=frames, sample_size=size,
    )  # fmt: skip
    model = build_training_model(cfg, ["a", "b", "c"])
    assert (model.spec.family, model.spec.depth, model.spec.n_classes) == (family, depth, 3)
    head = getattr(model, model.classifier_name)
    kept = pretrained.state_dict()
    state = model.state_dict()
    assert sorted(state) == sorted(kept)
    resized = [k for k, v in state.items() if v.shape != kept[k].shape]
    assert resized and all(v.shape[0] == 3 for k, v in state.items() if k in resized)  # the head
    # everything else is the file's
    assert all(torch.equal(v, kept[k]) for k, v in state.items() if k not in resized)
    model.train()
    logits = model(torch.randn(2, 3, frames, size, size))
    assert logits.shape == (2, 3)
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 2])).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())


def x3d_release(folder):
    """A pytorchvideo hub `x3d_xs.pyth`: the hub's keys and shapes (the golden's shapes.json),
    holding a freshly initialised X3D-XS (well-scaled weights train at a usual rate)."""
    import json
    from pathlib import Path

    from cnn3d.models.releases.x3d import _rename

    golden = Path(__file__).parent / "data" / "goldens" / "pytorchvideo-x3d" / "shapes.json"
    torch.manual_seed(0)
    fresh = build_model("x3d", "xs", 400).state_dict()
    hub = {k: fresh[_rename(k)] for k in json.loads(golden.read_text())}
    path = folder / "x3d_xs.pyth"
    torch.save({"model_state": hub}, path)
    return path


def release_args(tiny, result, release, *extra):
    """`train_args` with the network from `release` instead of the quarter-width ResNet-10."""
    args = train_args(tiny, result, *extra, "--pretrain-path", str(release))
    for flag in ("--model", "--model_depth", "--widen-factor"):
        del args[args.index(flag) : args.index(flag) + 2]
    return args


# X3D-XS from a release file, 2 classes, 8x32x32 clips; BatchNorm frozen and no dropout
# (per-rank statistics and masks differ by design; see test_train's DDP test); every run in a
# process of its own with one thread (the thread count changes the sums)
X3D = ("--n_epochs", "2", "--no-amp", "--freeze-bn", "--dropout", "0", "--lr", "0.01",
       "--no-val", "--workers", "0")  # fmt: skip
CLI = [sys.executable, "-m", "cnn3d"]


@pytest.fixture(scope="module")
def x3d_straight(tiny, tmp_path_factory):
    """(the release file, an uninterrupted run of one process from it), which the DDP and the
    resume test compare with."""
    folder = tmp_path_factory.mktemp("x3d")
    release = x3d_release(folder)
    argv = release_args(tiny, folder / "straight", release, *X3D)
    done = subprocess.run([*CLI, *argv], env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return release, folder / "straight"


@pytest.mark.slow
def test_a_release_file_trains_under_torchrun_as_one_process_does(tiny, tmp_path, x3d_straight):
    release, single = x3d_straight
    ddp = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    cmd += ["--master_port", str(free_port()), "-m", "cnn3d"]
    args = release_args(tiny, ddp, release, *X3D)
    args[args.index("--batch_size") + 1] = "2"  # per rank: the single run's 4 in all
    done = subprocess.run([*cmd, *args], env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    a, b = weights(single / "last.pth"), weights(ddp / "last.pth")
    # the body's updates (the new head's start depends on the seed's use; the body is the file's)
    initial = {k: v for k, v in load_model(release).state_dict().items() if not k.startswith("fc")}
    assert max((a[k].float() - v.float()).abs().max().item() for k, v in initial.items()) > 1e-4
    worst, name = update_drift({k: a[k] for k in initial}, b, initial)
    assert worst < 1e-2, (name, worst)


@pytest.mark.slow
def test_a_release_file_run_killed_mid_epoch_resumes_to_the_same_weights(
    tiny, tmp_path, x3d_straight
):
    release, straight = x3d_straight
    killed = tmp_path / "killed"
    argv = release_args(tiny, killed, release, *X3D, "--save-every-steps", "1")
    process = subprocess.Popen([*CLI, *argv], env=ENV, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)  # fmt: skip
    log = killed / "train_batch.log"
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        if log.exists() and len(log.read_text().splitlines()) > 5:  # epoch 2, step 2
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    done = subprocess.run([*CLI, *argv, "--resume", "auto"], env=ENV, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resumed from" in done.stdout
    a, b = weights(straight / "last.pth"), weights(killed / "last.pth")
    for key in a:
        assert torch.equal(a[key], b[key]), key
