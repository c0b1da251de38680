"""Non-finite guard: a NaN or Inf in the loss, the gradients or the parameters is caught on the step
it appears; the step is rejected, training goes back to the last good state with half the learning
rate, and the message names the layer that blew up (``realnvp.diagnostics``)."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from realnvp.diagnostics import leaves, locate_blowup
from realnvp.errors import UserError

if TYPE_CHECKING:
    from realnvp.flow import Flow

LR_BACKOFF = 0.5  # each rejected step halves the learning rate for the rest of the run


def step_is_finite(loss: Tensor, params: list[nn.Parameter]) -> bool:
    """True when the loss and every gradient are finite; one host sync per step.

    The gradients are scanned by one fused kernel, the one ``torch.amp.GradScaler`` uses to find
    overflowed gradients (with an unscale factor of exactly 1, so they are left bit-identical). The
    parameters are covered by the loss (a non-finite weight makes the loss non-finite) and checked
    explicitly before every checkpoint (``NonFiniteGuard.state_is_finite``).

    Example:
        >>> w = nn.Parameter(torch.ones(3))
        >>> (w * 2).sum().backward()
        >>> step_is_finite(torch.tensor(1.0), [w]), step_is_finite(torch.tensor(float("nan")), [w])
        (True, False)
    """
    grads = [p.grad for p in params if p.grad is not None]
    found = torch.zeros(1, device=loss.device)
    if grads:
        torch._amp_foreach_non_finite_check_and_unscale_(grads, found, torch.ones(1, device=loss.device))
    flag = torch.where(found > 0, math.inf, loss.detach().float().reshape(1))  # finite iff all is well
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(flag)  # every rank takes the same decision (losses are per rank)
    return bool(torch.isfinite(flag))


def all_finite(tensors: list[Tensor]) -> bool:
    """True when every value of every tensor is finite; one host sync. Checked value by value, not
    through a norm: the norm of finite values around 1e20 overflows float32, and large but finite
    data (or the standardisation buffers that hold its scale) is not a divergence.

    Example:
        >>> all_finite([torch.full((3,), 1e30), torch.ones(2)]), all_finite([torch.tensor([1.0, float("nan")])])
        (True, False)
    """
    return bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all()) if tensors else True


def _floating_state(module: nn.Module) -> list[tuple[str, Tensor]]:
    return [(n, t) for n, t in [*module.named_parameters(), *module.named_buffers()] if t.is_floating_point()]


def diagnose(flow: Flow, batch: Tensor, good_state: dict[str, Tensor] | None = None,
             context: Tensor | None = None) -> str:
    """Why a training step went non-finite: a non-finite batch, a broken parameter (named with its
    layer), or the first layer whose output explodes on ``batch``. The re-run is on a copy in
    training mode, so batch norm sees the same statistics and the real model is untouched; buffers
    the failed step itself poisoned (batch-norm statistics) are taken from ``good_state`` there.
    A conditional flow's batch comes with its ``context``.

    Example:
        >>> from realnvp.models import build_vector_flow
        >>> flow = build_vector_flow(2, 2, hidden=(4,))
        >>> with torch.no_grad():
        ...     _ = flow.chain.layers[1].conditioner[0].bias.fill_(float("inf"))
        >>> diagnose(flow, torch.zeros(3, 2))
        'chain.layers.1 (AffineCoupling) has 4 non-finite values in conditioner.0.bias'
    """
    bad = int((~torch.isfinite(batch)).sum())
    if bad:
        return f"the batch itself holds {bad} non-finite values"
    for name, layer in leaves(flow):
        for pname, p in layer.named_parameters():
            n_bad = int((~torch.isfinite(p)).sum())
            if n_bad:
                return f"{name} ({type(layer).__name__}) has {n_bad} non-finite values in {pname}"
    probe = copy.deepcopy(flow).train()
    restored = []
    with torch.no_grad():
        for name, buf in probe.named_buffers():
            if buf.is_floating_point() and not bool(torch.isfinite(buf).all()) and good_state and name in good_state:
                buf.copy_(good_state[name])
                restored.append(name)
    where = locate_blowup(probe, batch.detach(), context=context)
    return where + (f" (non-finite statistics {', '.join(restored)} were restored for this re-run)"
                    if restored else "")


class NonFiniteGuard:
    """Rejects non-finite training steps and rolls back to the last good state.

    ``mark_good(step)`` (at the start and at every checkpoint, once the state is known finite) keeps
    an in-memory copy of the model and optimizer. ``check(loss)`` runs the fused check on each step
    before the optimizer update. ``reject(batch, step)`` explains the failure, restores the copy,
    multiplies ``lr_scale`` by ``LR_BACKOFF`` and returns the step to continue from; the batch
    stream is not rewound, so the batches that failed are skipped. More than ``max_bad_steps``
    rejections with no good checkpoint in between raise ``UserError`` (nothing is saved by then).

    Example:
        >>> from realnvp.models import build_vector_flow
        >>> flow = build_vector_flow(2, 2, hidden=(8,))
        >>> opt = torch.optim.Adam(flow.parameters())
        >>> guard = NonFiniteGuard(flow, opt, max_bad_steps=1, log=lambda *a: None)
        >>> guard.mark_good(0)
        >>> guard.reject(torch.full((4, 2), float("nan")), step=7), guard.lr_scale
        (0, 0.5)
    """

    def __init__(self, flow: Flow, optimizer: torch.optim.Optimizer, max_bad_steps: int,
                 log: Callable[..., Any], lr_scale: float = 1.0) -> None:
        self.flow, self.optimizer, self.log = flow, optimizer, log
        self.params = [p for p in flow.parameters() if p.requires_grad]
        self.max_bad_steps = max_bad_steps
        self.lr_scale = lr_scale
        self.bad_steps = 0
        self.good_step = 0
        self._good: dict[str, Any] = {}

    def check(self, loss: Tensor) -> bool:
        return step_is_finite(loss, self.params)

    def state_is_finite(self) -> bool:
        """Parameters, buffers and optimizer moments all finite (checked before every checkpoint)."""
        moments = [t for s in self.optimizer.state.values() for t in s.values()
                   if isinstance(t, Tensor) and t.is_floating_point()]
        return all_finite([t for _, t in _floating_state(self.flow)] + moments)

    def mark_good(self, step: int) -> None:
        self._good = {"model": copy.deepcopy(self.flow.state_dict()),
                      "optimizer": copy.deepcopy(self.optimizer.state_dict())}
        self.good_step, self.bad_steps = step, 0

    def reject(self, batch: Tensor, step: int, context: Tensor | None = None) -> int:
        why = diagnose(self.flow, batch, self._good.get("model"), context)
        self.bad_steps += 1
        if self.bad_steps > self.max_bad_steps:
            since = (f"the last good checkpoint (step {self.good_step})" if self.good_step else
                     "the start (no checkpoint was written)")  # checkpoints come after a step, never at 0
            kept = "; that checkpoint is kept" if self.good_step else ""
            raise UserError(f"training diverged: {self.bad_steps} non-finite steps since {since}, the last at step "
                            f"{step + 1}: {why}{kept} (try a lower train.lr or a train.grad_clip)")
        self.flow.load_state_dict(self._good["model"])
        # load_state_dict keeps the tensors it is given: hand it a copy so the snapshot stays intact.
        self.optimizer.load_state_dict(copy.deepcopy(self._good["optimizer"]))
        self.lr_scale *= LR_BACKOFF
        self.log(f"step {step + 1} rejected (non-finite loss, gradients or parameters): {why}; rolled back "
                 f"to step {self.good_step}, learning rate x{self.lr_scale:g}")
        return self.good_step
