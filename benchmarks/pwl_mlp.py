"""Checks the prototype ``harness.ScalarInputMLP`` (the same 1-input conditioner MLP evaluated without
its 512x512 GEMMs; the method is described beside it in harness.py): output and every gradient
against autograd through the plain MLP.

    PYTHONPATH=src python benchmarks/pwl_mlp.py
"""

import copy

import torch
from harness import ScalarInputMLP  # same folder
from torch import nn

from realnvp.nets import MLP


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
