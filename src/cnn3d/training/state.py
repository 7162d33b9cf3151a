"""What a resumable training checkpoint holds, and putting it back.

`last.pth` is written at the end of every epoch and, within one, every `--save-every` minutes or
`--save-every-steps` steps and when a stop signal comes. Beside the weights it keeps the
optimizer, the schedule, the AMP loss scaler and the random state (CPU and GPUs), and the
`Position`: the epoch in progress and how many of its steps are done, with their summed loss and
accuracy. The epoch's clip order comes back from (seed, epoch) (`EpochSampler`), each clip's
random crop from (seed, epoch, index) (`VideoDataset`), so a run resumed from any step trains on
exactly the batches an uninterrupted run would have.

An epoch's end writes `last.pth` first, then `save_<N>.pth` and `best.pth`; `last.pth` records
which epoch is the best (`best_epoch`), so a run killed between the writes finds, when it
resumes, the files that epoch should have left and writes them from `last.pth`'s weights (the
same weights: both are the epoch's end). A kill at any moment leaves them consistent.

`epoch` in the file is the last epoch finished, as the 2020 code stores it, so that code (and
cnn3d before mid-epoch checkpoints) reads these files too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import CheckpointError
from ..models.checkpoint import read_file, save_model, unwrap_state_dict

__all__ = ["Position", "Resumed", "read_epoch", "resume_from", "save_training_state"]


@dataclass(frozen=True)
class Position:
    """Where training stands: `epoch` is the one to run or in progress, `step` how many of its
    steps are done (0: none), `sums` their (loss sum, correct clips, clips) over all ranks."""

    epoch: int = 1
    step: int = 0
    sums: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def describe(self) -> str:
        if self.step:
            return f"epoch {self.epoch} after step {self.step}"
        return f"the start of epoch {self.epoch}"


@dataclass(frozen=True)
class Resumed:
    """What a resumed run goes on from."""

    position: Position
    best: float  # the best score so far (-1: none)
    best_epoch: int | None  # the epoch that scored it (None: a file written before 0.1)


def save_training_state(
    path: Path, model, optimizer, scheduler, scaler, position: Position, best: float,
    resumable: bool = True, card: dict | None = None, best_epoch: int | None = None,
) -> None:  # fmt: skip
    """A checkpoint at `position`; `resumable` adds the optimizer, scheduler, scaler and RNG
    state (`best.pth`, for inference and fine-tuning, leaves them out: about half the size).
    `card`: how the run was made (`card.py`), stored with the epochs trained so far."""
    extra: dict = {"epoch": position.epoch - 1, "best_video_top1": best}
    if best_epoch is not None:
        extra["best_epoch"] = best_epoch
    if card is not None:
        extra["card"] = card | {"epochs_trained": position.epoch - 1, "best_score": best}
    if position.step:
        extra["position"] = {
            "epoch": position.epoch,
            "step": position.step,
            "sums": torch.tensor(position.sums, dtype=torch.float64),
        }
    if resumable:
        extra |= {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "torch_rng": torch.get_rng_state(),
        }
        if torch.cuda.is_available():
            extra["cuda_rng"] = torch.cuda.get_rng_state_all()
    save_model(path, model, extra=extra)


def read_epoch(path: Path) -> int | None:
    """The last epoch finished that a checkpoint holds (None if it cannot be read)."""
    try:
        epoch = read_file(path).get("epoch")
    except (CheckpointError, OSError):
        return None
    return int(epoch) if isinstance(epoch, int | float) else None


def resume_from(path: Path, model, optimizer, scheduler, scaler, device) -> Resumed:
    """Weights, optimizer, scheduler, scaler and RNG state from a checkpoint; where to go on."""
    obj = read_file(path, map_location=device)
    state = unwrap_state_dict(obj, path)
    state = {k.removeprefix("module.").removeprefix("_orig_mod."): v for k, v in state.items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise CheckpointError(
            f"{path}: does not fit this model: {mismatch(error, obj, model)}"
        ) from None
    if obj.get("optimizer"):
        optimizer.load_state_dict(obj["optimizer"])
    if obj.get("scheduler"):
        scheduler.load_state_dict(obj["scheduler"])
    if obj.get("scaler"):
        scaler.load_state_dict(obj["scaler"])
    if "torch_rng" in obj:
        torch.set_rng_state(obj["torch_rng"].cpu())
    if "cuda_rng" in obj and torch.cuda.is_available():
        states = [s.cpu() for s in obj["cuda_rng"]][: torch.cuda.device_count()]
        torch.cuda.set_rng_state_all(states)
    best = float(obj.get("best_video_top1", -1.0))
    best_epoch = obj.get("best_epoch")
    best_epoch = int(best_epoch) if isinstance(best_epoch, int) else None
    saved = obj.get("position")
    if saved:
        sums = tuple(float(v) for v in saved["sums"].tolist())
        return Resumed(Position(int(saved["epoch"]), int(saved["step"]), sums), best, best_epoch)
    # cnn3d and the 2020 code store the epoch just finished
    return Resumed(Position(int(obj.get("epoch", 0)) + 1), best, best_epoch)


def mismatch(error: RuntimeError, obj: dict, model) -> str:
    """Why the weights do not fit, in one line: the two architectures when the file names its
    own, and the first concrete difference PyTorch found."""
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    detail = next((ln for ln in lines[1:]), lines[0] if lines else "no detail")
    spec = getattr(model, "spec", None)
    theirs = obj.get("arch")
    if spec is not None and isinstance(theirs, str) and theirs != spec.arch:
        return f"it holds {theirs}, this run builds {spec.arch} ({detail})"
    return detail
