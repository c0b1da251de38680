"""The drivers' plumbing (``run_moons``, ``run_images``): each implementation runs as its own process in
the peers' environment, one at a time, and its last JSON line becomes a raw line. Standard library only.

The peers and their protocol module ``common.py`` live in ``PEERS_DIR`` (environment variable, by
default ``shared/benchmarks/peers`` beside this checkout); ``benchmarks/README.md`` says how to set them up.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from benchmarks.rawlines import ROOT, Row, append_jsonl, read_jsonl

PEERS_DIR = Path(os.environ.get("PEERS_DIR", ROOT.parent / "shared/benchmarks/peers"))


def module_command(module: str, *args: str) -> list[str]:
    """The arguments that run ``benchmarks.MODULE`` (from the repository root, which drivers use as cwd)."""
    return ["-m", f"benchmarks.{module}", *args]


def cpu_busy(seconds: float = 2.0) -> float:
    """Fraction of all CPU time that was busy over ``seconds`` (from /proc/stat)."""

    def read() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
        return sum(fields), fields[3] + fields[4]

    total0, idle0 = read()
    time.sleep(seconds)
    total1, idle1 = read()
    return round(1 - (idle1 - idle0) / max(total1 - total0, 1), 2)


def fmt(value: float | None, spec: str) -> str:
    """``value`` formatted with ``spec``, or "-" when missing."""
    return "-" if value is None else format(value, spec)


def peer_env(quick: bool, **extra: str) -> dict[str, str]:
    """The environment every driven run gets: 2 threads, passive OpenMP waits, ``PEERS_DIR``, this
    checkout's ``src`` on ``PYTHONPATH`` and, for ``--quick``, the peers' smoke mode."""
    env = dict(os.environ, OMP_NUM_THREADS="2", MKL_NUM_THREADS="2", OPENBLAS_NUM_THREADS="2",
               OMP_WAIT_POLICY="PASSIVE", PEERS_DIR=str(PEERS_DIR), **extra,
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")])))
    if quick:
        env["PEERS_SMOKE"] = "1"
    return env


def run_json(cmd: list[str], cwd: Path, env: dict[str, str], row: Row) -> Row:
    """Run one benchmark script; its last JSON line updated with ``row`` (the label, the load before it)
    and the process's wall seconds, or ``row`` with an ``error`` when it failed."""
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {**row, "error": f"exit {proc.returncode}: {' | '.join(tail)}"}
    result = json.loads(lines[-1])
    result.update(row, process_s=round(time.perf_counter() - started, 1))
    return result


def driver_parser(doc: str, runs: Iterable[str], quick_help: str) -> argparse.ArgumentParser:
    """The options both drivers (``run_moons``, ``run_images``) take."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--only", default=",".join(runs), help=f"comma-separated subset of {', '.join(runs)}")
    parser.add_argument("--python", default=os.environ.get("PEERS_PYTHON", "/tmp/peers-venv/bin/python"),
                        help="the peers' venv interpreter (torch 2.13.0 CPU, normflows, nflows, zuko, jax)")
    parser.add_argument("--jsonl", type=Path, default=None, help="append each run's JSON line here")
    parser.add_argument("--table-only", action="store_true", help="print the table(s) of an existing --jsonl")
    return parser


def driver_labels(parser: argparse.ArgumentParser, args: argparse.Namespace, runs: Iterable[str],
                  table: Callable[[list[Row]], str]) -> list[str] | None:
    """The implementations to run, checked; None when ``--table-only`` printed the table instead."""
    labels = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(labels) - set(runs))
    if unknown:
        parser.error(f"unknown implementation(s) {', '.join(unknown)}; known: {', '.join(runs)}")
    if args.table_only:
        if args.jsonl is None or not args.jsonl.exists():
            parser.error(f"--table-only needs an existing --jsonl file (got {args.jsonl})")
        print(table(read_jsonl(args.jsonl)))
        return None
    if not Path(args.python).exists():
        parser.error(f"{args.python} not found: set up the peers' venv (benchmarks/README.md) or pass --python")
    return labels


def keep_row(rows: list[Row], row: Row, prefix: str, summary: Callable[[Row], str], jsonl: Path | None) -> None:
    """Add a finished run's row to ``rows`` and ``jsonl``, with one progress line on stderr."""
    rows.append(row)
    print(f"  {prefix}: " + (row.get("error") or summary(row)), file=sys.stderr, flush=True)
    append_jsonl(jsonl, row)
