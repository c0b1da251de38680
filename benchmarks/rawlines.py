"""The raw lines every figure comes from: reading and appending ``.jsonl`` files, and the host record a
driver writes with each line. Standard library only, so rendering ``RESULTS.md`` runs anywhere."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent  # benchmarks/: the .jsonl files and RESULTS.md
ROOT = HERE.parent
Row = dict[str, Any]


def read_jsonl(path: Path) -> list[Row]:
    """Every JSON line of ``path`` (none when the file does not exist)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def append_jsonl(path: Path | None, row: Row) -> None:
    """Append ``row`` as one JSON line to ``path`` (nothing when None)."""
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as f:
            f.write(json.dumps(row) + "\n")


def machine() -> Row:
    """The host record a driver writes with every raw line: ``lscpu``'s model name and flags, the
    number of CPUs and the 1-minute load average now."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        text = ""
    fields = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in text.splitlines())}
    return {"cpu": fields.get("Model name", "not recorded"), "cpu_flags": fields.get("Flags", ""),
            "cpus": fields.get("CPU(s)"), "loadavg": round(os.getloadavg()[0], 2)}


def commit() -> str:
    """The short hash of this checkout's HEAD ("" outside a git checkout)."""
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE)
    return done.stdout.strip()
