"""``realnvp evaluate``: a run's metrics as an aligned table, or one JSON object with ``--json``."""

from __future__ import annotations

import argparse
import json

from realnvp.evaluation.metrics import evaluate_run


def run(args: argparse.Namespace) -> None:
    """Print the metrics of the run ``args.run``.

    Example:
        >>> from realnvp.cli.parser import build_parser
        >>> run(build_parser().parse_args(["evaluate", str(run_dir)]))
                             run: ...
                            data: moons
                             dim: 2
                   test_nll_nats: ...
                           steps: 60
        ...
    """
    metrics = evaluate_run(args.run)
    if args.json:
        print(json.dumps(metrics))
    else:
        for key, value in metrics.items():
            print(f"{key:>24}: {value}")
