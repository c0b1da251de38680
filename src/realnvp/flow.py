"""``Flow``: a standard normal base distribution pushed through a chain of bijectors."""

from __future__ import annotations

import io
import itertools
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from realnvp.atomic import atomic_write_bytes
from realnvp.bijectors import Chain, Step, TanhScale
from realnvp.diagnostics import warn_if_non_finite
from realnvp.distribution import FlowDistribution
from realnvp.distributions import Base, StudentT

SAVED_FORMAT = "realnvp-flow"  # the "format" entry of a file Flow.save writes


def _checked(temperature: float) -> float:
    if temperature < 0 or not math.isfinite(temperature):
        raise ValueError(f"temperature must be a finite number >= 0, got {temperature}")
    return temperature


class Flow(nn.Module):
    """``log p(x) = log N(f(x); 0, I) + log|det df/dx|`` with ``f`` the chain's ``forward``.

    Arguments:
        chain: the bijectors, data -> latent in list order.
        event_shape: shape of one example (``(2,)`` for 2-D points, ``(C, H, W)`` for images).
        context_size: a conditional flow ``p(x | c)`` on ``context_size`` real context features per
            example (``[N, context_size]``, or one ``[context_size]`` for the whole batch); a tuple is a
            context of that shape per example (``[N, *context_size]``), for an ``embedding`` to read.
        embedding: a network applied once per call to the (standardised) real context before any
            coupling sees it, ``[N, *context shape] -> [N, E]`` (nflows' ``embedding_net``); a submodule,
            so its parameters train with the flow. None: the couplings see the context itself.
        n_classes: a class-conditional flow ``p(x | y)``: one integer label ``0 .. n_classes - 1`` per
            example (``[N]``, or one label for the whole batch). At most one of the two is set; a
            conditional flow's ``log_prob``, ``forward``, ``inverse`` and ``sample`` take ``context=``.

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

    def __init__(self, chain: Chain, event_shape: tuple[int, ...], *, context_size: int | tuple[int, ...] = 0,
                 n_classes: int = 0, base: Base | None = None, embedding: nn.Module | None = None) -> None:
        super().__init__()
        if context_size and n_classes:
            raise ValueError("a flow is conditional on real context features or on class labels, not both")
        self.chain = chain
        self.event_shape = tuple(event_shape)
        self.base = base or Base("normal", self.event_shape)  # the latent density (distributions.Base)
        shape = (int(context_size),) if isinstance(context_size, int) else tuple(int(k) for k in context_size)
        self.context_shape = shape if math.prod(shape) else ()  # one example's real context; () without one
        self.context_size = math.prod(shape) if self.context_shape else 0
        self.n_classes = int(n_classes)
        if embedding is not None and not self.context_size:
            raise ValueError("an embedding network reads real contexts: give the flow a context_size too")
        self.embedding = embedding
        # Tables: each column's lattice step (0: continuous); ``sample`` rounds discrete columns down to it.
        self.register_buffer("lattice", torch.zeros(0), persistent=False)
        # Tables: the heavy-tailed share of a defensive mixture (set_defensive); None: the flow alone.
        self.defensive: StudentT | None = None
        # How a builder made this flow (models/saved.py rebuilds it from a saved file); None: assembled by hand.
        self.recipe: dict[str, Any] | None = None
        if self.context_size:  # real contexts are standardised with the training contexts' moments (fit_context)
            self.register_buffer("context_loc", torch.zeros(self.context_shape))
            self.register_buffer("context_scale", torch.ones(self.context_shape))

    def fit_context(self, contexts: Tensor | np.ndarray) -> None:
        """Standardise real contexts with the mean and std of ``contexts`` (the training rows'
        ``[N, context_size]``) before every conditioner (and the ``embedding``) sees them, as
        ``Standardize`` does for ``x``.

        Example:
            >>> from realnvp.models import build_vector_flow
            >>> flow = build_vector_flow(dim=2, n_couplings=2, hidden=(8,), context_size=1)
            >>> flow.fit_context(np.array([[1000.0], [3000.0]]))
            >>> flow.context_loc.tolist(), round(flow.context_scale.item(), 1)
            ([2000.0], 1414.2)
        """
        c = torch.as_tensor(np.asarray(contexts) if not isinstance(contexts, Tensor) else contexts).double()
        self.context_loc.copy_(c.mean(0))
        self.context_scale.copy_(c.std(0).nan_to_num(1.0).clamp_min(1e-6))

    def as_distribution(self, context: Tensor | np.ndarray | float | None = None) -> FlowDistribution:
        """This flow as a ``torch.distributions.Distribution`` (``log_prob``, ``sample``, ``rsample``,
        ``event_shape``; ``kl_divergence`` estimates), given one ``context`` for a conditional flow.

        Example:
            >>> from torch.distributions import MultivariateNormal, kl_divergence
            >>> from realnvp.models import build_vector_flow
            >>> p = build_vector_flow(dim=2, n_couplings=2, hidden=(8,)).as_distribution()  # untrained: N(0, I)
            >>> q = MultivariateNormal(torch.zeros(2), 4 * torch.eye(2))
            >>> exact = (2 * math.log(4) - 2 + 2 / 4) / 2  # KL(N(0, I) || N(0, 4 I)) in 2-D
            >>> abs(kl_divergence(p, q).item() - exact) < 0.05
            True
        """
        return FlowDistribution(self, None if context is None else torch.as_tensor(context))

    def save(self, path: str | os.PathLike) -> None:
        """Write this flow to one file: its weights and the builder's arguments that rebuild it
        (``recipe``), read back by ``realnvp.load(path)`` without running code (tensors and plain
        containers only), written atomically.

        Example:
            >>> import realnvp
            >>> from realnvp.models import build_vector_flow
            >>> flow = build_vector_flow(dim=3, n_couplings=2, hidden=(8,))
            >>> flow.save(tmp / "flow.pt")
            >>> x = torch.randn(4, 3)
            >>> torch.equal(realnvp.load(tmp / "flow.pt").log_prob(x), flow.eval().log_prob(x))
            True
        """
        if self.recipe is None:
            raise ValueError("this flow was not made by a realnvp builder (build_vector_flow, build_image_flow, "
                             "build_model): save its state_dict with torch.save instead")
        buffer = io.BytesIO()
        torch.save({"format": SAVED_FORMAT, "version": 1, "event_shape": list(self.event_shape),
                    "recipe": self.recipe, "state": self.state_dict()}, buffer)
        atomic_write_bytes(Path(path), buffer.getvalue())

    def set_defensive(self, component: StudentT, weight: float = 0.0) -> None:
        """Make the density the defensive mixture ``(1 - w) p_flow(x) + w t(x)`` (distributions.py):
        a held-out row far from every training row then costs at most ``-log w - log t(x)``. ``w`` is
        a buffer (saved with the weights); training chooses it on validation rows."""
        self.defensive = component
        self.register_buffer("defensive_weight", torch.tensor(float(weight)))

    def set_lattice(self, steps: Tensor | np.ndarray) -> None:
        """Mark discrete table columns: ``steps[j] > 0`` is column j's lattice step. The flow models them
        dequantized (``x + step u``, data/columns.py); ``sample`` returns their lattice values."""
        self.lattice = torch.as_tensor(np.asarray(steps), dtype=self.dtype, device=self.device)

    @property
    def discrete(self) -> bool:
        """Whether the flow has discrete table columns (``set_lattice``)."""
        return bool((self.lattice > 0).any())

    def quantize(self, x: Tensor) -> Tensor:
        """``x`` with each discrete column rounded down to its lattice (the inverse of dequantization)."""
        if not self.discrete:
            return x
        step = self.lattice.clamp_min(1e-30)
        return torch.where(self.lattice > 0, torch.floor(x / step) * step, x)

    @property
    def conditional(self) -> bool:
        """Whether the flow models ``p(x | context)`` (and so needs ``context=`` everywhere)."""
        return bool(self.context_size or self.n_classes)

    @property
    def event_size(self) -> int:
        """Numbers per example: ``prod(event_shape)``."""
        return math.prod(self.event_shape)

    @property
    def device(self) -> torch.device:
        """Where the flow's parameters and buffers live (CPU for a flow without any)."""
        return next(itertools.chain(self.parameters(), self.buffers()), torch.empty(0)).device

    @property
    def dtype(self) -> torch.dtype:
        """The floating-point type of the flow's parameters (what ``log_prob`` converts inputs to)."""
        floats = (t for t in itertools.chain(self.parameters(), self.buffers()) if t.is_floating_point())
        return next(floats, torch.empty(0)).dtype

    def _check_shape(self, x: Tensor, single_ok: bool = False) -> None:
        if tuple(x.shape[1:]) != self.event_shape:
            batch = f"a batch [N, {', '.join(map(str, self.event_shape))}]"
            what = f"one example of shape {self.event_shape} or {batch}" if single_ok else f"{batch} of examples"
            raise ValueError(f"expected {what}, got shape {tuple(x.shape)}")

    def as_batch(self, x: Tensor | np.ndarray) -> tuple[Tensor, bool]:
        """``x`` (tensor, NumPy array or nested lists; a batch or one example) as a batch on the flow's
        device and dtype, and whether it was one example. Any other shape is a ``ValueError``.

        Example:
            >>> from realnvp.models import build_vector_flow
            >>> batch, single = build_vector_flow(dim=2, n_couplings=2, hidden=(8,)).as_batch(np.zeros(2))
            >>> batch.shape, batch.dtype, single
            (torch.Size([1, 2]), torch.float32, True)
        """
        x = torch.as_tensor(np.asarray(x) if not isinstance(x, Tensor) else x)
        if x.dtype == torch.bool or x.is_complex():
            raise ValueError(f"expected real numbers, got a tensor of {x.dtype}")
        if len(self.event_shape) == 3 and not x.is_floating_point():
            raise ValueError("an image flow takes dequantized pixels in [0, 1), not integers: score integer "
                             "images with realnvp.score(flow, images, n_levels=...)")
        x = x.to(device=self.device, dtype=self.dtype)
        single = tuple(x.shape) == self.event_shape
        x = x[None] if single else x
        self._check_shape(x, single_ok=True)
        return x, single

    def as_context(self, context: Tensor | np.ndarray | float | None, n: int) -> Tensor | None:
        """``context`` for a batch of ``n`` examples on the flow's device: class labels as ``long [n]``,
        real features as ``[n, context_size]`` in the flow's dtype; one context is repeated ``n``
        times. None for an unconditional flow; a missing, surplus or misshapen context is a ``ValueError``.

        Example:
            >>> from realnvp.models import build_vector_flow
            >>> flow = build_vector_flow(dim=2, n_couplings=2, hidden=(8,), context_size=1)
            >>> flow.as_context(0.5, 3).tolist(), flow.as_context([1.0, 2.0], 2).shape
            ([[0.5], [0.5], [0.5]], torch.Size([2, 1]))
        """
        if not self.conditional:
            if context is not None:
                raise ValueError("this flow is not conditional: it takes no context")
            return None
        if context is None:
            what = f"a class label 0..{self.n_classes - 1}" if self.n_classes else \
                f"a context of shape {list(self.context_shape)}"
            raise ValueError(f"this flow is conditional: pass context= ({what} per example, or one for all)")
        c = torch.as_tensor(np.asarray(context) if not isinstance(context, Tensor) else context, device=self.device)
        return self._labels(c, n) if self.n_classes else self._features(c, n)

    def _labels(self, c: Tensor, n: int) -> Tensor:
        if c.is_floating_point() and not torch.equal(c, c.round()) or c.dtype == torch.bool or c.is_complex():
            raise ValueError(f"class labels must be integers, got {c.dtype}")
        c = c.long().reshape(-1)
        c = c.expand(n) if len(c) == 1 else c
        if c.shape != (n,):
            raise ValueError(f"expected one class label or {n} (one per example), got {len(c)}")
        if len(c) and (c.min() < 0 or c.max() >= self.n_classes):
            raise ValueError(f"class labels must lie in 0..{self.n_classes - 1}, "
                             f"got {c.min().item()}..{c.max().item()}")
        return c

    def _features(self, c: Tensor, n: int) -> Tensor:
        shape, k = self.context_shape, self.context_size
        if c.dtype == torch.bool or c.is_complex():
            raise ValueError(f"expected real context values, got {c.dtype}")
        c = c.to(self.dtype)
        if tuple(c.shape) == shape or (len(shape) == 1 and c.dim() <= 1 and c.numel() == k):
            c = c.reshape(1, *shape).expand(n, *shape)
        elif shape == (1,) and c.dim() == 1:
            c = c[:, None]
        if tuple(c.shape) != (n, *shape):
            one = ", ".join(map(str, shape))
            raise ValueError(f"expected a context of shape [{one}] or [{n}, {one}], got {tuple(c.shape)}")
        return c

    def _prepared(self, c: Tensor | None) -> Tensor | None:
        """A checked context as the conditioners take it: real features standardised (``fit_context``),
        then through the ``embedding`` network once, for every coupling to share."""
        if c is None or not self.context_size:
            return c
        c = (c - self.context_loc) / self.context_scale
        if self.embedding is None:
            return c
        e = self.embedding(c)
        if not isinstance(e, Tensor) or e.dim() != 2 or len(e) != len(c):
            raise ValueError(f"the context embedding network must return [{len(c)}, E] (one feature vector per "
                             f"example), got {tuple(e.shape) if isinstance(e, Tensor) else type(e).__name__}")
        return e

    def _run(self, x: Tensor, context: Tensor | None, inverse: bool = False) -> tuple[Tensor, Tensor]:
        """The chain on a checked batch, with ``context`` converted to a batch (see ``as_context``)."""
        c = self._prepared(self.as_context(context, len(x)))
        return self.chain.inverse(x, context=c) if inverse else self.chain(x, context=c)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Data -> latent: ``(z, log|det dz/dx|)`` for a batch ``x`` of shape ``[N, *event_shape]``."""
        self._check_shape(x)
        return self._run(x, context)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        """Latent -> data: ``x`` only (``self.chain.inverse(z)`` also gives ``log|det dx/dz|``)."""
        return self._run(z, context, inverse=True)[0]

    def base_log_prob(self, z: Tensor) -> Tensor:
        """The base density's log (``self.base``: N(0, I) unless a learned one was chosen), summed over the event."""
        return self.base.log_prob(z)

    def log_prob(self, x: Tensor | np.ndarray, context: Tensor | np.ndarray | None = None, *,
                 defensive: bool = True) -> Tensor:
        """Exact log-density of each example, in nats, in the data's own units: ``[N]`` for a batch
        ``[N, *event_shape]``, a scalar for one example. NumPy arrays and other dtypes are converted to
        the flow's device and dtype. A conditional flow gives ``log p(x | context)``. A defensive
        mixture (``set_defensive``) is included unless ``defensive=False`` (the flow's own density)."""
        x, single = self.as_batch(x)
        z, log_det = self._run(x, context)
        log_p = self.base_log_prob(z) + log_det
        w = float(self.defensive_weight) if defensive and self.defensive is not None else 0.0
        if w > 0:
            log_p = torch.logaddexp(log_p + math.log1p(-w), self.defensive.log_prob(x).to(log_p) + math.log(w))
        return log_p[0] if single else log_p

    def sample_latent(self, n: int, temperature: float = 1.0) -> Tensor:
        """``n`` draws from the base density, ``N(0, temperature^2 I)`` for the paper's, on the flow's device."""
        return self.base.sample(n, temperature, self.device, self.dtype)

    def _draw(self, n: int, temperature: float, context: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """``(z, x, log|det dx/dz|)`` for ``n`` base draws; warns when a sample is not finite."""
        z = self.sample_latent(n, _checked(temperature))
        c = self.as_context(context, n)
        x, log_det = self._run(z, c, inverse=True)
        warn_if_non_finite(self, z, x, c)
        return z, x, log_det

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, chunk_size: int = 65536, *,
               context: Tensor | np.ndarray | None = None) -> Tensor:
        """``n`` samples, drawn in chunks of at most ``chunk_size`` to bound memory, without gradients.
        ``temperature`` scales the base standard deviation (below 1 gives cleaner, less diverse
        samples); a defensive mixture's share of the rows comes from its Student-t, and a table's
        discrete columns come out on their lattice (``quantize``). A sample that comes out NaN or Inf
        raises a ``RuntimeWarning`` naming the layer it blew up in. A conditional flow samples
        ``x ~ p(x | context)``: one context for all ``n`` or one per sample.

        Example:
            >>> from realnvp.models import build_vector_flow
            >>> flow = build_vector_flow(dim=2, n_couplings=2, hidden=(8,), context_size=1)
            >>> flow.sample(4, context=[[0.0], [1.0], [2.0], [3.0]]).shape, flow.sample(3, context=0.5).shape
            (torch.Size([4, 2]), torch.Size([3, 2]))
        """
        c = self.as_context(context, n)
        chunks = [self._draw(min(chunk_size, n - i), temperature, None if c is None else c[i : i + chunk_size])[1]
                  for i in range(0, n, chunk_size)]
        if not chunks:
            return self.sample_latent(0, _checked(temperature))
        x = torch.cat(chunks)
        if self.defensive is not None and float(self.defensive_weight) > 0:  # each row from t with probability w
            share = torch.rand(n, device=x.device) < float(self.defensive_weight)
            x[share] = self.defensive.sample(int(share.sum()), temperature).to(x)
        return self.quantize(x)

    def rsample(self, n: int, temperature: float = 1.0, *, context: Tensor | np.ndarray | None = None) -> Tensor:
        """``n`` samples that carry gradients to the flow's parameters (reparameterised, as
        ``torch.distributions``' ``rsample``): for losses on samples. One batch, no chunking.

        Example:
            >>> from realnvp.models import build_vector_flow
            >>> flow = build_vector_flow(dim=2, n_couplings=2, hidden=(8,))
            >>> flow.rsample(4).pow(2).sum().backward()
            >>> flow.chain.layers[0].conditioner[-1].weight.grad is not None
            True
        """
        return self._draw(n, temperature, context)[1]

    def sample_and_log_prob(self, n: int, temperature: float = 1.0, *,
                            context: Tensor | np.ndarray | None = None) -> tuple[Tensor, Tensor]:
        """``(x, log p(x))`` for ``n`` samples from one inverse pass: ``log p(x) = log N(z) - log|det
        dx/dz|``, the flow's density (temperature 1) at each sample. Differentiable like ``rsample``;
        in eval mode it equals ``log_prob(x)`` (training-mode batch norm uses batch statistics forward).

        Example:
            >>> from realnvp.models import build_vector_flow
            >>> flow = build_vector_flow(dim=2, n_couplings=2, hidden=(8,)).eval()
            >>> x, log_p = flow.sample_and_log_prob(3, temperature=0.5)
            >>> torch.allclose(log_p, flow.log_prob(x), atol=1e-5)
            True
        """
        z, x, log_det = self._draw(n, temperature, context)
        return x, self.base_log_prob(z) - log_det

    @torch.no_grad()
    def trace(self, x: Tensor, inverse: bool = False, *, context: Tensor | np.ndarray | None = None) -> list[Step]:
        """``x`` through the flow one elementary layer at a time, without gradients: data towards the
        latent, or with ``inverse=True`` a latent bent back into data. One ``Step(name, layer, output,
        log_det)`` per layer, names as in ``named_modules()``; each output is the whole state of the
        flow after that layer (squeezed where the chain is squeezed; inside a factor-out, the inner
        state beside the half that left); the log-dets add up to the flow's.

        Example:
            >>> from realnvp.models import build_vector_flow
            >>> flow = build_vector_flow(dim=2, n_couplings=2, hidden=(8,))
            >>> [(step.name, type(step.layer).__name__) for step in flow.trace(flow.sample_latent(3), inverse=True)]
            [('chain.layers.1', 'AffineCoupling'), ('chain.layers.0', 'AffineCoupling')]
        """
        self._check_shape(x)
        c = self._prepared(self.as_context(context, len(x)))
        return self.chain.trace(x, inverse, "chain", context=c)

    def scale_penalty(self) -> Tensor:
        """``sum(scale^2)`` over every coupling's learned tanh scale: the paper's L2 term on ``s``."""
        total = torch.zeros((), device=self.device, dtype=self.dtype)
        for module in self.modules():
            if isinstance(module, TanhScale):
                total = total + module.scale.pow(2).sum()
        return total

    def n_params(self) -> int:
        """Number of learned parameters."""
        return sum(p.numel() for p in self.parameters())
