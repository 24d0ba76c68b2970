"""A batch order that a resumed run continues exactly."""

from __future__ import annotations

import torch


class ResumableBatches(torch.utils.data.Sampler):
    """Index batches for one rank: epoch ``e`` shuffles with seed ``(seed, e)``; each global batch
    is split across ranks. Starting at a global step skips exactly the batches already seen."""

    def __init__(self, n: int, global_batch: int, seed: int, rank: int = 0, world: int = 1,
                 start_step: int = 0, total_steps: int | None = None, shuffle: bool = True):
        if global_batch % world:
            raise ValueError(f"batch {global_batch} is not divisible by {world} processes")
        if n < global_batch:
            raise ValueError(f"{n} examples are fewer than one batch of {global_batch}")
        self.n, self.batch, self.seed, self.rank, self.world = n, global_batch, seed, rank, world
        self.per_epoch = n // global_batch  # drop the last partial batch
        self.start, self.total, self.shuffle = start_step, total_steps, shuffle

    def order(self, epoch: int) -> torch.Tensor:
        if not self.shuffle:
            return torch.arange(self.n)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.n, generator=g)

    def __iter__(self):
        step = self.start
        while self.total is None or step < self.total:
            epoch, pos = divmod(step, self.per_epoch)
            order = self.order(epoch)
            while pos < self.per_epoch and (self.total is None or step < self.total):
                b = order[pos * self.batch:(pos + 1) * self.batch]
                yield b[self.rank::self.world].tolist()
                pos += 1
                step += 1
            if self.total is None and step % self.per_epoch == 0:
                return

    def __len__(self):
        return (self.total - self.start) if self.total is not None else self.per_epoch
