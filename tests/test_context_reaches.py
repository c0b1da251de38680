"""Every coupling of a conditional flow sees the context (issue "Numbers you can repeat": a flow whose
first coupling ignored its context passed the earlier tests). With random weights, changing only the
context must change what each coupling does to the same input, vector and image models alike."""

from __future__ import annotations

import torch

from realnvp.models import build_image_flow, build_vector_flow


def _randomised(flow: torch.nn.Module) -> torch.nn.Module:
    """The flow with every parameter drawn at random (zero-initialised outputs would hide the context)."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in flow.parameters():
            p.copy_(0.3 * torch.randn_like(p))
    return flow.eval()


def _coupling_log_dets(flow, x, context) -> dict[str, torch.Tensor]:
    """Each coupling's log-det (every layer with a conditioner: ``Coupling``, ``MaskedAffineCoupling``) in a
    forward trace, by name, given ``context``."""
    with torch.no_grad():
        return {s.name: s.log_det for s in flow.trace(x, context=context) if hasattr(s.layer, "conditioner")}


def _assert_every_coupling_sees_the_context(flow, x, c1, c2) -> None:
    first, second = _coupling_log_dets(flow, x, c1), _coupling_log_dets(flow, x, c2)
    assert first, "no coupling was traced"
    blind = [name for name in first if torch.allclose(first[name], second[name])]
    assert not blind, f"couplings that ignore the context: {blind}"


def test_every_coupling_of_a_conditional_vector_flow_sees_the_context():
    flow = _randomised(build_vector_flow(dim=4, n_couplings=4, hidden=(16,), context_size=2))
    x = torch.randn(8, 4)
    _assert_every_coupling_sees_the_context(flow, x, torch.zeros(8, 2), torch.ones(8, 2))


def test_every_coupling_of_a_class_conditional_image_flow_sees_the_label():
    flow = _randomised(build_image_flow((1, 8, 8), n_scales=2, feature_maps=4, n_blocks=1, n_classes=3,
                                        batch_norm=False))
    x = torch.rand(4, 1, 8, 8) * 0.9 + 0.05
    _assert_every_coupling_sees_the_context(flow, x, torch.zeros(4, dtype=torch.long),
                                            torch.full((4,), 2, dtype=torch.long))
