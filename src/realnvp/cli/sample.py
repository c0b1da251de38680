"""``realnvp sample``: draw from a run into a .npy array or a .png (beside the training data for
vectors, a grid for images)."""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
import torch

from realnvp.atomic import atomic_write_bytes
from realnvp.cli.common import check_output
from realnvp.config import Config
from realnvp.data import load_splits
from realnvp.data.labels import context_file_rows
from realnvp.data.source import data_source
from realnvp.errors import UserError
from realnvp.flow import Flow
from realnvp.rundir import RunDir
from realnvp.viz.conditional import class_grid, class_labels, rows_given
from realnvp.viz.images import grid, labelled, save_png
from realnvp.viz.plots import data_and_samples


def _save_npy(path: Path, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, array)
    atomic_write_bytes(path, buffer.getvalue())


def _sample_images(flow: Flow, n_levels: int, args: argparse.Namespace, out: Path, label: str = "") -> None:
    """An image run's samples: a PNG grid titled with ``label`` and the temperature, or integer pixels
    ``[n, C, H, W]`` in the data's levels. A class-conditional run draws ``--class`` only, or one row
    per class (``-n`` split between them, each row labelled with its class)."""
    ncol, rows = 0, None
    title = f"{label + ': ' if label else ''}Real NVP samples, temperature {args.temperature:g}"
    if flow.n_classes and args.class_ is None:
        ncol = -(-args.n // flow.n_classes)  # samples per class, rounded up: full rows
        y = class_grid(flow, list(range(flow.n_classes)), ncol, args.temperature, args.seed)
        args.n, rows = len(y), class_labels(list(range(flow.n_classes)))
        title += ", one row per class"
    else:
        context = args.class_ if args.class_ is not None else getattr(args, "context_rows", None)
        y = flow.sample(args.n, temperature=args.temperature, context=context).clamp(0, 1).numpy()
        title += f", class {args.class_}" if args.class_ is not None else ""
    if out.suffix.lower() == ".npy":
        _save_npy(out, np.minimum(np.floor(y * n_levels), n_levels - 1).astype(np.uint8))
    else:
        save_png(labelled(grid(y, ncol=ncol, zoom=max(1, 64 // y.shape[2])), title, rows=rows), out, title)


def _context_of(flow: Flow, args: argparse.Namespace) -> np.ndarray | int | None:
    """The context ``--class`` or ``--context`` names, checked against the run, or None (unconditional)."""
    given = "--class" if args.class_ is not None else "--context" if args.context is not None else None
    if getattr(args, "context_file", None):  # image runs given a context vector: one sample per row
        args.context_rows = context_file_rows(flow, args.context_file)
        args.n = len(args.context_rows)
        return args.context_rows
    if not flow.conditional:
        if given:
            raise UserError(f"{given}: this run is not conditional (train with --set model.conditional=true "
                            f"or --context-columns)")
        return None
    if flow.n_classes:
        if args.context is not None:
            raise UserError("--context is for conditional vector runs; a class-conditional run takes --class K")
        if args.class_ is not None and not 0 <= args.class_ < flow.n_classes:
            raise UserError(f"--class must be one of the run's classes 0..{flow.n_classes - 1}, got {args.class_}")
        return args.class_
    if args.context is None:
        raise UserError(f"this run models its data given {flow.context_size} context value(s): pass --context "
                        f"V{',V' * (flow.context_size - 1)}"
                        + (" or --context-file FILE (one image per row)" if len(flow.event_shape) == 3 else ""))
    try:
        values = np.array([float(v) for v in args.context.split(",") if v.strip()], np.float32)
    except ValueError:
        raise UserError(f"--context expects comma-separated numbers, got {args.context!r}") from None
    if len(values) != flow.context_size or not np.isfinite(values).all():
        raise UserError(f"--context needs {flow.context_size} finite number(s), got {args.context!r}")
    args.context_rows = values  # an image run's samples are all drawn given it
    return values


def run(args: argparse.Namespace) -> None:
    """Write ``args.n`` samples of the run ``args.run`` at each ``--temperature`` to ``args.output`` (one
    file per temperature, ``OUTPUT_tT.EXT``, when several are given).

    Example:
        >>> from realnvp.cli.parser import build_parser
        >>> run(build_parser().parse_args(["sample", str(run_dir), "-n", "100", "--temperature", "0.8",
        ...                                "-o", str(tmp / "samples.npy"), "--quiet"]))
        >>> np.load(tmp / "samples.npy").shape
        (100, 2)
        >>> run(build_parser().parse_args(["sample", str(run_dir), "-n", "5", "--temperature", "0.5",
        ...                                "--temperature", "1", "-o", str(tmp / "s.csv"), "--quiet"]))
        >>> (tmp / "s_t0.5.csv").read_text().splitlines()[0], (tmp / "s_t1.csv").exists()
        ('x0,x1', True)
    """
    out = Path(args.output)
    check_output(out, (".png", ".npy", ".csv"))
    temperatures = args.temperature or [1.0]
    bad = [t for t in temperatures if not 0 <= t <= 10]
    if bad:
        raise UserError(f"--temperature must be between 0 and 10, got {bad[0]}")
    flow, cfg, ckpt = RunDir(args.run).load_flow()
    is_image = len(flow.event_shape) == 3
    if is_image and out.suffix.lower() == ".csv":
        raise UserError("an image run writes its samples as a .png grid or an .npy of pixels, not a .csv")
    context = _context_of(flow, args)
    args.n = args.n or (64 if is_image else 2000)
    for temperature in temperatures:
        path = out if len(temperatures) == 1 else out.with_name(f"{out.stem}_t{temperature:g}{out.suffix}")
        torch.manual_seed(args.seed)
        args.temperature = temperature
        if is_image:
            _sample_images(flow, ckpt.n_levels or 256, args, path, data_source(cfg.data, short=True))
        else:
            _sample_vectors(flow, cfg, context, args, path)
        if not args.quiet:
            print(f"wrote {args.n} samples at temperature {temperature:g} to {path}", file=sys.stderr)


def _sample_vectors(flow: Flow, cfg: Config, context: np.ndarray | None, args: argparse.Namespace,
                    out: Path) -> None:
    """A vector run's samples: an .npy array, a .csv headed by the run's column names, or a .png beside
    the training rows (those nearest the context of a conditional run)."""
    samples = flow.sample(args.n, temperature=args.temperature, context=context).numpy()
    names = list(cfg.data.column_names) if len(cfg.data.column_names) == flow.event_size else \
        [f"x{j}" for j in range(flow.event_size)]
    if out.suffix.lower() == ".npy":
        _save_npy(out, samples)
    elif out.suffix.lower() == ".csv":
        buffer = io.StringIO()
        np.savetxt(buffer, samples, delimiter=",", header=",".join(names), comments="", fmt="%.9g")
        atomic_write_bytes(out, buffer.getvalue().encode())
    else:
        splits = load_splits(cfg.data)
        data, title, label = splits.train[: args.n], f"temperature {args.temperature:g}", "data"
        if context is not None:  # beside the training rows with that context (or the nearest, if none has it)
            rows, exact = rows_given(splits.train_c, context, args.n)
            given = ", ".join(f"{v:g}" for v in context)
            data, title = splits.train[rows], f"{title}, context {given}"
            label = f"training rows with context {given}" if exact else f"training rows nearest context {given}"
        data_and_samples(data, samples, out, title=title, names=names, data_label=label)
