"""Data-parallel meta-training under `torchrun`: process group setup and the few collectives it needs.

Launched by `torchrun --nproc_per_node=N` (which sets RANK, WORLD_SIZE, LOCAL_RANK), every rank
collects the same data from the same seed, takes its slice of each global batch, and averages
gradients with one all_reduce per step. Without torchrun every helper is a single-process no-op.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch
import torch.distributed as dist


def launched_by_torchrun() -> bool:
    """True when torchrun's environment variables are present."""
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))


def rank() -> int:
    """This process's rank (0 outside torchrun)."""
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    """Number of processes training together (1 outside torchrun)."""
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main() -> bool:
    """Rank 0 (or the only process): the one that writes files and shows progress."""
    return rank() == 0


def barrier() -> None:
    """Wait for every rank (a no-op in a single process)."""
    if dist.is_initialized():
        dist.barrier()


@contextmanager
def process_group(device: torch.device) -> Iterator[torch.device]:
    """Join torchrun's process group for the duration (nccl on CUDA, gloo on CPU); yields this rank's device.

    Outside torchrun, or when the caller already initialized a group, nothing is set up or torn down.
    """
    if not launched_by_torchrun() or dist.is_initialized():
        yield device
        return
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo",
                            device_id=device if device.type == "cuda" else None)
    try:
        yield device
        barrier()  # every rank returns only after rank 0 has written the run directory
    finally:
        dist.destroy_process_group()


def broadcast_parameters(params: Iterable[torch.Tensor]) -> None:
    """Copy rank 0's values to every rank (same seed already gives the same init; this makes it certain)."""
    if world_size() > 1:
        for p in params:
            dist.broadcast(p.data, src=0)


def average_gradients(params: Iterable[torch.nn.Parameter]) -> None:
    """Replace each gradient by its mean over ranks, in one flat all_reduce (what DDP computes)."""
    n = world_size()
    grads = [p.grad for p in params if p.grad is not None]  # the same set on every rank: same code path
    if n == 1 or not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= n
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def mean_over_ranks(values: torch.Tensor) -> torch.Tensor:
    """Elementwise mean of a tensor over ranks (a copy; the input is left unchanged)."""
    values = values.detach().clone()
    if world_size() > 1:
        dist.all_reduce(values)
        values /= world_size()
    return values


def broadcast_from_main(obj):
    """Rank 0's (picklable) object on every rank; other ranks may pass None."""
    if world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
