"""`Conv3d`: nn.Conv3d with a CPU training path that does not trip oneDNN's small-input bugs.

On the PyTorch build these machines use (2.14.1), the CPU weight gradient of a 3D convolution is
wrong when the implicit zero padding covers a temporal dimension that is not longer than the
kernel: in bf16 e.g. every 3x3x3 conv on the 2-frame feature maps of layer3 of a 16-frame 3D
ResNet, and in fp32 for some (t=7, stride 2) stems on 5- to 7-frame inputs. The results are garbage (1e35, inf, NaN), change
from run to run, and have crashed the process with heap corruption. Forward outputs and input
gradients are right. Padding the temporal dimension explicitly (`F.pad`, then no implicit temporal padding)
computes the same function and gives correct gradients in every case scanned; it costs a copy of
feature maps that are only a few frames long.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def pads_time(t: int, kernel_t: int, padding_t: int, dilation_t: int) -> bool:
    """Whether to make the temporal padding explicit: the input is no longer in time than the
    kernel's temporal extent. Every wrong case `benchmarks/conv3d_scan.py` found (T = 1-16,
    kernels 1/3/5/7, strides 1/2, fp32/bf16, both memory formats, two CPUs) has
    2 <= T <= kernel - 1 (3x3x3: T = 2; 5: T = 2-4; 7: T = 2-7); the rule adds T = 1 and T =
    kernel as a margin. Spatial size never mattered, so spatial padding stays implicit."""
    return padding_t > 0 and t <= dilation_t * (kernel_t - 1) + 1


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
        t_pad = self.padding[0]
        if not pads_time(x.shape[2], self.kernel_size[0], t_pad, self.dilation[0]):
            return super().forward(x)
        pad = (0, 0, 0, 0, t_pad, t_pad)  # F.pad order: W, H, then T (left, right)
        padding = (0, *self.padding[1:])
        padded = F.pad(x, pad)
        if x.is_contiguous(memory_format=torch.channels_last_3d):
            padded = padded.contiguous(memory_format=torch.channels_last_3d)  # F.pad drops it
        return F.conv3d(
            padded, self.weight, self.bias, self.stride, padding, self.dilation, self.groups
        )
