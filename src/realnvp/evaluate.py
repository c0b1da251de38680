"""Metrics users compare: mean NLL in nats (data units), invertibility error, parameter counts."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from realnvp.flow import Flow


@torch.inference_mode()
def mean_nll(flow: Flow, x: torch.Tensor, batch_size: int = 8192) -> float:
    """Mean negative log-likelihood per example in nats, in eval mode, over large batches."""
    flow.eval()
    total = 0.0
    for i in range(0, len(x), batch_size):
        total += -flow.log_prob(x[i : i + batch_size]).double().sum().item()
    return total / max(len(x), 1)


@torch.inference_mode()
def inverse_max_abs_error(flow: Flow, x: torch.Tensor, batch_size: int = 8192) -> float:
    """``max |x - inverse(forward(x))|`` over ``x``: how exactly the flow inverts in practice."""
    flow.eval()
    worst = 0.0
    for i in range(0, len(x), batch_size):
        chunk = x[i : i + batch_size]
        worst = max(worst, (flow.inverse(flow(chunk)[0]) - chunk).abs().max().item())
    return worst


def evaluate_run(run_dir: str | Path) -> dict[str, Any]:
    """The metrics of a run's best weights on its own train and test splits."""
    from realnvp.checkpoint import BEST, CHECKPOINT, flow_from_state, load_checkpoint
    from realnvp.data import load_splits

    run_dir = Path(run_dir)
    path = run_dir / BEST if (run_dir / BEST).exists() else run_dir / CHECKPOINT
    state = load_checkpoint(path)
    flow, cfg = flow_from_state(state, path)
    last = load_checkpoint(run_dir / CHECKPOINT) if (run_dir / CHECKPOINT).exists() else state
    splits = load_splits(cfg.data)
    train_x, test_x = torch.from_numpy(splits.train), torch.from_numpy(splits.test)
    test_nll = mean_nll(flow, test_x)
    return {
        "run": str(run_dir),
        "data": cfg.data.name if cfg.data.name != "file" else cfg.data.path,
        "dim": flow.event_size,
        "test_nll_nats": test_nll,
        "train_nll_nats": mean_nll(flow, train_x),
        "val_nll_nats": state["best_val_nll"] if math.isfinite(state["best_val_nll"]) else None,
        "test_nll_nats_per_dim": test_nll / flow.event_size,
        "inverse_max_abs_error": inverse_max_abs_error(flow, test_x),
        "n_params": flow.n_params(),
        "steps": int(last["step"]),
        "best_step": int(state["step"]),
        "train_seconds": round(float(last["elapsed_s"]), 2),
        "n_train": len(splits.train),
        "n_test": len(splits.test),
    }
