"""Coupling layers (Dinh et al. 2016, eq. 7-9): half the variables pass through and condition an
elementwise map of the other half, so the Jacobian is triangular. ``Coupling`` holds what every such
layer shares; here the affine ones, whose log-det is ``sum(s)`` (splines: ``spline.py``)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from realnvp.bijectors.base import Bijector

# Hard bound on |s|, on both paths so each coupling stays an exact bijection: exp(+-s) <= e^10 ~ 2.2e4,
# so no single layer can overflow float32 when sampling. It only acts if a learned scale passes 10,
# which the L2 penalty on the scales keeps far away (trained models stay at a few units).
LOG_SCALE_MAX = 10.0


def _raw_s_and_t(out: Tensor, n: int, what: str) -> tuple[Tensor, Tensor]:
    """The conditioner's output split into raw ``s`` and ``t``, ``n`` features each along dimension 1; a
    wrong width is an error (``chunk`` would otherwise share one s/t between coordinates silently)."""
    if out.shape[1] != 2 * n:
        raise ValueError(f"the coupling's conditioner returned {out.shape[1]} features along dimension 1; "
                         f"expected {2 * n} (raw s and t for each of the {n} {what})")
    return out[:, :n], out[:, n:]


def _condition(conditioner: nn.Module, x_a: Tensor, context: Tensor | None) -> Tensor:
    """The conditioner's raw output for ``x_a``: ``conditioner(x_a, context)`` given a context, else
    ``conditioner(x_a)``, so any module serves an unconditional coupling and a conditional conditioner
    (``realnvp.nets.ContextMLP``) itself refuses a missing context."""
    return conditioner(x_a) if context is None else conditioner(x_a, context)


def _blocks(idx_a: Tensor, idx_b: Tensor) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """``((start_a, len_a), (start_b, len_b))`` when ``idx_a`` and ``idx_b`` are each an increasing run of
    consecutive indices (so ``narrow`` views select them), else None."""
    runs = []
    for idx in (idx_a, idx_b):
        start = int(idx[0])
        if not torch.equal(idx, torch.arange(start, start + len(idx), device=idx.device)):
            return None
        runs.append((start, len(idx)))
    return runs[0], runs[1]


class TanhScale(nn.Module):
    """``s = clamp(scale * tanh(raw_s), -LOG_SCALE_MAX, LOG_SCALE_MAX)`` with a learned ``scale``
    (paper, section 3.2): bounds each layer's log-scale so ``exp(s)`` cannot blow up, while ``scale``
    lets it grow where the data needs it. ``scale`` is what the optional L2 penalty acts on.

    Example:
        >>> import torch
        >>> layer = TanhScale((2,))  # scale starts at 1, so s = tanh(raw_s) lies in (-1, 1)
        >>> layer(torch.tensor([[0.0, 100.0]])).tolist()
        [[0.0, 1.0]]
        >>> _ = torch.nn.init.constant_(layer.scale, 50.0)  # a scale grown past the hard bound
        >>> layer(torch.tensor([[0.0, 100.0]])).tolist()  # clamped at LOG_SCALE_MAX
        [[0.0, 10.0]]
    """

    def __init__(self, shape: tuple[int, ...], init: float = 1.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.full(shape, float(init)))

    def forward(self, raw_s: Tensor) -> Tensor:
        return (self.scale * torch.tanh(raw_s)).clamp(-LOG_SCALE_MAX, LOG_SCALE_MAX)


class Coupling(Bijector):
    """Partition coupling ``y_a = x_a``, ``y_b = g(x_b; conditioner(x_a))``, split along dimension 1: the
    mask, split, merge and conditioner call every element-wise coupling shares. A subclass gives the
    element-wise map ``g`` as ``_map(x_b, out, inverse) -> (y_b, log_det)``, ``out`` the conditioner's
    raw output; ``g`` acts on each coordinate alone, so the Jacobian is triangular and its log-det is
    the sum of ``g``'s per-coordinate terms (``AffineCoupling``, ``SplineCoupling``).

    For vectors ``[B, D]`` ``mask`` (``[D]``, bool) marks ``a``, the coordinates that pass through and
    condition the rest; for images ``[B, C, H, W]`` it marks the passing channels (``[C]``). Only
    ``x_a`` is fed to the conditioner (no multiplied-out zeros). Given a context, the conditioner is
    called as ``conditioner(x_a, context)`` (``realnvp.nets.ContextMLP``, ``ContextResNet``): the layer
    is then a bijection of ``x`` for every fixed context.

    Example:
        >>> from realnvp.bijectors import alternating_mask
        >>> from realnvp.nets import MLP
        >>> class Shift(Coupling):  # y_b = x_b + t(x_a): volume-preserving, log-det 0
        ...     def _map(self, x_b, out, inverse):
        ...         return (x_b - out if inverse else x_b + out), x_b.new_zeros(len(x_b))
        >>> layer = Shift(alternating_mask(3, 0), MLP(2, 1, hidden=(4,)))
        >>> layer.idx_a.tolist(), layer.idx_b.tolist()  # even coordinates pass
        ([0, 2], [1])
    """

    def __init__(self, mask: Tensor, conditioner: nn.Module) -> None:
        super().__init__()
        mask = mask.bool()
        if mask.dim() != 1 or mask.all() or not mask.any():
            raise ValueError(f"{type(self).__name__} needs a 1-D mask with both passing and transformed coordinates")
        self.register_buffer("mask", mask)
        self.register_buffer("idx_a", torch.nonzero(mask).flatten())
        self.register_buffer("idx_b", torch.nonzero(~mask).flatten())
        # y = cat([y_a, y_b])[:, unperm] puts every coordinate back where it came from.
        self.register_buffer("unperm", torch.argsort(torch.cat([self.idx_a, self.idx_b])))
        # When both halves are contiguous blocks (2-D data, channel halves), views and one cat replace the
        # gathers and the scatter, and their backward passes (benchmarks/PROFILE.md).
        self.blocks = _blocks(self.idx_a, self.idx_b)
        self.conditioner = conditioner

    def _map(self, x_b: Tensor, out: Tensor, inverse: bool) -> tuple[Tensor, Tensor]:  # pragma: no cover
        raise NotImplementedError

    def _split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self.blocks is None:
            return x[:, self.idx_a], x[:, self.idx_b]
        (a0, na), (b0, nb) = self.blocks
        return x.narrow(1, a0, na), x.narrow(1, b0, nb)

    def _merge(self, y_a: Tensor, y_b: Tensor) -> Tensor:
        if self.blocks is None:
            return torch.cat([y_a, y_b], dim=1)[:, self.unperm]
        return torch.cat([y_a, y_b] if self.blocks[0][0] == 0 else [y_b, y_a], dim=1)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x_a, x_b = self._split(x)
        y_b, log_det = self._map(x_b, _condition(self.conditioner, x_a, context), inverse=False)
        return self._merge(x_a, y_b), log_det

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        z_a, z_b = self._split(z)
        x_b, log_det = self._map(z_b, _condition(self.conditioner, z_a, context), inverse=True)
        return self._merge(z_a, x_b), log_det


class AffineCoupling(Coupling):
    """Partition coupling ``y_b = x_b * exp(s(x_a)) + t(x_a)``, ``y_a = x_a``, split along dimension 1
    (``Coupling``), so its log-det is ``sum(s)``.

    For vectors ``[B, D]`` (``event_rank=1``) ``mask`` (``[D]``, bool) marks ``a``, the coordinates
    that pass through; ``conditioner`` maps ``x_a`` (``[B, d]``) to ``[B, 2 (D - d)]``: raw ``s`` then
    ``t``. For images ``[B, C, H, W]`` (``event_rank=3``) the same code is the paper's channel-wise
    coupling: ``mask`` (``[C]``) marks the passing channels and ``conditioner`` maps ``[B, c, H, W]``
    to ``[B, 2 (C - c), H, W]``. Its last layer should be zero-initialised so the layer starts as the
    identity; the conditioner's size is exactly that of the paper's ``s`` and ``t``. ``scale_init`` is
    the learned tanh scale's starting value: the largest ``|s|`` the layer can reach before training
    grows it. A context goes to the conditioner as in ``Coupling``.

    Example:
        >>> import torch
        >>> from realnvp.bijectors import AffineCoupling, alternating_mask
        >>> from realnvp.nets import MLP
        >>> layer = AffineCoupling(alternating_mask(2, 0), MLP(1, 2, hidden=(8,)))
        >>> z, log_det = layer(torch.randn(5, 2))
        >>> log_det.shape
        torch.Size([5])
    """

    def __init__(self, mask: Tensor, conditioner: nn.Module, event_rank: int = 1, scale_init: float = 1.0) -> None:
        super().__init__(mask, conditioner)
        # One learned scale per transformed coordinate (vectors) or channel (images).
        self.tanh_scale = TanhScale((len(self.idx_b),) + (1,) * (event_rank - 1), scale_init)

    def _map(self, x_b: Tensor, out: Tensor, inverse: bool) -> tuple[Tensor, Tensor]:
        raw_s, t = _raw_s_and_t(out, len(self.idx_b), "transformed coordinates or channels")
        # Under bf16 autocast the conditioner computes in bf16; s and t come back in x's precision, so
        # the affine map and its log-det stay exact float32.
        s, t = self.tanh_scale(raw_s.to(x_b.dtype)), t.to(x_b.dtype)
        if inverse:
            return (x_b - t) * torch.exp(-s), -s.flatten(1).sum(-1)
        return x_b * torch.exp(s) + t, s.flatten(1).sum(-1)


class MaskedAffineCoupling(Bijector):
    """Image coupling with a multiplicative mask (paper, eq. 9): ``y = b*x + (1-b)*(x*exp(s(b*x)) + t(b*x))``.

    ``mask`` broadcasts against the event shape ``[C, H, W]`` (checkerboard ``[1, H, W]`` or
    channel-wise ``[C, 1, 1]``). ``conditioner`` maps ``[B, C, H, W]`` to ``[B, 2C, H, W]``.
    ``s`` and ``t`` are masked before use, so the passing half is untouched and its log-det is 0.
    ``scale_init`` and a conditioner that takes a context as in ``AffineCoupling``.

    Example:
        >>> import torch
        >>> from realnvp.bijectors import MaskedAffineCoupling, checkerboard_mask
        >>> layer = MaskedAffineCoupling(checkerboard_mask(4, 4, 0), torch.nn.Conv2d(1, 2, 3, padding=1), 1)
        >>> x = torch.randn(2, 1, 4, 4)
        >>> z, log_det = layer(x)
        >>> passing = layer.mask.bool().expand_as(x)
        >>> torch.equal(z[passing], x[passing]), torch.allclose(layer.inverse(z)[0], x, atol=1e-6)
        (True, True)
        >>> log_det.shape
        torch.Size([2])
    """

    def __init__(self, mask: Tensor, conditioner: nn.Module, channels: int, scale_init: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("mask", mask.float())
        self.conditioner = conditioner
        self.tanh_scale = TanhScale((channels, 1, 1), scale_init)

    def _scale_shift(self, x_a: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        raw_s, t = _raw_s_and_t(_condition(self.conditioner, x_a, context), self.tanh_scale.scale.shape[0], "channels")
        keep = 1.0 - self.mask
        return self.tanh_scale(raw_s.to(x_a.dtype)) * keep, t.to(x_a.dtype) * keep  # fp32 under bf16 autocast

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        s, t = self._scale_shift(x * self.mask, context)
        return x * torch.exp(s) + t, s.flatten(1).sum(-1)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        s, t = self._scale_shift(z * self.mask, context)
        return (z - t) * torch.exp(-s), -s.flatten(1).sum(-1)
