"""``realnvp train``: train, then evaluate the best weights into evaluation.json and draw the pictures."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from realnvp.autoconfig import autosize, cap_batch, fit_rows
from realnvp.config import Config, check_settings, load_config
from realnvp.data import IMAGE_DATASETS
from realnvp.errors import UserError
from realnvp.evaluation.metrics import evaluate_run
from realnvp.rundir import EVALUATION, RunDir
from realnvp.training.distributed import teardown
from realnvp.training.loop import train
from realnvp.viz.pictures import write_pictures


def overrides_from(args: argparse.Namespace) -> list[str]:
    """The ``--set`` list with the shortcut flags (``--data``, ``--steps``, ...) appended as settings.

    Example:
        >>> from realnvp.cli.parser import build_parser
        >>> overrides_from(build_parser().parse_args(["train", "moons", "--out", "x", "--steps", "5"]))
        ['train.steps=5']
    """
    overrides = list(args.set or [])
    if args.data:  # an image preset reads its dataset from the path; anything else reads vectors
        image = load_config(args.config or "vector", overrides).data.name in IMAGE_DATASETS
        overrides += ([] if image else ["data.name=file"]) + [f"data.path={args.data}"]
    for flag, key in ((args.test_data, "data.test_path"), (args.context_columns, "data.context_columns"),
                      (args.steps, "train.steps"),
                      (args.time_budget, "train.time_budget"),
                      (args.seed, "train.seed"), (args.device, "train.device")):
        if flag is not None:
            overrides.append(f"{key}={flag}")
    if args.compile is not None:
        overrides.append(f"train.compile={str(args.compile).lower()}")
    return overrides


def configure(args: argparse.Namespace, say: Any) -> Config:
    """The run's settings: the preset with ``--set`` and the flags; the ``vector`` preset (or no preset
    with ``--data``) sized to the table by ``realnvp.autoconfig``, the chosen values said in one line.

    Example:
        >>> import numpy as np
        >>> from realnvp.cli.parser import build_parser
        >>> np.save(tmp / "t.npy", np.random.default_rng(0).normal(size=(150, 4)).astype(np.float32))
        >>> args = build_parser().parse_args(["train", "--data", str(tmp / "t.npy"), "--out", "x", "--steps", "50"])
        >>> cfg = configure(args, say=print)
        defaults for 120 rows x 4 columns: val_fraction=0.2, ... (--set KEY=VALUE overrides any)
        >>> cfg.train.steps, cfg.model.whiten
        (50, True)
    """
    if args.config is None and not args.data:
        raise UserError("name a preset or a .toml config, or give --data FILE (see: realnvp train --help)")
    overrides = overrides_from(args)
    cfg = load_config(args.config or "vector", overrides)
    check_settings(cfg)  # before autoconfig does arithmetic with them (a NaN fraction, a zero size)
    if cfg.data.name != "file" or cfg.model.kind != "vector":
        return cfg
    if (args.config or "vector") == "vector":
        cfg, line = autosize(cfg, {item.partition("=")[0].strip() for item in overrides})
        say(line)
    rows = fit_rows(cfg.data)[0]
    note = cap_batch(cfg, rows - int(round(cfg.data.val_fraction * rows)))
    if note:
        say(note)
    return cfg


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
    notes: list[str] = []  # the chosen defaults: said once the data and --out have passed train's checks
    cfg = configure(args, notes.append)
    run_dir = RunDir(args.out)
    with run_dir.training():  # the lock train takes is held through evaluation.json and the pictures
        result = train(cfg, run_dir.path, resume=args.resume, progress=not args.quiet, log=say, notes=tuple(notes))
        teardown(result.dist)
        if not result.dist.is_main:  # under torchrun only rank 0 evaluates and draws
            return
        trained = result.to_cpu()  # the best weights, as best.pt holds them: evaluated and drawn without a reload
        metrics = {**evaluate_run(run_dir.path, trained), "stop_reason": result.stop_reason}
        run_dir.write_evaluation(metrics)
        if not args.no_pictures:
            for path in write_pictures(run_dir.path, trained=trained):
                say(f"wrote {path}")
    if "bits_per_dim" in metrics:
        say(f"test {metrics['bits_per_dim']:.4f} bits/dim ({metrics['bits_per_dim_iw']:.4f} with the "
            f"{metrics['test_draws']}-sample bound)")
    say(f"test NLL {metrics['test_nll_nats']:.4f} nats/example, "
        f"inverse error {metrics['inverse_max_abs_error']:.2e}; metrics in {run_dir / EVALUATION}")
    if args.json:
        print(json.dumps(metrics))
