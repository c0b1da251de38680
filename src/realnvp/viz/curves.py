"""The report's training curves from ``metrics.jsonl``: the running train NLL (records with
``train_nll`` only), the validation NLL at each evaluation and the learning rate, in the unit a
person reads for the run: nats per example for vectors, bits/dim for images."""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from typing import Any

from realnvp.evaluation.metrics import bits_per_dim
from realnvp.viz.plots import _pyplot


def nll_unit(dim: int = 0, n_levels: int = 0) -> tuple[str, Callable[[float], float]]:
    """``(label, convert)``: how a recorded NLL in nats is shown. Image runs (``n_levels`` > 0) in
    bits/dim, ``(nll + D ln L) / (D ln 2)`` (``evaluation.metrics.bits_per_dim``); vectors as they are.

    Example:
        >>> label, convert = nll_unit(64, 256)
        >>> label, convert(0.0)  # the uniform density on [0, 1)^64: 8 bits for 8-bit pixels
        ('bits/dim', 8.0)
        >>> nll_unit()[0]
        'nats/example'
    """
    if n_levels and dim:
        return "bits/dim", lambda nll: bits_per_dim(nll, dim, n_levels)
    return "nats/example", float


def _points(records: list[dict[str, Any]], key: str, convert: Callable[[float], float],
            only: Callable[[dict[str, Any]], bool] = lambda r: True) -> tuple[list[int], list[float]]:
    """``(steps, values)`` of the records holding a finite ``key`` (and passing ``only``), converted."""
    pairs = [(r["step"], convert(r[key])) for r in records if isinstance(r.get(key), (int, float))
             and math.isfinite(r[key]) and "step" in r and only(r)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def curves_figure(records: list[dict[str, Any]], dim: int = 0, n_levels: int = 0) -> Any:
    """Train and validation NLL against the step, and the learning rate beneath. Every point carries
    a marker, so a run with a single evaluation still shows a visible point and its value.

    Example:
        >>> fig = curves_figure([{"step": 100, "train_nll": 1.5, "val_nll": 1.4, "lr": 1e-3}], 64, 256)
        >>> fig.axes[0].get_ylabel()
        'NLL [bits/dim]'
    """
    plt = _pyplot()
    unit, convert = nll_unit(dim, n_levels)
    fig, (ax, ax_lr) = plt.subplots(2, 1, figsize=(8, 5.2), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    running = _points(records, "train_nll", convert, lambda r: "val_nll" not in r)
    at_eval = _points(records, "train_nll", convert, lambda r: "val_nll" in r)
    val = _points(records, "val_nll", convert)
    if running[0]:
        ax.plot(*running, ".-", ms=3, lw=1, color="tab:blue", alpha=0.8, label="train (running mean)")
    if at_eval[0]:
        ax.plot(*at_eval, "o" if running[0] else "o-", ms=4, color="tab:blue",
                label="train (mean since the last evaluation)")
    if val[0]:
        ax.plot(*val, "s-", ms=5, color="tab:orange", label="validation")
    if len(val[0]) == 1:
        ax.annotate(f"{val[1][0]:.4g}", (val[0][0], val[1][0]), textcoords="offset points", xytext=(6, 6))
        ax.set_title("one evaluation only: lower train.eval_every for a curve", fontsize=9)
    ax.set_ylabel(f"NLL [{unit}]")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    lr = _points(records, "lr", float)
    ax_lr.plot(*lr, ".-", ms=3, color="gray")
    ax_lr.set_ylabel("learning rate")
    ax_lr.set_xlabel("step")
    ax_lr.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def curves_png(records: list[dict[str, Any]], dim: int = 0, n_levels: int = 0) -> bytes:
    """``curves_figure`` as PNG bytes, for the report.

    Example:
        >>> curves_png([{"step": 100, "train_nll": 1.5, "val_nll": 1.4, "lr": 1e-3}])[:4]
        b'\\x89PNG'
    """
    fig = curves_figure(records, dim, n_levels)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    _pyplot().close(fig)
    return buffer.getvalue()
