"""Rational-quadratic spline couplings (issue "Real tables"): the spline itself against autograd, the
coupling through the shared bijector battery, a whole spline flow's log-density against the autograd
Jacobian, the config that selects it, and a spline run trained and used through the CLI."""

from __future__ import annotations

import json

import pytest
import torch
from tiny import TINY, cli_settings

from realnvp import load
from realnvp.bijectors import SplineCoupling, alternating_mask, half_mask, random_mask, rational_quadratic_spline
from realnvp.bijectors.spline import MIN_DERIVATIVE, knot_derivatives
from realnvp.cli import main
from realnvp.config import Config, ModelConfig, check_settings
from realnvp.errors import UserError
from realnvp.models import build_model, build_vector_flow
from realnvp.nets import MLP

from checks import check_bijector, jacobian_log_det, perturb_


def _params(shape: tuple[int, ...], bins: int, spread: float, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return tuple(spread * torch.randn(*shape, n, generator=g, dtype=torch.float64) for n in (bins, bins, bins - 1))


@pytest.mark.parametrize("spread", [0.5, 3.0, 20.0], ids=["gentle", "uneven", "extreme"])
def test_spline_matches_autograd_inverts_and_is_monotone(spread):
    """Element-wise, so dy/dx by autograd is the whole Jacobian; points inside, on the knots' ends and in
    both tails."""
    bound, bins = 3.0, 6
    x = torch.cat([torch.linspace(-5, 5, 41, dtype=torch.float64), torch.tensor([-3.0, 3.0], dtype=torch.float64)])
    widths, heights, slopes = _params((len(x),), bins, spread)
    x = x.clone().requires_grad_(True)
    y, log_det = rational_quadratic_spline(x, widths, heights, slopes, bound)
    (dy_dx,) = torch.autograd.grad(y.sum(), x)
    assert torch.isfinite(y).all() and torch.isfinite(log_det).all()
    torch.testing.assert_close(log_det, dy_dx.log(), atol=1e-8, rtol=1e-8)
    back, inverse_log_det = rational_quadratic_spline(y.detach(), widths, heights, slopes, bound, inverse=True)
    torch.testing.assert_close(back, x.detach(), atol=1e-9, rtol=0)
    torch.testing.assert_close(inverse_log_det, -log_det.detach(), atol=1e-8, rtol=0)
    outside = x.detach().abs() > bound
    assert torch.equal(y[outside], x[outside]) and torch.all(log_det[outside] == 0)  # identity tails
    grid = torch.linspace(-5, 5, 401, dtype=torch.float64)  # one spline (the first row's) along a grid
    ys, _ = rational_quadratic_spline(grid, *(p[:1].expand(len(grid), -1) for p in (widths, heights, slopes)), bound)
    assert torch.all(ys.diff() > 0)  # increasing


def test_derivatives_are_exactly_one_at_zero_and_floored():
    for dtype in (torch.float32, torch.float64):
        assert torch.equal(knot_derivatives(torch.zeros(3, 5, dtype=dtype)), torch.ones(3, 7, dtype=dtype))
    floor = knot_derivatives(torch.full((4,), -1e4, dtype=torch.float64))[1:-1]
    torch.testing.assert_close(floor, torch.full((4,), MIN_DERIVATIVE, dtype=torch.float64))


def test_spline_coupling_starts_as_the_identity():
    layer = SplineCoupling(alternating_mask(4, 0), MLP(2, 2 * (3 * 8 - 1), hidden=(8,)))
    x = torch.randn(64, 4) * 3
    z, log_det = layer(x)
    torch.testing.assert_close(z, x, atol=1e-6, rtol=1e-6)
    assert log_det.abs().max() < 1e-5


@pytest.mark.parametrize("dim", [2, 3, 5])
@pytest.mark.parametrize("make_mask", [
    lambda d: alternating_mask(d, 0),
    lambda d: half_mask(d, 1),
    lambda d: random_mask(d, torch.Generator().manual_seed(3)),
])
@pytest.mark.parametrize("bound", [1.5, 4.0], ids=["tails", "inside"])
def test_spline_coupling(dim, make_mask, bound):
    torch.manual_seed(0)
    mask = make_mask(dim)
    n_pass, bins = int(mask.sum()), 5
    layer = perturb_(SplineCoupling(mask, MLP(n_pass, (3 * bins - 1) * (dim - n_pass), hidden=(16,)), bins, bound),
                     scale=1.0)
    x = torch.randn(8, dim) * 1.5
    check_bijector(layer, x)
    z, _ = layer.double()(x.double())
    torch.testing.assert_close(z[:, mask], x.double()[:, mask])  # the passing half is untouched


def test_spline_conditioner_of_the_wrong_width_is_an_error_naming_the_expected_width():
    layer = SplineCoupling(alternating_mask(4, 0), MLP(2, 10, (4,)), bins=4)  # wants 2 * 11
    for call in (layer, layer.inverse):
        with pytest.raises(ValueError, match=r"returned 10 features .* expected 22 \(11 spline parameters for each "
                                             r"of the 2 transformed"):
            call(torch.randn(3, 4))
    with pytest.raises(ValueError, match="at least 2 bins"):
        SplineCoupling(alternating_mask(2, 0), MLP(1, 2, (4,)), bins=1)


def test_whole_spline_flow_log_prob_matches_the_autograd_jacobian():
    torch.manual_seed(0)
    flow = build_vector_flow(3, 4, hidden=(16,), coupling="spline", bins=5, bound=2.5, linear=True, batch_norm=True,
                             loc=torch.tensor([1.0, -1.0, 0.5]), scale=torch.tensor([2.0, 0.5, 1.0]))
    flow = perturb_(flow, scale=0.5).double().eval()
    x = torch.randn(6, 3, dtype=torch.float64) * 3
    base = torch.distributions.Normal(0.0, 1.0)
    expected = base.log_prob(flow.chain(x)[0]).sum(-1) + jacobian_log_det(flow.chain, x)
    torch.testing.assert_close(flow.log_prob(x), expected, atol=1e-6, rtol=1e-6)  # slogdet of the whole Jacobian
    samples, log_p = flow.sample_and_log_prob(5)
    torch.testing.assert_close(log_p, flow.log_prob(samples), atol=1e-8, rtol=1e-8)


def test_config_selects_splines_for_vectors_and_refuses_them_for_images():
    flow = build_model(ModelConfig(n_couplings=2, hidden=(8,), coupling="spline", spline_bins=3), (2,))
    layer = flow.chain.layers[1]
    assert isinstance(layer, SplineCoupling) and (layer.bins, layer.bound) == (3, 4.0)
    assert flow.scale_penalty().item() == 0.0  # no tanh scales: the L2 term has nothing to act on
    cases = [({"model": {"kind": "image", "coupling": "spline"}}, "is for vector models"),
             ({"model": {"coupling": "cubic"}}, "model.coupling must be one of affine, spline"),
             ({"model": {"coupling": "spline", "spline_bins": 1}}, "model.spline_bins must be > 1"),
             ({"model": {"coupling": "spline", "spline_bound": 0.0}}, "model.spline_bound must be > 0")]
    for raw, words in cases:
        with pytest.raises(UserError, match=words):
            check_settings(Config.from_dict(raw))
    with pytest.raises(UserError, match="is for vector models"):
        build_model(ModelConfig(kind="image", coupling="spline"), (1, 4, 4))


def test_a_spline_run_trains_evaluates_samples_and_animates(tmp_path, capsys):
    run = tmp_path / "spline"
    assert main(["train", "moons", "--out", str(run), "--steps", "40", "--quiet", "--no-pictures",
                 *cli_settings(TINY), "--set", "model.coupling=spline", "--set", "model.spline_bins=4"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["test_nll_nats"] < 3.0
    assert main(["sample", str(run), "-n", "20", "-o", str(tmp_path / "s.npy"), "--quiet"]) == 0
    assert main(["animate", str(run), "-o", str(tmp_path / "a.gif"), "-n", "50", "--quiet"]) == 0
    assert (tmp_path / "a.gif").read_bytes()[:6] == b"GIF89a"
    assert [type(step.layer).__name__ for step in load(run).trace(torch.zeros(3, 2))][1:] == ["SplineCoupling"] * 2
