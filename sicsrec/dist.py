"""Data-parallel runs under torchrun: this process's rank, the process group, and the few collectives that
training and evaluation need. Without torchrun's environment (WORLD_SIZE unset or 1) every helper is a no-op."""

from __future__ import annotations

import atexit
import contextlib
import datetime
import os
from collections.abc import Iterator

import torch
import torch.distributed as tdist

# Rank 0 alone extracts features, mines pairs and aligns encoders while the others wait at a barrier.
TIMEOUT = datetime.timedelta(hours=6)


def launched() -> bool:
    """Whether torchrun started this process as one of several (WORLD_SIZE > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def active() -> bool:
    """Whether a process group of more than one rank is up."""
    return tdist.is_available() and tdist.is_initialized() and tdist.get_world_size() > 1


def world_size() -> int:
    return tdist.get_world_size() if active() else 1


def rank() -> int:
    return tdist.get_rank() if active() else 0


def is_main() -> bool:
    """Rank 0: the one process that writes checkpoints, results, logs and progress."""
    return rank() == 0


def init(device: torch.device) -> torch.device:
    """Join torchrun's process group when launched by it (NCCL on GPUs, gloo on CPU); this rank's device.

    Each GPU rank takes the GPU of its LOCAL_RANK. Idempotent: a second call returns the device as set up."""
    if device.type == "cuda" and launched():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    if launched() and not tdist.is_initialized():
        tdist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=TIMEOUT)
        atexit.register(close)
    return device


def close() -> None:
    """Leave the process group (at exit: torch warns about groups left open)."""
    if tdist.is_available() and tdist.is_initialized():
        tdist.destroy_process_group()


def barrier() -> None:
    if active():
        tdist.barrier()


def _comm_device() -> torch.device:
    """Where collectives take their tensors: the current GPU under NCCL, the CPU under gloo."""
    return torch.device("cuda", torch.cuda.current_device()) if tdist.get_backend() == "nccl" else torch.device("cpu")


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """The element-wise sum of `values` over all ranks (a copy; `values` itself is left alone)."""
    if not active():
        return values.clone()
    out = values.to(_comm_device(), copy=True)
    tdist.all_reduce(out)
    return out.to(values.device)


def shard(n: int) -> slice:
    """This rank's contiguous share of n rows (sizes differ by at most one)."""
    r, w = rank(), world_size()
    return slice(r * n // w, (r + 1) * n // w)


def all_gather_rows(local: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's 1-d `local` in rank order (shares of unequal length padded for the collective)."""
    if not active():
        return local
    w, dev = world_size(), _comm_device()
    sizes = torch.zeros(w, dtype=torch.long, device=dev)
    sizes[rank()] = local.numel()
    tdist.all_reduce(sizes)
    padded = torch.zeros(int(sizes.max()), dtype=local.dtype, device=dev)
    padded[: local.numel()] = local.to(dev)
    parts = [torch.empty_like(padded) for _ in range(w)]
    tdist.all_gather(parts, padded)
    return torch.cat([p[: int(n)] for p, n in zip(parts, sizes.tolist(), strict=True)]).to(local.device)


@contextlib.contextmanager
def main_first() -> Iterator[None]:
    """Run the block on rank 0 first and on the other ranks after it: they then find its caches written
    (features, mined pairs, aligned encoders) instead of racing it to write them."""
    if not is_main():
        barrier()
    yield
    if is_main():
        barrier()
