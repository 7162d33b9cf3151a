"""What a training run writes as it goes: the original's tab-separated logs, TensorBoard
scalars, the epoch line, and the list of annotated videos that were not found."""

from __future__ import annotations

from pathlib import Path

from ..files import atomic_write


class TSVLog:
    """The original's tab-separated logs: a header row, then one flushed row per call."""

    def __init__(
        self, path: Path, columns: list[str], resume: bool, begin_epoch: int = 1,
        begin_step: int = 0,
    ):  # fmt: skip
        exists = resume and path.exists()
        if exists:  # rows of what runs again (the rest of an interrupted epoch) go
            lines = path.read_text(encoding="utf-8").splitlines()
            kept = lines[:1] + [ln for ln in lines[1:] if _before(ln, begin_epoch, begin_step)]
            atomic_write(path, lambda tmp: Path(tmp).write_text("".join(f"{ln}\n" for ln in kept)))
        self.file = open(path, "a" if exists else "w", encoding="utf-8")  # noqa: SIM115
        if not exists:
            self.write(columns)

    def write(self, values) -> None:
        self.file.write(
            "\t".join(f"{v:.6g}" if isinstance(v, float) else str(v) for v in values) + "\n"
        )
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def _before(line: str, epoch: int, step: int) -> bool:
    """Whether a row (epoch first, then the step for the batch log) comes before (epoch, step)."""
    fields = line.split("\t")
    if not fields[0].isdigit():
        return False
    row_epoch = int(fields[0])
    if row_epoch < epoch:
        return True
    return row_epoch == epoch and step > 0 and fields[1].isdigit() and int(fields[1]) <= step


class RunLogs:
    """`train.log`, `train_batch.log`, `val.log` and TensorBoard of one run (rank 0 only; other
    ranks get a RunLogs that writes nothing), closed together however the run ends. A resumed
    run drops the rows of epochs that run again."""

    def __init__(self, result: Path, begin, enabled: bool, tensorboard: bool):
        begin_epoch, begin_step = begin.epoch, begin.step  # a trainstate.Position
        resume = begin_epoch > 1 or begin_step > 0
        self.enabled = enabled
        self.train = self.batch = self.val = self.writer = None
        if not enabled:
            return
        self.train = TSVLog(
            result / "train.log", ["epoch", "loss", "acc", "lr"], resume, begin_epoch
        )
        self.batch = TSVLog(
            result / "train_batch.log",
            ["epoch", "batch", "iter", "loss", "acc", "lr"],
            resume,
            begin_epoch,
            begin_step,
        )
        self.val = TSVLog(
            result / "val.log",
            ["epoch", "loss", "acc", "video_acc", "video_top5"],
            resume,
            begin_epoch,
        )
        self.writer = make_writer(result, begin_epoch) if tensorboard else None

    def __enter__(self) -> RunLogs:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for log in (self.train, self.batch, self.val):
            if log is not None:
                log.close()
        if self.writer is not None:
            self.writer.close()
        self.train = self.batch = self.val = self.writer = None

    def epoch(self, metrics: dict) -> None:
        """The epoch's rows (train.log, val.log) and scalars."""
        if not self.enabled:
            return
        epoch = metrics["epoch"]
        self.train.write([epoch, metrics["train_loss"], metrics["train_acc"], metrics["lr"]])
        if "val_loss" in metrics:
            self.val.write(
                [
                    epoch,
                    metrics["val_loss"],
                    metrics["val_clip_acc"],
                    metrics["val_video_top1"],
                    metrics["val_video_top5"],
                ]
            )
        if self.writer:
            for key, value in metrics.items():
                if key != "epoch":
                    self.writer.add_scalar(key.replace("_", "/", 1), value, epoch)
            self.writer.flush()


def write_missing(result: Path, missing: dict[str, list[str]], video_path: str) -> None:
    """`missing_videos.txt`: `subset<TAB>video id` per annotated video not found, and a line
    saying so."""
    if not any(missing.values()):
        return
    listed = result / "missing_videos.txt"
    lines = [f"{subset}\t{v}" for subset, ids in missing.items() for v in ids]
    atomic_write(listed, lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n"))
    every = [v for ids in missing.values() for v in ids]
    counts = " and ".join(f"{len(ids)} {subset}" for subset, ids in missing.items())
    print(
        f"{counts} videos of the annotation file are not under {video_path} (left out; all "
        f"named in {listed}), e.g. {every[:3]}"
    )


def make_writer(result: Path, begin_epoch: int):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        print("tensorboard is not installed: no TensorBoard scalars")
        return None
    return SummaryWriter(log_dir=str(result / "tensorboard"), purge_step=begin_epoch)


def progress_bar(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="batch", disable=not enabled, leave=False)


def format_epoch(m: dict) -> str:
    text = f"epoch {m['epoch']}: train loss {m['train_loss']:.4f} clip acc {m['train_acc']:.3f} lr {m['lr']:.3g}"
    if "val_loss" in m:
        text += (
            f" | val loss {m['val_loss']:.4f} clip acc {m['val_clip_acc']:.3f} "
            f"video top-1 {m['val_video_top1']:.3f} top-5 {m['val_video_top5']:.3f}"
        )
    return text
