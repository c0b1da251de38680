"""Conditional Real NVP (issue 16), measured through the library's own training (``realnvp.training.train``).

1. Digits: the ``digits`` preset (unconditional) and ``digits-cond`` (class-conditional) with the same
   time budget and seed; test bits/dim of each (the conditional one is ``-log2 p(x | y)`` per dim), and
   how often scikit-learn classifiers trained on the real training digits (64 pixels, 0..16) recognise
   the requested class in conditional samples at temperature 0.7 (100 per class).
2. Rotated moons (``rotated-moons`` preset, data/rotated.py): test NLL of ``p(x | theta)`` against the
   exact conditional entropy ``H(X | theta)`` (Monte Carlo over the known mixture density).

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python -m benchmarks.conditional --budget 240 --out /tmp/cond \
        --jsonl benchmarks/conditional_results.jsonl
Each result is one JSON line (with the machine's load while it ran); --quick is a smoke run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.svm import SVC

from benchmarks.drivers import module_command
from benchmarks.rawlines import append_jsonl, machine
from realnvp.config import load_config
from realnvp.data import load_splits
from realnvp.data.rotated import rotated_moons_entropy
from realnvp.evaluation.metrics import evaluate_run
from realnvp.training import train


def _train(preset: str, out: Path, budget: float, quick: bool) -> tuple[Any, dict[str, Any], float]:
    overrides = [f"train.time_budget={budget}", "train.seed=0"]
    if quick:
        overrides += ["train.steps=20", "train.eval_every=10"]
    cfg = load_config(preset, overrides)
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    result = train(cfg, out, progress=False, log=lambda *a: None)
    return result, evaluate_run(out), time.perf_counter() - start


def _classifiers(cfg_data: Any) -> tuple[dict[str, Any], dict[str, float]]:
    """LogisticRegression and an RBF SVC fit on the real training digits; their real test accuracy."""
    splits = load_splits(cfg_data, labels=True)
    x, y = splits.train.reshape(len(splits.train), -1), splits.train_c
    models = {"logistic": LogisticRegression(max_iter=5000).fit(x, y), "svc": SVC(gamma="scale").fit(x, y)}
    test_x = splits.test.reshape(len(splits.test), -1)
    return models, {name: float((m.predict(test_x) == splits.test_c).mean()) for name, m in models.items()}


def digits(budget: float, out: Path, quick: bool) -> list[dict[str, Any]]:
    rows = []
    for preset in ("digits", "digits-cond"):
        result, metrics, wall = _train(preset, out / preset, budget, quick)
        rows.append({"task": "digits", "preset": preset, "budget_s": budget, "wall_s": round(wall, 1),
                     "steps": result.step, "stop_reason": result.stop_reason,
                     "test_bits_per_dim": metrics["bits_per_dim"], "test_bits_per_dim_iw": metrics["bits_per_dim_iw"],
                     "train_bits_per_dim": metrics["train_bits_per_dim"], "n_params": metrics["n_params"]})
        if preset == "digits-cond":
            models, real_acc = _classifiers(load_config(preset).data)
            torch.manual_seed(0)
            labels = torch.arange(10).repeat_interleave(100)
            y = result.flow.sample(len(labels), temperature=0.7, context=labels).clamp(0, 1).numpy()
            pixels = np.minimum(np.floor(y * 17), 16).reshape(len(y), -1)
            for name, model in models.items():
                hits = model.predict(pixels) == labels.numpy()
                rows[-1][f"{name}_sample_accuracy_t0.7"] = float(hits.mean())
                rows[-1][f"{name}_per_class_t0.7"] = [float(hits[labels.numpy() == k].mean()) for k in range(10)]
                rows[-1][f"{name}_real_test_accuracy"] = real_acc[name]
    return rows


def moons(budget: float, out: Path, quick: bool) -> dict[str, Any]:
    result, metrics, wall = _train("rotated-moons", out / "rotated-moons", budget, quick)
    entropy, se = rotated_moons_entropy(n=5000 if quick else 50000)
    return {"task": "rotated-moons", "preset": "rotated-moons", "budget_s": budget, "wall_s": round(wall, 1),
            "steps": result.step, "stop_reason": result.stop_reason, "test_nll_nats": metrics["test_nll_nats"],
            "true_conditional_entropy_nats": entropy, "entropy_mc_se": se,
            "gap_nats": metrics["test_nll_nats"] - entropy, "n_params": metrics["n_params"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=240.0, help="seconds of training per run")
    parser.add_argument("--out", default="/tmp/realnvp-conditional", help="folder for the run directories")
    parser.add_argument("--jsonl", help="append each result line to this file")
    parser.add_argument("--only", choices=("digits", "moons"), help="one of the two tasks")
    parser.add_argument("--quick", action="store_true", help="20 steps each: a smoke run")
    args = parser.parse_args()
    host = machine()
    record = {"cpu": host["cpu"], "cpu_flags": host["cpu_flags"], "cores": os.cpu_count(),
               "threads": torch.get_num_threads(), "load_before": os.getloadavg()[0]}
    rows = [] if args.only == "moons" else digits(args.budget, Path(args.out), args.quick)
    if args.only != "digits":
        rows.append(moons(args.budget, Path(args.out), args.quick))
    for row in rows:
        options = [f"--{k} {v}" for k, v in (("budget", args.budget), ("only", args.only)) if v]
        row.update(record, load_after=os.getloadavg()[0], quick=args.quick,
                   date=time.strftime("%Y-%m-%d %H:%M"), command=" ".join([*module_command("conditional"), *options]))
        print(json.dumps(row))
        append_jsonl(Path(args.jsonl) if args.jsonl else None, row)


if __name__ == "__main__":
    main()
