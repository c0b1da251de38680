"""``realnvp evaluate``: a run's metrics (or, with ``--data FILE``, its metrics on a held-out file) as an
aligned table, or one JSON object with ``--json``; says plainly when the flow does worse than the
full-covariance Gaussian fitted to the same training rows."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from realnvp.cli.common import format_value
from realnvp.data import load_splits
from realnvp.data.splits import read_held_out
from realnvp.errors import UserError
from realnvp.evaluation.conditional import read_with_context
from realnvp.evaluation.metrics import BASELINE, bits_per_dim, dequantized_nll, evaluate_run, table_nlls
from realnvp.rundir import RunDir

TIE = 1e-3  # nats per example: closer than this, the flow and the Gaussian are reported as a tie

def evaluate_file(run: str | Path, path: str | Path) -> dict[str, Any]:
    """The metrics of a run's best weights on a held-out file: mean NLL (nats per example and per
    dimension) and, for vector runs, the Gaussian of the run's training rows on the same file; for
    image runs (a folder, .npy or .npz of integer pixels) bits/dim.

    Example:
        >>> import numpy as np
        >>> np.save(tmp / "held_out.npy", np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32))
        >>> metrics = evaluate_file(run_dir, tmp / "held_out.npy")
        >>> metrics["n_test"], sorted(key for key in metrics if "nll" in key)
        (50, ['baseline_gaussian_test_nll_nats', 'baseline_shrinkage_test_nll_nats', 'test_nll_nats',
              'test_nll_nats_per_dim'])
    """
    flow, cfg, ckpt = RunDir(run).load_flow("best")
    splits = load_splits(cfg.data)
    c = None  # a conditional run's file holds each example's context too (evaluation/conditional.py)
    if flow.conditional:
        x, c = read_with_context(path, flow, splits.n_levels, cfg.data.context_columns)
    else:
        x = read_held_out(path, flow.event_shape, splits.n_levels, cfg.data.image_size)
    metrics: dict[str, Any] = {"run": str(run), "data": str(path), "dim": flow.event_size, "n_test": len(x)}
    if splits.n_levels:
        nll, bound = dequantized_nll(flow, torch.from_numpy(x), splits.n_levels, cfg.data.test_draws, labels=c)
        metrics.update(bits_per_dim=bits_per_dim(nll, flow.event_size, splits.n_levels),
                       bits_per_dim_iw=bits_per_dim(bound, flow.event_size, splits.n_levels))
    else:
        metrics.update(table_nlls(flow, np.concatenate([splits.train, splits.val]), x, c))
        nll = metrics["test_nll_nats"]
    metrics.update(test_nll_nats=nll, test_nll_nats_per_dim=nll / flow.event_size, best_step=ckpt.step)
    return metrics


def verdict(metrics: dict[str, Any]) -> str | None:
    """One plain sentence when the flow's test NLL is worse than the Gaussian baseline's or ties with it
    (within ``TIE`` nats), else None.

    Example:
        >>> print(verdict({"test_nll_nats": 20.5, BASELINE: 19.0}))
        the flow is WORSE than a full-covariance Gaussian fitted to the same training rows (20.5000 vs
        19.0000 nats): it has not learned the data beyond its mean and covariance
        >>> print(verdict({"test_nll_nats": 19.02, BASELINE: 19.02}))
        the flow ties with a full-covariance Gaussian fitted to the same training rows (19.0200 vs 19.0200
        nats): it has learned nothing beyond the mean and covariance of these rows
        >>> verdict({"test_nll_nats": 18.0, BASELINE: 19.0}) is None
        True
    """
    ours, base = metrics.get("test_nll_nats"), metrics.get(BASELINE)
    if ours is None or base is None or not ours > base - TIE:
        return None
    if ours <= base + TIE:
        return (f"the flow ties with a full-covariance Gaussian fitted to the same training rows ({ours:.4f} vs "
                f"{base:.4f} nats): it has learned nothing beyond the mean and covariance of these rows")
    return (f"the flow is WORSE than a full-covariance Gaussian fitted to the same training rows ({ours:.4f} vs "
            f"{base:.4f} nats): it has not learned the data beyond its mean and covariance")


def table_lines(metrics: dict[str, Any]) -> list[str]:
    """The metrics as aligned ``key: value`` lines, keys right-aligned on the longest; a metric that was
    not measured (None: no validation split, say) reads ``not measured``.

    Example:
        >>> print("\\n".join(table_lines({"dim": 2, "baseline_gaussian_test_nll_nats": 1.5, "val_nll_nats": None})))
                                    dim: 2
        baseline_gaussian_test_nll_nats: 1.5
                           val_nll_nats: not measured
    """
    width = max((len(key) for key in metrics), default=0)
    return [f"{key:>{width}}: {'not measured' if value is None else format_value(value)}"
            for key, value in metrics.items()]


def run(args: argparse.Namespace) -> None:
    """Print the metrics of the run ``args.run`` (on ``args.data`` when given).

    Example:
        >>> from realnvp.cli.parser import build_parser
        >>> run(build_parser().parse_args(["evaluate", str(run_dir)]))
                                    run: ...
                                   data: moons
                                    dim: 2
                          test_nll_nats: ...
        baseline_gaussian_test_nll_nats: ...
        ...
    """
    if args.data:
        metrics = evaluate_file(args.run, args.data)
    else:  # why training stopped is train's to say: shown as the run's evaluation.json records it
        recorded = RunDir(args.run).evaluation() or {}  # what only training knew: why it stopped, where it started
        metrics = {**evaluate_run(args.run), **{key: recorded[key] for key in ("stop_reason", "started_from")
                                                 if recorded.get(key) is not None}}
    broken = [key for key, value in metrics.items() if isinstance(value, float) and not math.isfinite(value)]
    if broken:  # (JSON has no NaN or Infinity, and a non-finite NLL is no result)
        raise UserError(f"{args.run}: {', '.join(broken)} not finite ({metrics[broken[0]]}): the flow overflows on "
                        f"this data")
    if args.json:
        print(json.dumps(metrics))
    else:
        print("\n".join(table_lines(metrics)))
    line = verdict(metrics)
    if line:
        print(f"realnvp: warning: {line}", file=sys.stderr)
