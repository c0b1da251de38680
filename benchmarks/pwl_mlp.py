"""Prototype (not in the library): the SAME conditioner MLP, evaluated without its 512x512 GEMMs when its
input is one number, as in every coupling layer of a 2-D flow; ``moons --conditioner pwl`` trains with it
(row ``realnvp_pwl``) and ``profile_moons`` times it. Run as a module, it checks output and every gradient
against autograd through the plain MLP:

    PYTHONPATH=src python -m benchmarks.pwl_mlp

With a scalar input ``x`` the first layer ``h1 = relu(w1 x + b1)`` is piecewise linear in ``x``: unit
``j`` is on for ``x`` above (``w1_j > 0``) or below (``w1_j < 0``) its breakpoint ``-b1_j / w1_j``. Sort
the batch by ``x``; then each unit is on for a prefix or a suffix of the sorted batch, and the second
layer's pre-activation ``W2 h1 = x * A + C`` with

    A_i = sum_{j on at i} w1_j W2[:, j],    C_i = sum_{j on at i} b1_j W2[:, j]

is a running sum over the sorted batch of the units switching there (one scatter-add of the ``H1``
columns of ``W2`` into ``B + 1`` buckets, then a cumulative sum over the batch). The backward pass is
the same idea in reverse: the gradients of ``W2``, ``w1`` and ``b1`` need, per unit, the sums of
``x_i g_i`` and ``g_i`` over the examples where that unit is on, which are prefix sums over the sorted
batch. Forward and backward each cost a few ``O(H1 H2)`` passes instead of ``O(B H1 H2)`` GEMMs: one
moons step's 12 GEMMs of 256x512x512 (1.6 GFLOP) disappear.

What it costs in time: ``PROFILE.md``, section 5 (eager PyTorch's memory-bound passes cost about what
the GEMMs do on 2 threads).
"""

from __future__ import annotations

import copy
import math

import torch
from torch import Tensor, nn

from realnvp.nets import MLP


class _ScalarReluLinear(torch.autograd.Function):
    """``W2 @ relu(w1 x + b1)`` for ascending scalars ``x``: ``[B] -> [B, H2]`` (no second bias).

    Written for PyTorch's fast CPU paths: 2-D contiguous tensors, scans (``cumsum``) along the last,
    contiguous dimension, and every intermediate in the layout its next op reads fastest.
    """

    @staticmethod
    def forward(ctx, xs: Tensor, w1: Tensor, b1: Tensor, w2: Tensor) -> Tensor:
        h2 = w2.shape[0]
        inf = torch.tensor(math.inf, dtype=w1.dtype, device=w1.device)
        # A unit with w1 = 0 is always on (b1 > 0) or always off: an "on above" breakpoint at -inf / +inf.
        breaks = torch.where(w1 != 0, -b1 / w1, torch.where(b1 > 0, -inf, inf))
        above = (w1 >= 0).to(w1.dtype)  # 1: on for x above its breakpoint; 0: on below it
        first_on = torch.searchsorted(xs, breaks)  # sorted examples [first_on, B) lie above the breakpoint
        cols = w2.t().contiguous()  # [H1, H2]: unit j's outgoing weights as a row
        sign = 2 * above - 1
        # Example 0 starts with every "on below" unit on; each unit then switches on (or, "on below",
        # off) at its first_on: scatter its scaled row there (row B: never), then running sums over the
        # sorted batch. Separate same-shape ops: a broadcast [H1, 2, H2] product is ~5x slower on CPU.
        start = torch.stack([w1, b1]) * (1 - above) @ cols  # [2, H2]
        tables = []
        for c in (w1, b1):
            steps = xs.new_zeros(len(xs) + 1, h2).index_add_(0, first_on, cols * (sign * c)[:, None])
            tables.append(steps[:-1].t().contiguous().cumsum(1))  # [H2, B]: running sums, minus start
        slope = tables[0] + start[0, :, None]  # [H2, B]
        ctx.save_for_backward(xs, w1, b1, w2, above, first_on, slope)
        return torch.addcmul(tables[1] + start[1, :, None], slope, xs).t().contiguous()

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        xs, w1, b1, w2, above, first_on, slope = ctx.saved_tensors
        h2 = w2.shape[0]
        grad_t = grad.t().contiguous()  # [H2, B]
        grad_x = (grad_t * slope).sum(0)
        # Column k of ``prefix`` sums x_i g_i (top) and g_i (bottom) over the first k sorted examples.
        prefix = nn.functional.pad(torch.cat([grad_t * xs, grad_t]).cumsum(1), (1, 0))  # [2 H2, B + 1]
        below = prefix.index_select(1, first_on).view(2, h2, -1)  # [2, H2, H1]: under each breakpoint
        total = prefix[:, -1].view(2, h2)  # over the whole batch
        # A unit is on below its breakpoint ("on below") or above it (total - below), so with
        # flip = 1 - 2 above:  on = flip * below + above * total.
        flip = 1 - 2 * above
        coef = torch.stack([w1, b1])  # [2, H1]
        grad_w2 = torch.addcmul(below[0] * (flip * w1), below[1], flip * b1).addmm_(total.t(), coef * above)
        through = total @ w2  # [2, H1]
        grad_w1 = flip * (below[0] * w2).sum(0) + above * through[0]
        grad_b1 = flip * (below[1] * w2).sum(0) + above * through[1]
        return grad_x, grad_w1, grad_b1, grad_w2


class ScalarInputMLP(nn.Module):
    """Wraps an ``MLP(1, out, hidden)`` with at least two hidden layers and evaluates its first two layers
    as above; shares, and so trains, the wrapped MLP's own parameters."""

    def __init__(self, mlp: MLP) -> None:
        super().__init__()
        if not (isinstance(mlp[0], nn.Linear) and mlp[0].in_features == 1 and len(mlp) >= 5):
            raise ValueError("ScalarInputMLP needs an MLP with one input and at least two hidden layers")
        self.mlp = mlp

    def forward(self, x: Tensor) -> Tensor:
        first, second = self.mlp[0], self.mlp[2]
        xs, order = x.reshape(-1).sort()
        out = _ScalarReluLinear.apply(xs, first.weight[:, 0], first.bias, second.weight)
        out = torch.relu(out + second.bias)
        for i in range(4, len(self.mlp)):  # the remaining layers, on the sorted batch
            out = self.mlp[i](out)
        return out.new_empty(out.shape).index_copy(0, order, out)  # back to the input's order


def use_scalar_input_conditioners(flow: nn.Module) -> int:
    """Swap every coupling's 1-input MLP conditioner for its ``ScalarInputMLP`` view; returns how many."""
    swapped = 0
    for module in flow.modules():
        net = getattr(module, "conditioner", None)
        if isinstance(net, MLP) and net[0].in_features == 1 and len(net) >= 5:
            module.conditioner = ScalarInputMLP(net)
            swapped += 1
    return swapped


def check() -> None:
    """Output and every gradient against autograd through the plain MLP, float64 and float32, with units
    of zero input weight, inputs beyond all breakpoints and a non-zero last layer."""
    torch.manual_seed(0)
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-5)):
        plain = MLP(1, 2, (512, 512)).to(dtype)
        nn.init.normal_(plain[-1].weight, std=0.1)
        nn.init.normal_(plain[-1].bias)
        with torch.no_grad():
            plain[0].weight[:3] = 0
        fast = ScalarInputMLP(copy.deepcopy(plain))
        x = (torch.randn(256, 1, dtype=dtype) * 3).requires_grad_()
        x_fast = x.detach().clone().requires_grad_()
        y, y_fast = plain(x), fast(x_fast)
        g = torch.randn_like(y)
        (y * g).sum().backward()
        (y_fast * g).sum().backward()
        pairs = [("output", y, y_fast), ("input grad", x.grad, x_fast.grad)]
        pairs += [(f"{name} grad", p.grad, q.grad)
                  for (name, p), q in zip(plain.named_parameters(), fast.mlp.parameters())]
        for name, a, b in pairs:
            err = ((a - b).abs().max() / a.abs().max().clamp_min(1e-30)).item()
            print(f"{str(dtype):14s} {name:16s} max relative difference {err:.1e}")
            assert err < tol, f"{name}: {err} >= {tol}"


if __name__ == "__main__":
    check()
