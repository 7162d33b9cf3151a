"""What one training run works with (`Run`): built by `setup.setup_run`, carried through the
loop, its fields changing as epochs go by."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from ..data.dataset import VideoDataset
from ..data.network_input import NetworkInput
from ..data.samplers import EpochSampler
from ..runtime import Torchrun
from .config import TrainConfig
from .state import Position


@dataclass
class Run:
    """What one training run works with (built by `setup_run`; changes as epochs go by)."""

    cfg: TrainConfig
    torchrun: Torchrun
    device: torch.device
    result: Path
    labels: list[str]
    model: torch.nn.Module
    net: torch.nn.Module  # the model, wrapped for DDP where there are several processes
    inputs: NetworkInput  # uint8 batches -> the network's input on the device
    optimizer: torch.optim.Optimizer
    scheduler: object
    scaler: torch.amp.GradScaler
    train_set: VideoDataset
    train_sampler: EpochSampler
    train_loader: DataLoader
    val_set: VideoDataset | None
    val_loader: DataLoader | None
    begin: Position = Position()  # where this run starts (resumed: maybe within an epoch)
    best: float = -1.0
    best_epoch: int | None = None  # the epoch best.pth holds (None: not known)
    saved: Position | None = None  # what last.pth holds, written by this run or before it
    steps_per_epoch: int = 0  # of this rank, a whole epoch
    last_save: float = field(default_factory=time.monotonic)
    epoch: int = 0  # the epoch in progress
    epoch_sums: tuple[float, float, float] = (0.0, 0.0, 0.0)  # its training sums, all ranks
    bad_videos: list[str] = field(default_factory=list)
    card: dict = field(default_factory=dict)  # how the run is made, stored in its checkpoints

    @property
    def begin_epoch(self) -> int:
        return self.begin.epoch

    @property
    def main_process(self) -> bool:
        return self.torchrun.rank == 0

    @property
    def log_every(self) -> int:
        return self.cfg.log_every or (1 if self.device.type == "cpu" else 20)
