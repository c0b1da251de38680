"""Per-column maps onto the real line for tables (data/columns.py decides which): ``log`` for positive
columns, ``logit`` for columns inside (0, 1); the flow then never puts mass where a column cannot be,
and every Jacobian is counted in the log-likelihood."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from realnvp.bijectors.base import Bijector

TRANSFORMS = ("none", "log", "logit")


class ColumnTransform(Bijector):
    """``z_j = log x_j`` on the ``log`` columns, ``z_j = log x_j - log(1 - x_j)`` on the ``logit``
    columns, ``z_j = x_j`` elsewhere; ``log_det = -sum_log log x - sum_logit (log x + log(1 - x))``.
    A value outside a column's support (``x <= 0`` for log) has log-density ``-inf``.

    Example:
        >>> layer = ColumnTransform(("log", "none"))
        >>> z, log_det = layer(torch.tensor([[1.0, -3.0]]))
        >>> z.tolist(), log_det.abs().tolist()  # log 1 = 0, and d log x / dx = 1 at x = 1
        ([[0.0, -3.0]], [0.0])
        >>> layer.inverse(z)[0].tolist()
        [[1.0, -3.0]]
    """

    def __init__(self, transforms: tuple[str, ...]) -> None:
        super().__init__()
        unknown = sorted(set(transforms) - set(TRANSFORMS))
        if unknown:
            raise ValueError(f"unknown column transform {unknown[0]!r}; expected one of {', '.join(TRANSFORMS)}")
        self.transforms = tuple(transforms)
        self.register_buffer("log_mask", torch.tensor([t == "log" for t in transforms]), persistent=False)
        self.register_buffer("logit_mask", torch.tensor([t == "logit" for t in transforms]), persistent=False)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        # Outside a column's support the density is 0: log_det -inf, computed at a safe stand-in value.
        outside = (self.log_mask & (x <= 0)) | (self.logit_mask & ((x <= 0) | (x >= 1)))
        safe = torch.where(outside, torch.full_like(x, 0.5), x)
        log_x = torch.where(self.log_mask | self.logit_mask, safe, torch.ones_like(x)).log()
        log_1mx = torch.where(self.logit_mask, -safe, torch.zeros_like(x)).log1p()
        z = torch.where(self.log_mask, log_x, torch.where(self.logit_mask, log_x - log_1mx, x))
        log_det = -(log_x * self.log_mask).sum(-1) - ((log_x + log_1mx) * self.logit_mask).sum(-1)
        return z, log_det.masked_fill(outside.any(-1), -torch.inf)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x = torch.where(self.log_mask, z.exp(), torch.where(self.logit_mask, torch.sigmoid(z), z))
        # log x and log(1 - x) of a logit column from z directly: finite where sigmoid saturates.
        log_det = (z * self.log_mask).sum(-1) + ((F.logsigmoid(z) + F.logsigmoid(-z)) * self.logit_mask).sum(-1)
        return x, log_det
