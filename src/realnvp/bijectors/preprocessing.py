"""Image preprocessing that is part of the density (paper, section 4.1; docs/bits-per-dim.md): uniform
dequantization, the logit transform, random flips.

The chain of custody of every bits/dim we print: integer pixels ``v`` in ``0 .. L-1`` (``L`` levels:
256 for 8-bit images, 17 for scikit-learn's digits) are dequantized to ``y = (v + u) / L`` with
``u ~ U(0, 1)`` per pixel (``dequantize``). The flow models the density of ``y`` in ``(0, 1)^D``; its
first layer is ``Logit``, whose log-det is counted like any other layer's. The ``1 / L`` scaling is
counted by ``realnvp.evaluation.metrics.bits_per_dim``, which adds ``D ln L`` to the NLL of ``y``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from realnvp.bijectors.base import Bijector

LOGIT_VARIANTS = ("symmetric", "paper")


class Logit(Bijector):
    """``x = logit(alpha + beta * y)`` elementwise, ``y`` in ``(0, 1)``, so the flow sees an unbounded
    variable and pixel values near 0 or 1 do not crowd a boundary.

    ``variant="symmetric"`` (default): ``beta = 1 - 2 alpha``, the argument stays in
    ``[alpha, 1 - alpha]``. ``variant="paper"``: ``beta = 1 - alpha`` as printed in the paper, which
    reaches ``logit(1) = inf`` as ``y`` approaches 1 (pixels near the top value).

    ``log_det = sum(log beta - log(s) - log(1 - s))`` with ``s = alpha + beta y``.

    Example:
        >>> import torch
        >>> layer = Logit(0.05)
        >>> x, log_det = layer(torch.full((1, 3), 0.5))
        >>> x.abs().max().item(), round(log_det.item(), 4)
        (0.0, 3.8428)
    """

    def __init__(self, alpha: float = 0.05, variant: str = "symmetric") -> None:
        super().__init__()
        if not 0.0 < alpha < 0.5:
            raise ValueError(f"logit alpha must be in (0, 0.5), got {alpha}")
        if variant not in LOGIT_VARIANTS:
            raise ValueError(f"unknown logit variant {variant!r}; expected one of {', '.join(LOGIT_VARIANTS)}")
        self.alpha = alpha
        self.beta = 1.0 - 2.0 * alpha if variant == "symmetric" else 1.0 - alpha

    def _log_det(self, s: Tensor) -> Tensor:
        return (math.log(self.beta) - torch.log(s) - torch.log1p(-s)).flatten(1).sum(-1)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        s = self.alpha + self.beta * x
        return torch.log(s) - torch.log1p(-s), self._log_det(s)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        s = torch.sigmoid(z)
        # log s + log(1 - s) via logsigmoid stays finite for large |z| where sigmoid saturates.
        log_det = (F.logsigmoid(z) + F.logsigmoid(-z) - math.log(self.beta)).flatten(1).sum(-1)
        return (s - self.alpha) / self.beta, log_det


def dequantize(v: Tensor, n_levels: int, generator: torch.Generator | None = None) -> Tensor:
    """``y = (v + u) / n_levels`` with ``u ~ U(0, 1)`` per pixel: integer pixels ``0 .. n_levels-1``
    become a continuous variable in ``[0, 1)`` whose density lower-bounds the discrete likelihood.

    Example:
        >>> import torch
        >>> y = dequantize(torch.tensor([[0, 255]]), 256)
        >>> bool((y >= 0).all() and (y < 1).all())
        True
    """
    u = torch.rand(v.shape, generator=generator, device=v.device)
    return (v.float() + u) / n_levels


def random_hflip(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Each image of ``[B, C, H, W]`` mirrored left-right with probability 1/2 (training only).

    Example:
        >>> import torch
        >>> random_hflip(torch.zeros(4, 1, 2, 2)).shape
        torch.Size([4, 1, 2, 2])
    """
    flip = torch.rand(x.shape[0], generator=generator, device=x.device) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(-1), x)
