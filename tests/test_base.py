"""Learnable base densities (issue "The library for PyTorch users"): a diagonal Gaussian and a mixture
of them, exact against torch.distributions, gradients that reach their parameters, a flow that trains
with them from the command line, and saved flows that keep them."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

import realnvp
from realnvp.cli import main
from realnvp.distributions import Base
from realnvp.models import build_image_flow, build_vector_flow


def _perturbed(base: Base) -> Base:
    torch.manual_seed(0)
    with torch.no_grad():
        for p in base.parameters():
            p.add_(0.5 * torch.randn_like(p))
    return base


@pytest.mark.parametrize("shape", [(3,), (1, 2, 2)])
def test_the_mixture_is_torchs_mixture_same_family(shape):
    base = _perturbed(Base("mixture", shape, components=3))
    reference = MixtureSameFamily(Categorical(logits=base.logits),
                                  Independent(Normal(base.mean, base.log_scale.exp()), len(shape)))
    z = torch.randn(5, *shape, dtype=torch.float32)
    assert torch.allclose(base.log_prob(z), reference.log_prob(z), atol=1e-5)


def test_the_diagonal_base_is_an_independent_normal_and_its_gradient_is_exact():
    base = _perturbed(Base("diagonal", (4,))).double()
    z = torch.randn(6, 4, dtype=torch.float64)
    reference = Independent(Normal(base.mean[0], base.log_scale[0].exp()), 1)
    assert torch.allclose(base.log_prob(z), reference.log_prob(z))
    assert torch.autograd.gradcheck(lambda m, s: Base.log_prob(_with(base, m, s), z),
                                    (base.mean.detach().clone().requires_grad_(),
                                     base.log_scale.detach().clone().requires_grad_()))


def _with(base: Base, mean: torch.Tensor, log_scale: torch.Tensor) -> Base:
    clone = Base("diagonal", (4,)).double()
    del clone.mean, clone.log_scale
    clone.mean, clone.log_scale = mean, log_scale
    return clone


def test_every_base_starts_as_the_standard_normal_at_the_origin_of_a_mode():
    for kind in ("normal", "diagonal"):
        assert math.isclose(Base(kind, (2,)).log_prob(torch.zeros(1, 2)).item(), -math.log(2 * math.pi), rel_tol=1e-6)


def test_flows_with_learned_bases_save_sample_and_train(tmp_path):
    flow = build_image_flow((1, 4, 4), n_scales=1, feature_maps=4, n_blocks=1, base="diagonal")
    assert flow.sample(3).shape == (3, 1, 4, 4)
    vector = build_vector_flow(dim=2, n_couplings=2, hidden=(8,), base="mixture", base_components=2)
    _perturbed(vector.base)
    vector.save(tmp_path / "v.pt")
    x = torch.randn(4, 2)
    assert torch.equal(realnvp.load(tmp_path / "v.pt").log_prob(x), vector.eval().log_prob(x))
    assert main(["train", "moons", "--out", str(tmp_path / "run"), "--steps", "60", "--no-pictures", "--quiet",
                 "--set", "model.base=mixture", "--set", "model.hidden=16", "--set", "data.n_train=1000"]) == 0
    trained = realnvp.load(tmp_path / "run")
    assert not torch.equal(trained.base.logits, torch.zeros(4))  # the weights learned
