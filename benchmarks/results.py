"""Rewrite the whole of ``RESULTS.md`` from the raw ``.jsonl`` lines of this folder: every table and every
sentence with a number is computed from them (``tables.py``); nothing is trained or measured.

    python benchmarks/results.py                 # rewrite benchmarks/RESULTS.md
    python benchmarks/results.py --out /tmp/R.md # write elsewhere (tests/test_results.py compares the two)
    python benchmarks/results.py --check         # exit 1 when RESULTS.md differs from what it would write
"""

import argparse
import sys
from pathlib import Path

from tables import HERE, render, write_results  # same folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=HERE, help="folder holding the .jsonl files")
    parser.add_argument("--out", type=Path, default=None, help="write here instead of FOLDER/RESULTS.md")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when RESULTS.md is stale")
    args = parser.parse_args()
    if args.check:
        target = args.out or args.folder / "RESULTS.md"
        if not target.exists() or target.read_text() != render(args.folder):
            sys.exit(f"{target} differs from what `python benchmarks/results.py` writes: run it")
        return
    print(write_results(args.folder, args.out))


if __name__ == "__main__":
    main()
