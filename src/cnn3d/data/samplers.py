"""The order training and validation draw clips in, per epoch and per DDP rank."""

from __future__ import annotations

import torch
from torch.utils.data import Sampler


class ShardSampler(Sampler):
    """Rank r of w takes items r, r+w, ... in order: no padding, so summed metrics are exact."""

    def __init__(self, n: int, rank: int, world: int):
        self.indices = list(range(rank, n, world))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self):
        return len(self.indices)


class EpochSampler(Sampler):
    """A shuffled order that depends only on (seed, epoch), so a resumed run sees the same data.
    It yields `(epoch, index)` pairs: the dataset draws item `index`'s random clip for that
    epoch, also in persistent DataLoader workers, which keep their own copy of the dataset.

    Under DDP, rank r of w takes every w-th item of the same order (padded by repeating its
    start, as DistributedSampler does, when w does not divide n): batch k of w ranks x B items
    holds exactly the items of batch k of one process with w x B, so the two runs train alike.
    """

    def __init__(self, n: int, seed: int, rank: int = 0, world: int = 1):
        self.n, self.seed, self.epoch, self.skip = n, seed, 0, 0
        self.rank, self.world = rank, world

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """The epoch to draw; `skip` leaves out the first items of this rank's share (those of
        the steps a resumed run has already trained)."""
        self.epoch, self.skip = epoch, skip

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.n, generator=generator).tolist()
        order += order[: self.share * self.world - self.n]
        return ((self.epoch, i) for i in order[self.rank :: self.world][self.skip :])

    @property
    def share(self) -> int:
        """Items per rank in a whole epoch."""
        return -(-self.n // self.world)

    def __len__(self):
        return max(0, self.share - self.skip)
