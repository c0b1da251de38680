"""The ``realnvp`` command: train, evaluate, sample, animate. Bad input ends in one line, exit 2."""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import warnings
from pathlib import Path
from typing import NoReturn

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
  realnvp sample runs/digits -n 1000 -o pixels.npy --quiet     # integer pixels [n, C, H, W]"""
ANIMATE_EXAMPLES = """examples:
  realnvp animate runs/moons -o layers.gif          # base samples bent into the moons, layer by layer
  realnvp animate runs/moons -n 3000 -o layers.mp4  # .mp4 needs ffmpeg
  realnvp animate runs/digits -o layers.gif         # image runs: 16 samples turning into digits"""
RAW = argparse.RawDescriptionHelpFormatter


def _check_output(path: Path, suffixes: tuple[str, ...]) -> None:
    from realnvp.errors import UserError

    if path.suffix.lower() not in suffixes:
        raise UserError(f"output {path.name!r} must end in {' or '.join(suffixes)}")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UserError(f"cannot write {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UserError(f"cannot write {path}: permission denied")


def _train_data(cfg):  # noqa: ANN001, ANN202 - returns numpy splits for pictures
    from realnvp.data import load_splits

    return load_splits(cfg.data)


def write_pictures(run_dir: Path, n: int = 4000) -> list[Path]:
    """samples.png (data beside samples), density.png (2-D only) and animation.gif for a vector run;
    an image run gets its sample grids and animation instead.

    Example:
        >>> import shutil
        >>> run = shutil.copytree(run_dir, tmp / "moons")  # a copy: the pictures are written into the run
        >>> [path.name for path in write_pictures(run, n=200)]
        ['samples.png', 'density.png', 'animation.gif']
    """
    import torch

    from realnvp.animate import animate
    from realnvp.checkpoint import load
    from realnvp.config import Config
    from realnvp.plots import data_and_samples, log_density

    flow = load(run_dir)
    cfg = Config.from_dict(json.loads((run_dir / "config.json").read_text()))
    splits = _train_data(cfg)
    if splits.n_levels:
        from realnvp.image_plots import write_image_pictures

        return write_image_pictures(run_dir, flow, splits.train, splits.n_levels, cfg.model.n_scales)
    data = splits.train
    torch.manual_seed(0)
    samples = flow.sample(min(n, len(data))).numpy()
    written = [run_dir / "samples.png"]
    data_and_samples(data[: len(samples)], samples, written[0], title=f"{cfg.data.name}: data vs Real NVP samples")
    if flow.event_size == 2:
        written.append(run_dir / "density.png")
        log_density(flow, data, written[-1], title=f"{cfg.data.name}: model log-density")
    written.append(run_dir / "animation.gif")
    animate(flow, written[-1], n=1500, data=data)
    return written


def cmd_train(args: argparse.Namespace) -> None:
    """``realnvp train``: train, then evaluate the best weights into evaluation.json and draw the pictures.

    Example:
        >>> cmd_train(build_parser().parse_args(["train", "moons", "--out", str(tmp / "run"), "--steps", "20",
        ...     "--quiet", "--no-pictures", "--set", "model.hidden=8", "--set", "data.n_train=500"]))
        >>> sorted(path.name for path in (tmp / "run").iterdir())
        ['best.pt', 'checkpoint.pt', 'config.json', 'evaluation.json', 'metrics.jsonl']
    """
    from realnvp.config import load_config
    from realnvp.data import IMAGE_DATASETS
    from realnvp.distributed import teardown
    from realnvp.evaluate import evaluate_run
    from realnvp.train import train

    overrides = list(args.set or [])
    if args.data:  # an image preset reads its dataset from the path; anything else reads vectors
        image = load_config(args.config, overrides).data.name in IMAGE_DATASETS
        overrides += ([] if image else ["data.name=file"]) + [f"data.path={args.data}"]
    for flag, key in ((args.steps, "train.steps"), (args.time_budget, "train.time_budget"),
                      (args.seed, "train.seed"), (args.device, "train.device")):
        if flag is not None:
            overrides.append(f"{key}={flag}")
    if args.compile is not None:
        overrides.append(f"train.compile={str(args.compile).lower()}")
    cfg = load_config(args.config, overrides)
    run_dir = Path(args.out)
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr))
    result = train(cfg, run_dir, resume=args.resume, progress=not args.quiet, log=say)
    teardown(result.dist)
    if not result.dist.is_main:  # under torchrun only rank 0 evaluates and draws
        return
    metrics = evaluate_run(run_dir)
    metrics["stop_reason"] = result.stop_reason
    from realnvp.checkpoint import atomic_write_bytes

    atomic_write_bytes(run_dir / "evaluation.json", (json.dumps(metrics, indent=2) + "\n").encode())
    if not args.no_pictures:
        for path in write_pictures(run_dir):
            say(f"wrote {path}")
    if "bits_per_dim" in metrics:
        say(f"test {metrics['bits_per_dim']:.4f} bits/dim ({metrics['bits_per_dim_iw']:.4f} with the "
            f"{metrics['test_draws']}-sample bound)")
    say(f"test NLL {metrics['test_nll_nats']:.4f} nats/example, "
        f"inverse error {metrics['inverse_max_abs_error']:.2e}; metrics in {run_dir / 'evaluation.json'}")
    if args.json:
        print(json.dumps(metrics))


def cmd_evaluate(args: argparse.Namespace) -> None:
    """``realnvp evaluate``: a run's metrics as an aligned table, or one JSON object with ``--json``.

    Example:
        >>> cmd_evaluate(build_parser().parse_args(["evaluate", str(run_dir)]))
                             run: ...
                            data: moons
                             dim: 2
                   test_nll_nats: ...
                           steps: 60
        ...
    """
    from realnvp.evaluate import evaluate_run

    metrics = evaluate_run(args.run)
    if args.json:
        print(json.dumps(metrics))
    else:
        for key, value in metrics.items():
            print(f"{key:>24}: {value}")


def cmd_sample(args: argparse.Namespace) -> None:
    """``realnvp sample``: draw from a run into a .npy array or a .png beside the training data.

    Example:
        >>> import numpy as np
        >>> cmd_sample(build_parser().parse_args(["sample", str(run_dir), "-n", "100", "--temperature", "0.8",
        ...                                       "-o", str(tmp / "samples.npy"), "--quiet"]))
        >>> np.load(tmp / "samples.npy").shape
        (100, 2)
    """
    import numpy as np
    import torch

    from realnvp.checkpoint import atomic_write_bytes, load
    from realnvp.errors import UserError

    out = Path(args.output)
    _check_output(out, (".png", ".npy"))
    if args.n is not None and args.n <= 0:
        raise UserError(f"-n must be a positive number of samples, got {args.n}")
    if not (0 <= args.temperature <= 10):
        raise UserError(f"--temperature must be between 0 and 10, got {args.temperature}")
    flow = load(args.run)
    torch.manual_seed(args.seed)
    args.n = args.n or (64 if len(flow.event_shape) == 3 else 2000)
    if len(flow.event_shape) == 3:
        _sample_images(flow, args, out)
        return
    samples = flow.sample(args.n, temperature=args.temperature).numpy()
    if out.suffix.lower() == ".npy":
        buffer = io.BytesIO()
        np.save(buffer, samples)
        atomic_write_bytes(out, buffer.getvalue())
    else:
        from realnvp.config import Config
        from realnvp.plots import data_and_samples

        cfg = Config.from_dict(json.loads((Path(args.run) / "config.json").read_text()))
        data = _train_data(cfg).train
        data_and_samples(data[: args.n], samples, out, title=f"temperature {args.temperature:g}")
    if not args.quiet:
        print(f"wrote {args.n} samples to {out}", file=sys.stderr)


def _sample_images(flow, args: argparse.Namespace, out: Path) -> None:  # noqa: ANN001 - a Flow
    """An image run's samples: a PNG grid, or integer pixels ``[n, C, H, W]`` in the data's levels."""
    import numpy as np

    from realnvp.checkpoint import atomic_write_bytes
    from realnvp.config import Config
    from realnvp.data.images import n_levels_of
    from realnvp.image_plots import grid, save_png

    y = flow.sample(args.n, temperature=args.temperature).clamp(0, 1).numpy()
    if out.suffix.lower() == ".npy":
        cfg = Config.from_dict(json.loads((Path(args.run) / "config.json").read_text()))
        levels = n_levels_of(cfg.data.name)
        buffer = io.BytesIO()
        np.save(buffer, np.minimum(np.floor(y * levels), levels - 1).astype(np.uint8))
        atomic_write_bytes(out, buffer.getvalue())
    else:
        save_png(grid(y, zoom=max(1, 64 // y.shape[2])), out)
    if not args.quiet:
        print(f"wrote {args.n} samples to {out}", file=sys.stderr)


def cmd_animate(args: argparse.Namespace) -> None:
    """``realnvp animate``: base samples bent into data one coupling at a time, as a .gif (or .mp4).

    Example:
        >>> cmd_animate(build_parser().parse_args(["animate", str(run_dir), "-n", "100",
        ...                                        "-o", str(tmp / "layers.gif"), "--quiet"]))
        >>> (tmp / "layers.gif").read_bytes()[:6]
        b'GIF89a'
    """
    from realnvp.animate import animate
    from realnvp.checkpoint import load

    out = Path(args.output)
    _check_output(out, (".gif", ".mp4"))
    flow = load(args.run)
    if len(flow.event_shape) == 3:
        from realnvp.image_plots import animate_images

        animate_images(flow, out, n=min(args.n, 64), seed=args.seed)
    else:
        animate(flow, out, n=args.n, seed=args.seed)
    if not args.quiet:
        print(f"wrote {out}", file=sys.stderr)


class _Parser(argparse.ArgumentParser):
    """Usage mistakes (unknown option, bad value) end like any other bad input: one line, exit 2."""

    def error(self, message: str) -> NoReturn:
        from realnvp.errors import UserError

        raise UserError(f"{message} (see: {self.prog} --help)")


def _show_warning(message: Warning | str, category: type[Warning], *args: object, **kwargs: object) -> None:
    print(f"realnvp: warning: {message}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    """The ``realnvp`` argument parser; each subcommand's ``func`` is the function that runs it.

    Example:
        >>> args = build_parser().parse_args(["sample", "runs/moons", "-o", "samples.png"])
        >>> args.run, args.n, args.temperature, args.func is cmd_sample
        ('runs/moons', None, 1.0, True)
    """
    from realnvp.config import preset_names

    parser = _Parser(prog="realnvp", description="Real NVP normalizing flows: train, "
                     "evaluate, sample, animate.", epilog=EXAMPLES,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a preset or a TOML config", epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help=f"preset ({', '.join(preset_names())}) or a .toml file")
    p.add_argument("--out", required=True, help="run directory (created)")
    p.add_argument("--data", help="train on your own vectors: .npy, .npz or .csv [examples, features]; "
                   "with an image preset: the dataset's folder or an .npz with x_train and x_test")
    p.add_argument("--steps", type=int, help="training steps (train.steps)")
    p.add_argument("--time-budget", type=float, help="stop after this many seconds of training")
    p.add_argument("--seed", type=int, help="model initialisation and batch-order seed")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), help="where to train (default auto)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a setting, e.g. model.hidden=256,256")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction,
                   help="torch.compile the model for training (default: the preset's train.compile)")
    p.add_argument("--no-pictures", action="store_true", help="skip samples.png, density.png and animation.gif")
    p.add_argument("--quiet", action="store_true", help="no progress bar or messages")
    p.add_argument("--json", action="store_true", help="print the final metrics as one JSON line")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="test/train NLL, inverse error, parameter count of a run",
                       epilog=EVALUATE_EXAMPLES, formatter_class=RAW)
    p.add_argument("run", help="run directory")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("sample", help="draw samples from a trained run", epilog=SAMPLE_EXAMPLES,
                       formatter_class=RAW)
    p.add_argument("run", help="run directory")
    p.add_argument("-n", type=int, help="number of samples (default 2000; 64 for image runs)")
    p.add_argument("--temperature", type=float, default=1.0, help="base std multiplier (default 1.0)")
    p.add_argument("-o", "--output", required=True, help=".png picture or .npy array")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="print nothing on success")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("animate", help="base samples bent through each layer in turn", epilog=ANIMATE_EXAMPLES,
                       formatter_class=RAW)
    p.add_argument("run", help="run directory")
    p.add_argument("-o", "--output", required=True, help=".gif (or .mp4 with ffmpeg)")
    p.add_argument("-n", type=int, default=1500, help="number of points (default 1500)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="print nothing on success")
    p.set_defaults(func=cmd_animate)

    from realnvp.commands import register

    register(sub)  # report, score, runs, completion
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` and return the exit code: 0 done, 2 bad input (one line on
    stderr, no traceback), 130 interrupted.

    Example:
        >>> import contextlib
        >>> main(["sample", str(run_dir), "-n", "10", "-o", str(tmp / "s.npy"), "--quiet"])
        0
        >>> with contextlib.redirect_stderr(sys.stdout):
        ...     main(["sample", str(run_dir), "-o", str(tmp / "s.jpg")])
        realnvp: error: output 's.jpg' must end in .png or .npy
        2
    """
    from realnvp.errors import UserError

    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning  # one line, no source excerpt
            args = build_parser().parse_args(argv)
            args.func(args)
    except UserError as exc:
        print(f"realnvp: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("realnvp: interrupted; the last checkpoint is intact (use --resume)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
