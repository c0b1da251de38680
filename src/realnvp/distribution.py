"""A flow as a ``torch.distributions.Distribution`` (``Flow.as_distribution``): ``log_prob``, ``sample``,
``rsample``, ``event_shape`` and ``batch_shape``, so a flow plugs in wherever PyTorch expects a
distribution, e.g. as the approximate posterior of variational inference; ``kl_divergence`` with a flow
on either side is a Monte Carlo estimate from ``KL_SAMPLES`` reparameterised draws of its first argument."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from torch.distributions import Distribution, constraints, register_kl

if TYPE_CHECKING:
    from realnvp.flow import Flow

NO_SHAPE = torch.Size()  # one draw
KL_SAMPLES = 4096  # draws behind one kl_divergence estimate: its standard error shrinks as 1/sqrt of it


class FlowDistribution(Distribution):
    """``p(x)`` of ``flow`` (``p(x | context)`` for a conditional flow, one context for every draw).

    Example:
        >>> from realnvp.models import build_vector_flow
        >>> p = build_vector_flow(dim=2, n_couplings=2, hidden=(8,)).as_distribution()
        >>> p.event_shape, p.batch_shape, p.sample((5, 3)).shape, p.has_rsample
        (torch.Size([2]), torch.Size([]), torch.Size([5, 3, 2]), True)
        >>> round(p.log_prob(torch.zeros(2)).item(), 4)  # the untrained flow is N(0, I): -log(2 pi)
        -1.8379
    """

    arg_constraints: dict[str, Any] = {}
    has_rsample = True

    def __init__(self, flow: Flow, context: Tensor | None = None, validate_args: bool | None = None) -> None:
        self.flow, self.context = flow, context
        super().__init__(torch.Size(), torch.Size(flow.event_shape), validate_args=validate_args)

    @property
    def support(self) -> constraints.Constraint:
        return constraints.independent(constraints.real, len(self.flow.event_shape))

    def log_prob(self, value: Tensor) -> Tensor:
        """``log p(value)`` in nats over the leading (sample) dimensions of ``value``."""
        shape = value.shape[: value.dim() - len(self.event_shape)]
        flat = value.reshape(-1, *self.event_shape)
        context = None if self.context is None else self.flow.as_context(self.context, len(flat))
        return self.flow.log_prob(flat, context).reshape(shape)

    def rsample(self, sample_shape: torch.Size = NO_SHAPE) -> Tensor:
        """Reparameterised draws (gradients reach the flow's parameters), shaped ``sample_shape + event``."""
        n = math.prod(sample_shape)
        return self.flow.rsample(n, context=self.context).reshape(*sample_shape, *self.event_shape)

    def sample(self, sample_shape: torch.Size = NO_SHAPE) -> Tensor:
        """Draws without gradients, shaped ``sample_shape + event_shape``."""
        n = math.prod(sample_shape)
        return self.flow.sample(n, context=self.context).reshape(*sample_shape, *self.event_shape)


def _monte_carlo_kl(p: Distribution, q: Distribution) -> Tensor:
    x = p.rsample(torch.Size([KL_SAMPLES]))
    return (p.log_prob(x) - q.log_prob(x)).mean(0)


@register_kl(FlowDistribution, Distribution)
def _kl_flow_other(p: FlowDistribution, q: Distribution) -> Tensor:
    return _monte_carlo_kl(p, q)


@register_kl(Distribution, FlowDistribution)
def _kl_other_flow(p: Distribution, q: FlowDistribution) -> Tensor:
    return _monte_carlo_kl(p, q)


@register_kl(FlowDistribution, FlowDistribution)
def _kl_flow_flow(p: FlowDistribution, q: FlowDistribution) -> Tensor:
    return _monte_carlo_kl(p, q)
