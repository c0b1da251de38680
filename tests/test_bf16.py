"""train.precision = "bf16": the s/t networks compute in bfloat16 autocast, but every log-det is still
the exact log |det J| of the map the flow computes, in float32 (the couplings' affine maps, batch
norms and the loss never leave float32)."""

import pytest
import torch
from torch import nn

from realnvp.bijectors import AffineCoupling, MaskedAffineCoupling
from realnvp.models import build_image_flow, build_vector_flow


def _perturbed(flow: nn.Module) -> nn.Module:
    """Random non-zero weights everywhere (the zero-initialised last layers would make s = t = 0)."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return flow.eval()


def _coupling_log_dets(flow: nn.Module, x: torch.Tensor) -> tuple[list[tuple[float, float]], set[torch.dtype]]:
    """For every coupling of ``flow`` (one example ``x`` through the flow, bf16 autocast): its own
    log-det and log |det| of its Jacobian as autograd takes it through the same autocast forward
    (per layer: a product of the layers' Jacobians would lose digits to cancellation, bf16 or not);
    also the dtypes the conditioners' layers produced."""
    inputs: list[tuple[nn.Module, torch.Tensor]] = []
    seen: set[torch.dtype] = set()
    hooks = [m.register_forward_pre_hook(lambda m, args: inputs.append((m, args[0].detach())))
             for m in flow.modules() if isinstance(m, (AffineCoupling, MaskedAffineCoupling))]
    hooks += [m.register_forward_hook(lambda _m, _i, out: seen.add(out.dtype))
              for m in flow.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        flow(x)
    for h in hooks:
        h.remove()
    pairs = []
    for layer, v in inputs:
        def y_of(u: torch.Tensor, layer: nn.Module = layer, shape: torch.Size = v.shape) -> torch.Tensor:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return layer(u.reshape(shape))[0].reshape(-1)

        with torch.autocast("cpu", dtype=torch.bfloat16):
            y, log_det = layer(v)
        jacobian = torch.autograd.functional.jacobian(y_of, v.reshape(-1))
        assert y.dtype == log_det.dtype == jacobian.dtype == torch.float32
        pairs.append((log_det.item(), torch.linalg.slogdet(jacobian.double())[1].item()))
    return pairs, seen


@pytest.mark.parametrize("dim", [2, 5])  # 2: the couplings' contiguous halves; 5: alternating index gathers
def test_vector_log_det_is_exact_under_bf16(dim):
    torch.manual_seed(0)  # the layers' own initialisation: not whatever state the tests before left
    flow = _perturbed(build_vector_flow(dim, n_couplings=4, hidden=(16, 16), batch_norm=True))
    x = torch.randn(1, dim, generator=torch.Generator().manual_seed(1))
    pairs, seen = _coupling_log_dets(flow, x)
    assert torch.bfloat16 in seen and len(pairs) == 4  # the conditioners did run in bf16
    for log_det, autograd in pairs:
        assert abs(log_det) > 0.01 and log_det == pytest.approx(autograd, abs=1e-5)
    with torch.no_grad():  # and bf16 changed the function, so the test is not comparing float32 twice
        fp32_log_det = flow(torch.zeros(1, dim))[1].item()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert flow(torch.zeros(1, dim))[1].item() != fp32_log_det


def test_image_log_det_is_exact_under_bf16():
    torch.manual_seed(0)  # as above: independent of the tests that ran before
    flow = _perturbed(build_image_flow((1, 4, 4), n_scales=2, feature_maps=8, n_blocks=1, scale_couplings=1,
                                       final_couplings=2))
    x = torch.rand(1, 1, 4, 4) * 0.9 + 0.05
    pairs, seen = _coupling_log_dets(flow, x)
    assert torch.bfloat16 in seen and len(pairs) == 4  # checkerboard and channel-wise couplings
    for log_det, autograd in pairs:
        assert abs(log_det) > 0.01 and log_det == pytest.approx(autograd, abs=1e-5)
