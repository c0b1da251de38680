"""Rational-quadratic spline couplings (Durkan, Bekasov, Murray, Papamakarios 2019, "Neural Spline
Flows", section 3): each transformed coordinate goes through a monotone spline of K rational-quadratic
bins on ``[-B, B]`` and the identity outside (linear tails), its knots computed from the passing
coordinates. More flexible per layer than an affine map, still exactly invertible."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from realnvp.bijectors.coupling import Coupling

# Floors that keep every bin and slope away from zero, so log-dets and the inverse stay finite (the
# paper's and nflows' values).
MIN_BIN_WIDTH = 1e-3
MIN_BIN_HEIGHT = 1e-3
MIN_DERIVATIVE = 1e-3
# softplus(DERIVATIVE_SHIFT) = 1 - MIN_DERIVATIVE: slopes 1 + softplus(raw + shift) - softplus(shift) are at
# least MIN_DERIVATIVE, and a raw value of 0 is a slope of exactly 1 in any precision, so a zero-initialised
# conditioner (equal bins, unit slopes) makes the spline the identity.
DERIVATIVE_SHIFT = math.log(math.expm1(1.0 - MIN_DERIVATIVE))


def knots(raw: Tensor, bound: float, minimum: float) -> tuple[Tensor, Tensor]:
    """Knot positions ``[..., K + 1]`` from ``-bound`` to ``bound`` (ends exact) and bin sizes ``[..., K]``
    from ``K`` raw sizes: a softmax, each share floored at ``minimum`` so no bin collapses.

    Example:
        >>> positions, sizes = knots(torch.zeros(4), 2.0, 1e-3)  # raw zeros: equal bins
        >>> positions.tolist(), sizes.tolist()
        ([-2.0, -1.0, 0.0, 1.0, 2.0], [1.0, 1.0, 1.0, 1.0])
    """
    share = minimum + (1 - minimum * raw.shape[-1]) * torch.softmax(raw, dim=-1)
    inner = torch.cumsum(share[..., :-1], dim=-1) * (2 * bound) - bound
    end = raw.new_full((*raw.shape[:-1], 1), bound)
    positions = torch.cat([-end, inner, end], dim=-1)
    return positions, positions[..., 1:] - positions[..., :-1]


def knot_derivatives(raw: Tensor) -> Tensor:
    """Slopes ``[..., K + 1]`` at the knots: ``1 + softplus(raw + DERIVATIVE_SHIFT) - softplus(DERIVATIVE_SHIFT)``
    at the ``K - 1`` inner knots (above ``MIN_DERIVATIVE``; exactly 1 where ``raw`` is 0) and exactly 1 at
    ``-B`` and ``B``, where the spline meets its identity tails with a continuous slope.

    Example:
        >>> knot_derivatives(torch.zeros(2)).tolist()
        [1.0, 1.0, 1.0, 1.0]
        >>> round(knot_derivatives(torch.tensor([-100.0]))[1].item(), 6)  # the floor
        0.001
    """
    inner = 1 + (F.softplus(raw + DERIVATIVE_SHIFT) - F.softplus(raw.new_tensor(DERIVATIVE_SHIFT)))
    return F.pad(inner, (1, 1), value=1.0)


def _bin_log_det(theta: Tensor, slope: Tensor, d0: Tensor, d1: Tensor, denominator: Tensor) -> Tensor:
    """``log dy/dx`` inside a bin at relative position ``theta`` (the paper's eq. 5)."""
    derivative = d1 * theta**2 + 2 * slope * theta * (1 - theta) + d0 * (1 - theta) ** 2
    return 2 * torch.log(slope) + torch.log(derivative) - 2 * torch.log(denominator)


def _inverse_theta(dy: Tensor, height: Tensor, slope: Tensor, d0: Tensor, d1: Tensor) -> Tensor:
    """The root in ``[0, 1]`` of the bin's quadratic ``a theta^2 + b theta + c = 0`` for an output ``dy``
    above the bin's bottom (paper, eq. 6-8), as ``2c / (-b - sqrt(b^2 - 4ac))``: no cancellation where
    ``a`` is near 0."""
    curvature = d0 + d1 - 2 * slope
    a = height * (slope - d0) + dy * curvature
    b = height * d0 - dy * curvature
    c = -slope * dy
    discriminant = (b * b - 4 * a * c).clamp_min(0)
    return 2 * c / (-b - torch.sqrt(discriminant))


def rational_quadratic_spline(x: Tensor, raw_widths: Tensor, raw_heights: Tensor, raw_derivatives: Tensor,
                              bound: float, inverse: bool = False) -> tuple[Tensor, Tensor]:
    """``(y, log|dy/dx|)`` element-wise for the monotone rational-quadratic spline with ``K`` bins on
    ``[-bound, bound]`` (identity outside), or with ``inverse`` its inverse ``(x, log|dx/dy|)``.

    Arguments:
        x: the inputs, any shape ``[...]`` (outputs, with ``inverse``).
        raw_widths, raw_heights: ``[..., K]`` unnormalised bin sizes along x and y (``knots``).
        raw_derivatives: ``[..., K - 1]`` unconstrained slopes at the inner knots (``knot_derivatives``).
        bound: ``B``; the spline maps ``[-B, B]`` onto itself.

    Example:
        >>> x = torch.tensor([-5.0, -1.0, 0.3, 2.0])
        >>> widths, heights, slopes = torch.randn(4, 3), torch.randn(4, 3), torch.randn(4, 2)
        >>> y, log_det = rational_quadratic_spline(x, widths, heights, slopes, bound=3.0)
        >>> y[0].item(), log_det[0].item()  # outside [-3, 3]: the identity
        (-5.0, 0.0)
        >>> back, inverse_log_det = rational_quadratic_spline(y, widths, heights, slopes, 3.0, inverse=True)
        >>> torch.allclose(back, x, atol=1e-5), torch.allclose(log_det + inverse_log_det, torch.zeros(4), atol=1e-5)
        (True, True)
    """
    xs, widths = knots(raw_widths, bound, MIN_BIN_WIDTH)
    ys, heights = knots(raw_heights, bound, MIN_BIN_HEIGHT)
    slopes = knot_derivatives(raw_derivatives)
    inside = (x >= -bound) & (x <= bound)
    v = torch.where(inside, x, torch.zeros_like(x))  # tails pass unchanged; 0 keeps their unused spline finite
    # The bin: how many inner knots lie at or below v (along y for the inverse).
    k = (v[..., None] >= (ys if inverse else xs)[..., 1:-1]).sum(-1, keepdim=True)
    x0, width, y0, height = (t.gather(-1, k)[..., 0] for t in (xs, widths, ys, heights))
    d0, d1 = slopes.gather(-1, k)[..., 0], slopes.gather(-1, k + 1)[..., 0]
    slope = height / width
    theta = _inverse_theta(v - y0, height, slope, d0, d1) if inverse else (v - x0) / width  # in [0, 1]
    denominator = slope + (d0 + d1 - 2 * slope) * theta * (1 - theta)
    log_det = _bin_log_det(theta, slope, d0, d1, denominator)
    if inverse:
        out, log_det = x0 + theta * width, -log_det
    else:
        out = y0 + height * (slope * theta**2 + d0 * theta * (1 - theta)) / denominator
    return torch.where(inside, out, x), torch.where(inside, log_det, torch.zeros_like(log_det))


class SplineCoupling(Coupling):
    """Partition coupling ``y_b = g(x_b; conditioner(x_a))``, ``y_a = x_a``, with ``g`` a monotone
    rational-quadratic spline per transformed coordinate: ``bins`` bins on ``[-bound, bound]``, the
    identity outside (Durkan et al. 2019). Masks, split and context as in ``Coupling``.

    ``conditioner`` maps ``x_a`` to ``3 bins - 1`` raw values per transformed coordinate (grouped by
    coordinate: ``bins`` widths, ``bins`` heights, ``bins - 1`` inner slopes), e.g. ``[B, d]`` to
    ``[B, (3 bins - 1)(D - d)]`` for vectors. With a zero-initialised last layer (``realnvp.nets.MLP``)
    the bins are equal and every slope is 1: the layer starts as the identity. ``bound`` should cover
    the bulk of what the layer sees (the vector flow whitens first, so 4 standard deviations).

    Example:
        >>> from realnvp.bijectors import alternating_mask
        >>> from realnvp.nets import MLP
        >>> layer = SplineCoupling(alternating_mask(2, 0), MLP(1, 3 * 8 - 1, hidden=(8,)), bins=8, bound=4.0)
        >>> x = torch.randn(5, 2)
        >>> z, log_det = layer(x)  # zero-initialised: the identity
        >>> torch.allclose(z, x, atol=1e-6), log_det.abs().max().item() < 1e-6
        (True, True)
    """

    def __init__(self, mask: Tensor, conditioner: nn.Module, bins: int = 8, bound: float = 4.0) -> None:
        super().__init__(mask, conditioner)
        if bins < 2 or not bound > 0:
            raise ValueError(f"a spline coupling needs at least 2 bins and a bound > 0, got {bins} and {bound}")
        self.bins, self.bound = int(bins), float(bound)

    def _map(self, x_b: Tensor, out: Tensor, inverse: bool) -> tuple[Tensor, Tensor]:
        n, k = len(self.idx_b), self.bins
        if out.shape[1] != (3 * k - 1) * n:
            raise ValueError(f"the coupling's conditioner returned {out.shape[1]} features along dimension 1; "
                             f"expected {(3 * k - 1) * n} ({3 * k - 1} spline parameters for each of the {n} "
                             f"transformed coordinates or channels)")
        # [B, n * P, ...] -> [B, n, ..., P]; in x's precision, so under bf16 autocast the spline stays float32.
        params = out.unflatten(1, (n, 3 * k - 1)).movedim(2, -1).to(x_b.dtype)
        y_b, log_det = rational_quadratic_spline(x_b, params[..., :k], params[..., k : 2 * k], params[..., 2 * k :],
                                                 self.bound, inverse)
        return y_b, log_det.flatten(1).sum(-1)
