"""``realnvp train``: resolve the settings (``realnvp.resolve``, reading the data once), train, then
evaluate the best weights into evaluation.json and draw the pictures from the same data."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from realnvp.cli.common import check_name_lengths
from realnvp.cli.evaluate import verdict
from realnvp.errors import UserError
from realnvp.evaluation.metrics import BASELINE, evaluate_run
from realnvp.resolve import Resolved, resolve
from realnvp.rundir import EVALUATION, RunDir
from realnvp.training.distributed import teardown
from realnvp.training.loop import train
from realnvp.viz.pictures import write_pictures


def overrides_from(args: argparse.Namespace) -> list[str]:
    """The ``--set`` list with the shortcut flags (``--steps``, ``--seed``, ...) appended as settings
    (``--data`` is ``resolve``'s ``data_path``).

    Example:
        >>> from realnvp.cli.parser import build_parser
        >>> overrides_from(build_parser().parse_args(["train", "moons", "--out", "x", "--steps", "5"]))
        ['train.steps=5']
    """
    overrides = list(args.set or [])
    for flag, key in ((args.test_data, "data.test_path"), (args.context_columns, "data.context_columns"),
                      (args.steps, "train.steps"),
                      (args.time_budget, "train.time_budget"),
                      (args.seed, "train.seed"), (args.device, "train.device")):
        if flag is not None:
            overrides.append(f"{key}={flag}")
    if args.compile is not None:
        overrides.append(f"train.compile={str(args.compile).lower()}")
    return overrides


def configure(args: argparse.Namespace) -> Resolved:
    """The run's settings and data (``realnvp.resolve``): the preset with ``--set`` and the flags; the
    ``vector`` preset (or no preset with ``--data``) sized to the table.

    Example:
        >>> import numpy as np
        >>> from realnvp.cli.parser import build_parser
        >>> np.save(tmp / "t.npy", np.random.default_rng(0).normal(size=(150, 4)).astype(np.float32))
        >>> args = build_parser().parse_args(["train", "--data", str(tmp / "t.npy"), "--out", "x", "--steps", "50"])
        >>> run = configure(args)
        >>> run.notes[1]
        'defaults for 120 rows x 4 columns: val_fraction=0.2, ... (--set KEY=VALUE overrides any)'
        >>> run.cfg.train.steps, run.cfg.model.whiten
        (50, True)
    """
    if args.config is None and not args.data:
        raise UserError("name a preset or a .toml config, or give --data FILE (see: realnvp train --help)")
    preset = args.config or "vector"
    return resolve(preset, overrides_from(args), args.data or "", sized=preset == "vector")


def run(args: argparse.Namespace) -> None:
    """Train the run ``args`` describe, evaluate it and draw its pictures.

    Example:
        >>> from realnvp.cli.parser import build_parser
        >>> run(build_parser().parse_args(["train", "moons", "--out", str(tmp / "run"), "--steps", "20",
        ...     "--quiet", "--no-pictures", "--set", "model.hidden=8", "--set", "data.n_train=500"]))
        >>> sorted(path.name for path in (tmp / "run").iterdir())
        ['best.pt', 'checkpoint.pt', 'config.json', 'evaluation.json', 'metrics.jsonl']
    """
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr))
    check_name_lengths(Path(args.out), "cannot write to run directory", room=0)  # first: else a traceback
    resolved = configure(args)  # its notes are said once the data and --out have passed train's checks
    run_dir = RunDir(args.out)
    with run_dir.training():  # the lock train takes is held through evaluation.json and the pictures
        result = train(resolved.cfg, run_dir.path, resume=args.resume, progress=not args.quiet, log=say,
                       notes=(*resolved.notes, *start_lines(resolved)), splits=resolved.splits)
        teardown(result.dist)
        if not result.dist.is_main:  # under torchrun only rank 0 evaluates and draws
            return
        trained = result.to_cpu()  # the best weights, as best.pt holds them: evaluated and drawn without a reload
        metrics = {**evaluate_run(run_dir.path, trained, resolved.splits), "stop_reason": result.stop_reason,
                   **({"started_from": result.started_from} if result.started_from else {})}
        run_dir.write_evaluation(metrics)
        if not args.no_pictures:
            for path in write_pictures(run_dir.path, trained=trained, splits=resolved.splits):
                say(f"wrote {path}")
    if "bits_per_dim" in metrics:
        say(f"test {metrics['bits_per_dim']:.4f} bits/dim ({metrics['bits_per_dim_iw']:.4f} with the "
            f"{metrics['test_draws']}-sample bound)")
    say(f"test NLL {metrics['test_nll_nats']:.4f} nats/example, "
        f"inverse error {metrics['inverse_max_abs_error']:.2e}; metrics in {run_dir / EVALUATION}")
    for line in table_summary(metrics):
        say(line)
    if args.json:
        print(json.dumps(metrics))


def start_lines(resolved: Resolved) -> list[str]:
    """What a run says before its first step, beside the settings: the sizes of its splits (training
    says the model's number of parameters once it has built it).

    Example:
        >>> start_lines(resolve("moons", ["data.n_train=2000", "model.hidden=8"]))
        ['data: 1,800 training, 200 validation, 10,000 test rows']
    """
    splits, cfg = resolved.splits, resolved.cfg
    val = (f"{len(splits.val):,} validation" if len(splits.val) else
           f"no validation split (steps chosen by {cfg.train.cv_folds}-fold cross-validation)" if cfg.train.cv_folds
           else "no validation split")
    unit = "images" if splits.n_levels else "rows"
    return [f"data: {len(splits.train):,} training, {val}, {len(splits.test):,} test {unit}"]


INVERSE_WARNING = 1e-3  # relative to a column's spread: a flow that inverts worse samples another density


def table_summary(metrics: dict[str, Any]) -> list[str]:
    """The lines a table run ends with: the Gaussians beside the flow, and a warning when the flow
    inverts test rows poorly (its samples then do not follow the density it scores).

    Example:
        >>> for line in table_summary({"test_nll_nats": 1.0, "baseline_gaussian_test_nll_nats": 1.5,
        ...                            "baseline_shrinkage_test_nll_nats": 1.6, "inverse_max_rel_error": 0.02}):
        ...     print(line)
        the Gaussians of the same rows score 1.5000 nats (maximum likelihood) and 1.6000 (shrinkage)
        warning: the flow inverts test rows only to 2.0e-02 of a column's spread: its samples may not ...
    """
    lines = []
    if BASELINE in metrics:
        lines.append(f"the Gaussians of the same rows score {metrics[BASELINE]:.4f} nats (maximum likelihood) and "
                     f"{metrics['baseline_shrinkage_test_nll_nats']:.4f} (shrinkage)")
        lines += [v for v in [verdict(metrics)] if v]
    if metrics.get("inverse_max_rel_error", 0.0) > INVERSE_WARNING:
        lines.append(f"warning: the flow inverts test rows only to {metrics['inverse_max_rel_error']:.1e} of a "
                     f"column's spread: its samples may not follow the density it scores")
    return lines
