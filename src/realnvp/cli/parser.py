"""The ``realnvp`` argument parser: every subcommand, its options and examples. Argparse only, so
``--help`` and tab completion answer without importing torch; each subcommand's ``command`` names
the module of ``realnvp.cli`` that runs it."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import NoReturn

from realnvp.config import preset_names
from realnvp.errors import UserError

RAW = argparse.RawDescriptionHelpFormatter
DEVICES = ("auto", "cpu", "cuda")
# Bounds checked before anything is allocated (docs/bad-input.md): samples per `sample` call, points per
# animation, and seeds (numpy's RandomState and torch take at most 2**32 - 1).
MAX_SAMPLES, MAX_ANIMATION_POINTS, MAX_SEED = 10_000_000, 100_000, 2**31 - 1


def int_in(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number from ``low`` to ``high``, else a one-line error naming the range.

    Example:
        >>> int_in(1, 10)("3")
        3
        >>> int_in(1, 10)("99")
        Traceback (most recent call last):
        ...
        argparse.ArgumentTypeError: must be from 1 to 10, got 99
    """
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low:,} to {high:,}, got {text}")
        return value
    return parse

EXAMPLES = """examples:
  realnvp train moons --out runs/moons              # the default 2-D job, with pictures
  realnvp train vector --data my.npy --out runs/my  # your own vectors, any dimension
  realnvp evaluate runs/moons --json
  realnvp sample runs/moons -n 2000 --temperature 0.8 -o samples.png
  realnvp animate runs/moons -o layers.gif
  realnvp train digits --out runs/digits            # 8x8 digits, multi-scale image model, bits/dim
  realnvp train mnist-small --data mnist10k.npz --out runs/mnist
  realnvp sample runs/digits --temperature 0.7 -o grid.png
  realnvp report runs/moons                         # one self-contained HTML page of the run
  realnvp score runs/moons points.csv -o scores.csv # per-example log-likelihood of your data
  realnvp runs                                      # compare every run under runs/
exit codes: 0 success, 2 bad input (one-line message), 130 interrupted"""

EVALUATE_EXAMPLES = """examples:
  realnvp evaluate runs/moons          # a table: test NLL (bits/dim for images), inverse error, parameters
  realnvp evaluate runs/moons --json   # one JSON object, e.g. for jq .test_nll_nats"""
SAMPLE_EXAMPLES = """examples:
  realnvp sample runs/moons -o samples.png                     # 2000 samples beside the training data
  realnvp sample runs/moons -n 500 --temperature 0.7 -o s.npy  # the array [n, D]
  realnvp sample runs/digits --temperature 0.7 -o grid.png     # image runs: a grid (64 by default)
  realnvp sample runs/digits -n 1000 -o pixels.npy --quiet     # integer pixels [n, C, H, W]
  realnvp sample runs/digits-cond --class 3 -n 64 -o threes.png  # a conditional run: one class
  realnvp sample runs/digits-cond -o classes.png               # ... or a grid with one row per class
  realnvp sample runs/rotated --context 1.2 -o s.png           # vectors given their context columns"""
ANIMATE_EXAMPLES = """examples:
  realnvp animate runs/moons -o layers.gif          # base samples bent into the moons, layer by layer
  realnvp animate runs/moons -n 3000 -o layers.mp4  # .mp4 needs ffmpeg
  realnvp animate runs/digits -o layers.gif         # image runs: 16 samples turning into digits"""
REPORT_EXAMPLES = """examples:
  realnvp report runs/moons                     # writes runs/moons/report.html
  realnvp report runs/digits -o digits.html     # anywhere you like; open it in any browser
The page is one self-contained file: pictures embedded, no scripts, nothing fetched from the network."""
SCORE_EXAMPLES = """examples:
  realnvp score runs/moons points.csv -o scores.csv     # vectors: .npy, .npz or .csv [examples, features]
  realnvp score runs/digits images/ -o scores.csv       # image runs: a folder of images or an .npy [N, C, H, W]
  realnvp score runs/moons points.npy -o - --quiet      # CSV on standard output
  realnvp score runs/moons points.npy -o s.csv --json   # and a one-line JSON summary on standard output
Columns: row (input order), then for vector runs log_likelihood_nats (the density log p(x)), for image
runs log_likelihood_discrete_nats (log P of the integer pixels, a bound over dequantizations) and
bits_per_dim. Higher likelihood means more typical of the training data, but see docs/scoring.md
before using it to flag outliers."""
RUNS_EXAMPLES = """examples:
  realnvp runs                 # every run under runs/
  realnvp runs experiments/    # another folder (searched recursively)
  realnvp runs --json          # one JSON list, for scripts"""
COMPLETION_EXAMPLES = """examples:
  eval "$(realnvp completion bash)"                      # this shell; add the line to ~/.bashrc to keep it
  autoload -U bashcompinit && bashcompinit && eval "$(realnvp completion bash)"   # zsh"""


class Parser(argparse.ArgumentParser):
    """Usage mistakes (unknown option, bad value) end like any other bad input: one line, exit 2.

    Example:
        >>> build_parser().parse_args(["sample"])
        Traceback (most recent call last):
        ...
        realnvp.errors.UserError: the following arguments are required: run, -o/--output (see: realnvp sample --help)
    """

    def error(self, message: str) -> NoReturn:
        raise UserError(f"{message} (see: {self.prog} --help)")


def _add(sub: argparse._SubParsersAction, name: str, help: str, epilog: str, **kwargs: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help, description=kwargs.pop("description", help[:1].upper() + help[1:] + "."),
                       epilog=epilog, formatter_class=RAW)
    p.set_defaults(command=name)
    return p


def _train(sub: argparse._SubParsersAction) -> None:
    p = _add(sub, "train", "train a preset or a TOML config", EXAMPLES)
    p.add_argument("config", nargs="?", help=f"preset ({', '.join(preset_names())}) or a .toml file; "
                   "with --data and no preset: vector, sized to your table")
    p.add_argument("--out", required=True, help="run directory (created)")
    p.add_argument("--data", help="train on your own vectors: .npy, .npz or .csv [examples, features]; "
                   "with an image preset: the dataset's folder or an .npz with x_train and x_test")
    p.add_argument("--test-data", help="a held-out file (or image folder) as the test split, instead of "
                   "splitting --data")
    p.add_argument("--context-columns", metavar="I,J", help="a conditional model of a table: these columns "
                   "(0-based) are the context, the flow models the others given them (data.context_columns)")
    p.add_argument("--steps", type=int, help="training steps (train.steps)")
    p.add_argument("--time-budget", type=float, help="stop after this many seconds of training")
    p.add_argument("--seed", type=int, help="model initialisation and batch-order seed")
    p.add_argument("--device", choices=DEVICES, help="where to train (default auto)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a setting, e.g. model.hidden=256,256")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction,
                   help="torch.compile the model for training (default: the preset's train.compile)")
    p.add_argument("--no-pictures", action="store_true", help="skip samples.png, density.png and animation.gif")
    p.add_argument("--quiet", action="store_true", help="no progress bar or messages")
    p.add_argument("--json", action="store_true", help="print the final metrics as one JSON line")


def _looking(sub: argparse._SubParsersAction) -> None:
    """``evaluate``, ``sample`` and ``animate``: the commands that use a trained run."""
    p = _add(sub, "evaluate", "test/train NLL, inverse error, parameter count of a run", EVALUATE_EXAMPLES)
    p.add_argument("run", help="run directory")
    p.add_argument("--data", help="evaluate on this held-out file (or image folder) instead of the run's test split")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = _add(sub, "sample", "draw samples from a trained run", SAMPLE_EXAMPLES)
    p.add_argument("run", help="run directory")
    p.add_argument("-n", type=int_in(1, MAX_SAMPLES), help="number of samples (default 2000; 64 for image runs)")
    p.add_argument("--temperature", type=float, action="append", help="base std multiplier (default 1.0); "
                   "repeat it for one file per temperature, named OUTPUT_tT.EXT")
    p.add_argument("--class", type=int, dest="class_", metavar="K", help="class-conditional runs: samples of "
                   "class K (default: a grid with one row per class, -n split between the classes)")
    p.add_argument("--context", metavar="V,...", help="conditional vector runs: the context values (one per "
                   "context column) every sample is drawn given")
    p.add_argument("--context-file", metavar="FILE", help="image runs conditioned on a context vector: one sample "
                   "per row of this .npy/.npz/.csv of context rows")
    p.add_argument("-o", "--output", required=True, help=".png picture, .npy array or (tables) .csv with the "
                   "column names")
    p.add_argument("--seed", type=int_in(0, MAX_SEED), default=0)
    p.add_argument("--quiet", action="store_true", help="print nothing on success")

    p = _add(sub, "animate", "base samples bent through each layer in turn", ANIMATE_EXAMPLES,
             description="Write an animation of samples from the base N(0, I) bent into data one layer at a\n"
             "time (the inverse pass): for vector runs N points in the first two columns, one stage per\n"
             "coupling; for image runs up to 64 samples turning into images, one frame per layer.")
    p.add_argument("run", help="run directory")
    p.add_argument("-o", "--output", required=True, help=".gif (or .mp4 with ffmpeg)")
    p.add_argument("-n", type=int_in(1, MAX_ANIMATION_POINTS), default=1500, help="number of points (default 1500)")
    p.add_argument("--seed", type=int_in(0, MAX_SEED), default=0)
    p.add_argument("--quiet", action="store_true", help="print nothing on success")


def _using(sub: argparse._SubParsersAction) -> None:
    """``report``, ``score``, ``runs`` and ``completion``: looking at runs, new data, the shell."""
    p = _add(sub, "report", "one self-contained HTML page of a run", REPORT_EXAMPLES,
             description="Write an HTML report of a run: metrics, configuration, training curves, samples "
             "beside data, the log-density or temperature grids, the layer-by-layer animation.")
    p.add_argument("run", help="run directory")
    p.add_argument("-o", "--output", help="the .html file to write (default RUN/report.html)")
    p.add_argument("--quiet", action="store_true", help="print nothing on success")

    p = _add(sub, "score", "per-example log-likelihood (and bits/dim) of your data", SCORE_EXAMPLES,
             description="Score every example of a file or image folder under a trained run.")
    p.add_argument("run", help="run directory")
    p.add_argument("input", help=".npy/.npz/.csv of vectors, or for image runs a folder of images or an .npy")
    p.add_argument("-o", "--output", required=True, help="the .csv to write, or - for standard output")
    p.add_argument("--json", action="store_true", help="print a one-line JSON summary (count, mean, min, max)")
    p.add_argument("--quiet", action="store_true", help="no summary message")

    p = _add(sub, "runs", "list runs with their key metrics", RUNS_EXAMPLES, description="List every run "
             "directory under DIR with data, steps, test NLL, bits/dim, parameters and why it stopped.")
    p.add_argument("dir", nargs="?", default="runs", help="folder holding runs (default runs/)")
    p.add_argument("--json", action="store_true", help="print one JSON list instead of a table")

    p = _add(sub, "completion", "print a shell completion script", COMPLETION_EXAMPLES, description="Tab "
             "completion of commands, options, presets and files, for bash (and zsh through bashcompinit).")
    p.add_argument("shell", choices=("bash",), help="bash (zsh: load it through bashcompinit)")


def build_parser() -> argparse.ArgumentParser:
    """The ``realnvp`` argument parser; ``args.command`` names the ``realnvp.cli`` module that runs it.

    Example:
        >>> args = build_parser().parse_args(["sample", "runs/moons", "-o", "samples.png"])
        >>> args.run, args.n, args.temperature, args.command
        ('runs/moons', None, None, 'sample')
    """
    parser = Parser(prog="realnvp", description="Real NVP normalizing flows: train, evaluate, sample, animate.",
                    epilog=EXAMPLES, formatter_class=RAW)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    _train(sub)
    _looking(sub)
    _using(sub)
    return parser
