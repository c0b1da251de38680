"""How long to train on a small table, chosen by K-fold cross-validation: a 20 % validation split of
100 rows is 20 rows, too noisy for early stopping to tell a better density from luck, and too many rows
to hold back from training. K flows train in lockstep, each on K-1 folds; every row is scored by the
flow that did not see it; the step with the lowest pooled NLL wins if it beats step 0 (the whitened
flow's Gaussian) by more than one paired standard error; the real run then trains on every row for
that many steps."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from realnvp.config import Config
from realnvp.data.columns import ColumnType, to_real_line
from realnvp.evaluation.metrics import log_prob_in_chunks
from realnvp.flow import Flow
from realnvp.models import build_model
from realnvp.training.prepared import first_layer_fit
from realnvp.training.step import fetch_batch, lr_factor, make_optimizer, set_schedule, train_step


@dataclass
class CrossValidation:
    """The outcome: the chosen number of steps, and the pooled held-out NLL at it and at step 0.

    Example:
        >>> CrossValidation(steps=40, folds=5, rows=100, nll=2.31, start_nll=2.52, paired_se=0.06).line()[-37:]
        'training on all 100 rows for 40 steps'
    """

    steps: int
    folds: int
    rows: int
    nll: float  # pooled held-out NLL per row at ``steps``
    start_nll: float  # ... at step 0
    paired_se: float  # standard error of the per-row difference between the two

    def line(self) -> str:
        """One line for the log: what was measured and what the run will do."""
        measured = (f"{self.folds}-fold cross-validation on {self.rows} rows: held-out NLL {self.nll:.4f} at step "
                    f"{self.steps} against {self.start_nll:.4f} at step 0 (paired standard error {self.paired_se:.4f})")
        if self.steps == 0:
            return f"{measured}: no step beat the untrained flow by more than that, keeping it (0 steps)"
        return f"{measured}: training on all {self.rows} rows for {self.steps} steps"


def settle_steps(cfg: Config, rows: torch.Tensor, log: Any, columns: tuple[ColumnType, ...] = ()) -> Config:
    """``cfg`` with ``train.steps`` chosen by ``cross_validate_steps`` on the training ``rows``, said in
    one line through ``log``; ``cfg`` itself is left as it was.

    Example:
        >>> from realnvp.config import load_config
        >>> cfg = load_config("vector", ["train.cv_folds=2", "train.steps=20", "train.eval_every=10",
        ...                              "model.hidden=8", "train.batch_size=32"])
        >>> settled = settle_steps(cfg, torch.randn(60, 3), log=lambda line: None)
        >>> settled.train.steps in (0, 10, 20), cfg.train.steps
        (True, 20)
    """
    result = cross_validate_steps(cfg, rows, columns)
    log(result.line())
    return replace(cfg, train=replace(cfg.train, steps=result.steps))


def cross_validate_steps(cfg: Config, rows: torch.Tensor, columns: tuple[ColumnType, ...] = ()) -> CrossValidation:
    """Train ``train.cv_folds`` flows of ``cfg`` in lockstep on K-1 folds of ``rows`` each, scoring the
    held-out fold every ``train.eval_every`` steps, up to ``train.steps``, ``train.patience`` evaluations
    without a better pooled NLL, or half of ``train.time_budget``; pick the number of steps. A table's
    ``columns`` types are those of the run (its discrete columns come dequantized in ``rows``).

    Example:
        >>> from realnvp.config import load_config
        >>> cfg = load_config("vector", ["train.cv_folds=2", "train.steps=20", "train.eval_every=10",
        ...                              "model.hidden=8", "model.whiten=true", "train.batch_size=32"])
        >>> result = cross_validate_steps(cfg, torch.randn(60, 3))
        >>> result.steps in (0, 10, 20), result.rows, result.folds
        (True, 60, 2)
    """
    t = cfg.train
    order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(t.seed))
    folds = [order[k::t.cv_folds] for k in range(t.cv_folds)]
    keep = [torch.cat([folds[j] for j in range(t.cv_folds) if j != k]) for k in range(t.cv_folds)]
    torch.manual_seed(t.seed)
    flows = [_fold_flow(cfg, rows[index], columns) for index in keep]
    optimizers = [make_optimizer(flow, cfg) for flow in flows]
    streams = [torch.Generator(device=rows.device).manual_seed(t.seed + k) for k in range(t.cv_folds)]
    curve = [_held_out(flows, rows, folds)]
    best, stale, step, start = 0, 0, 0, time.perf_counter()
    while step < t.steps and stale < max(t.patience, 1) and time.perf_counter() - start < t.time_budget / 2:
        for flow, optimizer, index, stream in zip(flows, optimizers, keep, streams, strict=True):
            set_schedule(flow, optimizer, t.lr, lr_factor(step, cfg))
            train_step(flow, optimizer, fetch_batch(rows[index], min(t.batch_size, len(index)), stream, 0, False), cfg)
        step += 1
        if step % t.eval_every == 0:
            curve.append(_held_out(flows, rows, folds))
            better = bool(curve[-1].mean() < curve[best].mean())
            best, stale = (len(curve) - 1, 0) if better else (best, stale + 1)
    return _choose(curve, best, t.eval_every, t.cv_folds)


def _fold_flow(cfg: Config, rows: torch.Tensor, columns: tuple[ColumnType, ...]) -> Flow:
    """A fresh flow whose first layer (the whitening, when the model whitens) is fitted on this fold's rows only."""
    fit_rows = rows.double().cpu().numpy()
    loc, scale = first_layer_fit(to_real_line(fit_rows, columns) if columns else fit_rows, whiten=cfg.model.whiten)
    return build_model(cfg.model, tuple(rows.shape[1:]), loc, scale, columns).to(rows.device).train()


def _held_out(flows: list[Flow], rows: torch.Tensor, folds: list[torch.Tensor]) -> torch.Tensor:
    """Each row's NLL under the flow that did not train on it (float64, +inf where not finite)."""
    nll = torch.empty(len(rows), dtype=torch.float64)
    for flow, index in zip(flows, folds, strict=True):
        flow.eval()
        nll[index.cpu()] = -log_prob_in_chunks(flow, rows[index]).double().cpu()
        flow.train()
    return nll.nan_to_num(nan=math.inf)


def _choose(curve: list[torch.Tensor], best: int, every: int, folds: int) -> CrossValidation:
    """Step 0 unless the best evaluation beats it by more than one paired standard error."""
    start, at_best = curve[0], curve[best]
    diff = (at_best - start).numpy()
    se = float(np.std(diff, ddof=1) / math.sqrt(len(diff))) if np.isfinite(diff).all() else math.inf
    gain = float(start.mean() - at_best.mean())
    chosen = best if gain > se else 0
    return CrossValidation(chosen * every, folds, len(start), float(curve[chosen].mean()), float(start.mean()),
                           se)
