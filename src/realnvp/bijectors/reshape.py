"""Volume-preserving reshapes of the multi-scale architecture (paper, section 3.6): squeeze, its
inverse, and factoring out half of the channels."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from realnvp.bijectors.base import Bijector, Step


class Squeeze(Bijector):
    """``[B, C, H, W] -> [B, 4C, H/2, W/2]``: each 2x2 spatial block becomes 4 channels.

    Order (``torch.nn.functional.pixel_unshuffle``): output channel ``4c + 2i + j`` holds input
    channel ``c`` at offset ``(i, j)`` of each block, so channels ``4c .. 4c+3`` are the top-left,
    top-right, bottom-left and bottom-right pixels of channel ``c``. A permutation: log-det 0.

    Example:
        >>> import torch
        >>> z, _ = Squeeze()(torch.arange(4.0).reshape(1, 1, 2, 2))
        >>> z.flatten().tolist()
        [0.0, 1.0, 2.0, 3.0]
    """

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if x.shape[-1] % 2 or x.shape[-2] % 2:
            raise ValueError(f"squeeze needs an even height and width, got {tuple(x.shape[-2:])}")
        return F.pixel_unshuffle(x, 2), x.new_zeros(x.shape[0])

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return F.pixel_shuffle(z, 2), z.new_zeros(z.shape[0])


class Unsqueeze(Bijector):
    """The inverse of ``Squeeze``: ``[B, 4C, H, W] -> [B, C, 2H, 2W]``. It closes each scale so the
    whole model maps an image to a latent of the same shape (factored-out variables sit in the
    pixels they were squeezed from).

    Example:
        >>> import torch
        >>> x = torch.randn(2, 3, 4, 4)
        >>> torch.equal(Unsqueeze()(Squeeze()(x)[0])[0], x)
        True
    """

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return Squeeze().inverse(x)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return Squeeze()(z)


def unsqueeze_to(state: Tensor, height: int) -> Tensor:
    """Undo squeezes of ``state`` (``[B, C, h, w]``) until its height is ``height``: shows any
    intermediate state of a multi-scale model in the image's own pixel layout.

    Example:
        >>> import torch
        >>> unsqueeze_to(torch.zeros(1, 16, 2, 2), 8).shape
        torch.Size([1, 1, 8, 8])
    """
    while state.shape[-2] < height:
        state = F.pixel_shuffle(state, 2)
    return state


class FactorOut(Bijector):
    """Factor out half the variables (paper, eq. 16): the first ``C/2`` channels of ``[B, C, H, W]``
    leave the flow unchanged (they are latents of this scale), the last ``C/2`` go through ``inner``
    (the coarser scales). ``inner`` must keep its input's shape.

    Example:
        >>> import torch
        >>> from realnvp.bijectors import Chain
        >>> layer = FactorOut(Chain([]))
        >>> layer(torch.ones(1, 4, 2, 2))[0].shape
        torch.Size([1, 4, 2, 2])
    """

    def __init__(self, inner: Bijector) -> None:
        super().__init__()
        self.inner = inner

    def _split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if x.shape[1] % 2:
            raise ValueError(f"factor-out needs an even number of channels, got {x.shape[1]}")
        return x.chunk(2, dim=1)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        out, rest = self._split(x)
        rest, log_det = self.inner(rest, context=context)
        return torch.cat([out, rest], dim=1), log_det

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        out, rest = self._split(z)
        rest, log_det = self.inner.inverse(rest, context=context)
        return torch.cat([out, rest], dim=1), log_det

    def trace(self, x: Tensor, inverse: bool = False, prefix: str = "", context: Tensor | None = None) -> list[Step]:
        # Each state of the inner scales, unsqueezed back to this layer's layout beside the half that left.
        out, rest = self._split(x)
        steps = self.inner.trace(rest, inverse, f"{prefix}.inner" if prefix else "inner", context=context)
        return [step._replace(output=torch.cat([out, unsqueeze_to(step.output, rest.shape[-2])], dim=1))
                for step in steps]
