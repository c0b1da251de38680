"""The paper's multi-scale Real NVP for images (Dinh et al. 2016, sections 3.6 and 4.1).

Each scale but the last: 3 checkerboard couplings, squeeze, 3 channel-wise couplings, factor out
half the channels; the last scale: 4 checkerboard couplings. The s/t ResNets double their feature
maps at each scale. Batch norm with running averages follows every coupling.

Latent layout: the model maps an image ``[C, H, W]`` to a latent of the same shape. At each scale
the squeezed tensor's first half of channels is that scale's latent and its second half goes on to
the next scale; the result is unsqueezed back, so every latent variable sits in (one of) the pixels
it was squeezed from. ``latent_scale_map`` gives each latent's scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from realnvp.bijectors import (
    AffineCoupling,
    BatchNormFlow,
    Bijector,
    Chain,
    FactorOut,
    InvertibleLinear,
    Logit,
    MaskedAffineCoupling,
    Squeeze,
    Unsqueeze,
    checkerboard_mask,
    half_mask,
    squeezed_checkerboard_mask,
)
from realnvp.distributions import Base
from realnvp.flow import Flow
from realnvp.nets import ContextEmbedding, ContextResNet, ResNet


def _check_shape(event_shape: tuple[int, ...], n_scales: int) -> None:
    if len(event_shape) != 3:
        raise ValueError(f"the image model needs examples of shape [C, H, W], got {tuple(event_shape)}")
    if n_scales < 1:
        raise ValueError(f"n_scales must be at least 1, got {n_scales}")
    _, h, w = event_shape
    step = 2 ** (n_scales - 1)
    if h % step or w % step or min(h, w) < 2 * step:  # the last scale's checkerboard needs 2x2 at least
        raise ValueError(f"{n_scales} scales squeeze {n_scales - 1} times, so height and width must be "
                         f"multiples of {step} and at least {2 * step}; got {h}x{w} (lower model.n_scales)")


@dataclass(frozen=True)
class CouplingSettings:
    """How every coupling of the image model is built: its s/t ResNet (``feature_maps`` at the
    first scale, doubled at each later one; ``n_blocks`` residual blocks; ``norm`` inside), the learned
    tanh scale's start, the batch norm that follows it (``bn_momentum``; none if not ``batch_norm``) and,
    with ``linear``, a learned 1x1 invertible convolution of the channels before it (Glow's). With
    ``squeezed`` a checkerboard coupling works on the squeezed image (``Squeeze`` around it): the same
    pixels pass, but its s/t network sees them as channels at half the resolution, a quarter of the
    positions, so a network as wide costs a quarter of the compute (wide ones pay on a CPU); at a scale
    of odd height or width (MNIST's 7x7) they stay at full resolution. With
    ``n_classes`` every s/t network also sees the example's class label as ``embed`` learned channels
    (``ContextResNet``): a class-conditional model; with ``context_features`` it sees a real feature
    vector of that width (the flow's context after its embedding network) the same way.

    Example:
        >>> layers = CouplingSettings(feature_maps=4, n_blocks=1).checkerboard(1, 4, 4, count=2, scale=0)
        >>> [type(layer).__name__ for layer in layers]
        ['MaskedAffineCoupling', 'BatchNormFlow', 'MaskedAffineCoupling', 'BatchNormFlow']
    """

    feature_maps: int = 64
    n_blocks: int = 8
    norm: str = "batch"
    checkpoint: bool = False
    scale_init: float = 1.0
    batch_norm: bool = True
    bn_momentum: float = 0.005
    n_classes: int = 0
    embed: int = 8
    linear: bool = False
    squeezed: bool = False
    context_features: int = 0

    def net(self, c_in: int, c_out: int, scale: int) -> ResNet | ContextResNet:
        """The s/t network of a coupling at ``scale`` (0 = finest): ``c_in`` -> ``c_out`` channels."""
        if self.n_classes or self.context_features:
            return ContextResNet(c_in, c_out, self.n_classes, self.embed, self.feature_maps * 2**scale, self.n_blocks,
                                 self.norm, self.checkpoint, features=self.context_features)
        return ResNet(c_in, c_out, self.feature_maps * 2**scale, self.n_blocks, self.norm, self.checkpoint)

    def around(self, layer: Bijector, channels: int) -> list[Bijector]:
        """``layer`` with what the settings put around it: a 1x1 invertible convolution of its ``channels``
        before, a batch norm after."""
        before: list[Bijector] = [InvertibleLinear(channels)] if self.linear else []
        after: list[Bijector] = [BatchNormFlow((channels, 1, 1), momentum=self.bn_momentum)] if self.batch_norm else []
        return before + [layer] + after

    def squeezes(self, h: int, w: int) -> bool:
        """Whether the checkerboard couplings of an ``h x w`` scale work on the squeezed image."""
        return self.squeezed and h % 2 == 0 and w % 2 == 0

    def checkerboard(self, c: int, h: int, w: int, count: int, scale: int) -> list[Bijector]:
        """``count`` checkerboard couplings on ``[c, h, w]``, alternating which squares pass; where
        ``squeezes`` they take and give the squeezed image ``[4c, h / 2, w / 2]``."""
        if self.squeezes(h, w):
            return [layer for i in range(count) for layer in self.around(AffineCoupling(
                squeezed_checkerboard_mask(4 * c, i % 2), self.net(2 * c, 4 * c, scale), 3, self.scale_init), 4 * c)]
        return [layer for i in range(count) for layer in self.around(
            MaskedAffineCoupling(checkerboard_mask(h, w, i % 2), self.net(c, 2 * c, scale), c, self.scale_init), c)]

    def channelwise(self, c: int, count: int, scale: int) -> list[Bijector]:
        """``count`` channel-wise couplings on ``c`` channels, alternating which half passes."""
        layers: list[Bijector] = []
        for i in range(count):
            mask = half_mask(c, i % 2)
            n_pass = int(mask.sum())
            coupling = AffineCoupling(mask, self.net(n_pass, 2 * (c - n_pass), scale), 3, self.scale_init)
            layers += self.around(coupling, c)
        return layers


def scale_chain(settings: CouplingSettings, shape: tuple[int, int, int], scale: int, n_scales: int,
                scale_couplings: int = 3, final_couplings: int = 4) -> Chain:
    """Scale ``scale`` (0 = finest) of the multi-scale model on ``shape = (C, H, W)`` and, inside its
    factor-out, every coarser scale: checkerboard couplings, squeeze, channel-wise couplings, factor
    out half, unsqueeze; the last scale only checkerboard couplings (paper, section 3.6).

    Example:
        >>> chain = scale_chain(CouplingSettings(feature_maps=4, n_blocks=1, batch_norm=False), (1, 4, 4), 0, 2, 1, 1)
        >>> [type(layer).__name__ for layer in chain.layers]
        ['MaskedAffineCoupling', 'Squeeze', 'AffineCoupling', 'FactorOut', 'Unsqueeze']
    """
    c, h, w = shape
    squeezed: list[Bijector] = [Squeeze()] if settings.squeezes(h, w) else []  # checkerboard couplings squeezed
    if scale == n_scales - 1:
        return Chain(squeezed + settings.checkerboard(c, h, w, final_couplings, scale)
                     + ([Unsqueeze()] if squeezed else []))
    # Built finest first (this scale's couplings, then the coarser scales), so a seed gives the same weights.
    layers = squeezed + settings.checkerboard(c, h, w, scale_couplings, scale) + ([] if squeezed else [Squeeze()])
    layers += settings.channelwise(4 * c, scale_couplings, scale)
    coarser = scale_chain(settings, (2 * c, h // 2, w // 2), scale + 1, n_scales, scale_couplings, final_couplings)
    return Chain(layers + [FactorOut(coarser), Unsqueeze()])


def build_image_flow(
    event_shape: tuple[int, int, int],
    *,
    n_scales: int = 2,
    feature_maps: int = 64,
    n_blocks: int = 8,
    norm: str = "batch",
    scale_couplings: int = 3,
    final_couplings: int = 4,
    batch_norm: bool = True,
    bn_momentum: float = 0.005,
    logit: str = "symmetric",
    logit_alpha: float = 0.05,
    checkpoint: bool = False,
    scale_init: float = 1.0,
    n_classes: int = 0,
    embed: int = 8,
    linear: bool = False,
    squeezed: bool = False,
    base: str = "normal",
    base_components: int = 4,
    context_dim: int | tuple[int, ...] = 0,
    embedding: nn.Module | str | None = None,
) -> Flow:
    """A multi-scale image Real NVP over dequantized pixels ``y`` in ``(0, 1)^(C x H x W)``.

    Arguments (all but ``event_shape`` by keyword):
        event_shape: ``(C, H, W)``; ``H`` and ``W`` divisible by ``2 ** (n_scales - 1)``.
        n_scales: number of scales (the paper's CIFAR-10 model: 2, i.e. one squeeze).
        feature_maps: feature maps of the first scale's s/t ResNets (doubled at each later scale).
        n_blocks: residual blocks per s/t ResNet.
        norm: "batch", "instance" or "none" inside the ResNets.
        scale_couplings: checkerboard and channel-wise couplings per scale (paper: 3 each).
        final_couplings: checkerboard couplings at the last scale (paper: 4).
        batch_norm: running-average batch norm after every coupling, momentum ``bn_momentum``.
        logit: "symmetric" or "paper" logit preprocessing with ``logit_alpha``, or "none".
        checkpoint: gradient checkpointing of the s/t networks.
        scale_init: starting value of every coupling's learned tanh scale.
        n_classes: a class-conditional model ``p(x | y)``, labels ``0 .. n_classes - 1``: each s/t
            ResNet sees the label's learned ``embed``-dimensional embedding as extra channels.
        linear: a learned invertible 1x1 convolution (``InvertibleLinear``, starting at the identity)
            before every coupling: Glow's channel mixing, not in the Real NVP paper.
        squeezed: checkerboard couplings' s/t networks work on the squeezed image (same masks, a
            quarter of the positions; see ``CouplingSettings``).
        base, base_components: the latent density, as ``build_vector_flow``'s.
        context_dim: a model ``p(x | c)`` of images given a real context ``c`` per example: ``D`` values
            (``[N, D]``), or a tuple, a context of that shape (``[N, *context_dim]``). Standardised
            (``flow.fit_context``), then through ``embedding`` once per call; each s/t ResNet projects
            the resulting feature vector to ``embed`` extra channels. A label is the one-hot case.
        embedding: the network that turns the context into a feature vector ``[N, E]`` (nflows'
            ``embedding_net``): your ``nn.Module`` (a submodule: it trains with the flow; ``E`` is found by
            running it once on zeros), ``"mlp"`` (``ContextEmbedding``: 64 hidden units, 16 features, what
            ``realnvp train`` builds) or None (the flattened context itself).

    Example:
        >>> flow = build_image_flow((1, 4, 4), n_scales=2, feature_maps=4, n_blocks=1)
        >>> flow.sample(2).shape
        torch.Size([2, 1, 4, 4])
        >>> conditional = build_image_flow((1, 4, 4), feature_maps=4, n_blocks=1, n_classes=10)
        >>> conditional.sample(2, context=torch.tensor([3, 7])).shape
        torch.Size([2, 1, 4, 4])
        >>> net = torch.nn.Sequential(torch.nn.Linear(10, 32), torch.nn.Tanh(), torch.nn.Linear(32, 6))
        >>> given = build_image_flow((1, 4, 4), feature_maps=4, n_blocks=1, context_dim=10, embedding=net)
        >>> given.log_prob(torch.rand(2, 1, 4, 4), context=torch.randn(2, 10)).shape
        torch.Size([2])
    """
    _check_shape(event_shape, n_scales)
    if n_classes < 0 or (n_classes and embed < 1):
        raise ValueError(f"n_classes must be >= 0 and embed >= 1, got {n_classes} and {embed}")
    shape, net, features = _context_embedding(context_dim, embedding, n_classes)
    settings = CouplingSettings(feature_maps, n_blocks, norm, checkpoint, scale_init, batch_norm, bn_momentum,
                                n_classes, embed, linear, squeezed, features)
    first: list[Bijector] = [] if logit == "none" else [Logit(logit_alpha, logit)]
    scales = scale_chain(settings, tuple(event_shape), 0, n_scales, scale_couplings, final_couplings)
    flow = Flow(Chain(first + [scales]), tuple(event_shape), n_classes=n_classes, context_size=shape,
                base=Base(base, tuple(event_shape), base_components), embedding=net)
    flow.recipe = {"builder": "image", "args": {  # what rebuilds this flow from a saved file (models/saved.py)
        "event_shape": list(event_shape), "n_scales": n_scales, "feature_maps": feature_maps, "n_blocks": n_blocks,
        "norm": norm, "scale_couplings": scale_couplings, "final_couplings": final_couplings,
        "batch_norm": batch_norm, "bn_momentum": bn_momentum, "logit": logit, "logit_alpha": logit_alpha,
        "checkpoint": checkpoint, "scale_init": scale_init, "n_classes": n_classes, "embed": embed,
        "linear": linear, "squeezed": squeezed, "base": base, "base_components": base_components,
        "context_dim": list(shape),
        "embedding": embedding if embedding is None or isinstance(embedding, str) else USER_EMBEDDING}}
    return flow


USER_EMBEDDING = "user"  # a recipe's embedding made by the user's code: realnvp.load needs the module again


def _context_embedding(context_dim: int | tuple[int, ...], embedding: nn.Module | str | None,
                       n_classes: int) -> tuple[tuple[int, ...], nn.Module | None, int]:
    """``(context shape, embedding network, feature width E)`` for ``build_image_flow``'s real context
    (``((), None, 0)`` without one); a misfit is a ``ValueError`` naming it."""
    shape = (context_dim,) if isinstance(context_dim, int) else tuple(context_dim)
    if shape and (min(shape) < 0 or (0 in shape and len(shape) > 1)):
        raise ValueError(f"context_dim must be a number of context values or a shape of positive sizes, got "
                         f"{context_dim}")
    if shape in ((), (0,)):  # () is how a saved recipe records no context
        if embedding is not None:
            raise ValueError("an embedding network needs context_dim: the size of the raw context it reads")
        return (), None, 0
    if n_classes:
        raise ValueError("an image flow is conditional on class labels (n_classes) or on a context vector "
                         "(context_dim), not both: pass the label as one more context value")
    if embedding is None:
        return shape, None, math.prod(shape)
    if isinstance(embedding, str):
        if embedding != "mlp":
            raise ValueError(f"embedding must be an nn.Module, 'mlp' or None, got {embedding!r}")
        embedding = ContextEmbedding(math.prod(shape))
    if not isinstance(embedding, nn.Module):
        raise ValueError(f"embedding must be an nn.Module, 'mlp' or None, got {type(embedding).__name__}")
    return shape, embedding, _feature_width(embedding, shape)


def _feature_width(embedding: nn.Module, shape: tuple[int, ...]) -> int:
    """``E``, the width of what ``embedding`` makes of two zero contexts of ``shape`` (run in eval mode,
    without gradients; its mode is restored); anything but ``[2, E]`` is a ``ValueError``."""
    first = next(iter(embedding.parameters()), torch.empty(0))
    training = embedding.training
    try:
        with torch.no_grad():
            out = embedding.eval()(torch.zeros(2, *shape, dtype=first.dtype, device=first.device))
    except (RuntimeError, ValueError, TypeError) as exc:
        raise ValueError(f"the embedding network does not take a context of shape [N, "
                         f"{', '.join(map(str, shape))}]: {str(exc).splitlines()[0][:200]}") from None
    finally:
        embedding.train(training)
    if not isinstance(out, Tensor) or out.dim() != 2 or len(out) != 2 or out.shape[1] < 1:
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(f"the embedding network must map [N, {', '.join(map(str, shape))}] contexts to [N, E] "
                         f"feature vectors, got {got} for N = 2")
    return int(out.shape[1])


def latent_scale_map(event_shape: tuple[int, int, int], n_scales: int) -> Tensor:
    """``[C, H, W]`` integers: the scale (0 = finest) whose factor-out produced each latent variable
    of ``build_image_flow``'s output (paper, appendix D: resample one scale, keep the others).

    Example:
        >>> latent_scale_map((1, 4, 4), 2)[0].tolist()  # for one channel: even rows leave first
        [[0, 0, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0], [1, 1, 1, 1]]
    """
    _check_shape(event_shape, n_scales)
    c, h, w = event_shape
    if n_scales == 1:
        return torch.zeros(event_shape, dtype=torch.long)
    inner = latent_scale_map((2 * c, h // 2, w // 2), n_scales - 1) + 1
    squeezed = torch.cat([torch.zeros_like(inner), inner])
    return F.pixel_shuffle(squeezed[None].float(), 2)[0].long()
