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
