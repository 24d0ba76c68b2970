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


class ChunkBatches(torch.utils.data.Sampler):
    """The AnyPPG release's batches, resumable at any step.

    Each source's examples (``sources``: one index array per source) are shuffled once (seeded by
    ``seed`` and the source) and cut into chunks of ``chunk`` (the last chunk of a source smaller),
    as its ``s4_merge_segments.py`` writes them. Each epoch shuffles the chunks (seeded by the
    epoch) and takes them ``per_batch`` at a time: one process's batch, so that a batch mixes at
    most ``per_batch`` sources. Process ``r`` takes batches ``r, r + world, ...`` and the sequence
    wraps round so that every process has ``ceil(N / world)`` per epoch (accelerate's even
    batches); a resumed run continues exactly.
    """

    def __init__(self, sources: list, chunk: int, per_batch: int, seed: int, rank: int = 0, world: int = 1,
                 start_step: int = 0, total_steps: int | None = None):
        chunks = []
        for k, idx in enumerate(sources):
            idx = torch.as_tensor(idx, dtype=torch.long)
            g = torch.Generator().manual_seed(seed * 1_000_003 + 7919 * (k + 1))
            idx = idx[torch.randperm(len(idx), generator=g)]
            chunks += [idx[a:a + chunk] for a in range(0, len(idx), chunk)]
        if not chunks:
            raise ValueError("no examples to batch")
        self.chunks, self.per_batch, self.seed, self.rank, self.world = chunks, per_batch, seed, rank, world
        self.batches = -(-len(chunks) // per_batch)  # N, as len(train_dl) before accelerate shards it
        self.per_epoch = -(-self.batches // world)
        self.start, self.total = start_step, total_steps

    def batch(self, step: int) -> list[int]:
        """This process's indices at ``step``."""
        epoch, pos = divmod(step, self.per_epoch)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        order = torch.randperm(len(self.chunks), generator=g)
        b = (pos * self.world + self.rank) % self.batches
        return torch.cat([self.chunks[c] for c in order[b * self.per_batch:(b + 1) * self.per_batch]]).tolist()

    def __iter__(self):
        step = self.start
        while self.total is None or step < self.total:
            yield self.batch(step)
            step += 1
            if self.total is None and step % self.per_epoch == 0:
                return

    def __len__(self):
        return (self.total - self.start) if self.total is not None else self.per_epoch
