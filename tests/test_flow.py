"""The whole vector flow: exact log-density, normalisation, sampling, and the public loader."""

import math

import numpy as np
import pytest
import torch

from realnvp import build_vector_flow
from realnvp.flow import Flow
from realnvp.viz.plots import density_grid

from checks import check_bijector, jacobian_log_det, perturb_


def _trained_looking_flow(dim, batch_norm, seed=0):
    torch.manual_seed(seed)
    flow = build_vector_flow(dim, n_couplings=6, hidden=(16, 16), batch_norm=batch_norm,
                             loc=torch.randn(dim), scale=torch.rand(dim) + 0.5)
    perturb_(flow, scale=0.2, seed=seed)
    if batch_norm:  # give the batch-norm layers non-trivial running statistics
        flow.train()
        with torch.no_grad():
            flow(torch.randn(256, dim) * 2 + 1)
    return flow.eval()


@pytest.mark.parametrize("batch_norm", [False, True])
def test_whole_flow_log_det_matches_autograd(batch_norm):
    flow = _trained_looking_flow(3, batch_norm).double()
    x = torch.randn(4, 3, dtype=torch.float64)
    _, log_det = flow(x)
    torch.testing.assert_close(log_det, jacobian_log_det(flow.chain, x), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("mask", ["alternating", "half", "random"])
def test_whole_chain_passes_the_battery(mask):
    torch.manual_seed(1)
    flow = build_vector_flow(5, n_couplings=4, hidden=(8,), mask=mask)
    check_bijector(perturb_(flow.chain), torch.randn(6, 5))


def test_log_prob_is_base_plus_log_det():
    flow = _trained_looking_flow(2, batch_norm=True)
    x = torch.randn(7, 2)
    z, log_det = flow(x)
    expected = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1) + log_det
    torch.testing.assert_close(flow.log_prob(x), expected)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_2d_density_integrates_to_one(batch_norm):
    flow = _trained_looking_flow(2, batch_norm, seed=2).double()
    with torch.no_grad():
        spread = flow.sample(20000).float().numpy()
    lo, hi = np.percentile(spread, 0.01, axis=0) - 3, np.percentile(spread, 99.99, axis=0) + 3
    xs, ys, log_p = density_grid(flow.float(), (lo[0], hi[0]), (lo[1], hi[1]), resolution=600)
    mass = np.exp(log_p.astype(np.float64)).sum() * (xs[1] - xs[0]) * (ys[1] - ys[0])
    assert abs(mass - 1.0) < 5e-3, mass


def test_identity_flow_is_standard_normal_in_data_units():
    # Untrained couplings are the identity, so the flow is N(loc, diag(scale^2)) exactly.
    loc, scale = torch.tensor([1.0, -3.0]), torch.tensor([2.0, 0.5])
    flow = build_vector_flow(2, n_couplings=4, hidden=(8,), loc=loc, scale=scale).eval()
    x = torch.randn(10, 2)
    expected = torch.distributions.Normal(loc, scale).log_prob(x).sum(-1)
    torch.testing.assert_close(flow.log_prob(x), expected)


def test_sample_temperature_scales_the_base():
    flow = build_vector_flow(2, n_couplings=2, hidden=(8,)).eval()
    torch.manual_seed(0)
    cold = flow.sample(20000, temperature=0.5)
    assert abs(cold.std().item() - 0.5) < 0.02
    assert torch.all(flow.sample(10, temperature=0.0) == 0)
    with pytest.raises(ValueError, match="temperature"):
        flow.sample(3, temperature=-1.0)


def test_sample_in_uneven_chunks_inverts_each_chunks_own_draws():
    """Chunks of 30, 30, 30 and the remainder 10: each chunk draws its own latents, in order, none
    dropped or repeated, and the result is the inverse of exactly those draws."""
    flow = _trained_looking_flow(2, batch_norm=False)
    torch.manual_seed(5)
    latents = torch.cat([torch.randn(size, 2) for size in (30, 30, 30, 10)])
    torch.manual_seed(5)
    chunked = flow.sample(100, chunk_size=30)
    torch.testing.assert_close(chunked, flow.inverse(latents))
    assert len(torch.unique(chunked, dim=0)) == 100
    assert flow.sample(250, chunk_size=64).shape == (250, 2)


def test_scale_penalty_sums_the_learned_scales():
    flow = build_vector_flow(2, n_couplings=3, hidden=(8,))
    assert math.isclose(flow.scale_penalty().item(), 3.0)  # three scales, each 1.0 at init


def test_flow_is_a_module_that_moves_dtype():
    flow = build_vector_flow(4, n_couplings=2, hidden=(8,)).double()
    assert isinstance(flow, Flow)
    assert flow.log_prob(torch.randn(3, 4, dtype=torch.float64)).dtype == torch.float64
