"""Where and how a network runs: the device, precision and memory format (`RuntimeConfig`), and
the torchrun environment (`Torchrun`, the one reader of RANK / WORLD_SIZE / LOCAL_RANK)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from .errors import UsageError
from .precision import amp_dtype, autocast, precision_name


@dataclass(frozen=True)
class Torchrun:
    """This process's place in a torchrun job (rank 0 of 1 when not started by torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    restart: int = 0  # how many times torchrun has restarted the job (--max-restarts)

    @classmethod
    def from_environment(cls) -> Torchrun:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        restart = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
        if world <= 1:
            return cls(restart=restart)
        rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
        return cls(rank, world, local, restart)

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


@dataclass(frozen=True)
class RuntimeConfig:
    """How a network runs. `device` None: the command's default; `amp` None: bf16 (fp16 on GPUs
    without bf16) autocast on GPUs and on CPUs with native bf16, fp32 elsewhere; `compile` None:
    `torch.compile` for inference from `inference.COMPILE_FROM` windows on."""

    device: str | None = None
    amp: bool | None = None
    channels_last: bool = True
    compile: bool | None = None

    def torch_device(self, default: str = "auto", torchrun: Torchrun | None = None) -> torch.device:
        """The device to use: `device`, else `default` ("auto": CUDA when present). A bare
        `cuda` becomes this process's GPU, `cuda:LOCAL_RANK` (`cuda:0` outside torchrun), so
        that `torch.cuda.set_device` and DDP's `device_ids` get an index."""
        name = self.device or default
        if name == "auto":
            name = "cuda" if torch.cuda.is_available() else "cpu"
        torchrun = torchrun or Torchrun.from_environment()
        if name == "cuda":
            name = f"cuda:{torchrun.local_rank}"
        try:
            device = torch.device(name)
        except RuntimeError as error:
            raise UsageError(f"--device {name}: {error}") from None
        if device.type == "cuda":
            count = torch.cuda.device_count() if torch.cuda.is_available() else 0
            if (device.index or 0) >= count:
                found = f"{count} CUDA GPU(s)" if count else "no CUDA GPU"
                raise UsageError(f"--device {name}: this machine has {found}")
        return device

    def autocast(self, device: torch.device):
        """The autocast context of this precision on `device` (or nothing, for fp32)."""
        return autocast(device, self.amp)

    def amp_dtype(self, device: torch.device) -> torch.dtype | None:
        return amp_dtype(device, self.amp)

    def precision_name(self, device: torch.device) -> str:
        return precision_name(device, self.amp)

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last_3d if self.channels_last else torch.contiguous_format


def prepare_device(device: torch.device) -> torch.device:
    """Make `device` this process's current GPU, with cuDNN choosing its fastest convolution
    algorithms for the (fixed) clip shapes; CPUs need nothing. Returns `device`."""
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
    return device
