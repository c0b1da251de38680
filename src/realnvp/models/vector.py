"""Real NVP for vectors of any dimension: affine (or rational-quadratic spline) couplings with MLP
conditioners."""

from __future__ import annotations

import torch

from realnvp.bijectors import (
    AffineCoupling,
    BatchNormFlow,
    Bijector,
    Chain,
    InvertibleLinear,
    SplineCoupling,
    Standardize,
    Whiten,
)
from realnvp.bijectors.masks import alternating_mask, half_mask, random_mask
from realnvp.distributions import Base
from realnvp.flow import Flow
from realnvp.nets import MLP, ContextMLP

MASKS = ("alternating", "half", "random")
COUPLINGS = ("affine", "spline")


def build_vector_flow(
    dim: int,
    n_couplings: int = 4,
    hidden: tuple[int, ...] = (512, 512),
    mask: str = "alternating",
    batch_norm: bool = False,
    bn_momentum: float = 0.05,
    loc: torch.Tensor | None = None,
    scale: torch.Tensor | None = None,
    mask_seed: int = 0,
    scale_init: float = 1.0,
    context_size: int = 0,
    linear: bool = False,
    coupling: str = "affine",
    bins: int = 8,
    bound: float = 4.0,
    base: str = "normal",
    base_components: int = 4,
) -> Flow:
    """A vector Real NVP: ``[Standardize] -> ([linear ->] coupling [-> batch norm]) x n_couplings``.

    Arguments:
        dim: data dimension D (at least 2).
        n_couplings: number of affine coupling layers; masks alternate parity layer to layer.
        hidden: widths of the conditioner MLP's hidden layers (ReLU).
        mask: "alternating" (even/odd coordinates), "half" (first/second half) or "random" (a fixed
            random half per layer, complemented on the next layer so every coordinate is transformed).
        batch_norm: insert a running-average batch-norm layer after each coupling but the last.
        loc, scale: the training data's mean and std; stored as a fixed first layer so every
            log-likelihood is reported in the data's own units. A ``[D, D]`` ``scale`` is the lower
            Cholesky factor of the covariance: the first layer then whitens (``Whiten``), so the
            untrained flow is the full-covariance Gaussian of the training rows.
        scale_init: starting value of each coupling's learned tanh scale (the bound on ``|s|`` until
            training grows it); 2-D toys with thin structure train faster from 2 than from 1.
        context_size: a conditional flow ``p(x | c)`` on that many real context features: every
            conditioner MLP sees ``[x_a, c]`` (``ContextMLP``); ``log_prob``/``sample`` take ``context=``.
        linear: a learned invertible linear layer (``InvertibleLinear``, starting at the identity) before
            each coupling, so the flow can turn the directions its fixed masks split (tables whose
            structure lies along mixed columns).
        coupling: "affine" (Real NVP's ``x_b exp(s) + t``) or "spline": a monotone rational-quadratic
            spline of each transformed coordinate (``SplineCoupling``, Durkan et al. 2019) with ``bins``
            bins on ``[-bound, bound]`` and the identity outside; ``scale_init`` is then unused.

        base, base_components: the latent density (``distributions.Base``): "normal" (N(0, I), the
            paper's), "diagonal" (learned mean and scale per dimension) or "mixture" (``base_components``
            learned diagonal Gaussians).

    Example:
        >>> flow = build_vector_flow(dim=5, n_couplings=6, hidden=(32,), mask="random")
        >>> flow.sample(4).shape
        torch.Size([4, 5])
        >>> build_vector_flow(dim=4, n_couplings=2, hidden=(8,), linear=True).log_prob(torch.zeros(1, 4)).shape
        torch.Size([1])
        >>> conditional = build_vector_flow(dim=2, hidden=(16,), context_size=1)
        >>> conditional.log_prob(torch.zeros(3, 2), context=torch.ones(3, 1)).shape
        torch.Size([3])
        >>> spline = build_vector_flow(dim=2, hidden=(16,), coupling="spline", bins=4, bound=3.0)
        >>> type(spline.chain.layers[0]).__name__, spline.log_prob(torch.zeros(1, 2)).shape
        ('SplineCoupling', torch.Size([1]))
    """
    if mask not in MASKS:
        raise ValueError(f"unknown mask {mask!r}; expected one of {', '.join(MASKS)}")
    if coupling not in COUPLINGS:
        raise ValueError(f"unknown coupling {coupling!r}; expected one of {', '.join(COUPLINGS)}")
    generator = torch.Generator().manual_seed(mask_seed)
    layers: list[Bijector] = []
    if loc is not None and scale is not None:
        layers.append(Whiten(loc, scale) if scale.ndim == 2 else Standardize(loc, scale))
    random_layer_mask = None
    for i in range(n_couplings):
        if mask == "alternating":
            m = alternating_mask(dim, i % 2)
        elif mask == "half":
            m = half_mask(dim, i % 2)
        else:
            random_layer_mask = random_mask(dim, generator) if i % 2 == 0 else ~random_layer_mask
            m = random_layer_mask
        if linear:
            layers.append(InvertibleLinear(dim))
        n_pass = int(m.sum())
        n_out = (2 if coupling == "affine" else 3 * bins - 1) * (dim - n_pass)  # per coordinate: s, t or the knots
        net = ContextMLP(n_pass, context_size, n_out, hidden) if context_size else MLP(n_pass, n_out, hidden)
        layers.append(AffineCoupling(m, net, scale_init=scale_init) if coupling == "affine"
                      else SplineCoupling(m, net, bins, bound))
        if batch_norm and i < n_couplings - 1:
            layers.append(BatchNormFlow((dim,), momentum=bn_momentum, batch_gradient=True))
    flow = Flow(Chain(layers), (dim,), context_size=context_size, base=Base(base, (dim,), base_components))
    # What rebuilds this flow from a saved file (models/saved.py): the arguments, the tensors by kind only.
    first = "none" if loc is None or scale is None else "whiten" if scale.ndim == 2 else "standardize"
    flow.recipe = {"builder": "vector", "args": {
        "dim": dim, "n_couplings": n_couplings, "hidden": list(hidden), "mask": mask, "batch_norm": batch_norm,
        "bn_momentum": bn_momentum, "first": first, "mask_seed": mask_seed, "scale_init": scale_init,
        "context_size": context_size, "linear": linear, "coupling": coupling, "bins": bins, "bound": bound,
        "base": base, "base_components": base_components}}
    return flow
