"""Training: `train` reads top to bottom on one screen; the run's setup, one epoch's steps,
validation and the end of an epoch (logs, checkpoints) are named functions it calls. Single
process, or `torchrun --nproc_per_node N -m cnn3d train ...` (DDP: NCCL on GPUs, gloo on CPU;
only rank 0 writes; metrics are summed over ranks).
"""

from __future__ import annotations

import contextlib
import gc
import math
import time

import torch
import torch.distributed as dist

from ..data.dataset import stop_workers
from ..errors import TrainingError, TrainingInterrupted
from ..evaluation.evaluate import evaluate_loader
from ..evaluation.metrics import compute_metrics
from ..evaluation.plots import write_curves
from ..files import sweep_temporaries
from ..runtime import Torchrun
from ..signals import StopSignals, requeue_slurm_job
from .config import TrainConfig
from .epoch_files import save_epoch_end_files, save_position
from .lock import RunLock
from .logs import RunLogs, format_epoch, progress_bar
from .run import Run
from .setup import setup_run
from .state import Position
from .step import optimisation_step


def train(cfg: TrainConfig) -> dict:
    """Train (and validate every epoch); returns the last epoch's metrics."""
    with result_folder(cfg):
        return train_in(cfg)


@contextlib.contextmanager
def result_folder(cfg: TrainConfig):
    """The result folder held for this run (rank 0; `runlock.py`) while it trains, and the
    temporary files of writes cut short by an earlier run of it removed."""
    if Torchrun.from_environment().rank != 0:
        yield
        return
    with RunLock(cfg.result_path):
        swept = sweep_temporaries(cfg.result_path)
        if swept:
            count, size = swept
            print(
                f"{cfg.result_path}: removed {count} temporary file(s) ({size / 1e6:.1f} MB) "
                "of writes an earlier run did not finish"
            )
        yield


def train_in(cfg: TrainConfig) -> dict:
    """`train` within its held result folder."""
    run = setup_run(cfg)
    metrics: dict = {}
    interrupted: TrainingInterrupted | None = None
    # Whatever Python objects exist now stay out of the garbage collector's passes, which would
    # otherwise write to (and so copy) their pages in every forked DataLoader worker.
    gc.collect()
    gc.freeze()
    try:
        logs = RunLogs(run.result, run.begin, run.main_process, cfg.tensorboard)
        stop = StopSignals(graceful=True, names=cfg.stop_signals)
        # the logs close and the signals get their usual meaning back however the loop ends
        with logs, stop:
            for epoch in range(run.begin_epoch, cfg.n_epochs + 1):
                # one pass over this rank's share of the clips, in an order fixed by the epoch;
                # last.pth every --save-every minutes, and at a stop signal (then StopForSignal)
                metrics = train_one_epoch(run, epoch, stop, logs)
                # video-level accuracy: softmax scores averaged over each video's clips
                if run.val_loader is not None:
                    metrics |= validate(run, epoch, stop)
                # plateau follows the validation loss (the training loss without validation)
                if cfg.lr_scheduler == "plateau":
                    run.scheduler.step(metrics.get("val_loss", metrics["train_loss"]))
                else:
                    run.scheduler.step()
                # logs, last/best/save_N checkpoints: written by rank 0 only
                end_epoch(run, metrics, logs)
                if agreed(run, bool(stop.requested)):
                    stop.commit()  # (last.pth was written at the epoch's end)
                    raise StopForSignal
    except StopForSignal:  # committed: the signals are ignored from here on
        interrupted = TrainingInterrupted(interrupted_message(run, stop), stop.exit_code)
    except KeyboardInterrupt:  # a second Ctrl-C: at once
        raise TrainingInterrupted(interrupted_message(run, stop), stop.exit_code) from None
    finally:
        # the workers ignore the signals (see worker_init); they stop with their loader
        stop_workers(run.train_loader)
        stop_workers(run.val_loader)
        gc.unfreeze()
    if interrupted is not None:
        # the very last step, the logs closed and the workers stopped: SLURM answers a requeue
        # with its own SIGTERM to the job (ignored now), and may start it again at once
        if cfg.requeue and run.main_process:
            print(requeue_slurm_job(), flush=True)
        raise interrupted
    if run.main_process:
        finish_run(run, metrics)
    return metrics


class StopForSignal(Exception):
    """Raised once the checkpoint a stop signal asks for is written (and the stop committed)."""


def train_one_epoch(run: Run, epoch: int, stop: StopSignals, logs: RunLogs) -> dict:
    """One pass over the training clips (the rest of it, for the epoch a run resumes within):
    the epoch's mean loss and clip accuracy (summed over ranks) and its learning rate. The host
    reads the steps' losses from the device every `log_every` steps, and there checkpoints
    when one is due and stops when a signal asked (`checkpoint_if_due`)."""
    cfg = run.cfg
    run.epoch = epoch
    done = run.begin.step if epoch == run.begin_epoch else 0  # steps trained before a resume
    run.train_sampler.set_epoch(epoch, skip=done * cfg.batch_size)
    lr = max(g["lr"] for g in run.optimizer.param_groups)
    run.net.train()
    if cfg.freeze_bn:  # BatchNorm keeps its running statistics (DDP-exact on the CPU)
        for module in run.model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.eval()
    steps = run.steps_per_epoch
    bar = progress_bar(steps, f"epoch {epoch}/{cfg.n_epochs}", run.main_process and cfg.progress)
    bar.update(done)
    reader = StepReader(run, epoch, lr, steps, logs, bar)
    if done and run.main_process:  # the resumed steps' sums are all ranks' together
        reader.sums = list(run.begin.sums)
    # one process stops at the step after a signal; ranks agree at their reads
    alone = not run.torchrun.distributed
    for i, batch in enumerate(run.train_loader, start=done + 1):
        run.bad_videos += batch["failed"]
        if batch["clip"] is not None:
            reader.add(i, train_step(run, batch), len(batch["label"]))
        bar.update()
        if i % run.log_every == 0 or (alone and stop.requested):
            reader.read()
            checkpoint_if_due(run, epoch, i, reader, stop)
    reader.read()
    bar.close()
    run.train_set.close()
    sums = all_ranks(run, reader.sums)
    run.epoch_sums = tuple(sums.tolist())
    loss, acc = (sums[0] / sums[2]).item(), (sums[1] / sums[2]).item()
    return {"epoch": epoch, "train_loss": loss, "train_acc": acc, "lr": lr}


def checkpoint_if_due(run: Run, epoch: int, step: int, reader: StepReader, stop) -> None:
    """At a read: `last.pth` at this step if `--save-every` minutes or `--save-every-steps`
    steps have come, or a stop signal (then StopForSignal). Ranks decide together."""
    cfg = run.cfg
    due = (cfg.save_every > 0 and time.monotonic() - run.last_save >= 60 * cfg.save_every) or (
        cfg.save_every_steps > 0 and step % cfg.save_every_steps == 0
    )
    stopping, due = agreed(run, bool(stop.requested), due)
    if stopping or (due and step < run.steps_per_epoch):  # an epoch's end saves anyway
        save_position(run, Position(epoch, step, tuple(all_ranks(run, reader.sums).tolist())))
    if stopping:
        stop.commit()
        raise StopForSignal


def agreed(run: Run, *flags: bool) -> tuple[bool, ...] | bool:
    """Each flag, true if it is on any rank (one small all-reduce under DDP)."""
    if run.torchrun.distributed:
        device = run.device if run.device.type == "cuda" else torch.device("cpu")
        values = torch.tensor([int(f) for f in flags], device=device)
        dist.all_reduce(values, op=dist.ReduceOp.MAX)
        flags = tuple(bool(v) for v in values.tolist())
    return flags if len(flags) > 1 else flags[0]


def all_ranks(run: Run, sums) -> torch.Tensor:
    """(loss sum, correct, clips) summed over ranks, float64 on the CPU."""
    total = torch.tensor(sums, dtype=torch.float64)
    if run.torchrun.distributed:
        device = run.device if run.device.type == "cuda" else torch.device("cpu")
        total = total.to(device)
        dist.all_reduce(total)
        total = total.cpu()
    return total


def train_step(run: Run, batch: dict) -> torch.Tensor:
    """One optimisation step on a batch; its (loss, correct clips), still on the device."""
    clips = run.inputs(batch["clip"])
    labels = batch["label"].to(run.device, non_blocking=True)
    dtype = run.cfg.runtime.amp_dtype(run.device)
    return optimisation_step(run.net, run.optimizer, run.scaler, clips, labels, dtype)


class StepReader:
    """The steps' (loss, correct) stay on the device until `read`: one transfer for all of them,
    so that the GPU is not waited for at every step. A read writes the steps' rows to the batch
    log, updates the progress bar's figures, adds to the epoch's sums, and stops the run at a
    non-finite loss, naming the first such step and the steps read together."""

    def __init__(self, run: Run, epoch: int, lr: float, steps: int, logs: RunLogs, bar):
        self.run, self.epoch, self.lr, self.steps, self.logs, self.bar = (
            run, epoch, lr, steps, logs, bar,
        )  # fmt: skip
        self.pending: list[tuple[int, torch.Tensor, int]] = []  # (step, device values, clips)
        self.sums = [0.0, 0.0, 0.0]  # loss sum, correct, clips (this rank's, in float64)
        self.started = time.perf_counter()

    def add(self, step: int, values: torch.Tensor, n: int) -> None:
        self.pending.append((step, values, n))

    def read(self) -> None:
        if not self.pending:
            return
        values = torch.stack([v for _, v, _ in self.pending]).tolist()  # the one wait
        counts = [(i, n) for i, _, n in self.pending]
        rows = [(i, loss, c, n) for (i, n), (loss, c) in zip(counts, values, strict=True)]
        first, last = rows[0][0], rows[-1][0]
        self.pending = []
        for i, loss, _, _ in rows:
            if not math.isfinite(loss):
                run = self.run
                kept = (
                    f"The last good checkpoint is {run.result / 'last.pth'} ({run.saved.describe()})"
                    if run.saved is not None
                    else "No checkpoint was written yet"
                )
                raise TrainingError(
                    f"non-finite loss ({loss}) at epoch {self.epoch}, batch {i} (read with "
                    f"batches {first}-{last}); stopped. {kept} (lower the learning rate?)"
                )
        epoch, steps = self.epoch, self.steps
        for i, loss, correct, n in rows:
            self.sums[0] += loss * n
            self.sums[1] += correct
            self.sums[2] += n
            if self.run.main_process:
                self.logs.batch.write(
                    [epoch, i, (epoch - 1) * steps + i, loss, correct / n, self.lr]
                )
        if self.run.main_process:
            elapsed = time.perf_counter() - self.started
            loss, correct, clips = self.sums
            self.bar.set_postfix(
                loss=f"{loss / clips:.3f}",
                acc=f"{correct / clips:.3f}",
                clips_s=f"{clips * self.run.torchrun.world_size / elapsed:.1f}",
            )


def validate(run: Run, epoch: int, stop: StopSignals) -> dict:
    """Validation loss, clip accuracy and video top-1/top-5 (summed over ranks). A stop signal
    during it (one process) saves the epoch's training and stops: a resumed run validates
    again from the start, never half-counted. Ranks finish it and stop after the epoch."""
    should_stop = None if run.torchrun.distributed else (lambda: bool(stop.requested))
    run.net.eval()

    def logits_of(clip):
        with run.cfg.runtime.autocast(run.device):
            return run.net(run.inputs(clip))

    val = evaluate_loader(
        logits_of, run.val_loader, run.val_set, len(run.labels), should_stop=should_stop
    )
    if val is None:
        save_position(run, Position(epoch, run.steps_per_epoch, run.epoch_sums))
        stop.commit()
        raise StopForSignal
    labels = torch.tensor(run.val_set.videos.labels, dtype=torch.long)  # (a mapped array)
    vm = compute_metrics(val, labels, run.labels)
    return {
        "val_loss": vm.loss,
        "val_clip_acc": vm.clip_top1,
        "val_video_top1": vm.video_top1,
        "val_video_top5": vm.video_top5,
    }


def end_epoch(run: Run, metrics: dict, logs: RunLogs) -> None:
    """Rank 0: the epoch's log rows and scalars, `last.pth` (resumable), `save_<N>.pth` every
    `checkpoint_every` epochs, `best.pth` when the score improved; then every rank waits."""
    epoch = metrics["epoch"]
    if run.main_process:
        logs.epoch(metrics)
        score = metrics.get("val_video_top1", metrics["train_acc"])
        if score > run.best:
            run.best, run.best_epoch = score, epoch
        # last.pth first: it records the best epoch, so a kill before the others are written
        # leaves what resuming needs to write them (`restore_epoch_end_files`)
        save_position(run, Position(epoch + 1))
        save_epoch_end_files(run, epoch)
        print(format_epoch(metrics))
    if run.torchrun.distributed:
        dist.barrier()
    run.saved = Position(epoch + 1)
    run.last_save = time.monotonic()


def interrupted_message(run: Run, stop: StopSignals) -> str:
    why = f" ({stop.requested})" if stop.requested else ""
    saved = run.saved
    if saved is None:
        return (
            f"interrupted{why} before anything was saved: nothing was saved; run the same "
            "command again (with --resume auto, it starts fresh)"
        )
    path = run.result / "last.pth"
    if saved.step:
        held = f"{path} holds epoch {saved.epoch} up to step {saved.step}"
        goes_on = f"it goes on with epoch {saved.epoch} after step {saved.step}"
    else:
        held = f"{path} holds epoch {saved.epoch - 1}"
        goes_on = f"it goes on with epoch {saved.epoch}, from that epoch's start"
    return (
        f"interrupted{why} during epoch {run.epoch}: {held}. Resume with the same command and "
        f"--resume auto: {goes_on}"
    )


def finish_run(run: Run, metrics: dict) -> None:
    """The videos that could not be read, and `curves.png` (rank 0)."""
    bad = sorted(set(run.bad_videos))
    if bad:
        print(f"{len(bad)} unreadable video reads were skipped:")
        for message in bad[:20]:
            print(f"  {message}")
    curves = write_curves(run.result)
    if curves is not None:
        metrics["curves"] = str(curves)
    metrics["skipped_videos"] = bad
