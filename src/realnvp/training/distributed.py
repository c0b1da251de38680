"""PyTorch DDP under ``torchrun``: process-group set-up and the few collectives training needs.

Every rank draws the same *global* batch from the same seeded stream and keeps its own slice, so
the averaged gradient equals the single-process gradient of the global batch, and a checkpoint
(which holds only global state) resumes under any world size.
"""

from __future__ import annotations

import functools
import inspect
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from realnvp.bijectors.normalization import global_moments
from realnvp.errors import UserError

T = TypeVar("T")
# How long a collective waits for a silent peer (a hung process, a node that lost power) before it
# fails; a killed peer fails it at once (its sockets are closed). Rank 0 alone writes checkpoints while
# the others wait, which takes seconds; gloo's own default is 30 minutes.
COLLECTIVE_TIMEOUT = timedelta(minutes=10)


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
            dist.init_process_group(backend=backend, timeout=COLLECTIVE_TIMEOUT)
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


def barrier(info: DistInfo) -> None:
    """Wait until every rank gets here (a plain run has no one to wait for).

    Example:
        >>> barrier(DistInfo())  # a world of one: returns at once
    """
    if info.enabled:
        dist.barrier()


class RankLost(UserError):
    """A rank of the group died, hung or was stopped: the surviving ranks end with one line that says
    which, where, and what ``--resume`` continues from (``ranks_watched``).

    Example:
        >>> isinstance(RankLost("rank 1 of 2 stopped"), UserError)  # the CLI says it in one line, exit 2
        True
    """


class _Stopped(BaseException):
    """SIGTERM, which torchrun sends every rank once one fails (no ``except Exception`` swallows it)."""


# How far the watched training got: a callable giving (step, last checkpointed step, 0 for none).
_progress: ContextVar[Callable[[], tuple[int, int]] | None] = ContextVar("realnvp_progress", default=None)


def report_progress(progress: Callable[[], tuple[int, int]]) -> None:
    """Tell ``ranks_watched`` how to read how far training got once it runs: ``progress()`` is the step
    and the last checkpointed one (0 for none). Before this, a failure is "before training started".

    Example:
        >>> report_progress(lambda: (25, 20))  # at step 25, the last checkpoint at step 20
    """
    _progress.set(progress)


def is_collective_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is a collective that failed (a peer gone or silent) rather than a bug: a
    ``DistError``, or gloo's or NCCL's own words (gloo raises a plain ``RuntimeError`` through autograd).

    Example:
        >>> is_collective_failure(RuntimeError("[../gloo/transport/tcp/pair.cc:545] Read error: Connection reset"))
        True
        >>> is_collective_failure(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
        False
    """
    text = str(exc).lower()
    return isinstance(exc, getattr(dist, "DistError", ())) or "gloo" in text or "nccl" in text


def rank_lost_message(rank: int, world: int, how: str, step: int | None, saved: int) -> str:
    """The line a surviving rank ends with. ``how``: "lost" (a peer's connection closed: it died),
    "timeout" (a peer silent for ``COLLECTIVE_TIMEOUT``) or "sigterm" (torchrun stopped this rank);
    ``step`` None: before training started; ``saved``: the last checkpointed step (0: none). Of two
    ranks the failed one is the other; of more it cannot be told here: "another rank".

    Example:
        >>> print(rank_lost_message(0, 2, "lost", 1083, 1080))
        rank 1 of 2 stopped (connection to it lost during training at step 1083); the checkpoints up to
        step 1080 are intact: rerun with --resume to continue
        >>> print(rank_lost_message(2, 4, "sigterm", None, 0))
        rank 2 of 4 was stopped by SIGTERM before training started (torchrun stops every rank once one
        fails: see the output of the others); the run directory is as it was: rerun the same command
    """
    who = f"rank {1 - rank} of 2" if world == 2 else f"another rank of {world}"
    where = "before training started" if step is None else f"during training at step {step}"
    what = {"lost": f"{who} stopped (connection to it lost {where})",
            "timeout": f"{who} stopped responding (silent for {COLLECTIVE_TIMEOUT.total_seconds():g} s {where})",
            "sigterm": f"rank {rank} of {world} was stopped by SIGTERM {where} (torchrun stops every rank once one "
                       f"fails: see the output of {who if world == 2 else 'the others'})"}[how]
    if step is None:
        return f"{what}; the run directory is as it was: rerun the same command"
    if not saved:
        return f"{what}; no checkpoint was written yet: rerun the same command to start again"
    if rank == 0:
        return f"{what}; the checkpoints up to step {saved} are intact: rerun with --resume to continue"
    return f"{what}; rank 0's checkpoints, up to step {saved} at most, are intact: rerun with --resume to continue"


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """SIGTERM raises ``_Stopped`` (once: a second one is ignored while the first unwinds) instead of
    ending the process silently; the previous handler is restored afterwards. Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise _Stopped

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _rank_lost(how: str) -> RankLost:
    """The ``RankLost`` for this rank, after leaving the process group (a broken group left standing can
    delay the exit) and, under torchrun, ignoring its SIGTERM, which follows within its monitor interval
    and would otherwise end the process before it says its one line (the process is ending anyway)."""
    progress = _progress.get()
    step, saved = progress() if progress else (None, 0)
    if os.environ.get("TORCHELASTIC_RUN_ID") and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL \
            and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        if dist.is_initialized():
            dist.destroy_process_group()
    except (RuntimeError, ValueError):  # a group broken beyond tearing down: the exit frees it
        pass
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    return RankLost(rank_lost_message(rank, world, how, step, saved))


def ranks_watched(train_fn: Callable[..., T]) -> Callable[..., T]:
    """``train_fn`` with a failed collective (a rank killed, hung, or gone with its node) and torchrun's
    SIGTERM turned into ``RankLost``: one line, the process group left, so each surviving rank ends at
    once. ``train_fn`` calls ``report_progress`` once it trains. A plain run is unchanged.

    Example:
        >>> watched = ranks_watched(lambda: 1)
        >>> watched()  # not under torchrun: the function itself
        1
    """
    @functools.wraps(train_fn)
    def watched(*args: Any, **kwargs: Any) -> T:
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return train_fn(*args, **kwargs)
        token = _progress.set(None)
        try:
            with _sigterm_raises():
                return train_fn(*args, **kwargs)
        except _Stopped:
            raise _rank_lost("sigterm") from None
        except RuntimeError as exc:
            if not is_collective_failure(exc):
                raise
            raise _rank_lost("timeout" if "timed out" in str(exc).lower() else "lost") from None
        finally:
            _progress.reset(token)

    return watched
