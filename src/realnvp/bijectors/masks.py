"""Binary masks for coupling layers. A value of 1 (True) passes through unchanged and conditions."""

from __future__ import annotations

import torch
from torch import Tensor


def alternating_mask(dim: int, parity: int) -> Tensor:
    """Even (parity 0) or odd (parity 1) coordinates pass through; for ``dim == 1`` see ``half_mask``.

    Example:
        >>> alternating_mask(4, 0).tolist()
        [True, False, True, False]
    """
    if dim < 2:
        raise ValueError(f"a coupling layer needs at least 2 dimensions, got {dim}")
    return torch.arange(dim) % 2 == parity


def half_mask(dim: int, parity: int) -> Tensor:
    """The first (parity 0) or second (parity 1) half of the coordinates pass through.

    Example:
        >>> half_mask(4, 1).tolist()
        [False, False, True, True]
    """
    if dim < 2:
        raise ValueError(f"a coupling layer needs at least 2 dimensions, got {dim}")
    first = torch.arange(dim) < dim // 2
    return first if parity == 0 else ~first


def random_mask(dim: int, generator: torch.Generator) -> Tensor:
    """A fixed random half of the coordinates passes through (drawn once, stored with the model).

    Example:
        >>> int(random_mask(6, torch.Generator().manual_seed(0)).sum())
        3
    """
    if dim < 2:
        raise ValueError(f"a coupling layer needs at least 2 dimensions, got {dim}")
    mask = torch.zeros(dim, dtype=torch.bool)
    mask[torch.randperm(dim, generator=generator)[: dim // 2]] = True
    return mask


def checkerboard_mask(height: int, width: int, parity: int) -> Tensor:
    """Spatial checkerboard ``[1, H, W]``: pixels with ``(i + j) % 2 == parity`` pass through.

    Example:
        >>> checkerboard_mask(2, 2, 0)[0].int().tolist()
        [[1, 0], [0, 1]]
    """
    i = torch.arange(height)[:, None]
    j = torch.arange(width)[None, :]
    return ((i + j) % 2 == parity)[None]



def squeezed_checkerboard_mask(channels: int, parity: int) -> Tensor:
    """``checkerboard_mask`` as it reads after ``Squeeze``: of the ``channels = 4 C`` squeezed channels
    (``4c + 2i + j`` holds the pixel at ``(i, j)`` of each 2x2 block), those whose ``(i + j) % 2 == parity``.

    Example:
        >>> squeezed_checkerboard_mask(4, 0).int().tolist()  # top-left and bottom-right pass
        [1, 0, 0, 1]
    """
    if channels % 4:
        raise ValueError(f"a squeezed image has a multiple of 4 channels, got {channels}")
    position = torch.arange(channels) % 4
    return (position // 2 + position % 2) % 2 == parity
