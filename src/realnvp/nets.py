"""Conditioner networks that compute a coupling layer's raw ``s`` and ``t``; they never need inverting."""

from __future__ import annotations

from torch import Tensor, nn


class MLP(nn.Sequential):
    """``in -> hidden... -> out`` with ReLU; the output layer starts at zero so a coupling starts as
    the identity (seed 000: this avoided bad local minima; Glow does the same).

    Example:
        >>> import torch
        >>> net = MLP(1, 2, hidden=(512, 512))
        >>> net(torch.randn(3, 1)).abs().max().item()
        0.0
    """

    def __init__(self, in_features: int, out_features: int, hidden: tuple[int, ...] = (512, 512)) -> None:
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        last = nn.Linear(width, out_features)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        super().__init__(*layers, last)

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x)
