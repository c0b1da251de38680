"""Every image layer through the shared battery (tests/checks.py) on tiny images, train and eval."""

import copy

import pytest
import torch

from realnvp.bijectors import (
    AffineCoupling,
    BatchNormFlow,
    Chain,
    FactorOut,
    Logit,
    MaskedAffineCoupling,
    Squeeze,
    Unsqueeze,
    checkerboard_mask,
    dequantize,
    half_mask,
    random_hflip,
)
from realnvp.models import build_image_flow
from realnvp.nets import ResNet

from checks import check_bijector, perturb_


def images(shape=(6, 2, 4, 4), seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def test_squeeze_order_is_the_documented_one():
    x = torch.arange(2 * 4 * 4.0).reshape(1, 2, 4, 4)
    z, log_det = Squeeze()(x)
    assert z.shape == (1, 8, 2, 2) and log_det.tolist() == [0.0]
    # channel 4c + 2i + j holds channel c's pixel (i, j) of every 2x2 block
    for c in range(2):
        for i in range(2):
            for j in range(2):
                assert torch.equal(z[0, 4 * c + 2 * i + j], x[0, c, i::2, j::2])


@pytest.mark.parametrize("layer", [Squeeze(), Unsqueeze()], ids=["squeeze", "unsqueeze"])
def test_reshapes_pass_the_battery(layer):
    check_bijector(layer, images((3, 4, 4, 4)))


def test_squeeze_rejects_odd_sizes():
    with pytest.raises(ValueError, match="even height and width"):
        Squeeze()(torch.zeros(1, 1, 3, 4))


@pytest.mark.parametrize("norm", ["batch", "instance", "none"])
def test_checkerboard_coupling_with_resnet(norm):
    layer = MaskedAffineCoupling(checkerboard_mask(4, 4, 1), ResNet(2, 4, hidden=8, n_blocks=1, norm=norm), 2)
    x = images()
    perturb_(layer)
    check_bijector(layer, x, eval_matches_train=norm != "batch")
    z, _ = layer.eval()(x.double())
    passing = checkerboard_mask(4, 4, 1).expand_as(x)
    assert torch.equal(z[passing], x.double()[passing])  # the mask's True pixels pass unchanged


def test_channelwise_coupling_feeds_only_the_passing_channels():
    mask = half_mask(4, 1)
    net = ResNet(2, 4, hidden=8, n_blocks=1, norm="instance")
    layer = AffineCoupling(mask, net, event_rank=3)
    assert layer.tanh_scale.scale.shape == (2, 1, 1)
    x = images((5, 4, 4, 4))
    check_bijector(perturb_(layer), x)
    z, _ = layer(x.double())
    assert torch.equal(z[:, 2:], x.double()[:, 2:])


def test_image_batch_norm_passes_the_battery():
    layer = BatchNormFlow((2, 1, 1), momentum=0.005)
    x = images() * 3 + 1
    layer.double()(x.double())  # statistics initialised by a first batch
    check_bijector(layer, x, eval_matches_train=False)


@pytest.mark.parametrize("variant", ["symmetric", "paper"])
def test_logit_passes_the_battery(variant):
    y = torch.rand(5, 1, 3, 3, generator=torch.Generator().manual_seed(1)) * 0.98 + 0.01
    check_bijector(Logit(0.05, variant), y)


def test_logit_maps_the_unit_interval_into_alpha_bounds():
    x, _ = Logit(0.05)(torch.tensor([[0.0, 1.0]]))
    torch.testing.assert_close(x, torch.tensor([[-2.944439, 2.944439]]))  # logit(0.05), logit(0.95)
    with pytest.raises(ValueError, match="alpha"):
        Logit(0.5)
    with pytest.raises(ValueError, match="variant"):
        Logit(0.05, "other")


def test_factor_out_passes_the_battery_and_keeps_the_first_half():
    inner = Chain([MaskedAffineCoupling(checkerboard_mask(2, 2, 0), ResNet(2, 4, hidden=4, n_blocks=1,
                                                                          norm="none"), 2)])
    layer = perturb_(FactorOut(inner))
    x = images((4, 4, 2, 2))
    check_bijector(layer, x)
    z, _ = layer(x.double())
    assert torch.equal(z[:, :2], x.double()[:, :2])


def test_trace_follows_the_inverse_in_the_input_layout():
    chain = Chain([Squeeze(), FactorOut(Chain([Squeeze(), Unsqueeze()])), Unsqueeze()])
    z = images((2, 1, 4, 4))
    steps = chain.trace(z, inverse=True)
    assert [type(step.layer).__name__ for step in steps] == ["Unsqueeze", "Unsqueeze", "Squeeze", "Squeeze"]
    assert [step.name for step in steps] == ["layers.2", "layers.1.inner.layers.1", "layers.1.inner.layers.0",
                                             "layers.0"]
    assert torch.equal(steps[-1].output, chain.inverse(z)[0])
    inside = steps[2].output  # after the inner Squeeze's inverse: the factored-out half beside it, unsqueezed
    assert inside.shape == (2, 4, 2, 2) and torch.equal(inside[:, :2], Squeeze()(z.double())[0][:, :2].to(z))


def test_trace_of_a_multi_scale_model_adds_up_to_its_log_det():
    torch.manual_seed(0)
    flow = perturb_(build_image_flow((2, 4, 4), n_scales=2, feature_maps=4, n_blocks=1)).eval()
    x = torch.rand(3, 2, 4, 4)
    z, log_det = flow(x)
    steps = flow.trace(x)
    modules = dict(flow.named_modules())
    assert all(modules[step.name] is step.layer for step in steps)  # named as in named_modules()
    assert [type(step.layer).__name__ for step in steps].count("MaskedAffineCoupling") == 3 + 4
    assert {tuple(step.output.shape) for step in steps} == {(3, 2, 4, 4), (3, 8, 2, 2)}  # squeezed in between
    torch.testing.assert_close(steps[-1].output, z)
    torch.testing.assert_close(sum(step.log_det for step in steps), log_det, atol=1e-4, rtol=1e-5)
    back = flow.trace(z, inverse=True)
    torch.testing.assert_close(back[-1].output, x, atol=1e-4, rtol=1e-4)


def test_resnet_starts_at_zero_and_checkpointing_changes_nothing():
    torch.manual_seed(0)
    net = ResNet(3, 6, hidden=8, n_blocks=2, norm="instance")
    x = torch.randn(2, 3, 4, 4)
    assert net(x).abs().max().item() == 0.0
    perturb_(net)
    reference = net(x)
    reference.square().sum().backward()
    grads = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    net.checkpoint = True
    out = net(x)
    out.square().sum().backward()
    torch.testing.assert_close(out, reference)
    for p, g in zip(net.parameters(), grads):
        torch.testing.assert_close(p.grad, g)
    assert any("parametrizations.weight" in name for name, _ in net.named_parameters())  # weight norm


def test_checkpointing_folds_each_batch_into_batch_norm_statistics_once():
    torch.manual_seed(0)
    plain = ResNet(3, 6, hidden=8, n_blocks=2, norm="batch")
    perturb_(plain)
    checkpointed = copy.deepcopy(plain)
    checkpointed.checkpoint = True
    for _ in range(3):
        x = torch.randn(4, 3, 4, 4)
        plain(x).square().sum().backward()
        checkpointed(x).square().sum().backward()  # forward, then recomputed inside the backward
    buffers = dict(checkpointed.named_buffers())
    assert any("running_mean" in name for name in buffers)
    for name, reference in plain.named_buffers():
        torch.testing.assert_close(buffers[name], reference, msg=name)


def test_dequantize_and_flip():
    v = torch.tensor([[[[0, 16], [3, 7]]]]).repeat(500, 1, 1, 1)
    y = dequantize(v, 17, torch.Generator().manual_seed(0))
    assert torch.all(y * 17 >= v) and torch.all(y * 17 < v + 1)
    flipped = random_hflip(v.float(), torch.Generator().manual_seed(0))
    mirrored = (flipped == v.float().flip(-1)).flatten(1).all(1)
    assert torch.all(mirrored | (flipped == v.float()).flatten(1).all(1))
    assert 150 < int(mirrored.sum()) < 350
