"""Training that survives the cluster: a run stopped at a random step, by SIGTERM or SIGUSR1
(checkpoint after the step, then exit 128 + the signal) or by SIGKILL (mid-epoch checkpoints
every step), and resumed, ends with exactly the weights of an uninterrupted run (fp32 on the
CPU, with DataLoader workers), and its logs hold each step once."""

import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from cnn3d.models.checkpoint import read_file
from helpers import COMMON, ENV, ended_as, free_port, rows, run_training, train_args, weights

pytestmark = pytest.mark.slow
STEPS = 3 * 3  # 12 training videos in batches of 4, three epochs


def stop_at(tiny, result, step: int, sig, *extra, env=ENV, times: int = 1):
    """Start training, send `sig` (`times` times) once `step` steps are in the batch log;
    (exit code, stdout, stderr)."""
    cmd = [sys.executable, "-m", "cnn3d", *train_args(tiny, result, *COMMON, *extra)]
    process = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    log = result / "train_batch.log"
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        if log.exists() and len(log.read_text().splitlines()) > step:
            for _ in range(times):
                process.send_signal(sig)
            break
        time.sleep(0.01)
    out, err = process.communicate(timeout=120)
    return process.returncode, out, err


def resumed_equals_straight(tiny, result, straight):
    run_training(tiny, result, "--resume", "auto")
    a, b = weights(straight / "last.pth"), weights(result / "last.pth")
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # every step once, in order, with the uninterrupted run's values
    assert rows(result / "train_batch.log") == rows(straight / "train_batch.log")
    assert [r[0] for r in rows(result / "train.log")] == ["1", "2", "3"]
    assert rows(result / "val.log") == rows(straight / "val.log")


def stopped_cleanly(result, code, err, sig) -> None:
    assert code == 128 + int(sig), err
    assert f"interrupted ({sig.name})" in err and "Traceback" not in err, err
    saved = read_file(result / "last.pth")
    assert saved.get("position") or saved["epoch"] >= 1, err  # mid-epoch, or an epoch's end
    assert "--resume auto" in err


def test_each_signal_checkpoints_after_the_step_and_resumes_exactly(tiny, tmp_path, straight):
    """SIGUSR1 at a random step (with `--requeue` outside SLURM: it says why it cannot), then
    the resumed run SIGTERMed at a later one, then resumed to the end: each stop checkpoints
    after its step and exits 128 + the signal, and the twice-resumed run ends as the
    uninterrupted one."""
    first = int(np.random.default_rng(int(signal.SIGUSR1)).integers(1, STEPS // 2))
    second = int(np.random.default_rng(int(signal.SIGTERM)).integers(first + 1, STEPS - 1))
    result = tmp_path / "run"
    env = {k: v for k, v in ENV.items() if not k.startswith("SLURM")}
    code, out, err = stop_at(tiny, result, first, signal.SIGUSR1, "--requeue", env=env)
    stopped_cleanly(result, code, err, signal.SIGUSR1)
    assert "not a SLURM job (no SLURM_JOB_ID): not requeued" in out
    code, _, err = stop_at(tiny, result, second, signal.SIGTERM, "--resume", "auto")
    stopped_cleanly(result, code, err, signal.SIGTERM)
    resumed_equals_straight(tiny, result, straight)


@pytest.fixture(scope="module")
def killed_mid_epoch(tiny, tmp_path_factory):
    """A run SIGKILLed mid-epoch (`--save-every-steps 1`), which both ways of resuming start
    from (each on a copy)."""
    # a step whose previous one is within the same epoch: the checkpoint is a mid-epoch one
    step = int(np.random.default_rng().choice([2, 5, 8]))
    result = tmp_path_factory.mktemp("killed") / "run"
    code, _, _ = stop_at(tiny, result, step, signal.SIGKILL, "--save-every-steps", "1")
    assert code == -signal.SIGKILL
    saved = read_file(result / "last.pth")
    epoch, position = saved["epoch"], saved.get("position")
    assert position is not None, (step, epoch)
    # the kill came once `step` rows were logged; each step's row is written just before its
    # checkpoint (the last step of an epoch is saved with the epoch, after validation)
    held = (position["epoch"] - 1) * 3 + position["step"] if position else epoch * 3
    assert held >= step - 1
    return result


@pytest.mark.parametrize("resumed_by", ["--resume auto", "a torchrun restart"])
def test_a_killed_run_resumes_exactly_from_its_last_mid_epoch_checkpoint(
    tiny, tmp_path, straight, killed_mid_epoch, resumed_by
):
    """SIGKILL mid-epoch, then either `--resume auto` or, with no flag, the restart torchrun
    --max-restarts makes (TORCHELASTIC_RESTART_COUNT > 0): no one is there to ask, so the job
    resumes on its own. Both end with the uninterrupted run's weights."""
    result = tmp_path / "run"
    shutil.copytree(killed_mid_epoch, result)
    if resumed_by == "--resume auto":
        resumed_equals_straight(tiny, result, straight)
        return
    cmd = [sys.executable, "-m", "cnn3d", *train_args(tiny, result, *COMMON)]
    env = dict(ENV, TORCHELASTIC_RESTART_COUNT="1", TORCHELASTIC_RUN_ID="job-1")
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "torchrun restart 1: resuming as with --resume auto" in done.stdout
    assert "resumed from" in done.stdout
    ended_as(straight, result)


def test_a_second_signal_before_the_checkpoint_stops_at_once(tiny, tmp_path):
    """The second SIGTERM is sent once the first is acknowledged (so the two cannot merge into
    one pending signal). Before the checkpoint it kills at once (SIGTERM's default action: -15
    here, no message); after it, it is ignored and the stop stays clean (143, the message). A
    second signal taken for a first would stop cleanly after a checkpoint written after it."""
    result = tmp_path / "run"
    cmd = [sys.executable, "-m", "cnn3d", *train_args(tiny, result, *COMMON)]
    process = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    log, sent = result / "train_batch.log", None
    try:
        deadline = time.time() + 120
        while time.time() < deadline and process.poll() is None:
            if log.exists() and len(log.read_text().splitlines()) > 1:
                process.send_signal(signal.SIGTERM)
                break
            time.sleep(0.01)
        for line in process.stderr:  # the handler's line: the first is taken
            if "SIGTERM: stopping after this step" in line:
                sent = time.time_ns()
                process.send_signal(signal.SIGTERM)
                break
        err = process.stderr.read()
        process.wait(timeout=120)
    finally:
        process.kill()
    assert sent is not None, err
    if process.returncode == -signal.SIGTERM:
        assert "interrupted" not in err, err
        return
    assert process.returncode == 128 + signal.SIGTERM, err
    assert "interrupted (SIGTERM)" in err, err
    # a clean stop: its checkpoint was written (file times lag the clock: never later) before
    # the second signal was sent
    assert (result / "last.pth").stat().st_mtime_ns <= sent, (
        "the second signal did not stop at once"
    )


def test_resume_auto_refuses_another_runs_folder(tiny, tmp_path, capsys):
    from cnn3d.cli import main

    result = tmp_path / "run"
    assert main(train_args(tiny, result, "--n_epochs", "1", "--no-val")) == 0
    argv = train_args(tiny, result, "--n_epochs", "2", "--no-val", "--resume", "auto")
    argv[argv.index("--batch_size") + 1] = "2"
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "holds another run (--batch-size 4 there, 2 here)" in err and str(result) in err


def torchrun_training(tiny, result, *extra, nodes=1, port=None):
    """A 2-rank job: 2 ranks on one node, or (`nodes` 2) one launcher per "node", each with one
    rank, meeting at `port` on localhost (start one per node)."""

    per_node = 2 // nodes
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(per_node)]
    # a c10d rendezvous, as a multi-node job meets
    cmd += ["--nnodes", str(nodes), "--rdzv-id", "cnn3d-test", "--rdzv-backend", "c10d"]
    cmd += ["--rdzv-endpoint", f"127.0.0.1:{port or free_port()}", "-m", "cnn3d"]
    argv = train_args(tiny, result, *COMMON, *extra)
    argv[argv.index("--batch_size") + 1] = "2"  # per rank: batches of 4, as one process has
    argv[argv.index("--workers") + 1] = "1"
    return subprocess.Popen(
        [*cmd, *argv], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # its own process group: a hung job can be killed whole
    )  # fmt: skip


@pytest.fixture(scope="module")
def straight_ddp(tiny, tmp_path_factory):
    """The uninterrupted 2-rank job, run the multi-node way: two launchers (`torchrun --nnodes
    2`, one rank each, as `srun` starts one per node) meet at a c10d rendezvous on localhost;
    each node's local rank 0 indexes, here into the one shared result folder. The one-node
    2-rank job below (stopped and resumed) must end as this one, step for step."""
    straight, port = tmp_path_factory.mktemp("straight_ddp") / "run", free_port()
    launchers = [torchrun_training(tiny, straight, nodes=2, port=port) for _ in range(2)]
    for launcher in launchers:
        _, err = launcher.communicate(timeout=300)
        assert launcher.returncode == 0, err[-3000:]
    assert (straight / "video_index.cache").exists()
    return straight


def test_sigterm_to_torchrun_checkpoints_both_ranks_and_resumes_exactly(
    tiny,
    tmp_path,
    straight_ddp,
):
    """SIGTERM to the launcher of a one-node 2-rank job (what SLURM and Kubernetes send):
    torchrun passes it to the ranks, which agree on a step, checkpoint it and stop; the resumed
    job ends as the uninterrupted one, which ran as two nodes (`straight_ddp`): so one node and
    two meet the same way and train as one job."""
    result = tmp_path / "run"
    process = torchrun_training(tiny, result)
    log = result / "train_batch.log"
    deadline = time.time() + 200
    while time.time() < deadline and process.poll() is None:
        if log.exists() and len(log.read_text().splitlines()) > 4:
            process.send_signal(signal.SIGTERM)
            break
        time.sleep(0.01)
    _, err = process.communicate(timeout=300)
    assert process.returncode != 0
    assert "interrupted (SIGTERM)" in err, err[-3000:]
    saved = read_file(result / "last.pth")
    assert saved.get("position") or saved["epoch"] >= 1
    process = torchrun_training(tiny, result, "--resume", "auto")
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-3000:]
    ended_as(straight_ddp, result)
