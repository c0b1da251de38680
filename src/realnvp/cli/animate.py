"""``realnvp animate``: base samples bent into data one coupling at a time, as a .gif (or .mp4)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from realnvp.cli.common import check_output
from realnvp.data import load_splits
from realnvp.rundir import RunDir
from realnvp.viz.animate import animate
from realnvp.viz.images import animate_images


def run(args: argparse.Namespace) -> None:
    """Write the layer-by-layer animation of the run ``args.run`` to ``args.output``.

    Example:
        >>> from realnvp.cli.parser import build_parser
        >>> run(build_parser().parse_args(["animate", str(run_dir), "-n", "100", "-o", str(tmp / "layers.gif"),
        ...                                "--quiet"]))
        >>> (tmp / "layers.gif").read_bytes()[:6]
        b'GIF89a'
    """
    out = Path(args.output)
    check_output(out, (".gif", ".mp4"))
    flow, cfg, _ = RunDir(args.run).load_flow()
    if len(flow.event_shape) == 3:  # a run given a context vector: the first training rows' contexts
        rows = load_splits(cfg.data).train_c[: min(args.n, 64)] if flow.context_size else None
        animate_images(flow, out, n=min(args.n, 64) if rows is None else len(rows), seed=args.seed, context=rows)
    else:  # a conditional run's samples take the contexts of training rows
        contexts = load_splits(cfg.data).train_c if flow.conditional else None
        n = args.n if contexts is None else min(args.n, len(contexts))
        animate(flow, out, n=n, seed=args.seed, context=None if contexts is None else contexts[:n])
    if not args.quiet:
        print(f"wrote {out}", file=sys.stderr)
