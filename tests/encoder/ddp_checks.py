"""Run by ``tests/encoder/test_gpu_readiness.py`` under ``torchrun --nproc_per_node 2`` (gloo, CPU):
each mechanism that a multi-GPU run relies on, checked on two processes. Writes
``OUT/rank<r>.json`` with what it measured; the test compares the ranks' files."""

import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from encoder.checkpoints import restore_rng, rng_states
from encoder.clip import clip_loss
from encoder.distributed import seed_ranks, setup_distributed
from encoder.loop import wrap


def main():
    out = Path(sys.argv[1])
    d = setup_distributed("cpu", timeout_minutes=5)
    got = {}

    # seeds offset by rank: the ranks' dropout masks differ, and the same rank's are reproducible
    seed_ranks(7, d.rank)
    mask = (torch.nn.functional.dropout(torch.ones(64), 0.5, training=True) > 0).int().tolist()
    seed_ranks(7, d.rank)
    again = (torch.nn.functional.dropout(torch.ones(64), 0.5, training=True) > 0).int().tolist()
    got["mask"], got["mask_again"] = mask, again

    # every rank's random state gathered, and each rank restoring its own: the next draws repeat
    states = rng_states(d)
    after = torch.rand(4).tolist()
    torch.manual_seed(999)  # disturb it
    how = restore_rng(states, d.rank, d.world)
    got["rng_restored"] = how
    got["after"], got["after_restored"] = after, torch.rand(4).tolist()
    got["rng_entries"] = len(states["rng_by_rank"])

    # no_sync: the gradient all-reduce runs once per step, not once per micro-batch
    torch.manual_seed(0)
    lin = torch.nn.Linear(3, 1)
    ddp = wrap(lin, d, False)
    calls = []

    def count(state, bucket):
        calls.append(1)
        fut = torch.futures.Future()
        fut.set_result(bucket.buffer())
        return fut
    ddp.register_comm_hook(None, count)
    for micro in range(4):
        with ddp.no_sync() if micro < 3 else torch.enable_grad():
            ddp(torch.randn(2, 3)).sum().backward()
    got["allreduce_calls"] = len(calls)

    # the gathered contrastive loss: the ranks' losses average to one process's on the whole batch,
    # and each rank's features get that loss's gradient (times the number of ranks)
    torch.manual_seed(1)
    p_all = torch.nn.functional.normalize(torch.randn(8, 5), dim=-1)
    e_all = torch.nn.functional.normalize(torch.randn(8, 5), dim=-1)
    p = p_all[d.rank * 4:(d.rank + 1) * 4].clone().requires_grad_(True)
    loss = clip_loss(p, e_all[d.rank * 4:(d.rank + 1) * 4], torch.tensor(10.0))
    loss.backward()
    whole = p_all.clone().requires_grad_(True)
    clip_loss(whole, e_all, torch.tensor(10.0), gather=False).backward()
    got["loss"] = float(loss)
    got["loss_whole"] = float(clip_loss(p_all, e_all, torch.tensor(10.0), gather=False))
    got["grad"] = (p.grad / d.world).flatten().tolist()
    got["grad_whole"] = whole.grad[d.rank * 4:(d.rank + 1) * 4].flatten().tolist()
    (out / f"rank{d.rank}.json").write_text(json.dumps(got))
    # the DDP module's reducer holds gloo's threads: released, and every rank done, before the
    # group goes (a rank leaving first made the other abort at exit, now and then)
    del ddp
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    np.random.seed(0)
    main()
