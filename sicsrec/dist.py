"""Data-parallel runs under torchrun: this process's rank, the process group, and the few collectives that
training, encoder alignment and evaluation need. Without torchrun's environment (WORLD_SIZE unset or 1)
every helper is a no-op."""

from __future__ import annotations

import atexit
import contextlib
import datetime
import os
from collections.abc import Iterator, Sequence

import torch
import torch.distributed as tdist

# Rank 0 alone mines pairs while the others wait at a barrier (feature extraction and alignment run on every rank).
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


def all_gather_rows_keep_grad(local: torch.Tensor) -> torch.Tensor:
    """Every rank's rows of `local` [n_r, ...] concatenated in rank order [sum n_r, ...], where this rank's own
    rows are `local` itself: a loss over all rows backpropagates into this rank's rows, the others' are constants.

    Each rank then holds the gradient of that loss through its own rows only; summed over the ranks
    (`sum_gradients`) they make the gradient one process gets from the whole batch."""
    if not active():
        return local
    w, dev = world_size(), _comm_device()
    sizes = torch.zeros(w, dtype=torch.long, device=dev)
    sizes[rank()] = len(local)
    tdist.all_reduce(sizes)
    padded = local.new_zeros((int(sizes.max()), *local.shape[1:]), device=dev)  # [max n_r, ...]
    padded[: len(local)] = local.detach()
    parts = [torch.empty_like(padded) for _ in range(w)]
    tdist.all_gather(parts, padded)
    rows = [p[: int(n)].to(local.device) for p, n in zip(parts, sizes.tolist(), strict=True)]
    rows[rank()] = local
    return torch.cat(rows)


def broadcast_(tensors: Sequence[torch.Tensor]) -> None:
    """Overwrite `tensors` in place with rank 0's (one flat broadcast), so every rank starts from the same weights."""
    if not active() or not tensors:
        return
    flat = torch.cat([t.detach().reshape(-1) for t in tensors]).to(_comm_device())  # [sum of numel]
    tdist.broadcast(flat, src=0)
    with torch.no_grad():
        for t, part in zip(tensors, flat.split([t.numel() for t in tensors]), strict=True):
            t.copy_(part.view_as(t))


def sum_gradients(params: Sequence[torch.Tensor]) -> None:
    """Replace each parameter's gradient by its sum over the ranks (one flat all-reduce).

    A rank without a gradient for a parameter adds zeros; a parameter without one on every rank keeps
    none, as in one process (the optimiser then skips it: no weight decay, no moment update)."""
    if not active() or not params:
        return
    grads = [p.grad.reshape(-1) if p.grad is not None else p.new_zeros(p.numel()) for p in params]
    has = torch.tensor([p.grad is not None for p in params], dtype=grads[0].dtype, device=grads[0].device)
    flat = torch.cat([*grads, has]).to(_comm_device())  # [sum of numel + one flag per parameter]
    tdist.all_reduce(flat)
    parts = flat.split([p.numel() for p in params] + [len(params)])
    for p, part, seen in zip(params, parts[:-1], parts[-1].tolist(), strict=True):
        p.grad = part.view_as(p).to(p.device, p.dtype) if seen > 0 else None


@contextlib.contextmanager
def main_first() -> Iterator[None]:
    """Run the block on rank 0 first and on the other ranks after it: they then find its outputs written
    (the mined pairs) instead of racing it to write them."""
    if not is_main():
        barrier()
    yield
    if is_main():
        barrier()
