"""A flow as a ``torch.distributions.Distribution`` (issue "The library for PyTorch users"): its
log-density is the flow's, draws have the declared shapes and carry gradients, a conditional flow
takes its context, and a flow trained by the ELBO recovers an exact Gaussian posterior."""

from __future__ import annotations

import torch
from torch.distributions import MultivariateNormal, kl_divergence

from realnvp.models import build_vector_flow


def test_the_distribution_is_the_flow():
    flow = build_vector_flow(dim=3, n_couplings=2, hidden=(8,), context_size=1)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.1 * torch.randn_like(p))
    flow.eval()
    p = flow.as_distribution(context=[0.5])
    x = torch.randn(4, 5, 3)
    expected = flow.log_prob(x.reshape(20, 3), torch.full((20, 1), 0.5)).reshape(4, 5)
    assert torch.allclose(p.log_prob(x), expected)
    assert p.sample((2, 7)).shape == (2, 7, 3) and p.event_shape == (3,) and p.batch_shape == ()
    draws = p.rsample((16,))
    draws.pow(2).sum().backward()
    assert any(q.grad is not None and q.grad.abs().sum() > 0 for q in flow.parameters())


def test_a_flow_trained_by_the_elbo_finds_an_exact_gaussian_posterior():
    """Bayesian linear regression y = X w + noise, w ~ N(0, I): the posterior is Gaussian and known."""
    torch.manual_seed(1)
    features = torch.randn(20, 2)
    targets = features @ torch.tensor([1.0, -2.0]) + 0.5 * torch.randn(20)
    precision = torch.eye(2) + features.T @ features / 0.25
    covariance = torch.linalg.inv(precision)
    posterior = MultivariateNormal(covariance @ features.T @ targets / 0.25, covariance)

    def log_joint(w: torch.Tensor) -> torch.Tensor:
        residual = targets - w @ features.T
        return -0.5 * (residual**2).sum(-1) / 0.25 - 0.5 * (w**2).sum(-1)

    q = build_vector_flow(dim=2, n_couplings=4, hidden=(32,))
    optimizer = torch.optim.Adam(q.parameters(), lr=1e-2)
    for _ in range(400):
        w = q.rsample(256)
        loss = -(log_joint(w) - q.log_prob(w)).mean()  # minus the ELBO
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    q.eval()
    assert kl_divergence(q.as_distribution(), posterior).item() < 0.05
