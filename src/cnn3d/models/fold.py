"""BatchNorm folding for inference: a BatchNorm that directly follows a convolution becomes part of
that convolution's weight and bias, and the BatchNorm layer an identity.

With running statistics (eval mode), `bn(conv(x)) = conv'(x)` where, per output channel,
`scale = gamma / sqrt(var + eps)`, `weight' = weight * scale` and
`bias' = (bias - mean) * scale + beta`. Which BatchNorm follows which convolution is found by
running a copy of the model once on a tiny clip (a BatchNorm whose input is a convolution's
output, unchanged since); the folded copy is then checked against the original on that clip, and
not used if it differs. Training needs the real
BatchNorm layers: fold only models used for inference.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def _pairs(model: nn.Module, clip: torch.Tensor) -> list[tuple[nn.Conv3d, nn.BatchNorm3d]]:
    """(conv, bn) pairs where the BatchNorm's input is exactly the convolution's output."""
    # output id -> (conv, the output itself, kept alive so its id is not reused, its version)
    made_by: dict[int, tuple[nn.Conv3d, torch.Tensor, int]] = {}
    pairs: list[tuple[nn.Conv3d, nn.BatchNorm3d]] = []
    hooks = []

    def after_conv(module, _inputs, output):
        made_by[id(output)] = (module, output, output._version)

    def before_bn(module, inputs):
        made = made_by.get(id(inputs[0]))
        # unchanged since the convolution made it (`out += shortcut` in place changes it)
        if made is not None and made[1]._version == made[2]:
            pairs.append((made[0], module))

    for m in model.modules():
        if isinstance(m, nn.Conv3d):
            hooks.append(m.register_forward_hook(after_conv))
        elif isinstance(m, nn.BatchNorm3d):
            hooks.append(m.register_forward_pre_hook(before_bn))
    try:
        with torch.no_grad():
            model(clip)
    finally:
        for h in hooks:
            h.remove()
    # a convolution or BatchNorm seen in more than one pair (shared modules) is left alone
    convs = [id(c) for c, _ in pairs]
    bns = [id(b) for _, b in pairs]
    return [(c, b) for c, b in pairs if convs.count(id(c)) == 1 and bns.count(id(b)) == 1]


def _replace(model: nn.Module, old: nn.Module, new: nn.Module) -> None:
    for parent in model.modules():
        for name, child in parent.named_children():
            if child is old:
                setattr(parent, name, new)


def fold_batchnorm(model: nn.Module, clip: torch.Tensor) -> tuple[nn.Module, int]:
    """A copy of `model` (in eval mode) with every BatchNorm3d that directly follows a Conv3d
    folded into it, and how many were folded. `clip`: a small input batch the model accepts,
    used to find the pairs and to check the copy (it must agree to 1e-4 relative in fp32)."""
    if model.training:
        raise ValueError("fold_batchnorm is for inference: call model.eval() first")
    original = model
    model = copy.deepcopy(model).float()
    clip = clip.float()
    with torch.no_grad():
        reference = model(clip)
    pairs = _pairs(model, clip)
    for conv, bn in pairs:
        with torch.no_grad():
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            weight = conv.weight * scale.view(-1, 1, 1, 1, 1)
            bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
            bias = (bias - bn.running_mean) * scale + bn.bias
        conv.weight = nn.Parameter(weight.contiguous(), requires_grad=False)
        conv.bias = nn.Parameter(bias, requires_grad=False)
        _replace(model, bn, nn.Identity())
    with torch.no_grad():
        folded = model(clip)
    error = float((folded - reference).norm() / reference.norm().clamp_min(1e-12))
    if error > 1e-4:  # a pairing the hooks could not see was wrong: keep the model as it was
        return original, 0
    return model, len(pairs)
