"""Settings sized to the user's table: the ``vector`` preset (and ``realnvp train --data FILE`` without
a preset) picks the model, batch, evaluation cadence, regularisation and patience from the number of
rows and columns, so 100 rows and 1,000,000 rows both get a sensible run without flags. Settings the
user gave explicitly (``--set``, ``--steps``, ...) are never changed. Pure arithmetic: the data is
read once elsewhere (``realnvp.resolve``)."""

from __future__ import annotations

import math
from typing import Any

from realnvp.config import Config

# Seconds of training a default run may take (each benchmark table must finish within 3 minutes,
# evaluation and start-up included).
TIME_BUDGET = 120.0
# Tables with fewer rows (training + validation) choose their number of steps by K-fold cross-validation
# (realnvp.training.crossval) instead of a validation split of under 200 rows.
CV_ROWS, CV_FOLDS = 1000, 5


def vector_defaults(rows: int, dim: int, cross_validate: bool = True, clock: bool = True) -> dict[str, Any]:
    """The settings (``section.key`` -> value) for a table of ``rows`` training+validation rows and
    ``dim`` columns. The flow starts at the full-covariance Gaussian of all non-test rows (``whiten``)
    and can only move from it while held-out rows improve; tables under ``CV_ROWS`` rows get small
    networks, weight decay and full-data batches, and the number of steps from ``CV_FOLDS``-fold
    cross-validation (then every row trains); larger tables a validation split evaluated every few
    epochs for early stopping, more couplings and larger batches (narrow networks with weight decay
    from 5,000 to 50,000 rows of more than 2 columns, wider ones above); tables of more than 2
    columns a learned linear layer before each coupling; all within
    ``TIME_BUDGET`` seconds, larger tables annealing with that clock (``clock=False``, no time budget:
    a cosine over a number of steps). ``cross_validate=False``: a validation split whatever the size.

    Example:
        >>> small, large = vector_defaults(120, 13), vector_defaults(800_000, 13)
        >>> small["model.hidden"], small["train.batch_size"], small["train.eval_every"], small["train.cv_folds"]
        ((32, 32), 96, 10, 5)
        >>> large["model.hidden"], large["train.batch_size"], large["train.eval_every"]
        ((256, 256), 512, 500)
        >>> mid = vector_defaults(10_000, 32)  # narrow, slower, decayed; a linear layer before each coupling
        >>> mid["model.hidden"], mid["train.lr"], mid["train.weight_decay"], mid["model.linear"]
        ((32, 32), 0.0005, 0.001, True)
    """
    small = cross_validate and rows < CV_ROWS  # every row trains, the folds decide how long
    val_fraction = 0.0 if small else 0.2 if rows < 2000 else 0.1
    n_train = rows - rows // CV_FOLDS if small else rows - int(round(val_fraction * rows))
    # 5,000-50,000 rows of more than 2 columns: narrow conditioners, a lower rate and weight decay
    # generalise better than wide ones (measured on seed-1 tables and on a 16-D Gaussian mixture).
    mid = dim > 2 and 5000 <= rows < 50_000
    width = 32 if rows < 1000 or mid else 64 if rows < 5000 else 128 if rows < 50_000 else 256
    couplings = 4 if rows < 1000 else 6 if rows < 5000 else 8
    couplings = max(couplings, 8) if dim == 2 and rows >= 1000 else couplings
    if 2 * dim > rows:  # columns near or above the rows: the (shrinkage) Gaussian start and a small flow
        width, couplings = 16, 2
    batch = min(n_train, 128 if rows < 5000 else 256 if rows < 50_000 else 512)
    steps_per_epoch = max(1, math.ceil(n_train / batch))
    eval_every = int(min(500, max(10, 5 * steps_per_epoch)))
    return {
        "data.val_fraction": val_fraction,
        "model.whiten": True,
        # A defensive share of the density (a Student-t over the rows) caps what an outlying held-out row costs.
        "model.defensive_df": 2.0,
        "model.batch_norm": False,
        "model.mask": "random" if dim > 2 else "alternating",
        # A learned linear (LU) layer before each coupling turns the directions the fixed masks split.
        "model.linear": dim > 2,
        "model.hidden": (width, width),
        "model.n_couplings": couplings,
        # Rational-quadratic spline couplings: ahead of affine ones on 3 of the 5 real design tables, a tie
        # on one (benchmarks/RESULTS.md, "Real tables", design).
        "model.coupling": "spline",
        "train.batch_size": batch,
        "train.lr": 5e-4 if mid else 1e-3,
        # The cross-validated number of steps is the real run's length: a cosine schedule would depend on it.
        # Larger tables anneal with the clock, so the whole time budget trains on any machine.
        "train.lr_schedule": "constant" if small else "cosine_time" if clock else "cosine",
        "train.warmup_steps": 0 if small else min(100, eval_every),
        "train.weight_decay": 1e-4 if rows < 5000 else 1e-3 if mid else 0.0,
        "train.steps": int(min(6000, max(2000, 200 * steps_per_epoch))) if small or not clock else 100_000,
        "train.eval_every": eval_every,
        # Validation NLL is noisy and flows on tables improve slowly: the best weights are kept whatever
        # comes after them, so under a time budget a long patience costs nothing; without one it bounds the run.
        "train.patience": 10 if small else 20 if clock else 10 if rows < 5000 else 6,
        "train.cv_folds": CV_FOLDS if small else 0,
        "train.time_budget": TIME_BUDGET,
    }


def autosize(cfg: Config, explicit: set[str], rows: int, dim: int) -> tuple[Config, str]:
    """``cfg`` with ``vector_defaults`` for a table of ``rows`` training+validation rows and ``dim``
    modelled columns applied, except the ``explicit`` settings, and one line saying what was chosen. An
    explicit ``train.steps`` turns cross-validation off (those steps run, with a validation split).

    Example:
        >>> cfg, line = autosize(Config(), explicit={"train.lr"}, rows=120, dim=4)
        >>> cfg.model.hidden, cfg.train.batch_size, cfg.train.lr  # lr stays the user's
        ((32, 32), 96, 0.001)
        >>> line
        'defaults for 120 rows x 4 columns: ... (--set KEY=VALUE overrides any)'
    """
    # The user's number of steps is run as given (with a validation split), not cross-validated.
    clock = "train.time_budget" not in explicit or cfg.train.time_budget > 0
    defaults = vector_defaults(rows, dim, cross_validate="train.steps" not in explicit, clock=clock)
    chosen = {key: value for key, value in defaults.items() if key not in explicit}
    raw = cfg.to_dict()
    for key, value in chosen.items():
        section, _, name = key.partition(".")
        raw[section][name] = value
    cfg = Config.from_dict(raw, "defaults")
    words = ", ".join(f"{key.partition('.')[2]}={_show(value)}" for key, value in chosen.items())
    return cfg, f"defaults for {rows} rows x {dim} columns: {words} (--set KEY=VALUE overrides any)"


def capped_batch(batch_size: int, n_train: int) -> tuple[int, str | None]:
    """``train.batch_size`` lowered to the ``n_train`` training rows when it is larger (a batch larger
    than the data would only repeat rows), and the line that says so (``None`` when unchanged).

    Example:
        >>> capped_batch(256, 100)
        (100, 'train.batch_size 256 is more than the 100 training rows: using 100')
    """
    if batch_size <= n_train:
        return batch_size, None
    return max(1, n_train), f"train.batch_size {batch_size} is more than the {n_train} training rows: using {n_train}"


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value).lower() if isinstance(value, bool) else str(value)
