"""Every vector bijector through the shared battery in ``checks.py``."""

import pytest
import torch

from realnvp.bijectors import (
    AffineCoupling,
    BatchNormFlow,
    Chain,
    InvertibleLinear,
    MaskedAffineCoupling,
    Standardize,
    alternating_mask,
    checkerboard_mask,
    half_mask,
    random_mask,
)
from realnvp.nets import MLP

from checks import check_bijector, perturb_


@pytest.mark.parametrize("dim", [2, 3, 5])
@pytest.mark.parametrize("make_mask", [
    lambda d: alternating_mask(d, 0),
    lambda d: alternating_mask(d, 1),
    lambda d: half_mask(d, 1),
    lambda d: random_mask(d, torch.Generator().manual_seed(3)),
])
def test_affine_coupling(dim, make_mask):
    torch.manual_seed(0)
    mask = make_mask(dim)
    n_pass = int(mask.sum())
    layer = perturb_(AffineCoupling(mask, MLP(n_pass, 2 * (dim - n_pass), hidden=(16, 16))))
    x = torch.randn(8, dim)
    check_bijector(layer, x)
    z, _ = layer.double()(x.double())
    torch.testing.assert_close(z[:, mask], x.double()[:, mask])  # the passing half is untouched


def test_coupling_starts_as_identity():
    layer = AffineCoupling(alternating_mask(4, 0), MLP(2, 4, hidden=(8,)))
    x = torch.randn(5, 4)
    z, log_det = layer(x)
    torch.testing.assert_close(z, x)
    assert torch.all(log_det == 0)


def test_scale_init_bounds_the_log_scale_and_keeps_the_layer_exact():
    torch.manual_seed(0)
    net = MLP(1, 2, hidden=(8,))
    layer = AffineCoupling(alternating_mask(2, 0), net, scale_init=2.0)
    torch.nn.init.constant_(net[-1].bias, 50.0)  # raw s far into tanh's saturation
    x = torch.randn(6, 2)
    _, log_det = layer(x)
    torch.testing.assert_close(log_det, torch.full((6,), 2.0))  # |s| reaches scale_init, not 1
    check_bijector(perturb_(layer), x)


def test_standardize():
    check_bijector(Standardize(torch.tensor([1.0, -2.0]), torch.tensor([0.5, 3.0])), torch.randn(6, 2))


def test_batch_norm_flow_round_trip_and_log_det():
    torch.manual_seed(0)
    bn = BatchNormFlow((3,), momentum=0.1)
    x = torch.randn(32, 3) * torch.tensor([1.0, 5.0, 0.2]) + 2
    # Training mode mixes the batch's statistics into the running ones, so eval differs from train.
    check_bijector(bn, x, eval_matches_train=False)


def test_batch_norm_first_batch_initialises_statistics():
    bn = BatchNormFlow((2,), momentum=0.005)
    x = torch.randn(4096, 2) * 3 + 7
    z, _ = bn(x)
    assert abs(z.mean().item()) < 1e-4 and abs(z.std().item() - 1) < 1e-2
    torch.testing.assert_close(bn.running_var, x.var(0, unbiased=False), rtol=1e-5, atol=1e-5)


def test_batch_norm_running_average_uses_momentum():
    bn = BatchNormFlow((1,), momentum=0.25)
    bn(torch.zeros(8, 1))  # initialises the mean to 0
    bn(torch.full((8, 1), 4.0))
    torch.testing.assert_close(bn.running_mean, torch.tensor([1.0]))


def test_chain_applies_in_order_and_reverses():
    torch.manual_seed(0)
    layers = [perturb_(AffineCoupling(alternating_mask(3, i % 2), MLP(2 - i % 2, 2 * (1 + i % 2), (8,))))
              for i in range(3)]
    chain = Chain([Standardize(torch.zeros(3), torch.full((3,), 2.0)), *layers])
    check_bijector(chain, torch.randn(6, 3))
    x = torch.randn(4, 3, dtype=torch.float64)
    z, log_det = chain.double()(x)
    steps = chain.trace(x)
    assert [step.name for step in steps] == ["layers.0", "layers.1", "layers.2", "layers.3"]
    assert [type(step.layer).__name__ for step in steps] == ["Standardize"] + ["AffineCoupling"] * 3
    torch.testing.assert_close(steps[0].output, x / 2)
    torch.testing.assert_close(steps[-1].output, z)
    torch.testing.assert_close(sum(step.log_det for step in steps), log_det)  # the layers' log-dets add up
    back = chain.trace(z, inverse=True)
    assert [step.name for step in back] == ["layers.3", "layers.2", "layers.1", "layers.0"]
    torch.testing.assert_close(back[-1].output, x)
    torch.testing.assert_close(sum(step.log_det for step in back), -log_det)


def test_bad_masks_are_rejected():
    with pytest.raises(ValueError, match="at least 2"):
        alternating_mask(1, 0)
    with pytest.raises(ValueError, match="both passing and transformed"):
        AffineCoupling(torch.ones(3, dtype=torch.bool), MLP(3, 0, (4,)))


def test_conditioner_of_the_wrong_width_is_an_error_naming_the_expected_width():
    right = AffineCoupling(alternating_mask(3, 0), MLP(2, 2, (4,)))  # 1 transformed coordinate: 2 outputs
    assert right(torch.randn(2, 3))[0].shape == (2, 3)
    shared = AffineCoupling(alternating_mask(4, 1), MLP(2, 2, (4,)))  # 2 transformed: wants 4, chunk would share
    for call in (shared, shared.inverse):
        with pytest.raises(ValueError, match=r"conditioner returned 2 features .* expected 4 \(raw s and t for each "
                                             r"of the 2 transformed"):
            call(torch.randn(2, 4))
    masked = MaskedAffineCoupling(checkerboard_mask(2, 2, 0), torch.nn.Conv2d(3, 3, 1), channels=3)
    with pytest.raises(ValueError, match=r"returned 3 features .* expected 6 .* 3 channels"):
        masked(torch.randn(1, 3, 2, 2))


@pytest.mark.parametrize("dim", [2, 5])
@pytest.mark.parametrize("start", ["identity", "random"])
@pytest.mark.parametrize("pixels", [(), (3, 2)], ids=["vectors", "images"])
def test_invertible_linear(dim, start, pixels):
    """Vectors [N, D], and images [N, D, H, W]: a 1x1 convolution whose log-det counts every pixel."""
    torch.manual_seed(0)
    weight = None if start == "identity" else torch.randn(dim, dim)  # a random one needs row pivoting
    layer = perturb_(InvertibleLinear(dim, weight))
    check_bijector(layer, torch.randn(4 if pixels else 16, dim, *pixels))


def test_invertible_linear_starts_at_its_weight_and_rejects_a_singular_one():
    weight = torch.randn(4, 4, generator=torch.Generator().manual_seed(1))
    x = torch.randn(3, 4)
    z, log_det = InvertibleLinear(4, weight)(x)
    torch.testing.assert_close(z, x @ weight.T, atol=1e-5, rtol=0)
    torch.testing.assert_close(log_det, torch.linalg.slogdet(weight)[1].expand(3), atol=1e-5, rtol=0)
    z, log_det = InvertibleLinear(4)(x)
    assert torch.equal(z, x) and torch.equal(log_det, torch.zeros(3))
    with pytest.raises(ValueError, match="invertible"):
        InvertibleLinear(2, torch.tensor([[1.0, 2.0], [2.0, 4.0]]))


def test_invertible_linear_stays_float32_under_bf16_autocast():
    """train.precision=bf16 autocasts the whole loss; the linear layer must not run in bf16."""
    layer = perturb_(InvertibleLinear(6, torch.randn(6, 6, generator=torch.Generator().manual_seed(2))))
    x = torch.randn(5, 6)
    z, log_det = layer(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z_auto, log_det_auto = layer(x)
        x_back, _ = layer.inverse(z_auto)
    assert z_auto.dtype == torch.float32 and x_back.dtype == torch.float32
    assert torch.equal(z_auto, z) and torch.equal(log_det_auto, log_det)
    torch.testing.assert_close(x_back, x, atol=1e-4, rtol=0)
