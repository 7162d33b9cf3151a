"""Nothing a user has is lost when things go wrong: the index cache never replaces a file that is
not an index and never trusts a damaged one; a kill between an epoch's writes leaves `best.pth`
and `last.pth` consistent after resuming; a result folder is one live run's; a full disk is one
line with the previous checkpoint intact; a resumed epoch's figures count all its steps; every
epoch draws a new clip order."""

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import cnn3d.training.epoch_files as epoch_files
import cnn3d.training.loop as training
from cnn3d.cli import main
from cnn3d.data import dataset as dataset_module
from cnn3d.data.index_cache import build_index, open_index, read_header, write_index
from cnn3d.errors import DiskFull
from cnn3d.files import atomic_write
from cnn3d.models import build_model, save_model
from cnn3d.models.checkpoint import read_file
from cnn3d.training.lock import LOCK_NAME
from helpers import rows, train_args

pytestmark = pytest.mark.slow
QUICK = ("--n_epochs", "2", "--no-amp", "--workers", "0", "--no-val")


def same_weights(a: Path, b: Path) -> bool:
    x, y = read_file(a)["state_dict"], read_file(b)["state_dict"]
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


@pytest.fixture(scope="module")
def straight_validated(tiny, tmp_path_factory):
    """An uninterrupted two-epoch run (validation on: best.pth follows the video top-1)."""
    result = tmp_path_factory.mktemp("straight") / "run"
    args = train_args(tiny, result, "--n_epochs", "2", "--no-amp", "--workers", "0")
    assert main(args) == 0
    return result


# ---------------------------------------------------------------------------- the index cache


def test_index_cache_never_replaces_a_file_that_is_not_an_index(tiny, tmp_path, capsys):
    videos, ann = tiny
    checkpoint = tmp_path / "model.pth"
    save_model(checkpoint, build_model("resnet", 10, 2, widen_factor=0.25))
    for victim in (ann, checkpoint, next(Path(videos).rglob("*.avi"), None) or ann):
        before = victim.read_bytes()
        args = train_args(tiny, tmp_path / "run", *QUICK, "--index-cache", str(victim))
        assert main(args) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "not a cnn3d video index" in err, err
        assert str(victim) in err
        assert victim.read_bytes() == before  # untouched
    assert not (tmp_path / "run" / "last.pth").exists()


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_damaged_index_is_rebuilt_never_trusted(tiny, tmp_path):
    videos, ann = tiny
    good = tmp_path / "good.cache"
    write_index(good, build_index(ann, videos), videos)
    header, start = read_header(good)
    labels = header["arrays"]["training/labels"]
    assert labels["length"] > 0
    data, why = open_index(good, ann, videos)
    assert data is not None and why == ""

    # one bit of the training labels changed: a checksum mismatch, not wrong labels
    damaged = tmp_path / "labels.cache"
    damaged.write_bytes(good.read_bytes())
    flip(damaged, start + labels["offset"])
    data, why = open_index(damaged, ann, videos)
    assert data is None and "checksum" in why, why

    # header fields of the right magic but damaged content: reasons, never exceptions
    def with_header(change) -> Path:
        raw = good.read_bytes()
        length = int.from_bytes(raw[8:16], "little")
        head = json.loads(raw[16 : 16 + length])
        change(head)
        encoded = json.dumps(head).encode()
        encoded = encoded[:length].ljust(length)  # same length: the arrays stay in place
        path = tmp_path / "header.cache"
        path.write_bytes(raw[:16] + encoded + raw[16 + length :])
        return path

    changes = [
        lambda h: h.update(arrays=5),
        lambda h: h.update(subsets=[1]),
        lambda h: h["arrays"]["training/labels"].update(offset=2**70),
        lambda h: h["arrays"]["training/labels"].update(length=-3),
        lambda h: h.update(labels=[0, 1]),
        lambda h: h.update(annotation="x"),
        lambda h: h.update(checksum=0),
        lambda h: h.update(labels=list(reversed(h["labels"]))),  # a changed class order
    ]
    for change in changes:
        data, why = open_index(with_header(change), ann, videos)
        assert data is None and why, why


# ------------------------------------------------------------------ an epoch's end, cut anywhere


class Killed(BaseException):
    """A kill at a chosen write (unlike SIGKILL, lets the test go on)."""


@pytest.mark.parametrize("cut_before", ["best.pth", "save_2.pth"])
def test_a_kill_between_an_epochs_writes_leaves_them_consistent(
    tiny,
    tmp_path,
    straight_validated,
    monkeypatch,
    cut_before,
):
    """Killed when `last.pth` is written and the next file is not (a half-written temporary
    left behind), the resumed run writes what the epoch should have left: in the end every
    file is the uninterrupted run's, and no temporary file remains."""
    real = epoch_files.save_training_state

    def cut(path, *args, **kwargs):
        if Path(path).name == cut_before:
            Path(path).parent.joinpath(f".{cut_before}.k1ll3d_x.tmp").write_bytes(b"\0" * 999)
            raise Killed
        return real(path, *args, **kwargs)

    result = tmp_path / "run"
    args = train_args(tiny, result, "--n_epochs", "2", "--no-amp", "--workers", "0")
    monkeypatch.setattr(epoch_files, "save_training_state", cut)
    with pytest.raises(Killed):
        main(args)
    monkeypatch.setattr(epoch_files, "save_training_state", real)
    assert not (result / cut_before).exists()
    assert main([*args, "--resume", "auto"]) == 0
    for name in ("last.pth", "best.pth", "save_2.pth"):
        assert same_weights(result / name, straight_validated / name), name
        assert read_file(result / name)["epoch"] == read_file(straight_validated / name)["epoch"], (
            name
        )
    assert not list(result.glob(".*.tmp"))


# ------------------------------------------------------------------------- one run, one folder


def hold_folder(folder: Path) -> subprocess.Popen:
    """Another live process holding `folder`'s lock, as a second run would see it."""
    code = (
        "import sys, time; from cnn3d.training.lock import RunLock; "
        f"RunLock({str(folder)!r}).acquire(); print('held', flush=True); time.sleep(120)"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_live_run_into_one_folder_is_refused(tiny, tmp_path, capsys):
    result = tmp_path / "run"
    holder = hold_folder(result)
    try:
        assert main(train_args(tiny, result, *QUICK)) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1
        assert f"pid {holder.pid} on {socket.gethostname()}" in err, err
        assert not (result / "opts.json").exists() and not (result / "train.log").exists()
    finally:
        holder.kill()
        holder.wait()
    # its holder gone (killed: the lock file stays), the folder is taken over, saying so
    assert (result / LOCK_NAME).exists()
    assert main(train_args(tiny, result, *QUICK)) == 0
    out = capsys.readouterr().out
    assert "taking over the lock" in out and str(holder.pid) in out
    assert not (result / LOCK_NAME).exists()  # given back at the end


def test_a_dead_processs_lock_on_this_host_is_taken_over(tiny, tmp_path, capsys):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], text=True,
                          capture_output=True).stdout.strip()  # fmt: skip
    result = tmp_path / "run"
    result.mkdir()
    holder = {"host": socket.gethostname(), "pid": int(gone), "since": "yesterday"}
    (result / LOCK_NAME).write_text(json.dumps(holder))
    assert main(train_args(tiny, result, *QUICK)) == 0
    assert "not running" in capsys.readouterr().out


def test_two_runs_started_together_one_is_refused(tiny, tmp_path):
    result = tmp_path / "run"
    cmd = [sys.executable, "-m", "cnn3d", *train_args(tiny, result, *QUICK)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    runs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for _ in range(2)]  # fmt: skip
    done = [(r.wait(timeout=240), r.stderr.read()) for r in runs]
    codes = sorted(code for code, _ in done)
    assert codes == [0, 2], done
    refused = next(err for code, err in done if code == 2)
    assert "another run is writing there" in refused or "is locked" in refused
    assert read_file(result / "last.pth")["epoch"] == 2


# ------------------------------------------------------------------------------- a full disk


def test_a_write_that_does_not_fit_is_one_line_and_keeps_the_previous_file(tmp_path):
    path = tmp_path / "last.pth"
    path.write_bytes(b"previous")

    def enospc(tmp):
        Path(tmp).write_bytes(b"x" * 1000)
        raise OSError(28, "No space left on device")

    with pytest.raises(DiskFull, match=r"no space left on the device writing .*last\.pth"):
        atomic_write(path, enospc)
    with pytest.raises(DiskFull, match=r"\(\d+\.\d MB needed"):
        atomic_write(path, lambda tmp: Path(tmp).write_bytes(b"new"), size_hint=2**62)
    assert path.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["last.pth"]


@pytest.fixture
def small_disk(tmp_path):
    """An 8 MB file system (tmpfs; needs root), else skipped."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)],
                          capture_output=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_at_a_checkpoint_keeps_the_previous_one(small_disk):
    small = build_model("resnet", 10, 2, widen_factor=0.25)  # 3.7 MB
    large = build_model("resnet", 10, 2, widen_factor=0.5)  # 14.5 MB
    save_model(small_disk / "last.pth", small, extra={"epoch": 1})
    before = (small_disk / "last.pth").read_bytes()
    with pytest.raises(DiskFull, match=r"writing .*last\.pth \(\d+\.\d MB needed"):
        save_model(small_disk / "last.pth", large, extra={"epoch": 2})
    assert (small_disk / "last.pth").read_bytes() == before
    assert [p.name for p in small_disk.iterdir()] == ["last.pth"]


def test_training_into_a_full_disk_is_one_line(tiny, small_disk, capsys):
    (small_disk / "filler").write_bytes(b"\0" * (7 * 2**20))
    args = train_args(tiny, small_disk / "run", *QUICK)
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no space left on the device" in err, err


# ------------------------------------------------------------- a resumed epoch counts every step


def test_a_mid_epoch_resume_counts_the_whole_epoch(tiny, tmp_path, monkeypatch):
    """Stopped by a signal after step 2 of epoch 1 and resumed, the epoch's loss and accuracy
    in train.log are those of all its steps: the clip-weighted mean of its rows in the batch
    log (computed here), as in an uninterrupted run."""
    result = tmp_path / "run"
    args = train_args(tiny, result, *QUICK, "--n_epochs", "1", "--batch_size", "2")
    real_step = training.train_step
    calls = []

    def signalled(run, batch):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return real_step(run, batch)

    monkeypatch.setattr(training, "train_step", signalled)
    assert main(args) == 143
    monkeypatch.setattr(training, "train_step", real_step)
    assert read_file(result / "last.pth")["position"]["step"] == 2
    assert main([*args, "--resume", "auto"]) == 0
    batches = rows(result / "train_batch.log")
    assert [int(r[1]) for r in batches] == list(range(1, len(batches) + 1))
    clips = 2  # every batch holds 2 clips (12 videos)
    loss = sum(float(r[3]) * clips for r in batches) / (clips * len(batches))
    acc = sum(float(r[4]) * clips for r in batches) / (clips * len(batches))
    (epoch_row,) = rows(result / "train.log")
    assert float(epoch_row[1]) == pytest.approx(loss, rel=1e-4)
    assert float(epoch_row[2]) == pytest.approx(acc, abs=1e-5)


# ------------------------------------------------------------------ a new clip order each epoch


def test_each_epoch_draws_a_new_order_of_every_clip_once(tiny, tmp_path, monkeypatch):
    drawn: list[tuple[int, int]] = []
    real = dataset_module.VideoDataset.__getitem__

    def record(self, item):
        if self.mode == "train":
            drawn.append(tuple(item))
        return real(self, item)

    monkeypatch.setattr(dataset_module.VideoDataset, "__getitem__", record)
    args = train_args(tiny, tmp_path / "run", *QUICK, "--n_epochs", "3")
    assert main(args) == 0
    orders = {e: [i for epoch, i in drawn if epoch == e] for e in (1, 2, 3)}
    n = len(orders[1])
    assert n >= 8
    for order in orders.values():
        assert sorted(order) == list(range(n))  # every clip once
    assert len({tuple(o) for o in orders.values()}) == 3  # three different orders
    # that a run with the same seed draws the same orders (a resume depends on it) the
    # preemption tests show: a resumed run ends with the uninterrupted run's weights


def test_stale_temporaries_of_the_folder_are_swept_at_start(tiny, tmp_path, capsys):
    result = tmp_path / "run"
    result.mkdir()
    (result / ".last.pth.ab12cd34.tmp").write_bytes(b"\0" * 5000)
    (result / ".opts.json.zz99yy88.tmp").write_text("{")
    (result / "notes.tmp").write_text("mine")  # not a temporary of cnn3d's: kept
    assert main(train_args(tiny, result, *QUICK, "--n_epochs", "1")) == 0
    assert "removed 2 temporary file(s)" in capsys.readouterr().out
    assert not list(result.glob(".*.tmp")) and (result / "notes.tmp").exists()


def test_a_lock_of_an_earlier_round_of_the_same_job_is_stale_on_any_host():
    """A requeued SLURM job or a restarted torchrun round may run on another node, whose lock it
    cannot test: the job id and its restart count tell it the holder is gone."""
    from cnn3d.training.lock import why_stale

    me = {"host": "node-b", "pid": 5, "slurm_job": "7", "slurm_restart": "1",
          "torchrun_run": "r1", "torchrun_restart": "2"}  # fmt: skip
    earlier = {"host": "node-a", "pid": 9, "slurm_job": "7", "slurm_restart": "0"}
    assert why_stale(earlier, me, file_lock_free=False) == "an earlier round of this SLURM job"
    restarted = {"host": "node-a", "pid": 9, "torchrun_run": "r1", "torchrun_restart": "1"}
    assert why_stale(restarted, me, file_lock_free=False) == "an earlier round of this torchrun job"
    for live in (
        {"host": "node-a", "pid": 9, "slurm_job": "8", "slurm_restart": "0"},  # another job
        {"host": "node-a", "pid": 9, "slurm_job": "7", "slurm_restart": "1"},  # this round
    ):
        assert why_stale(live, me, file_lock_free=False) is None
    assert why_stale(live, me, file_lock_free=True) == "its lock was released (the process is gone)"
