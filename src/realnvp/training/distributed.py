"""PyTorch DDP under ``torchrun``: process-group set-up and the few collectives training needs.

Every rank draws the same *global* batch from the same seeded stream and keeps its own slice, so
the averaged gradient equals the single-process gradient of the global batch, and a checkpoint
(which holds only global state) resumes under any world size.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from realnvp.bijectors.normalization import global_moments
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


def resolve_device(name: str) -> torch.device:
    """``train.device`` as a ``torch.device``: "auto" picks CUDA when present; asking for a missing GPU
    or an unknown device is a ``UserError``.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
        >>> resolve_device("tpu")
        Traceback (most recent call last):
        ...
        realnvp.errors.UserError: unknown device 'tpu'; expected auto, cpu or cuda
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but no CUDA GPU is available (use --device cpu)")
    if name not in ("cpu", "cuda"):
        raise UserError(f"unknown device {name!r}; expected auto, cpu or cuda")
    return torch.device(name)


def join(device_name: str) -> tuple[torch.device, DistInfo]:
    """The training device (``train.device``) and, under ``torchrun``, this process's place in the
    process group, joined; each rank takes its own GPU.

    Example:
        >>> join("cpu")
        (device(type='cpu'), DistInfo(rank=0, world_size=1, local_rank=0))
    """
    device = resolve_device(device_name)
    info = setup(device)
    if info.enabled and device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
    return device, info


def rank0_clock(seconds: float, info: DistInfo) -> float:
    """Rank 0's ``seconds`` on every rank (the training clock: then the time budget ends every rank at
    the same step, and a time-based learning-rate schedule gives every rank the same rate, although
    their own clocks differ); ``seconds`` itself without a process group.

    Example:
        >>> rank0_clock(12.5, DistInfo())
        12.5
    """
    if not info.enabled:
        return seconds
    on_gpu = dist.get_backend() == "nccl"
    clock = torch.tensor(seconds, dtype=torch.float64, device=f"cuda:{info.local_rank}" if on_gpu else "cpu")
    dist.broadcast(clock, src=0)
    return clock.item()


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


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` whose training-mode statistics are the global batch's (every rank's share,
    differentiably, through ``global_moments``): under DDP each rank normalises with, and keeps running
    averages of, what one process with the whole batch would, so the s/t ResNets' batch norm
    (``model.conditioner_norm = "batch"``) trains as in one process. ``torch.nn.SyncBatchNorm`` does
    this on GPUs only (it refuses CPU tensors, so gloo runs could not use it); this works with gloo and
    NCCL alike. Same parameters and buffers (state-dict keys) as ``nn.BatchNorm2d``; eval mode is
    unchanged. In one process it computes what ``nn.BatchNorm2d`` does (to float rounding).

    Example:
        >>> bn = GlobalBatchNorm2d(2, momentum=0.5)
        >>> y = bn(torch.tensor([[1.0, 3.0], [3.0, 5.0]]).view(2, 2, 1, 1))
        >>> [round(v, 4) for v in y.flatten().tolist()], bn.running_mean.tolist(), bn.running_var.tolist()
        ([-1.0, -1.0, 1.0, 1.0], [1.0, 2.0], [1.5, 1.5])
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)
        xf = x.float()  # statistics in float32, also under bf16 autocast (as F.batch_norm does)
        mean, var = global_moments(xf, [0, 2, 3])
        if self.track_running_stats:
            self.num_batches_tracked.add_(1)
            momentum = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
            world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
            n = world * x.numel() // x.shape[1]  # values per channel in the global batch
            with torch.no_grad():  # running variance unbiased, as nn.BatchNorm2d keeps it
                self.running_mean.lerp_(mean.flatten(), momentum)
                self.running_var.lerp_(var.flatten() * n / max(n - 1, 1), momentum)
        y = (xf - mean) * torch.rsqrt(var + self.eps)
        if self.affine:
            y = y * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return y.to(x.dtype)


def sync_batch_norms(module: nn.Module) -> nn.Module:
    """Make every ``nn.BatchNorm2d`` inside ``module`` a ``GlobalBatchNorm2d`` sharing its parameters and
    buffers (so an optimizer built before, and the state dict, are unaffected); returns ``module``.
    Training calls it on the flow under DDP, before wrapping it.

    Example:
        >>> net = sync_batch_norms(nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)))
        >>> type(net[1]).__name__, list(net.state_dict())[2:4]
        ('GlobalBatchNorm2d', ['1.weight', '1.bias'])
    """
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            synced = GlobalBatchNorm2d(child.num_features, child.eps, child.momentum, child.affine,
                                       child.track_running_stats)
            for key, value in [*child.named_parameters(recurse=False), *child.named_buffers(recurse=False)]:
                setattr(synced, key, value)
            synced.train(child.training)
            setattr(module, name, synced)
        else:
            sync_batch_norms(child)
    return module


def data_parallel(flow: nn.Module) -> nn.Module:
    """``flow`` under DDP with its batch norms made global (``sync_batch_norms``). Buffers are not
    broadcast before each forward: every rank computes the same running averages from the global
    batch's statistics, so there is nothing to correct (rank 0's copies still go out once, at start).

    Example (needs a process group, as under ``torchrun``):
        >>> model = data_parallel(flow)  # doctest: +SKIP
    """
    sync_batch_norms(flow)
    ddp = nn.parallel.DistributedDataParallel
    no_broadcast = "forward_sync_buffers" if "forward_sync_buffers" in inspect.signature(ddp).parameters \
        else "broadcast_buffers"  # the name before torch 2.14, deprecated since
    return ddp(flow, **{no_broadcast: False})


def teardown(info: DistInfo) -> None:
    """Leave the process group ``setup`` joined, if any (``cmd_train`` calls it once training ends).

    Example:
        >>> teardown(setup(torch.device("cpu")))  # a world of one: nothing to leave
        >>> dist.is_initialized()
        False
    """
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
