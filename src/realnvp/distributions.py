"""Densities beside the flow's own: a multivariate Student-t, the heavy-tailed component of a table
flow's defensive mixture ``p(x) = (1 - w) p_flow(x) + w t(x)``, so that no held-out row, however far
from the training rows, costs more than ``-log w - log t(x)`` (polynomial, not exponential, in its
distance)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

# The defensive weights a run may choose from on its validation rows; the smallest costs at most
# -log(1 - 1e-3) = 0.001 nats on any row and caps an outlier's cost.
DEFENSIVE_WEIGHTS = (1e-3, 3e-3, 1e-2, 3e-2, 0.1)


class StudentT(nn.Module):
    """``t_df(x; loc, L L^T)``: the multivariate Student-t with ``df`` degrees of freedom, location
    ``loc`` and scale matrix ``L L^T`` (``L`` lower triangular). ``log_prob`` is exact; ``sample``
    draws ``loc + L z / sqrt(g / df)`` with ``z ~ N(0, I)``, ``g ~ chi2(df)``.

    Example:
        >>> t = StudentT(torch.zeros(1), torch.eye(1), df=1.0)  # the standard Cauchy
        >>> round(t.log_prob(torch.zeros(1, 1)).item(), 4), round(-math.log(math.pi), 4)
        (-1.1447, -1.1447)
    """

    def __init__(self, loc: Tensor, chol: Tensor, df: float = 2.0) -> None:
        super().__init__()
        if not df > 0:
            raise ValueError(f"degrees of freedom must be > 0, got {df}")
        self.df = float(df)
        self.register_buffer("loc", loc.detach().clone().float())
        self.register_buffer("chol", chol.detach().clone().float())

    def log_prob(self, x: Tensor) -> Tensor:
        """``log t(x)`` per row of ``x`` ``[N, D]``, in float64 (far rows stay finite)."""
        d = self.loc.numel()
        chol = self.chol.double()
        z = torch.linalg.solve_triangular(chol, (x.double() - self.loc.double()).T, upper=False).T
        log_det = chol.diagonal().abs().log().sum()
        df = self.df
        return (math.lgamma((df + d) / 2) - math.lgamma(df / 2) - 0.5 * d * math.log(df * math.pi) - log_det
                - 0.5 * (df + d) * torch.log1p(z.pow(2).sum(-1) / df))

    def sample(self, n: int, temperature: float = 1.0) -> Tensor:
        """``n`` draws, their spread scaled by ``temperature`` as the flow's base is."""
        z = torch.randn(n, self.loc.numel(), device=self.loc.device) * temperature
        g = torch.distributions.Chi2(torch.tensor(self.df, device=self.loc.device)).sample((n, 1))
        return self.loc + (z / torch.sqrt(g / self.df)) @ self.chol.T


def best_weight(flow_log_p: Tensor, t_log_p: Tensor) -> tuple[float, float]:
    """``(w, mean NLL)``: the ``DEFENSIVE_WEIGHTS`` entry that minimises the mixture's mean NLL on the
    validation rows whose flow and Student-t log-densities are given.

    Example:
        >>> w, nll = best_weight(torch.tensor([0.0, -50.0]), torch.tensor([-3.0, -3.0]))
        >>> w > 1e-3 and nll < 25.0  # one far row: a larger share pays off
        True
    """
    best = (DEFENSIVE_WEIGHTS[0], math.inf)
    for w in DEFENSIVE_WEIGHTS:
        nll = -torch.logaddexp(flow_log_p.double() + math.log1p(-w), t_log_p.double() + math.log(w)).mean().item()
        if nll < best[1]:
            best = (w, nll)
    return best


BASES = ("normal", "diagonal", "mixture")


class Base(nn.Module):
    """A flow's base density over latents of ``event_shape``: ``normal`` is N(0, I) (the paper's, no
    parameters); ``diagonal`` a Gaussian with a learned mean and scale per dimension; ``mixture``
    ``components`` such Gaussians with learned weights. All start at N(0, I) (zero means and log-scales;
    a mixture's means start spread a little so its components can separate), so a flow with any base
    begins where the paper's does. ``temperature`` scales each component's spread.

    Example:
        >>> base = Base("mixture", (2,), components=3)
        >>> z = base.sample(5)
        >>> z.shape, base.log_prob(z).shape
        (torch.Size([5, 2]), torch.Size([5]))
        >>> round(Base("normal", (2,)).log_prob(torch.zeros(1, 2)).item(), 4)  # -log(2 pi)
        -1.8379
    """

    def __init__(self, kind: str, event_shape: tuple[int, ...], components: int = 4) -> None:
        super().__init__()
        if kind not in BASES:
            raise ValueError(f"unknown base {kind!r}; expected one of {', '.join(BASES)}")
        self.kind, self.event_shape = kind, tuple(event_shape)
        k = components if kind == "mixture" else 1
        if kind != "normal":
            generator = torch.Generator().manual_seed(0)
            spread = 0.1 * torch.randn(k, *self.event_shape, generator=generator) if k > 1 else 0.0
            self.mean = nn.Parameter(torch.zeros(k, *self.event_shape) + spread)
            self.log_scale = nn.Parameter(torch.zeros(k, *self.event_shape))
            self.logits = nn.Parameter(torch.zeros(k))

    def log_prob(self, z: Tensor) -> Tensor:
        """``log p(z)`` per example, summed over the event (exact; a mixture by log-sum-exp)."""
        d = math.prod(self.event_shape)
        if self.kind == "normal":
            return -0.5 * (z.flatten(1) ** 2).sum(-1) - 0.5 * d * math.log(2 * math.pi)
        u = (z.unsqueeze(1) - self.mean) * torch.exp(-self.log_scale)  # [N, K, *event]
        per_component = (-0.5 * u.flatten(2) ** 2 - self.log_scale.flatten(1)).sum(-1) - 0.5 * d * math.log(2 * math.pi)
        return torch.logsumexp(per_component + torch.log_softmax(self.logits, 0), dim=1)

    def sample(self, n: int, temperature: float = 1.0, device: torch.device | None = None,
               dtype: torch.dtype | None = None) -> Tensor:
        """``n`` latents; each component's spread scaled by ``temperature``."""
        if self.kind == "normal":
            return torch.randn(n, *self.event_shape, device=device, dtype=dtype) * temperature
        which = torch.multinomial(torch.softmax(self.logits.detach(), 0), n, replacement=True) if n else \
            torch.zeros(0, dtype=torch.long)
        noise = torch.randn(n, *self.event_shape, device=self.mean.device, dtype=self.mean.dtype)
        return self.mean[which] + noise * temperature * torch.exp(self.log_scale[which])
