"""``realnvp runs``: every run directory under a folder with its key metrics, to compare runs at a
glance (a table) or from a script (``--json``)."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

from realnvp.config import DataConfig
from realnvp.data.source import data_source
from realnvp.errors import UserError
from realnvp.evaluation.metrics import BASELINE, bits_per_dim
from realnvp.rundir import CONFIG, RunDir, read_json

# The table: one score per run in the unit a person reads for it (nats/example for vectors, bits/dim
# for images), the unit beside it, and the full-covariance Gaussian baseline in the same unit.
COLUMNS = ("name", "data", "steps", "test_nll", "unit", "gaussian_nll", "params", "stop_reason")
RAW = ("test_nll_nats", "bits_per_dim", BASELINE)  # --json also has these, as stored


def run_summary(run_dir: Path, root: Path) -> dict[str, Any]:
    """One row: from ``evaluation.json`` when the run finished, else what ``config.json`` and the last
    ``metrics.jsonl`` record say (a run still training or stopped early shows as unfinished). The
    table's columns (``COLUMNS``) and the numbers as stored (``RAW``, in nats where named so).

    Example:
        >>> row = run_summary(run_dir, run_dir.parent)
        >>> row["name"], row["data"], row["steps"]
        ('moons', 'moons', 60)
    """
    run = RunDir(run_dir)
    config = read_json(run / CONFIG) or {}
    data_cfg = config.get("data", {}) if isinstance(config.get("data"), dict) else {}
    row: dict[str, Any] = dict.fromkeys(COLUMNS + RAW)
    row["name"] = str(run_dir.relative_to(root)) if run_dir != root else run_dir.name
    if data_cfg.get("name"):
        row["data"] = data_source(DataConfig(name=str(data_cfg["name"]), path=str(data_cfg.get("path") or "")))
    evaluation = run.evaluation()
    if evaluation is None:
        records = run.metrics()
        row["steps"] = records[-1]["step"] if records else 0
        row["stop_reason"] = "unfinished (no evaluation.json)"
        return row
    row.update({key: evaluation.get(key) for key in RAW})
    row.update(data=evaluation.get("data", row["data"]), steps=evaluation.get("steps"),
               params=evaluation.get("n_params"), stop_reason=evaluation.get("stop_reason"))
    gaussian = row[BASELINE]
    if row["bits_per_dim"] is not None:  # an image run: bits/dim, the Gaussian (if any) converted alike
        row.update(test_nll=row["bits_per_dim"], unit="bits/dim")
        if gaussian is not None and evaluation.get("dim") and evaluation.get("n_levels"):
            row["gaussian_nll"] = bits_per_dim(gaussian, evaluation["dim"], evaluation["n_levels"])
    else:
        row.update(test_nll=row["test_nll_nats"], unit="nats/example", gaussian_nll=gaussian)
    return row


def list_runs(root: str | Path = "runs") -> list[dict[str, Any]]:
    """Summaries of every run (a directory holding ``config.json``) under ``root``, sorted by name.

    Example:
        >>> [row["name"] for row in list_runs(run_dir.parent)]  # as list_runs("runs") lists runs/*
        ['moons']
    """
    root = Path(root)
    if not os.path.isdir(root):  # never raises (a name too long for the file system is not found)
        raise UserError(f"runs folder not found: {root}")
    return [run_summary(p.parent, root) for p in sorted(root.rglob(CONFIG))]


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}" if math.isfinite(value) else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def format_table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table, one line per run, columns aligned.

    Example:
        >>> print(format_table([{"name": "a", "data": "moons", "steps": 3000, "test_nll": 1.2345678,
        ...                      "unit": "nats/example", "gaussian_nll": 2.5, "params": 12000,
        ...                      "stop_reason": "reached 3000 steps"}]))
        name  data   steps  test_nll  unit          gaussian_nll  params  stop_reason
        a     moons  3,000    1.2346  nats/example        2.5000  12,000  reached 3000 steps
    """
    cells = [list(COLUMNS)] + [[_cell(row.get(c)) for c in COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    numeric = {"steps", "test_nll", "gaussian_nll", "params"}
    lines = []
    for line in cells:
        parts = [v.rjust(w) if c in numeric and line is not cells[0] else v.ljust(w)
                 for c, v, w in zip(COLUMNS, line, widths, strict=True)]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def run(args: argparse.Namespace) -> None:
    """Print every run under ``args.dir`` as a table, or as one JSON list with ``--json``.

    Example:
        >>> from realnvp.cli.parser import build_parser
        >>> run(build_parser().parse_args(["runs", str(run_dir.parent)]))
        name   data   steps  test_nll  unit          gaussian_nll  params  stop_reason
        moons  moons     60  ...
    """
    rows = list_runs(args.dir)
    if args.json:
        print(json.dumps(rows))
    elif rows:
        print(format_table(rows))
    else:
        print(f"no runs under {args.dir} (a run is a folder with config.json; train one with realnvp train)",
              file=sys.stderr)
