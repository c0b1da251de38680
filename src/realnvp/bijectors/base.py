"""The one abstraction every invertible layer implements, and the chain that composes them."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn


class Step(NamedTuple):
    """One elementary layer's part of a ``trace``: its dotted ``name`` (as in ``named_modules()`` of the
    traced module), the ``layer``, the state after it (``output``, in the layout of the traced module's
    input) and its ``log_det`` (``[batch]``; a trace's log-dets sum to the whole map's).

    Example:
        >>> Step("layers.0", Chain([]), torch.zeros(1, 2), torch.zeros(1)).name
        'layers.0'
    """

    name: str
    layer: Bijector
    output: Tensor
    log_det: Tensor


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


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

    Context (conditional flows, nflows' convention): every layer takes ``context=None`` in ``forward``,
    ``inverse`` and ``trace``: one context per example (batch dimension 0), or None. It keeps the
    contract above for every fixed context. Containers (``Chain``, ``FactorOut``) pass it to every part;
    couplings hand it to their conditioner (``conditioner(x_a, context)``, or ``conditioner(x_a)``
    without one); every other layer ignores it. So a chain never asks which layers take a context.

    Example:
        >>> import math, torch
        >>> class Double(Bijector):  # z = 2x: log|det dz/dx| = D log 2 per example
        ...     def forward(self, x, context=None):
        ...         return 2 * x, x.new_full((len(x),), x[0].numel() * math.log(2))
        ...     def inverse(self, z, context=None):
        ...         return z / 2, z.new_full((len(z),), -z[0].numel() * math.log(2))
        >>> z, log_det = Double()(torch.ones(3, 2))
        >>> z[0].tolist(), round(log_det[0].item(), 4)
        ([2.0, 2.0], 1.3863)
        >>> x, inverse_log_det = Double().inverse(z)
        >>> x[0].tolist(), (log_det + inverse_log_det).tolist()  # the log-dets cancel
        ([1.0, 1.0], [0.0, 0.0, 0.0])
    """

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:  # pragma: no cover
        raise NotImplementedError

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:  # pragma: no cover
        raise NotImplementedError

    def trace(self, x: Tensor, inverse: bool = False, prefix: str = "", context: Tensor | None = None) -> list[Step]:
        """``x`` through this map one elementary layer at a time (``forward``, or ``inverse`` for a
        latent): one ``Step`` per layer, in the order they run. Containers (``Chain``, ``FactorOut``)
        trace their parts, so a whole multi-scale model can be watched or debugged step by step; the
        last step's output is the map's output. ``prefix`` is this module's own name; ``context`` goes to
        every layer, as in ``forward``.

        Example:
            >>> from realnvp.bijectors import Standardize
            >>> chain = Chain([Standardize(torch.zeros(1), torch.full((1,), 2.0)), Chain([])])
            >>> [(s.name, type(s.layer).__name__, s.output.tolist()) for s in chain.trace(torch.ones(1, 1))]
            [('layers.0', 'Standardize', [[0.5]])]
        """
        out, log_det = self.inverse(x, context=context) if inverse else self(x, context=context)
        return [Step(prefix, self, out, log_det)]


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

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        log_det = x.new_zeros(x.shape[0])
        for layer in self.layers:
            x, ld = layer(x, context=context)
            log_det = log_det + ld
        return x, log_det

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        log_det = z.new_zeros(z.shape[0])
        for layer in reversed(self.layers):
            z, ld = layer.inverse(z, context=context)
            log_det = log_det + ld
        return z, log_det

    def trace(self, x: Tensor, inverse: bool = False, prefix: str = "", context: Tensor | None = None) -> list[Step]:
        steps: list[Step] = []
        order = list(enumerate(self.layers))
        for i, layer in reversed(order) if inverse else order:
            inner = layer.trace(x, inverse, _join(prefix, f"layers.{i}"), context=context)
            steps += inner
            x = inner[-1].output if inner else x
        return steps


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

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return (x - self.loc) / self.scale, self._log_det(x)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return z * self.scale + self.loc, -self._log_det(z)
