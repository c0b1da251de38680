"""``realnvp score``: the log-likelihood of every example of the user's file under a trained run."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from realnvp.atomic import atomic_write_bytes
from realnvp.cli.common import check_output
from realnvp.errors import UserError
from realnvp.evaluation.scoring import LOG_LIKELIHOOD, LOG_LIKELIHOOD_DISCRETE, score, summary, to_csv


def run(args: argparse.Namespace) -> None:
    """Score ``args.input`` under ``args.run`` into the CSV ``args.output`` (``-``: standard output).

    Example:
        >>> from realnvp.cli.parser import build_parser
        >>> _ = (tmp / "points.csv").write_text("x,y\\n0.5,0.25\\n")
        >>> run(build_parser().parse_args(["score", str(run_dir), str(tmp / "points.csv"), "-o",
        ...                                str(tmp / "s.csv"), "--quiet"]))
        >>> (tmp / "s.csv").read_text().splitlines()[0]
        'row,log_likelihood_nats'
    """
    to_stdout = args.output == "-"
    if to_stdout and args.json:
        raise UserError("--json and -o - both write to standard output; use one of them")
    if not to_stdout:
        check_output(Path(args.output), (".csv",))
    columns = score(args.run, args.input)
    text = to_csv(columns)
    if to_stdout:
        sys.stdout.write(text)
    else:
        atomic_write_bytes(Path(args.output), text.encode())
    stats = summary(columns)
    if args.json:
        print(json.dumps(stats))
    if not args.quiet:
        where = "standard output" if to_stdout else args.output
        name, what = next((n, w) for n, w in ((LOG_LIKELIHOOD, "log-likelihood"),
                                              (LOG_LIKELIHOOD_DISCRETE, "discrete log-likelihood")) if n in columns)
        extra = (f", bits/dim mean {stats['bits_per_dim_mean']:.4f}" if "bits_per_dim_mean" in stats else "")
        print(f"scored {stats['n']} examples: {what} mean {stats[name + '_mean']:.4f} nats "
              f"(min {stats[name + '_min']:.4f}, max {stats[name + '_max']:.4f}){extra}; "
              f"wrote {where}", file=sys.stderr)
