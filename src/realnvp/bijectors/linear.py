"""A learned invertible linear map of vectors or of each pixel's channels, LU-parameterised (Glow's
invertible 1x1 convolution, Kingma & Dhariwal 2018, section 3.2; nflows' ``LULinear``): between
couplings it lets the flow rotate and shear the coordinates that fixed masks split, at O(D^2) cost and
an O(D) log-determinant."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from realnvp.bijectors.base import Bijector


class InvertibleLinear(Bijector):
    """``z = x W^T + b`` on vectors ``[N, D]``, or ``W`` applied to every pixel's ``D`` channels of
    images ``[N, D, H, W]`` (a 1x1 convolution; the log-det counts each pixel), with ``W = P L U``:
    ``P`` a fixed permutation, ``L`` unit lower-triangular, ``U`` upper-triangular with diagonal
    ``sign * exp(log_scale)``; ``log|det W| = sum(log_scale)``, so the log-det costs nothing
    and ``W`` stays invertible whatever the optimiser does.

    Starts at the identity (``weight=None``) so inserting it leaves the flow's initial density
    unchanged; any invertible ``weight`` is decomposed with ``torch.linalg.lu`` instead.

    Example:
        >>> layer = InvertibleLinear(3, weight=torch.tensor([[2.0, 0, 0], [1, 1, 0], [0, 0, 0.5]]))
        >>> z, log_det = layer(torch.ones(2, 3))
        >>> z[0].tolist(), round(log_det[0].item(), 4)  # log|det W| = log(2 * 1 * 0.5)
        ([2.0, 2.0, 0.5], 0.0)
        >>> x, inverse_log_det = layer.inverse(z)
        >>> torch.allclose(x, torch.ones(2, 3)), (log_det + inverse_log_det).abs().max().item()
        (True, 0.0)
        >>> round(layer(torch.ones(2, 3, 4, 5))[1][0].item(), 4)  # images: 20 pixels, each log(1) = 0
        0.0
    """

    def __init__(self, dim: int, weight: Tensor | None = None) -> None:
        super().__init__()
        weight = torch.eye(dim) if weight is None else weight.detach()
        if weight.shape != (dim, dim):
            raise ValueError(f"InvertibleLinear({dim}) needs a [{dim}, {dim}] weight, got {tuple(weight.shape)}")
        p, lower, upper = torch.linalg.lu(weight.to(torch.float64))
        diagonal = upper.diagonal()
        if not torch.all(diagonal != 0):
            raise ValueError("InvertibleLinear needs an invertible weight")
        self.register_buffer("permutation", p.float())
        self.register_buffer("sign", diagonal.sign().float())
        # Derived from dim, so kept out of checkpoints; it keeps L unit lower-triangular under updates.
        self.register_buffer("lower_mask", torch.tril(torch.ones(dim, dim), -1), persistent=False)
        self.lower = nn.Parameter(lower.float() * self.lower_mask)
        self.upper = nn.Parameter(torch.triu(upper, 1).float())
        self.log_scale = nn.Parameter(diagonal.abs().log().float())
        self.bias = nn.Parameter(torch.zeros(dim))

    def _factors(self) -> tuple[Tensor, Tensor]:
        """``(L, U)`` from the free parameters: the unit diagonal and the signed scales put in place."""
        eye = torch.eye(len(self.bias), device=self.bias.device, dtype=self.bias.dtype)
        lower = self.lower * self.lower_mask + eye
        upper = torch.triu(self.upper, 1) + torch.diag(self.sign * self.log_scale.exp())
        return lower, upper

    def _log_det(self, x: Tensor) -> Tensor:
        pixels = x[0, 0].numel() if x.dim() == 4 else 1
        return (pixels * self.log_scale.sum()).to(x.dtype).expand(x.shape[0])

    @staticmethod
    def _mix(x: Tensor, matrix: Tensor) -> Tensor:
        """``matrix`` times each vector of ``x``, or times each pixel's channels of images."""
        return torch.einsum("ij,njhw->nihw", matrix, x) if x.dim() == 4 else x @ matrix.T

    def _bias(self, x: Tensor) -> Tensor:
        return self.bias[:, None, None] if x.dim() == 4 else self.bias

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        # Outside bf16 autocast (train.precision): only the s/t networks may run in bf16.
        with torch.autocast(x.device.type, enabled=False):
            lower, upper = self._factors()
            return self._mix(x, self.permutation @ lower @ upper) + self._bias(x), self._log_det(x)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        with torch.autocast(z.device.type, enabled=False):
            lower, upper = self._factors()
            # W^{-1} = U^{-1} L^{-1} P^T by two triangular solves (no general matrix inverse).
            inverse = torch.linalg.solve_triangular(lower, self.permutation.T, upper=False, unitriangular=True)
            inverse = torch.linalg.solve_triangular(upper, inverse, upper=True)
            return self._mix(z - self._bias(z), inverse), -self._log_det(z)
