"""``realnvp report``: one self-contained HTML page of a run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from realnvp.cli.common import check_output
from realnvp.errors import UserError
from realnvp.viz.report import build_report


def run(args: argparse.Namespace) -> None:
    """Write the report of ``args.run`` (to ``args.output`` or ``RUN/report.html``); an output that cannot
    be written is refused before the page is drawn, and a path the system refuses is one line.

    Example:
        >>> from realnvp.cli.parser import build_parser
        >>> run(build_parser().parse_args(["report", str(run_dir), "-o", str(tmp / "r.html"), "--quiet"]))
        >>> (tmp / "r.html").read_text()[:15]
        '<!DOCTYPE html>'
    """
    if args.output is not None:
        check_output(Path(args.output), (".html", ".htm"))
    try:
        path = build_report(args.run, args.output)
    except OSError as exc:  # e.g. a run folder whose name is too long for the file system
        raise UserError(f"cannot report {args.run}: {exc.strerror or exc}") from None
    if not args.quiet:
        print(f"wrote {path}", file=sys.stderr)
