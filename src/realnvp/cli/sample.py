"""``realnvp sample``: draw from a run into a .npy array or a .png (beside the training data for
vectors, a grid for images)."""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
import torch

from realnvp.cli.common import check_output
from realnvp.data import load_splits
from realnvp.errors import UserError
from realnvp.flow import Flow
from realnvp.rundir import RunDir, atomic_write_bytes
from realnvp.viz.images import grid, save_png
from realnvp.viz.plots import data_and_samples


def _save_npy(path: Path, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, array)
    atomic_write_bytes(path, buffer.getvalue())


def _sample_images(flow: Flow, n_levels: int, args: argparse.Namespace, out: Path) -> None:
    """An image run's samples: a PNG grid, or integer pixels ``[n, C, H, W]`` in the data's levels."""
    y = flow.sample(args.n, temperature=args.temperature).clamp(0, 1).numpy()
    if out.suffix.lower() == ".npy":
        _save_npy(out, np.minimum(np.floor(y * n_levels), n_levels - 1).astype(np.uint8))
    else:
        save_png(grid(y, zoom=max(1, 64 // y.shape[2])), out)


def run(args: argparse.Namespace) -> None:
    """Write ``args.n`` samples of the run ``args.run`` at ``args.temperature`` to ``args.output``.

    Example:
        >>> from realnvp.cli.parser import build_parser
        >>> run(build_parser().parse_args(["sample", str(run_dir), "-n", "100", "--temperature", "0.8",
        ...                                "-o", str(tmp / "samples.npy"), "--quiet"]))
        >>> np.load(tmp / "samples.npy").shape
        (100, 2)
    """
    out = Path(args.output)
    check_output(out, (".png", ".npy"))
    if args.n is not None and args.n <= 0:
        raise UserError(f"-n must be a positive number of samples, got {args.n}")
    if not (0 <= args.temperature <= 10):
        raise UserError(f"--temperature must be between 0 and 10, got {args.temperature}")
    flow, cfg, state = RunDir(args.run).load_flow()
    torch.manual_seed(args.seed)
    is_image = len(flow.event_shape) == 3
    args.n = args.n or (64 if is_image else 2000)
    if is_image:
        _sample_images(flow, int(state.get("n_levels") or 256), args, out)
    else:
        samples = flow.sample(args.n, temperature=args.temperature).numpy()
        if out.suffix.lower() == ".npy":
            _save_npy(out, samples)
        else:
            data = load_splits(cfg.data).train
            data_and_samples(data[: args.n], samples, out, title=f"temperature {args.temperature:g}")
    if not args.quiet:
        print(f"wrote {args.n} samples to {out}", file=sys.stderr)
