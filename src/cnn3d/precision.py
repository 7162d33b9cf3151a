"""Precision: where bf16 (or fp16) autocast is used by default, and the autocast context the
training loop and inference share."""

from __future__ import annotations

import contextlib
import functools
import re
from pathlib import Path

import torch


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes in bf16 natively (AVX512-BF16 or AMX); without it bf16 is slower
    than fp32. Read once: the training step asks at every step."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return bool(re.search(r"\b(avx512_bf16|amx_bf16)\b", flags))


def default_amp(device: torch.device) -> bool:
    """Mixed precision by default on GPUs and on CPUs with native bf16."""
    return device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16())


def amp_dtype(device: torch.device, enabled: bool | None) -> torch.dtype | None:
    """bf16 (CPU, and GPUs that have it), fp16 on older GPUs, or None for fp32.
    `enabled=None` means `default_amp(device)`."""
    if enabled is None:
        enabled = default_amp(device)
    if not enabled:
        return None
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


def precision_name(device: torch.device, enabled: bool | None) -> str:
    dtype = amp_dtype(device, enabled)
    return {torch.bfloat16: "bf16 autocast", torch.float16: "fp16 autocast"}.get(dtype, "fp32")


# the precisions by name (`cnn3d benchmark --precision`): the autocast dtype, None for fp32
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device: torch.device, enabled: bool | None):
    """The autocast context of `amp_dtype`, or nothing.

    bf16 CPU training is right and reproducible only with cnn3d's `Conv3d` (see models/conv.py);
    plain nn.Conv3d on this PyTorch build gets some weight gradients wrong.
    """
    return autocast_of(device, amp_dtype(device, enabled))


def autocast_of(device: torch.device, dtype: torch.dtype | None):
    """The autocast context of `dtype` on `device`, or nothing for fp32 (None)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
