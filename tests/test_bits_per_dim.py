"""bits/dim against analytic answers: flows built by hand whose density of the dequantized pixels is
known exactly, measured through the same functions `realnvp evaluate` uses."""

import math

import numpy as np
import pytest
import torch

from realnvp.bijectors import Bijector, Chain, Logit
from realnvp.errors import UserError
from realnvp.evaluation.metrics import bits_per_dim, dequantized_nll
from realnvp.flow import Flow

from checks import check_bijector

LOG_2PI = math.log(2 * math.pi)


def _normal_icdf(u):
    return math.sqrt(2.0) * torch.erfinv(2 * u - 1)


def _log_normal(z):
    return -0.5 * z**2 - 0.5 * LOG_2PI


class PiecewiseUniform(Bijector):
    """Independent pixels with density ``f(y) = L * probs[k]`` on bin ``k = floor(L y)`` of ``[0, 1)``:
    ``z = Phi^-1(F(y))``, so ``log p(y) = log f(y)`` exactly (the normal terms cancel)."""

    def __init__(self, probs):
        super().__init__()
        self.register_buffer("probs", probs.double())
        self.register_buffer("cdf", torch.cat([torch.zeros(1, dtype=torch.float64), probs.double().cumsum(0)]))
        self.levels = len(probs)

    def forward(self, y, context=None):
        k = (y * self.levels).floor().clamp(0, self.levels - 1).long()
        u = self.cdf[k] + self.probs[k] * (y * self.levels - k)
        z = _normal_icdf(u)
        log_det = (torch.log(self.probs[k] * self.levels) - _log_normal(z)).flatten(1).sum(-1)
        return z, log_det

    def inverse(self, z, context=None):
        u = 0.5 * (1 + torch.erf(z / math.sqrt(2.0)))
        k = (torch.searchsorted(self.cdf[1:-1].contiguous(), u.contiguous(), right=True)).clamp(0, self.levels - 1)
        y = (k + (u - self.cdf[k]) / self.probs[k]) / self.levels
        return y, -(torch.log(self.probs[k] * self.levels) - _log_normal(z)).flatten(1).sum(-1)


class LogitSpaceToNormal(Bijector):
    """From logit space ``x`` back to ``y' = (sigmoid(x) - alpha) / beta`` and on to ``Phi^-1(y')``,
    with its own log-det written from scratch (``log sigmoid'(x) - log beta - log N(z)``)."""

    def __init__(self, alpha):
        super().__init__()
        self.alpha, self.beta = alpha, 1 - 2 * alpha

    def forward(self, x, context=None):
        s = torch.sigmoid(x)
        z = _normal_icdf((s - self.alpha) / self.beta)
        return z, (torch.log(s * (1 - s)) - math.log(self.beta) - _log_normal(z)).flatten(1).sum(-1)

    def inverse(self, z, context=None):  # pragma: no cover - not needed for densities
        raise NotImplementedError


def _images(levels, n=50, shape=(1, 3, 3), probs=None, seed=0):
    rng = np.random.RandomState(seed)
    v = rng.choice(levels, size=(n, *shape), p=None if probs is None else probs.numpy())
    return torch.from_numpy(v.astype(np.uint8))


def test_formula():
    assert bits_per_dim(0.0, 10, 256) == pytest.approx(8.0)
    assert bits_per_dim(0.0, 64, 17) == pytest.approx(math.log2(17))
    assert bits_per_dim(-10 * math.log(2) * 3, 10, 256) == pytest.approx(5.0)


def test_uniform_density_on_the_cube_is_exactly_8_bits_for_8_bit_data():
    flow = Flow(Chain([PiecewiseUniform(torch.full((256,), 1 / 256))]), (1, 3, 3)).double()
    mean, iw = dequantized_nll(flow, _images(256), 256, draws=3)
    assert bits_per_dim(mean, 9, 256) == pytest.approx(8.0, abs=1e-3)
    assert bits_per_dim(iw, 9, 256) == pytest.approx(8.0, abs=1e-3)


def test_logit_jacobian_is_counted():
    """Logit then an independent map back to a uniform: exactly 8 bits only if Logit's log-det is right."""
    flow = Flow(Chain([Logit(0.05), LogitSpaceToNormal(0.05)]), (1, 3, 3)).double()
    mean, _ = dequantized_nll(flow, _images(256), 256, draws=2)
    assert bits_per_dim(mean, 9, 256) == pytest.approx(8.0, abs=1e-3)


def test_factorised_discretised_distribution_gives_its_exact_bits():
    probs = torch.softmax(torch.randn(17, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 2, 0)
    flow = Flow(Chain([PiecewiseUniform(probs)]), (1, 4, 4)).double()
    v = _images(17, n=200, shape=(1, 4, 4), probs=probs)
    exact = -np.log2(probs.numpy()[v.numpy()]).sum((1, 2, 3)).mean() / 16
    mean, iw = dequantized_nll(flow, v, 17, draws=4)
    assert bits_per_dim(mean, 16, 17) == pytest.approx(exact, abs=1e-3)
    assert bits_per_dim(iw, 16, 17) == pytest.approx(exact, abs=1e-3)
    # the population value: cross-entropy of the distribution with itself
    entropy_bits = float(-(probs * probs.log2()).sum())
    assert abs(exact - entropy_bits) < 0.3


def test_piecewise_uniform_is_a_bijector():
    probs = torch.softmax(torch.randn(5, generator=torch.Generator().manual_seed(0)), 0)
    y = torch.rand(4, 1, 2, 2, generator=torch.Generator().manual_seed(0)) * 0.98 + 0.01
    check_bijector(PiecewiseUniform(probs), y, atol=1e-6)


def test_importance_weighted_bound_is_tighter_for_a_non_uniform_model():
    flow = Flow(Chain([Logit(0.05)]), (1, 3, 3)).double()  # a standard normal in logit space
    mean, iw = dequantized_nll(flow, _images(256), 256, draws=8)
    assert iw < mean
    single, _ = dequantized_nll(flow, _images(256), 256, draws=1)
    assert single == pytest.approx(dequantized_nll(flow, _images(256), 256, draws=1)[0])  # seeded noise


def test_wrong_image_shape_for_a_model_is_a_user_error():
    flow = Flow(Chain([Logit(0.05)]), (1, 3, 3))
    with pytest.raises(UserError, match=r"shape \(1, 3, 3\).*\(3, 3, 3\)"):
        dequantized_nll(flow, torch.zeros(2, 3, 3, 3, dtype=torch.uint8), 256)
