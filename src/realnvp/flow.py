"""``Flow``: a standard normal base distribution pushed through a chain of bijectors."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from realnvp.bijectors import Chain, TanhScale
from realnvp.diagnostics import warn_if_non_finite

LOG_2PI = math.log(2 * math.pi)


class Flow(nn.Module):
    """``log p(x) = log N(f(x); 0, I) + log|det df/dx|`` with ``f`` the chain's ``forward``.

    Arguments:
        chain: the bijectors, data -> latent in list order.
        event_shape: shape of one example (``(2,)`` for 2-D points, ``(C, H, W)`` for images).

    Example:
        >>> import torch
        >>> from realnvp.flow import Flow
        >>> from realnvp.models import build_vector_flow
        >>> flow = build_vector_flow(dim=2, n_couplings=4, hidden=(16, 16))
        >>> flow.log_prob(torch.zeros(3, 2)).shape
        torch.Size([3])
        >>> flow.sample(5, temperature=0.7).shape
        torch.Size([5, 2])
    """

    def __init__(self, chain: Chain, event_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.chain = chain
        self.event_shape = tuple(event_shape)

    @property
    def event_size(self) -> int:
        return math.prod(self.event_shape)

    def _check_shape(self, x: Tensor) -> None:
        if tuple(x.shape[1:]) != self.event_shape:
            raise ValueError(f"expected a batch of examples of shape {self.event_shape}, "
                             f"got a tensor of shape {tuple(x.shape)}")

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Data -> latent: ``(z, log|det dz/dx|)``."""
        self._check_shape(x)
        return self.chain(x)

    def inverse(self, z: Tensor) -> Tensor:
        """Latent -> data."""
        return self.chain.inverse(z)[0]

    def base_log_prob(self, z: Tensor) -> Tensor:
        """Standard normal log-density, summed over the event."""
        return -0.5 * (z.flatten(1) ** 2).sum(-1) - 0.5 * self.event_size * LOG_2PI

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact log-density of each example, in nats, in the data's own units: ``[batch]``."""
        self._check_shape(x)
        z, log_det = self.chain(x)
        return self.base_log_prob(z) + log_det

    def sample_latent(self, n: int, temperature: float = 1.0) -> Tensor:
        """``n`` draws from ``N(0, temperature^2 I)`` on the parameters' device."""
        ref = next(self.parameters())
        return torch.randn(n, *self.event_shape, device=ref.device, dtype=ref.dtype) * temperature

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, chunk_size: int = 65536) -> Tensor:
        """``n`` samples, drawn in chunks of at most ``chunk_size`` to bound memory. ``temperature``
        scales the base standard deviation (below 1 gives cleaner, less diverse samples). A sample
        that comes out NaN or Inf raises a ``RuntimeWarning`` naming the layer it blew up in."""
        if temperature < 0 or not math.isfinite(temperature):
            raise ValueError(f"temperature must be a finite number >= 0, got {temperature}")
        chunks = []
        for i in range(0, n, chunk_size):
            z = self.sample_latent(min(chunk_size, n - i), temperature)
            chunks.append(self.inverse(z))
            warn_if_non_finite(self, z, chunks[-1])
        return torch.cat(chunks) if chunks else self.sample_latent(0)

    @torch.no_grad()
    def inverse_trace(self, z: Tensor) -> list[Tensor]:
        """``z`` bent back into data one layer at a time (for the layer-by-layer animation)."""
        return self.chain.inverse_trace(z)

    def scale_penalty(self) -> Tensor:
        """``sum(scale^2)`` over every coupling's learned tanh scale: the paper's L2 term on ``s``."""
        ref = next(self.parameters())
        total = ref.new_zeros(())
        for module in self.modules():
            if isinstance(module, TanhScale):
                total = total + module.scale.pow(2).sum()
        return total

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())
