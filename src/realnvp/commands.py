"""The ``report``, ``score``, ``runs`` and ``completion`` subcommands: looking at runs, using them on
new data, tab completion. ``register`` adds them to the ``realnvp`` parser; the work itself lives in
report.py, scoring.py, runs.py and completion.py."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

RAW = argparse.RawDescriptionHelpFormatter

REPORT_EXAMPLES = """examples:
  realnvp report runs/moons                     # writes runs/moons/report.html
  realnvp report runs/digits -o digits.html     # anywhere you like; open it in any browser
The page is one self-contained file: pictures embedded, no scripts, nothing fetched from the network."""

SCORE_EXAMPLES = """examples:
  realnvp score runs/moons points.csv -o scores.csv     # vectors: .npy, .npz or .csv [examples, features]
  realnvp score runs/digits images/ -o scores.csv       # image runs: a folder of images or an .npy [N, C, H, W]
  realnvp score runs/moons points.npy -o - --quiet      # CSV on standard output
  realnvp score runs/moons points.npy -o s.csv --json   # and a one-line JSON summary on standard output
Columns: row (input order), log_likelihood_nats, and bits_per_dim for image runs. Higher likelihood
means more typical of the training data, but see docs/scoring.md before using it to flag outliers."""

COMPLETION_EXAMPLES = """examples:
  eval "$(realnvp completion bash)"                      # this shell; add the line to ~/.bashrc to keep it
  autoload -U bashcompinit && bashcompinit && eval "$(realnvp completion bash)"   # zsh"""

RUNS_EXAMPLES = """examples:
  realnvp runs                 # every run under runs/
  realnvp runs experiments/    # another folder (searched recursively)
  realnvp runs --json          # one JSON list, for scripts"""


def _cmd_report(args: argparse.Namespace) -> None:
    from realnvp.report import build_report

    path = build_report(args.run, args.output)
    if not args.quiet:
        print(f"wrote {path}", file=sys.stderr)


def _cmd_score(args: argparse.Namespace) -> None:
    from realnvp.checkpoint import atomic_write_bytes
    from realnvp.cli import _check_output
    from realnvp.errors import UserError
    from realnvp.scoring import score, summary, to_csv

    to_stdout = args.output == "-"
    if to_stdout and args.json:
        raise UserError("--json and -o - both write to standard output; use one of them")
    if not to_stdout:
        _check_output(Path(args.output), (".csv",))
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
        extra = (f", bits/dim mean {stats['bits_per_dim_mean']:.4f}" if "bits_per_dim_mean" in stats else "")
        print(f"scored {stats['n']} examples: log-likelihood mean {stats['log_likelihood_nats_mean']:.4f} nats "
              f"(min {stats['log_likelihood_nats_min']:.4f}, max {stats['log_likelihood_nats_max']:.4f}){extra}; "
              f"wrote {where}", file=sys.stderr)


def _cmd_runs(args: argparse.Namespace) -> None:
    from realnvp.runs import format_table, list_runs

    rows = list_runs(args.dir)
    if args.json:
        print(json.dumps(rows))
    elif rows:
        print(format_table(rows))
    else:
        print(f"no runs under {args.dir} (a run is a folder with config.json; train one with realnvp train)",
              file=sys.stderr)


def _cmd_completion(args: argparse.Namespace) -> None:
    from realnvp.cli import build_parser
    from realnvp.completion import bash_script
    from realnvp.config import preset_names

    print(bash_script(build_parser(), preset_names()), end="")


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``report``, ``score``, ``runs`` and ``completion`` to the ``realnvp`` subcommand parser ``sub``.

    Example:
        >>> parser = argparse.ArgumentParser(prog="realnvp")
        >>> register(parser.add_subparsers(dest="command"))
        >>> parser.parse_args(["score", "runs/moons", "x.csv", "-o", "s.csv"]).output
        's.csv'
    """
    p = sub.add_parser("report", help="one self-contained HTML page of a run", description="Write an HTML "
                       "report of a run: metrics, configuration, training curves, samples beside data, the "
                       "log-density or temperature grids, the layer-by-layer animation.",
                       epilog=REPORT_EXAMPLES, formatter_class=RAW)
    p.add_argument("run", help="run directory")
    p.add_argument("-o", "--output", help="the .html file to write (default RUN/report.html)")
    p.add_argument("--quiet", action="store_true", help="print nothing on success")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("score", help="per-example log-likelihood (and bits/dim) of your data",
                       description="Score every example of a file or image folder under a trained run.",
                       epilog=SCORE_EXAMPLES, formatter_class=RAW)
    p.add_argument("run", help="run directory")
    p.add_argument("input", help=".npy/.npz/.csv of vectors, or for image runs a folder of images or an .npy")
    p.add_argument("-o", "--output", required=True, help="the .csv to write, or - for standard output")
    p.add_argument("--json", action="store_true", help="print a one-line JSON summary (count, mean, min, max)")
    p.add_argument("--quiet", action="store_true", help="no summary message")
    p.set_defaults(func=_cmd_score)

    p = sub.add_parser("runs", help="list runs with their key metrics", description="List every run "
                       "directory under DIR with data, steps, test NLL, bits/dim, parameters and why it stopped.",
                       epilog=RUNS_EXAMPLES, formatter_class=RAW)
    p.add_argument("dir", nargs="?", default="runs", help="folder holding runs (default runs/)")
    p.add_argument("--json", action="store_true", help="print one JSON list instead of a table")
    p.set_defaults(func=_cmd_runs)

    p = sub.add_parser("completion", help="print a shell completion script", description="Tab completion of "
                       "commands, options, presets and files, for bash (and zsh through bashcompinit).",
                       epilog=COMPLETION_EXAMPLES, formatter_class=RAW)
    p.add_argument("shell", choices=("bash",), help="bash (zsh: load it through bashcompinit)")
    p.set_defaults(func=_cmd_completion)
