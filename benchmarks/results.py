"""Rewrite the whole of ``RESULTS.md`` from the raw ``.jsonl`` lines of this folder: every table and every
sentence with a number is computed from them (one module per section in ``render/``, the goals from
``goals.toml``); nothing is trained or measured. Run from the repository root:

    python -m benchmarks.results                 # rewrite benchmarks/RESULTS.md
    python -m benchmarks.results --out /tmp/R.md # write elsewhere (tests/test_results.py compares the two)
    python -m benchmarks.results --check         # exit 1 when RESULTS.md differs from what it would write
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks.rawlines import HERE, Row, read_jsonl
from benchmarks.render.colour import colour_section
from benchmarks.render.conditional import conditional_section
from benchmarks.render.digits import digits_section
from benchmarks.render.fixed import prose
from benchmarks.render.mnist10k import mnist_section
from benchmarks.render.moons import moons_section
from benchmarks.render.precision import precision_section
from benchmarks.render.real_tables import real_tables_section, roles_of
from benchmarks.render.speed import speed_section
from benchmarks.render.tabular import tabular_section


def render(folder: Path = HERE) -> str:
    """The whole of ``RESULTS.md`` from the ``.jsonl`` files in ``folder``."""

    def raw(name: str) -> list[Row]:
        return read_jsonl(folder / f"{name}.jsonl")  # a file that is not there has no lines

    sections = [prose("header") + "\n",
                moons_section(raw("moons_results"), raw("moons_results_previous")),
                digits_section(raw("images_results"), raw("images_results_previous")),
                mnist_section(raw("mnist10k_results"), raw("mnist10k_results_previous"), raw("mnist10k_design")),
                speed_section(raw("moons_results"), raw("mnist10k_results")),
                tabular_section(raw("tabular_results")),
                real_tables_section(raw("real_tables_results"), roles_of(raw("real_tables_results"))),
                conditional_section(raw("conditional_results")),
                colour_section(raw("colour_results"), raw("colour_design")),
                precision_section(raw("precision_results"))]
    return "\n".join(s.rstrip("\n") + "\n" for s in sections if s)


def write_results(folder: Path = HERE, out: Path | None = None) -> Path:
    """Write ``render(folder)`` to ``out`` (default ``folder/RESULTS.md``); returns the path written."""
    out = out or folder / "RESULTS.md"
    out.write_text(render(folder))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=HERE, help="folder holding the .jsonl files")
    parser.add_argument("--out", type=Path, default=None, help="write here instead of FOLDER/RESULTS.md")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when RESULTS.md is stale")
    args = parser.parse_args()
    if args.check:
        target = args.out or args.folder / "RESULTS.md"
        if not target.exists() or target.read_text() != render(args.folder):
            sys.exit(f"{target} differs from what `python -m benchmarks.results` writes: run it")
        return
    print(write_results(args.folder, args.out))


if __name__ == "__main__":
    main()
