"""One process on CPU, or one per GPU under ``torchrun``; mixed precision on GPU.

Randomness across processes: the weights start alike (seeded by ``seed``; DistributedDataParallel
also broadcasts rank 0's), the batch order is drawn from generators of their own, equal on every
rank (each rank takes its share of the same global batch), and the draws a rank makes on its own
(dropout masks, augmentations) are seeded by ``(seed, rank)`` so that ranks do not repeat each
other's masks (:func:`seed_ranks`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from phewas.base.errors import SettingError

log = logging.getLogger(__name__)


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str = "auto", timeout_minutes: float = 60.0) -> Dist:
    """One process on CPU, or one per GPU under ``torchrun`` (reads ``RANK``/``WORLD_SIZE``).

    ``timeout_minutes`` bounds how long a collective waits for the slowest rank (rank 0
    evaluating, say), instead of torch's 10 minutes. A rank without a GPU of its own is one
    clear error, not a CUDA one."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise SettingError("--device cuda: torch sees no GPU (use --device cpu or auto)")
        if local >= torch.cuda.device_count():
            raise SettingError(f"--device cuda: process {local} of this node has no GPU of its own "
                               f"({torch.cuda.device_count()} visible); start at most that many processes per node "
                               "(torchrun --nproc_per_node)")
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    else:
        dev = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo",
                                timeout=dt.timedelta(minutes=timeout_minutes))
    if rank > 0:  # rank 0 reports; the others' logs would repeat it
        logging.getLogger("phewas").setLevel(logging.WARNING)
        logging.getLogger("encoder").setLevel(logging.WARNING)
    return Dist(rank=rank, world=world, local_rank=local, device=dev)


def configure_backends(deterministic: bool) -> None:
    """cuDNN's autotuner for speed, or deterministic kernels (and no autotuning) for a resume that
    repeats the uninterrupted run exactly on a GPU."""
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cudnn.deterministic = deterministic
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)


def seed_ranks(seed: int, rank: int) -> None:
    """Seed this rank's own draws (dropout) by ``(seed, rank)``: ranks differ, reruns agree."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(int(torch.randint(0, 2 ** 62, (1,), generator=g)) + 1_000_003 * rank)


def cleanup_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def autocast(device: torch.device, bf16: bool):
    """bf16 autocast on GPU; a no-op elsewhere."""
    if bf16 and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def precision(device: torch.device, bf16: bool) -> str:
    """What a forward pass computes in: ``bf16`` (autocast on a GPU) or ``fp32``."""
    return "bf16" if bf16 and device.type == "cuda" else "fp32"


def no_autocast(device: torch.device):
    """Float32 inside an autocast region (heads and losses)."""
    return torch.autocast(device_type=device.type, enabled=False)
