"""The checkpoint files of a run: `last.pth` at a position, and at an epoch's end
`save_<N>.pth` and `best.pth`, in the order (and with the record) that a kill at any moment
cannot leave inconsistent (`state.py`)."""

from __future__ import annotations

import time

from .run import Run
from .state import Position, read_epoch, save_training_state


def save_position(run: Run, position: Position) -> None:
    """`last.pth` at `position` (rank 0), atomically."""
    if run.main_process:
        state = (run.model, run.optimizer, run.scheduler, run.scaler, position, run.best)
        save_training_state(
            run.result / "last.pth", *state, card=run.card, best_epoch=run.best_epoch
        )
    run.saved = position
    run.last_save = time.monotonic()


def save_epoch_end_files(run: Run, epoch: int, only_missing: bool = False) -> None:
    """`save_<epoch>.pth` when it is due and `best.pth` when `epoch` is the best; with
    `only_missing`, those a kill after `last.pth` left unwritten (saying so)."""
    state = (run.model, run.optimizer, run.scheduler, run.scaler, Position(epoch + 1), run.best)
    every = run.cfg.checkpoint_every
    due = [run.result / f"save_{epoch}.pth"] if every and epoch % every == 0 else []
    if run.best_epoch == epoch:
        due.append(run.result / "best.pth")
    for path in due:
        if only_missing and read_epoch(path) == epoch:
            continue
        resumable = path.name != "best.pth"
        save_training_state(
            path, *state, resumable=resumable, card=run.card, best_epoch=run.best_epoch
        )
        if only_missing:
            print(f"{path}: written from last.pth (epoch {epoch}; the run was cut before it)")


def restore_epoch_end_files(run: Run) -> None:
    """Resumed at an epoch's start: write the files that epoch's end should have left, if a
    kill came between them and `last.pth` (the weights are `last.pth`'s: the epoch's end)."""
    if run.begin.step or run.begin.epoch <= 1 or run.best_epoch is None:
        return
    save_epoch_end_files(run, run.begin.epoch - 1, only_missing=True)
