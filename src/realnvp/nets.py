"""Conditioner networks that compute a coupling layer's raw ``s`` and ``t``; they never need inverting."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import torch
import torch.utils.checkpoint
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm


class MLP(nn.Sequential):
    """``in -> hidden... -> out`` with ReLU; the output layer starts at zero so a coupling starts as
    the identity (Glow, Kingma & Dhariwal 2018, zero-initialises its last convolutions the same way).

    Example:
        >>> import torch
        >>> net = MLP(1, 2, hidden=(512, 512))
        >>> net(torch.randn(3, 1)).abs().max().item()
        0.0
    """

    def __init__(self, in_features: int, out_features: int, hidden: tuple[int, ...] = (512, 512)) -> None:
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        last = nn.Linear(width, out_features)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        super().__init__(*layers, last)


def _require(context: Tensor | None) -> None:
    """A conditional conditioner called without its context is an error, not a silent unconditional map."""
    if context is None:
        raise ValueError("this coupling is conditional: pass a context (e.g. flow.log_prob(x, context=c))")


class ContextMLP(nn.Module):
    """A conditional coupling's s/t network for vectors: an ``MLP`` on ``[x_a, context]`` (the context
    features appended to the passing coordinates, as zuko's and nflows' conditional couplings do).

    Example:
        >>> import torch
        >>> net = ContextMLP(1, 2, 2, hidden=(8,))
        >>> net(torch.randn(3, 1), torch.randn(3, 2)).shape  # starts at zero, like MLP
        torch.Size([3, 2])
    """

    def __init__(self, in_features: int, context_features: int, out_features: int,
                 hidden: tuple[int, ...] = (512, 512)) -> None:
        super().__init__()
        self.context_features = context_features
        self.net = MLP(in_features + context_features, out_features, hidden)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        _require(context)
        if context.dim() != 2 or context.shape != (len(x), self.context_features):
            raise ValueError(f"expected a context of shape [{len(x)}, {self.context_features}], "
                             f"got {tuple(context.shape)}")
        return self.net(torch.cat([x, context.to(x.dtype)], dim=1))


NORMS = ("batch", "instance", "none")


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown conditioner norm {kind!r}; expected one of {', '.join(NORMS)}")


def _conv(in_channels: int, out_channels: int) -> nn.Module:
    """3x3 same-padding convolution with weight normalisation (paper, section 3.7)."""
    return weight_norm(nn.Conv2d(in_channels, out_channels, 3, padding=1))


class ResidualBlock(nn.Module):
    """Pre-activation ``x + conv(relu(norm(conv(relu(norm(x))))))`` (two 3x3 convolutions).

    Example:
        >>> import torch
        >>> ResidualBlock(8, "instance")(torch.randn(2, 8, 4, 4)).shape
        torch.Size([2, 8, 4, 4])
    """

    def __init__(self, channels: int, norm: str) -> None:
        super().__init__()
        self.body = nn.Sequential(_norm(norm, channels), nn.ReLU(), _conv(channels, channels),
                                  _norm(norm, channels), nn.ReLU(), _conv(channels, channels))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ResNet(nn.Module):
    """The paper's s/t network for images: a 3x3 input convolution to ``hidden`` feature maps,
    ``n_blocks`` residual blocks with weight norm and batch or instance norm inside, then norm, ReLU
    and a zero-initialised 3x3 output convolution (so a coupling starts as the identity). It returns
    raw ``s`` and ``t`` stacked on the channels; the coupling applies the tanh-times-learned-scale.

    ``checkpoint=True`` recomputes the network's activations during the backward pass instead of
    storing them (``torch.utils.checkpoint``): less memory for deep models on big images, about one
    more forward pass of compute. The recomputation leaves batch norm's running statistics alone, so
    each batch is folded in once, as without checkpointing.

    Example:
        >>> import torch
        >>> net = ResNet(1, 2, hidden=8, n_blocks=1)
        >>> net(torch.randn(4, 1, 6, 6)).abs().max().item()
        0.0
    """

    def __init__(self, in_channels: int, out_channels: int, hidden: int = 64, n_blocks: int = 8,
                 norm: str = "batch", checkpoint: bool = False) -> None:
        super().__init__()
        out = nn.Conv2d(hidden, out_channels, 3, padding=1)
        nn.init.zeros_(out.weight)
        nn.init.zeros_(out.bias)
        self.net = nn.Sequential(_conv(in_channels, hidden), *(ResidualBlock(hidden, norm) for _ in range(n_blocks)),
                                 _norm(norm, hidden), nn.ReLU(), out)
        self.checkpoint = checkpoint

    def forward(self, x: Tensor) -> Tensor:
        if self.checkpoint and torch.is_grad_enabled():
            return torch.utils.checkpoint.checkpoint(self.net, x, use_reentrant=False,
                                                     context_fn=lambda: (nullcontext(), _frozen_running_stats(self)))
        return self.net(x)


@contextmanager
def _frozen_running_stats(module: nn.Module) -> Iterator[None]:
    """Batch norms inside ``module`` normalise with batch statistics as usual but leave their running
    averages unchanged (momentum 0), for checkpointing's recomputation of a forward already counted."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.momentum, m.num_batches_tracked.clone()) for m in norms]
    for m in norms:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, (momentum, tracked) in zip(norms, saved):
            m.momentum = momentum
            m.num_batches_tracked.copy_(tracked)


class ContextResNet(nn.Module):
    """A conditional coupling's s/t network for images: each example's context mapped to ``embed``
    learned features, broadcast over the image as extra input channels of a ``ResNet`` (every coupling,
    so every scale, sees it). The context is a class label (an integer in ``0 .. n_classes - 1``,
    looked up in an ``nn.Embedding``) or, with ``features``, a real vector ``[B, features]`` (a
    flow's context after its embedding network) through an ``nn.Linear``: a label is the one-hot case.

    Example:
        >>> import torch
        >>> net = ContextResNet(1, 2, n_classes=10, embed=4, hidden=8, n_blocks=1)
        >>> net(torch.randn(3, 1, 4, 4), torch.tensor([0, 3, 9])).shape
        torch.Size([3, 2, 4, 4])
        >>> ContextResNet(1, 2, 0, embed=4, hidden=8, n_blocks=1, features=10)(torch.randn(3, 1, 4, 4),
        ...                                                                   torch.randn(3, 10)).shape
        torch.Size([3, 2, 4, 4])
    """

    def __init__(self, in_channels: int, out_channels: int, n_classes: int, embed: int = 8, hidden: int = 64,
                 n_blocks: int = 8, norm: str = "batch", checkpoint: bool = False, *, features: int = 0) -> None:
        super().__init__()
        if (n_classes > 0) == (features > 0):
            raise ValueError(f"a ContextResNet takes class labels (n_classes) or real features, not "
                             f"{'both' if features else 'neither'}")
        self.features = features
        self.embedding = nn.Linear(features, embed) if features else nn.Embedding(n_classes, embed)
        self.resnet = ResNet(in_channels + embed, out_channels, hidden, n_blocks, norm, checkpoint)

    def _embedded(self, context: Tensor, n: int) -> Tensor:
        """The context's ``[n, embed]`` features: a checked label looked up, or real features projected."""
        if self.features:
            if context.shape != (n, self.features) or not context.is_floating_point():
                raise ValueError(f"expected {self.features} real context features per image, shape "
                                 f"[{n}, {self.features}], got {context.dtype} of shape {tuple(context.shape)}")
            return self.embedding(context.to(self.embedding.weight.dtype))
        if context.shape != (n,) or context.is_floating_point():
            raise ValueError(f"expected one integer class label per image, shape [{n}], "
                             f"got {context.dtype} of shape {tuple(context.shape)}")
        return self.embedding(context)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        _require(context)
        e = self._embedded(context, len(x)).to(x.dtype)[:, :, None, None].expand(-1, -1, *x.shape[2:])
        return self.resnet(torch.cat([x, e], dim=1))


class ContextEmbedding(nn.Sequential):
    """The built-in embedding network of a context-conditional image flow (what ``realnvp train`` uses
    for an .npz's context array): ``Linear(D, hidden) -> ReLU -> Linear(hidden, out)`` on the flattened
    context, rebuilt from its sizes alone, so a run needs no code to load.

    Example:
        >>> import torch
        >>> ContextEmbedding(10, hidden=16, out=8)(torch.randn(3, 10)).shape
        torch.Size([3, 8])
    """

    def __init__(self, in_features: int, hidden: int = 64, out: int = 16) -> None:
        super().__init__(nn.Flatten(1), nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, out))
