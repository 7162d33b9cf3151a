"""`Conv3d`: nn.Conv3d with a CPU training path that does not trip oneDNN's small-input bugs.

On the PyTorch build these machines use (2.14.1), the CPU weight gradient of a 3D convolution is
wrong when the implicit zero padding covers an input dimension that is not longer than the kernel:
in bf16 whenever the kernel is longer than the input along the depth (time) axis, e.g. every
3x3x3 conv on the 2-frame feature maps of layer3 of a 16-frame 3D ResNet, and in fp32 for some
(t=7, stride 2) stems on 6- or 7-frame inputs. The results are garbage (1e35, inf, NaN), change
from run to run, and have crashed the process with heap corruption. Forward outputs and input
gradients are right. Padding those dimensions explicitly (`F.pad`, then no implicit padding)
computes the same function and gives correct gradients in every case we scanned; it costs a copy of
feature maps that are only a few frames long.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def risky_dims(
    shape: tuple[int, ...], kernel: tuple[int, ...], padding: tuple[int, ...], dilation
) -> list[int]:
    """Spatio-temporal dims (0=T, 1=H, 2=W) whose implicit padding should be made explicit: those
    no longer than the kernel's extent (every wrong case scanned was one of them)."""
    return [d for d in range(3) if padding[d] > 0 and shape[d] <= dilation[d] * (kernel[d] - 1) + 1]


class Conv3d(nn.Conv3d):
    """Same parameters and state-dict keys as nn.Conv3d; see the module docstring."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            x.device.type != "cpu"
            or not torch.is_grad_enabled()
            or isinstance(self.padding, str)
            or self.padding_mode != "zeros"
        ):
            return super().forward(x)
        dims = risky_dims(tuple(x.shape[2:]), self.kernel_size, self.padding, self.dilation)
        if not dims:
            return super().forward(x)
        pad = [0] * 6  # F.pad order: W left/right, H left/right, T left/right
        padding = list(self.padding)
        for d in dims:
            pad[2 * (2 - d)] = pad[2 * (2 - d) + 1] = self.padding[d]
            padding[d] = 0
        padded = F.pad(x, pad)
        if x.is_contiguous(memory_format=torch.channels_last_3d):
            padded = padded.contiguous(memory_format=torch.channels_last_3d)  # F.pad drops it
        return F.conv3d(
            padded, self.weight, self.bias, self.stride, padding, self.dilation, self.groups
        )
