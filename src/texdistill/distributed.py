"""torch.distributed helpers: set up from torchrun's environment; every helper is a no-op at world size 1.

Launch any stage with `torchrun --nproc-per-node P [--nnodes N ...] -m texdistill <stage> ...`: torchrun sets
RANK/WORLD_SIZE/LOCAL_RANK/MASTER_ADDR/MASTER_PORT, and `setup()` joins the process group (NCCL on CUDA,
gloo on CPU). Without torchrun the same code runs as a single process.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from texdistill.errors import ConfigError

T = TypeVar("T")
TIMEOUT_ENV = "TEXDISTILL_DIST_TIMEOUT_MIN"
DEFAULT_TIMEOUT_MIN = 180  # ranks wait at barriers for a whole expert or judge another rank trains


def timeout() -> timedelta:
    """How long a rank waits for the others before the collective fails (NCCL's own default, 10 min, kills ranks
    that wait at a barrier while rank 0 trains an expert); set TEXDISTILL_DIST_TIMEOUT_MIN to change it."""
    value = os.environ.get(TIMEOUT_ENV, str(DEFAULT_TIMEOUT_MIN))
    try:
        minutes = float(value)
    except ValueError:
        raise ConfigError(f"{TIMEOUT_ENV} must be a number of minutes, got '{value}'") from None
    if minutes <= 0:
        raise ConfigError(f"{TIMEOUT_ENV} must be > 0 minutes, got {minutes:g}")
    return timedelta(minutes=minutes)


def setup(device: torch.device) -> None:
    """Join the process group torchrun describes, if any (device: this rank's, see CommonConfig.torch_device)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl", timeout=timeout(), device_id=device)
    else:
        dist.init_process_group(backend="gloo", timeout=timeout())


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main() -> bool:
    """True on the rank that reports and writes shared files (rank 0, or the only process)."""
    return rank() == 0


def my_share(indices: list[int]) -> list[int]:
    """The items of `indices` this rank owns (round robin)."""
    return indices[rank()::world_size()]


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum `tensor` over ranks in place (and return it)."""
    if world_size() > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_gather_objects(obj: Any) -> list[Any]:
    """Every rank's `obj`, in rank order."""
    if world_size() == 1:
        return [obj]
    gathered: list[Any] = [None] * world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def main_first(make: Callable[[], T]) -> T:
    """make() on rank 0 first, then on the others: what rank 0 builds on disk (the decoded dataset's cache)
    the others only read, and no rank can open a cache another is still renaming into place."""
    if world_size() == 1:
        return make()
    if is_main():
        result = make()
        barrier()
        return result
    barrier()
    return make()


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


def my_rows(batch: int) -> slice:
    """This rank's contiguous block of a batch of `batch` rows split over the ranks (all rows at world size 1)."""
    size = world_size()
    if batch < size:
        raise ConfigError(f"a student batch of {batch} samples cannot be split over {size} processes; use "
                          f"--nproc-per-node ≤ {batch} or a bigger synthetic batch")
    return slice(batch * rank() // size, batch * (rank() + 1) // size)
