"""The one abstraction every invertible layer implements, and the chain that composes them."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class Bijector(nn.Module):
    """An invertible map between data space and latent space.

    Contract (every subclass keeps it):

    - ``forward(x) -> (z, log_det)`` maps data to latent. ``log_det[i] = log|det dz_i/dx_i|`` for
      example ``i``, summed over all event dimensions, shape ``[batch]``.
    - ``inverse(z) -> (x, log_det)`` maps latent to data. Its ``log_det`` is ``log|det dx/dz|``, so
      ``forward`` and ``inverse`` log-dets cancel exactly on a round trip.
    - The batch is dimension 0; layers never mix examples except batch norm, whose statistics are
      explained in its own docstring.
    - Masks: a mask value of 1 (True) means "passes through unchanged and conditions the rest".

    Subclasses create accumulators with ``x.new_zeros`` so everything follows the input's device
    and dtype.

    Example:
        >>> import math, torch
        >>> class Double(Bijector):  # z = 2x: log|det dz/dx| = D log 2 per example
        ...     def forward(self, x):
        ...         return 2 * x, x.new_full((len(x),), x[0].numel() * math.log(2))
        ...     def inverse(self, z):
        ...         return z / 2, z.new_full((len(z),), -z[0].numel() * math.log(2))
        >>> z, log_det = Double()(torch.ones(3, 2))
        >>> z[0].tolist(), round(log_det[0].item(), 4)
        ([2.0, 2.0], 1.3863)
        >>> x, inverse_log_det = Double().inverse(z)
        >>> x[0].tolist(), (log_det + inverse_log_det).tolist()  # the log-dets cancel
        ([1.0, 1.0], [0.0, 0.0, 0.0])
    """

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def inverse_steps(self, z: Tensor) -> list[tuple[str, Tensor]]:
        """``[(layer name, state after its inverse), ...]`` latent -> data, one entry per elementary
        layer; containers (``Chain``, factor-out) list their parts, so a whole multi-scale model can be
        watched step by step. Every state has the shape of this layer's input."""
        return [(type(self).__name__, self.inverse(z)[0])]


class Chain(Bijector):
    """Layers applied in list order on ``forward`` and in reverse order on ``inverse``.

    Example:
        >>> import torch
        >>> from realnvp.bijectors import Chain, Standardize
        >>> chain = Chain([Standardize(torch.zeros(2), torch.full((2,), 2.0))])
        >>> z, log_det = chain(torch.ones(3, 2))
        >>> z[0].tolist(), round(log_det[0].item(), 4)
        ([0.5, 0.5], -1.3863)
    """

    def __init__(self, layers: list[Bijector]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        log_det = x.new_zeros(x.shape[0])
        for layer in self.layers:
            x, ld = layer(x)
            log_det = log_det + ld
        return x, log_det

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        log_det = z.new_zeros(z.shape[0])
        for layer in reversed(self.layers):
            z, ld = layer.inverse(z)
            log_det = log_det + ld
        return z, log_det

    def inverse_trace(self, z: Tensor) -> list[Tensor]:
        """``[z, after last layer's inverse, ..., x]``: the latent bent back into data, layer by layer."""
        states = [z]
        for layer in reversed(self.layers):
            z, _ = layer.inverse(z)
            states.append(z)
        return states

    def inverse_steps(self, z: Tensor) -> list[tuple[str, Tensor]]:
        steps: list[tuple[str, Tensor]] = []
        for layer in reversed(self.layers):
            steps += layer.inverse_steps(z)
            z = steps[-1][1] if steps else z
        return steps

    def forward_trace(self, x: Tensor) -> list[Tensor]:
        """``[x, after layer 0, ..., z]``: data pushed towards the latent, layer by layer."""
        states = [x]
        for layer in self.layers:
            x, _ = layer(x)
            states.append(x)
        return states


class Standardize(Bijector):
    """Fixed affine map ``z = (x - loc) / scale`` so the flow sees unit-scale data while every NLL
    stays in the data's own units (its log-det ``-sum(log scale)`` is counted like any layer's).

    Example:
        >>> import torch
        >>> layer = Standardize(torch.tensor([1.0]), torch.tensor([4.0]))
        >>> layer(torch.tensor([[5.0]]))[0].item()
        1.0
    """

    def __init__(self, loc: Tensor, scale: Tensor) -> None:
        super().__init__()
        if not torch.all(scale > 0):
            raise ValueError("Standardize needs a strictly positive scale (a constant column in the data?)")
        self.register_buffer("loc", loc.clone())
        self.register_buffer("scale", scale.clone())

    def _log_det(self, x: Tensor) -> Tensor:
        return (-self.scale.log().sum()).expand(x.shape[0]).to(x.dtype)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return (x - self.loc) / self.scale, self._log_det(x)

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return z * self.scale + self.loc, -self._log_det(z)
