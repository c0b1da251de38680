"""One optimisation step, as ``train`` takes it and as benchmarks and custom loops can take it:
the learning-rate schedule, a random (dequantized) batch, the optimizer, the step itself, and the
``torch.compile`` wrapper that falls back to eager execution."""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Iterable, Iterator
from typing import Any

import torch

from realnvp.bijectors import dequantize, random_hflip
from realnvp.bijectors.normalization import set_statistics_pace
from realnvp.config import Config
from realnvp.flow import Flow
from realnvp.training.guard import NonFiniteGuard


def lr_factor(step: int, cfg: Config, elapsed: float = 0.0) -> float:
    """Linear warm-up, then constant or cosine decay to zero at ``train.steps``; ``cosine_time`` decays
    by the larger of the step's and the ``elapsed`` seconds' share of ``train.time_budget``.

    Example:
        >>> cfg = Config.from_dict({"train": {"steps": 1000, "warmup_steps": 100, "lr_schedule": "cosine"}})
        >>> [round(lr_factor(step, cfg), 3) for step in (0, 99, 500, 1000)]
        [0.01, 0.976, 0.5, 0.0]
        >>> cfg.train.lr_schedule, cfg.train.time_budget = "cosine_time", 60.0
        >>> [round(lr_factor(500, cfg, elapsed), 3) for elapsed in (0.0, 45.0, 60.0)]
        [0.5, 0.146, 0.0]
    """
    t = cfg.train  # checked: train.lr_schedule is one of config.CHOICES' three
    warm = min(1.0, (step + 1) / t.warmup_steps) if t.warmup_steps > 0 else 1.0
    if t.lr_schedule == "constant":
        return warm
    progress = step / t.steps
    if t.lr_schedule == "cosine_time":
        progress = max(progress, elapsed / t.time_budget)
    return warm * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def set_schedule(flow: Flow, optimizer: torch.optim.Optimizer, lr: float, factor: float) -> None:
    """The step's learning rate ``lr * factor``, and the same ``factor`` as the pace of the flow's
    batch-norm running averages (``set_statistics_pace``): both settle when the schedule ends.

    Example:
        >>> from realnvp.models import build_vector_flow
        >>> flow = build_vector_flow(2, n_couplings=2, hidden=(8,), batch_norm=True)
        >>> optimizer = torch.optim.Adam(flow.parameters())
        >>> set_schedule(flow, optimizer, 1e-3, 0.5)
        >>> optimizer.param_groups[0]["lr"], [m.pace.item() for m in flow.modules() if hasattr(m, "pace")]
        (0.0005, [0.5])
    """
    for group in optimizer.param_groups:
        group["lr"] = lr * factor
    set_statistics_pace(flow, factor)


def fetch_batch(train_x: torch.Tensor, size: int, generator: torch.Generator, n_levels: int,
                flip: bool) -> torch.Tensor:
    """A random training batch; images (``n_levels > 0``) are dequantized to ``(v + u) / n_levels``
    and, with ``flip``, mirrored at random. All randomness comes from ``generator`` (saved for resume).

    Example:
        >>> v = torch.randint(0, 17, (100, 1, 8, 8))
        >>> y = fetch_batch(v, 32, torch.Generator().manual_seed(0), n_levels=17, flip=True)
        >>> y.shape, bool(0 <= y.min() and y.max() < 1)
        (torch.Size([32, 1, 8, 8]), True)
    """
    return fetch_batch_and_context(train_x, None, size, generator, n_levels, flip)[0]


def fetch_batch_and_context(train_x: torch.Tensor, train_c: torch.Tensor | None, size: int,
                            generator: torch.Generator, n_levels: int, flip: bool,
                            lattice: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``fetch_batch`` and the same rows of the contexts ``train_c`` (None: no context), for
    conditional flows; the random stream is ``fetch_batch``'s, so both draw the same batches. A
    table's discrete columns (``lattice`` steps > 0) are dequantized: ``x + step u``, ``u ~ U(0, 1)``.

    Example:
        >>> x, c = fetch_batch_and_context(torch.zeros(10, 2), torch.arange(10), 4, torch.Generator(), 0, False)
        >>> x.shape, c.shape
        (torch.Size([4, 2]), torch.Size([4]))
    """
    rows = torch.randint(len(train_x), (size,), generator=generator, device=train_x.device)
    x, c = train_x[rows], None if train_c is None else train_c[rows]
    if lattice is not None:
        return x + lattice * torch.rand(x.shape, generator=generator, device=x.device), c
    if not n_levels:
        return x, c
    y = dequantize(x, n_levels, generator)
    return (random_hflip(y, generator) if flip else y), c


def make_optimizer(flow: Flow, cfg: Config) -> torch.optim.Optimizer:
    """The optimizer ``train`` uses: Adam with ``train.lr`` and ``train.weight_decay``, as the fused
    kernel that updates every parameter in one pass (measured ~4 ms/step less on moons). Public so
    benchmarks and custom loops step exactly as ``realnvp train`` does.

    Example:
        >>> from realnvp.config import load_config
        >>> from realnvp.models import build_model
        >>> cfg = load_config("moons-tutorial", ["model.hidden=8"])
        >>> optimizer = make_optimizer(build_model(cfg.model, (2,)), cfg)
        >>> type(optimizer).__name__, optimizer.defaults["lr"], optimizer.defaults["fused"]
        ('Adam', 0.001, True)
    """
    return torch.optim.Adam(flow.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay, fused=True)


def train_step(flow: Flow, optimizer: torch.optim.Optimizer, batch: torch.Tensor, cfg: Config,
               model: Any = None, guard: NonFiniteGuard | None = None,
               context: torch.Tensor | None = None) -> torch.Tensor | None:
    """One optimisation step on ``batch``: forward, loss (mean NLL plus ``train.scale_l2`` times the
    couplings' scale penalty), backward (denormal floats flushed to zero unless ``train.flush_denormal``
    is off; the caller's setting is restored afterwards), the ``guard``'s non-finite check, ``train.grad_clip``, the
    optimizer update. Returns the batch's mean NLL (detached), or None when the guard rejected the
    step (the parameters are then untouched). ``model`` is what runs the forward: the flow itself, or
    it wrapped by DDP or ``torch.compile``; ``flow`` adds the base density. A conditional flow's
    ``context`` (one per example) goes with the batch.

    Example:
        >>> from realnvp.config import load_config
        >>> from realnvp.models import build_model
        >>> cfg = load_config("moons", ["model.hidden=8"])
        >>> flow = build_model(cfg.model, (2,))
        >>> optimizer = make_optimizer(flow, cfg)
        >>> nll = train_step(flow, optimizer, torch.randn(64, 2), cfg)
        >>> nll.shape, bool(nll > 0)
        (torch.Size([]), True)
    """
    with flushed_denormals(cfg.train.flush_denormal):
        return _step(flow, optimizer, batch, cfg, model, guard, context)


def _step(flow: Flow, optimizer: torch.optim.Optimizer, batch: torch.Tensor, cfg: Config, model: Any,
          guard: NonFiniteGuard | None, context: torch.Tensor | None) -> torch.Tensor | None:
    """``train_step``'s body, run inside its denormal-flush scope."""
    t = cfg.train
    # bf16 autocast reaches only the s/t networks' matmuls and convolutions: the couplings cast s and t
    # back to float32, and batch-norm statistics, log-dets and the loss are computed in float32.
    with torch.autocast(batch.device.type, dtype=torch.bfloat16, enabled=uses_bf16(t.precision, batch.device)):
        forward = flow if model is None else model
        z, log_det = forward(batch) if context is None else forward(batch, context)
    nll = -(flow.base_log_prob(z.float()) + log_det.float()).mean()
    loss = nll + t.scale_l2 * flow.scale_penalty() if t.scale_l2 > 0 else nll
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if guard is not None and not guard.check(loss):
        return None
    if t.grad_clip > 0:
        clip_grad_norm(flow.parameters(), t.grad_clip)
    optimizer.step()
    return nll.detach()


@contextlib.contextmanager
def flushed_denormals(enabled: bool = True) -> Iterator[None]:
    """Flush denormal floats to zero on this thread inside the block, as XLA does (a denormal costs a
    CPU ~100 cycles; weights and gradients drift into them after a few hundred steps), and restore the
    thread's previous setting on exit so nothing outside the step (a test, a user's numerics) sees it.

    Example:
        >>> with flushed_denormals():
        ...     torch.tensor([1e-39]).item()
        0.0
        >>> torch.tensor([1e-39]).item() > 0
        True
    """
    if not enabled:
        yield
        return
    was_on = torch.tensor([_DENORMAL]).item() == 0.0  # torch has no getter: probe the thread's FP mode
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(was_on)


_DENORMAL = 1e-39  # below float32's smallest normal (1.18e-38)


def uses_bf16(precision: str, device: torch.device) -> bool:
    """Whether ``train.precision`` autocasts the s/t networks to bfloat16 on ``device``: "bf16" always,
    "auto" on a CUDA GPU that has bf16 units (the GPU presets), "fp32" never.

    Example:
        >>> uses_bf16("auto", torch.device("cpu")), uses_bf16("bf16", torch.device("cpu"))
        (False, True)
    """
    if precision == "auto":
        return device.type == "cuda" and _cuda_has_bf16()
    return precision == "bf16"


@functools.cache
def _cuda_has_bf16() -> bool:
    """Asked of the driver once per process, not on every training step."""
    return torch.cuda.is_bf16_supported()


def clip_grad_norm(parameters: Iterable[torch.nn.Parameter], max_norm: float) -> None:
    """Scale the gradients down so their total norm is at most ``max_norm`` (as
    ``torch.nn.utils.clip_grad_norm_``), the norm taken in float64: in float32 the squares of
    gradients beyond ~1e19 overflow, the norm becomes inf and every gradient would be zeroed.

    Example:
        >>> w = torch.nn.Parameter(torch.zeros(2))
        >>> w.grad = torch.tensor([3e20, 4e20])
        >>> clip_grad_norm([w], 1.0)
        >>> [round(g, 4) for g in w.grad.tolist()]
        [0.6, 0.8]
    """
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g, dtype=torch.float64) for g in grads]))
    factor = (max_norm / (total + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(factor.to(g.dtype))


class CompiledOrEager:
    """``torch.compile(model)``, falling back to the eager model, with one line saying why, when the
    first call fails to compile (e.g. no C compiler for Inductor on this CPU). Later errors propagate.

    Example:
        >>> model = CompiledOrEager(torch.nn.Linear(2, 1), log=print)
        >>> model(torch.zeros(3, 2)).shape
        torch.Size([3, 1])
    """

    def __init__(self, model: torch.nn.Module, log: Any) -> None:
        self.model, self.compiled, self.log = model, torch.compile(model), log
        self.working: bool | None = None  # unknown until the first call

    def __call__(self, *args: Any) -> Any:
        if self.working is False:
            return self.model(*args)
        try:
            out = self.compiled(*args)
        except Exception as exc:  # noqa: BLE001 (compiler failures come as many exception types)
            if self.working:
                raise
            reason = (str(exc).strip().splitlines() or [""])[0][:200]
            self.log(f"torch.compile failed ({type(exc).__name__}: {reason}); training without it")
            self.working = False
            return self.model(*args)
        self.working = True
        return out
