"""PyTorch DDP under ``torchrun``: process-group set-up and the few collectives training needs.

Every rank draws the same *global* batch from the same seeded stream and keeps its own slice, so
the averaged gradient equals the single-process gradient of the global batch, and a checkpoint
(which holds only global state) resumes under any world size.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from realnvp.bijectors.normalization import global_moments  # noqa: F401 (batch norm's collective, re-exported)
from realnvp.errors import UserError


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the ``torchrun`` world; the default is a plain run, a world of one.

    Example:
        >>> info = DistInfo(rank=1, world_size=4, local_rank=1)
        >>> info.is_main, info.enabled
        (False, True)
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Only rank 0 writes checkpoints, metrics and pictures."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup(device: torch.device) -> DistInfo:
    """Join the process group ``torchrun`` describes (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, rendezvous
    in ``MASTER_ADDR``/``MASTER_PORT``); a plain run is a world of one. NCCL on CUDA, gloo on CPU.

    Example:
        >>> setup(torch.device("cpu"))  # not under torchrun: no process group is created
        DistInfo(rank=0, world_size=1, local_rank=0)
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        try:
            dist.init_process_group(backend=backend)
        except (RuntimeError, ValueError) as exc:
            raise UserError(f"cannot join the distributed group ({backend}): {str(exc).splitlines()[0]}") from None
    info = DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        torch.cuda.set_device(info.local_rank)
    return info


def local_slice(batch: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """This rank's contiguous share of a global batch (the global size must divide evenly).

    Example:
        >>> local_slice(torch.arange(8), DistInfo(rank=1, world_size=4)).tolist()
        [2, 3]
        >>> local_slice(torch.arange(6), DistInfo(rank=0, world_size=4))
        Traceback (most recent call last):
        ...
        realnvp.errors.UserError: train.batch_size 6 must be divisible by the world size 4
    """
    if not info.enabled:
        return batch
    if len(batch) % info.world_size:
        raise UserError(f"train.batch_size {len(batch)} must be divisible by the world size {info.world_size}")
    share = len(batch) // info.world_size
    return batch[info.rank * share : (info.rank + 1) * share]


def mean_over_ranks(value: torch.Tensor) -> torch.Tensor:
    """The average of ``value`` over all ranks (identity without a process group).

    Example:
        >>> mean_over_ranks(torch.tensor([1.0, 3.0])).tolist()  # a world of one: unchanged
        [1.0, 3.0]
    """
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        value = value.clone()
        dist.all_reduce(value)
        value /= dist.get_world_size()
    return value


def teardown(info: DistInfo) -> None:
    """Leave the process group ``setup`` joined, if any (``cmd_train`` calls it once training ends).

    Example:
        >>> teardown(setup(torch.device("cpu")))  # a world of one: nothing to leave
        >>> dist.is_initialized()
        False
    """
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
