"""Batch normalization as an invertible flow layer (paper, section 3.7)."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

from realnvp.bijectors.base import Bijector


class _SumOverRanks(torch.autograd.Function):
    """A tensor summed over all ranks; its gradient is the sum of the ranks' gradients (what the
    deprecated ``torch.distributed.nn.functional.all_reduce`` did, without its warning on every call)."""

    @staticmethod
    def forward(ctx: object, x: Tensor) -> Tensor:
        out = x.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: object, grad: Tensor) -> Tensor:
        out = grad.clone()
        dist.all_reduce(out)
        return out


def global_moments(x: Tensor, dims: list[int]) -> tuple[Tensor, Tensor]:
    """Mean and biased variance over ``dims`` of the batch gathered from every rank, differentiably, so
    flow batch norm sees the global batch and every rank keeps identical running averages (a single
    process: this batch's). Two passes (mean, then mean squared deviation), the same numerics either way.

    Example:
        >>> mean, var = global_moments(torch.tensor([[1.0, 10.0], [3.0, 10.0]]), [0])
        >>> mean.tolist(), var.tolist()  # keepdim: shaped to broadcast against the batch
        ([[2.0, 10.0]], [[1.0, 0.0]])
    """
    mean = x.mean(dim=dims, keepdim=True)
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return mean, ((x - mean) ** 2).mean(dim=dims, keepdim=True)
    world = dist.get_world_size()  # equal shares per rank, so the mean of the ranks' means is the global mean
    mean = _SumOverRanks.apply(mean) / world
    return mean, _SumOverRanks.apply(((x - mean) ** 2).mean(dim=dims, keepdim=True)) / world


class BatchNormFlow(Bijector):
    """``z = (x - mean) / sqrt(var + eps)`` per feature, with running averages (Real NVP's variant).

    Training mode normalises with the *running* statistics after folding in the current batch
    (``new = (1 - momentum) * running + momentum * batch``), so training sees nearly the same map
    that evaluation and sampling use; gradients flow through the batch's share. Evaluation and
    ``inverse`` always use the stored running statistics, so ``inverse(forward(x)) == x`` in both
    modes. The variance is the biased batch variance everywhere (the unbiased/biased mix of
    ``nn.BatchNorm``, whose running variance is unbiased while it normalises with the biased one, is a
    known trap). The first training batch initialises the statistics, so a small momentum (the image
    presets use 0.005) does not start from an arbitrary N(0, 1).

    The running averages move at the learning rate's pace: ``momentum`` is scaled by ``pace`` (the
    schedule's factor, set each step by ``set_statistics_pace``). The layers after a batch norm adapt
    to its lagging averages; with a fixed momentum the averages kept moving once a decayed learning rate
    had frozen those layers, and validation got worse over a schedule's last steps (mnist-cpu: 1.724 ->
    1.743 bits/dim after 80 statistics-only steps). With the pace, they settle together.

    Under DDP the batch statistics are all-reduced, so every rank normalises with the global batch's
    moments and holds the same running averages.

    ``log_det = -0.5 * sum(log(var + eps))`` over the event, broadcast over the batch.
    ``feature_dims`` are the event dims that keep their own statistics (``(1,)`` for vectors and
    image channels): every other non-batch dimension is averaged over.

    ``batch_gradient=True`` (the vector flows' choice) keeps those values but differentiates the batch
    moments with full weight instead of the momentum's share. With only the ``momentum`` share
    differentiated, scaling an upstream coupling's output by ``c`` and the running variance by ``c^2``
    is a direction the loss barely sees, so gradient noise random-walks along it: on a smooth 2-D
    banana the running variances drifted from 1 to ~280 in 800 steps and every lurch was a spike in
    train and validation NLL (2.6 -> 8.0 nats). With the full batch gradient the same run is smooth.

    Example:
        >>> import torch
        >>> bn = BatchNormFlow((2,))
        >>> x = torch.randn(64, 2) * 3 + 1
        >>> z, log_det = bn(x)
        >>> torch.allclose(bn.inverse(z)[0], x, atol=1e-5)
        True
    """

    def __init__(self, shape: tuple[int, ...], momentum: float = 0.05, eps: float = 1e-5,
                 batch_gradient: bool = False) -> None:
        super().__init__()
        if not 0.0 < momentum <= 1.0:
            raise ValueError(f"batch-norm momentum must be in (0, 1], got {momentum}")
        self.momentum, self.eps, self.batch_gradient = momentum, eps, batch_gradient
        self.register_buffer("running_mean", torch.zeros(shape))
        self.register_buffer("running_var", torch.ones(shape))
        self.register_buffer("initialized", torch.tensor(False))
        self.register_buffer("pace", torch.tensor(1.0), persistent=False)  # a tensor: compile doesn't retrace

    def _reduce_dims(self, x: Tensor) -> list[int]:
        return [0] + [d + 1 for d, n in enumerate(self.running_mean.shape) if n == 1 and x.shape[d + 1] != 1]

    def _batch_stats(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mean, var = global_moments(x, self._reduce_dims(x))  # under DDP: the global batch's statistics
        return mean[0], var[0]

    def _log_det(self, var: Tensor, x: Tensor) -> Tensor:
        per_feature = -0.5 * torch.log(var + self.eps)
        event_size = x[0].numel() // var.numel()
        return (per_feature.sum() * event_size).expand(x.shape[0])

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if self.training:
            batch_mean, batch_var = self._batch_stats(x)
            m = torch.where(self.initialized, self.momentum * self.pace, 1.0)
            mean = (1 - m) * self.running_mean + m * batch_mean
            var = (1 - m) * self.running_var + m * batch_var
            with torch.no_grad():
                self.running_mean.copy_(mean)
                self.running_var.copy_(var)
                self.initialized.fill_(True)
            if self.batch_gradient:  # same values, gradient of the batch's moments at full weight
                mean = mean.detach() + (batch_mean - batch_mean.detach())
                var = var.detach() * (batch_var / batch_var.detach().clamp_min(self.eps))
        else:
            mean, var = self.running_mean, self.running_var
        z = (x - mean) * torch.rsqrt(var + self.eps)
        return z, self._log_det(var, x)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        var = self.running_var
        x = z * torch.sqrt(var + self.eps) + self.running_mean
        return x, -self._log_det(var, z)


def set_statistics_pace(module: torch.nn.Module, pace: float) -> None:
    """Scale the momentum of every ``BatchNormFlow`` in ``module`` by ``pace`` (the learning-rate
    schedule's factor, so running averages freeze when the weights do).

    Example:
        >>> bn = BatchNormFlow((1,), momentum=0.5)
        >>> _ = bn(torch.zeros(4, 1))  # the first batch initialises the running mean: 0
        >>> set_statistics_pace(bn, 0.0)
        >>> _ = bn(torch.ones(4, 1))
        >>> bn.running_mean.item()  # pace 0: a frozen average
        0.0
    """
    for layer in module.modules():
        if isinstance(layer, BatchNormFlow):
            layer.pace.fill_(pace)


class Whiten(Bijector):
    """Fixed full-covariance whitening ``z = L^{-1} (x - loc)``, ``L`` the lower Cholesky factor of the
    training rows' covariance: the vector flow's first layer, so an untrained flow (couplings at the
    identity) is exactly the full-covariance Gaussian fitted to the data and training starts from that
    baseline instead of from N(0, I) in raw units. ``log_det = -sum(log diag L)``; nothing is learned.

    Example:
        >>> import torch
        >>> tril = torch.tensor([[2.0, 0.0], [1.0, 1.0]])
        >>> layer = Whiten(torch.zeros(2), tril)
        >>> z, log_det = layer(torch.tensor([[2.0, 2.0]]))
        >>> z.tolist(), round(log_det.item(), 4), layer.inverse(z)[0].tolist()  # -log 2
        ([[1.0, 1.0]], -0.6931, [[2.0, 2.0]])
    """

    def __init__(self, loc: Tensor, tril: Tensor) -> None:
        super().__init__()
        if tril.ndim != 2 or not torch.all(torch.diagonal(tril) > 0):
            raise ValueError("Whiten needs a lower-triangular factor with a positive diagonal")
        self.register_buffer("loc", loc.clone())
        self.register_buffer("tril", torch.tril(tril).clone())

    def _log_det(self, x: Tensor) -> Tensor:
        return (-torch.diagonal(self.tril).log().sum()).expand(x.shape[0]).to(x.dtype)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        z = torch.linalg.solve_triangular(self.tril, (x - self.loc).T, upper=False).T
        return z, self._log_det(x)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return z @ self.tril.T + self.loc, -self._log_det(z)
