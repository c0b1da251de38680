"""``realnvp report``: one self-contained HTML page of a run."""

from __future__ import annotations

import argparse
import sys

from realnvp.viz.report import build_report


def run(args: argparse.Namespace) -> None:
    """Write the report of ``args.run`` (to ``args.output`` or ``RUN/report.html``).

    Example:
        >>> from realnvp.cli.parser import build_parser
        >>> run(build_parser().parse_args(["report", str(run_dir), "-o", str(tmp / "r.html"), "--quiet"]))
        >>> (tmp / "r.html").read_text()[:15]
        '<!DOCTYPE html>'
    """
    path = build_report(args.run, args.output)
    if not args.quiet:
        print(f"wrote {path}", file=sys.stderr)
