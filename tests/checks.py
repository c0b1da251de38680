"""The one battery every bijector's test runs (nflows/zuko style): round trip, log-det against the
float64 autograd Jacobian, forward/inverse log-dets cancel, train/eval agreement, gradients reach
every parameter."""

from __future__ import annotations

import copy

import torch
from torch import Tensor

from realnvp.bijectors import Bijector


def perturb_(layer: Bijector, scale: float = 0.3, seed: int = 0) -> Bijector:
    """Move every parameter off its identity initialisation, so the checks test a non-trivial map."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return layer


def jacobian_log_det(fn, x: Tensor) -> Tensor:  # noqa: ANN001
    """``log|det J|`` of ``fn`` at each example of ``x``, by autograd (examples must not interact)."""
    out = []
    for xi in x:
        jac = torch.autograd.functional.jacobian(lambda v: fn(v.unsqueeze(0))[0].reshape(-1), xi)
        out.append(torch.linalg.slogdet(jac.reshape(xi.numel(), xi.numel()))[1])
    return torch.stack(out)


def check_bijector(layer: Bijector, x: Tensor, atol: float = 1e-6, eval_matches_train: bool = True) -> None:
    """Assert the ``Bijector`` contract on a batch ``x`` in float64 (call with a perturbed layer).

    - forward returns ``(z, log_det)`` with ``log_det.shape == [batch]`` and finite values;
    - ``inverse(forward(x)) == x`` in train and eval mode;
    - ``log_det`` equals ``slogdet`` of the autograd Jacobian (eval mode: no batch coupling);
    - forward and inverse log-dets cancel;
    - eval and train agree (when the layer has no batch statistics) and gradients reach every parameter.
    """
    layer = layer.double()
    x = x.double()
    batch = x.shape[0]

    layer.train()
    z, log_det = layer(x.clone().requires_grad_(True))
    assert log_det.shape == (batch,), f"log_det must be [batch], got {tuple(log_det.shape)}"
    assert torch.isfinite(z).all() and torch.isfinite(log_det).all()
    (z.sum() + log_det.sum()).backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None, f"no gradient reaches {name}"
    x_back, inv_log_det = layer.inverse(z.detach())
    torch.testing.assert_close(x_back, x, atol=atol, rtol=0)
    torch.testing.assert_close(inv_log_det, -log_det.detach(), atol=atol, rtol=0)

    layer.eval()
    with torch.no_grad():
        z_eval, log_det_eval = layer(x)
        x_back, inv_log_det = layer.inverse(z_eval)
    torch.testing.assert_close(x_back, x, atol=atol, rtol=0)
    torch.testing.assert_close(inv_log_det, -log_det_eval, atol=atol, rtol=0)
    if eval_matches_train:
        torch.testing.assert_close(z_eval, z.detach(), atol=atol, rtol=0)
        torch.testing.assert_close(log_det_eval, log_det.detach(), atol=atol, rtol=0)

    frozen = copy.deepcopy(layer).eval()
    expected = jacobian_log_det(frozen, x[: min(batch, 4)])
    torch.testing.assert_close(log_det_eval[: len(expected)], expected, atol=atol, rtol=1e-6)
