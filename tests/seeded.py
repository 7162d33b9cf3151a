"""Weights and clips made from a seed, the same in cnn3d's tests and in the scripts that run a
reference implementation to make a golden (`tests/data/goldens/*/MAKE.md`): both import this
file, which needs only torch. Each tensor comes from its own generator (seed and the key's
CRC-32), so the values do not depend on the order of the keys or on the keys around them.

The values keep a deep network's activations in range with BatchNorm in eval mode: He-scaled
weights, BatchNorm scales and running variances in [0.5, 1.5], small biases and means.
"""

import zlib

import torch


def seeded_tensor(key: str, shape, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(key.encode()))
    shape = tuple(int(s) for s in shape)
    if key.endswith("num_batches_tracked"):
        return torch.zeros(shape, dtype=torch.long)
    if key.endswith("running_var") or (len(shape) == 1 and key.endswith("weight")):
        return (0.5 + torch.rand(shape, generator=g)).to(dtype)
    if key.endswith(("running_mean", "bias")) or len(shape) <= 1:
        return (0.1 * torch.randn(shape, generator=g)).to(dtype)
    fan_in = 1
    for s in shape[1:]:
        fan_in *= s
    return (torch.randn(shape, generator=g) * (2.0 / fan_in) ** 0.5).to(dtype)


def seeded_state(shapes: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """A state_dict with `shapes`' keys (in its order) and shapes, filled from `seed`."""
    return {key: seeded_tensor(key, shape, seed) for key, shape in shapes.items()}


def seeded_clip(shape, seed: int = 0) -> torch.Tensor:
    """A normalised clip batch [N, C, T, H, W] in [-1, 1), float32."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(tuple(shape), generator=g) * 2 - 1


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    """max |got - want| / max |want|: what the golden tests hold under 1e-4."""
    got, want = got.double(), want.double()
    return float((got - want).abs().max() / want.abs().max().clamp_min(1e-30))
