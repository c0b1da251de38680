"""Conditional Real NVP (issue 16): layers that take a context keep the bijector contract for every
fixed context (the checks.py battery), flows give log p(x | c) and sample given c, and the CLI trains,
evaluates, samples and scores conditional runs end to end."""

from __future__ import annotations

import torch
from torch import Tensor

from realnvp.bijectors import (
    AffineCoupling,
    Bijector,
    Chain,
    FactorOut,
    MaskedAffineCoupling,
    Squeeze,
    Unsqueeze,
    alternating_mask,
    checkerboard_mask,
    half_mask,
)
from realnvp.models import build_image_flow, build_vector_flow
from realnvp.nets import ContextMLP, ContextResNet

from checks import check_bijector, perturb_


class Bound(Bijector):
    """``layer`` with one context held fixed (broadcast over the batch): the map the contract is about."""

    def __init__(self, layer: Bijector, context: Tensor) -> None:
        super().__init__()
        self.layer, self.context = layer, context

    def _c(self, x: Tensor) -> Tensor:
        return self.context.expand(len(x), *self.context.shape[1:])

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.layer(x, context=self._c(x))

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return self.layer.inverse(z, context=self._c(z))


def test_vector_coupling_with_context_keeps_the_contract_for_each_fixed_context():
    torch.manual_seed(0)
    layer = perturb_(AffineCoupling(alternating_mask(3, 0), ContextMLP(2, 2, 2, hidden=(8,))))
    for c in ([0.0, 0.0], [1.5, -2.0]):
        check_bijector(Bound(layer, torch.tensor([c])), torch.randn(6, 3))


def test_image_couplings_with_a_label_keep_the_contract_for_each_label():
    torch.manual_seed(0)
    checker = MaskedAffineCoupling(checkerboard_mask(4, 4, 1), ContextResNet(2, 4, 3, embed=2, hidden=4, n_blocks=1,
                                                                            norm="none"), 2)
    channel = AffineCoupling(half_mask(4, 0), ContextResNet(2, 4, 3, embed=2, hidden=4, n_blocks=1, norm="none"), 3)
    layers = Chain([perturb_(checker), Squeeze(), FactorOut(Chain([perturb_(channel)])), Unsqueeze()])
    x = torch.randn(3, 2, 4, 4)
    for label in (0, 2):
        check_bijector(Bound(layers, torch.tensor([label])), x)


def test_the_context_changes_the_map_and_log_det():
    torch.manual_seed(0)
    layer = perturb_(AffineCoupling(alternating_mask(2, 0), ContextMLP(1, 1, 2, hidden=(8,))))
    x = torch.randn(4, 2)
    z0, ld0 = layer(x, context=torch.zeros(4, 1))
    z1, ld1 = layer(x, context=torch.ones(4, 1))
    assert not torch.allclose(z0, z1) and not torch.allclose(ld0, ld1)


def test_per_example_contexts_equal_one_call_per_example():
    torch.manual_seed(0)
    flow = perturb_(build_image_flow((1, 4, 4), hidden=4, n_blocks=1, batch_norm=False, norm="none", n_classes=3))
    x, labels = torch.rand(3, 1, 4, 4), torch.tensor([0, 1, 2])
    together = flow.log_prob(x, context=labels)
    alone = torch.stack([flow.log_prob(x[i], context=int(labels[i])) for i in range(3)])
    torch.testing.assert_close(together, alone)
    assert len(set(together.tolist())) == 3


def test_flow_log_prob_matches_sample_and_log_prob_given_the_context():
    torch.manual_seed(0)
    flow = perturb_(build_vector_flow(3, 4, hidden=(16,), context_size=2)).eval()
    c = torch.randn(5, 2)
    x, log_p = flow.sample_and_log_prob(5, temperature=0.8, context=c)
    torch.testing.assert_close(log_p, flow.log_prob(x, context=c), atol=1e-5, rtol=0)
    torch.testing.assert_close(flow.inverse(flow(x, c)[0], c), x, atol=1e-5, rtol=0)
    assert flow.sample(7, context=c[0]).shape == (7, 3)  # one context for every sample


def test_missing_surplus_or_bad_contexts_are_value_errors():
    import pytest

    vec = build_vector_flow(2, 2, hidden=(8,), context_size=1)
    img = build_image_flow((1, 4, 4), hidden=4, n_blocks=1, n_classes=10)
    plain = build_vector_flow(2, 2, hidden=(8,))
    cases = [(lambda: vec.log_prob(torch.zeros(3, 2)), "conditional: pass context"),
             (lambda: plain.log_prob(torch.zeros(3, 2), context=1.0), "not conditional"),
             (lambda: vec.log_prob(torch.zeros(3, 2), context=torch.zeros(2, 1)), "shape"),
             (lambda: img.sample(2, context=10), "0..9"),
             (lambda: img.sample(2, context=[1.5, 2]), "integers"),
             (lambda: img.sample(3, context=[1, 2]), "one class label or 3")]
    for call, words in cases:
        with pytest.raises(ValueError, match=words):
            call()


def test_an_unconditional_flow_ignores_nothing_and_keeps_its_outputs():
    torch.manual_seed(0)
    flow = perturb_(build_vector_flow(2, 4, hidden=(8,)))
    x = torch.randn(5, 2)
    z, log_det = flow(x)
    torch.testing.assert_close(flow.chain(x)[0], z)
    assert not flow.conditional and flow.as_context(None, 5) is None
