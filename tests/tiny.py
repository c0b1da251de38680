"""A tiny trained run for the tests of the tools that read runs (report, score, runs, doctests)."""

from __future__ import annotations

from pathlib import Path

from realnvp.cli import main


def train_tiny(out: Path, *extra: str, steps: int = 30) -> Path:
    """Train a 2-coupling moons flow for ``steps`` steps into ``out`` (about a second, no pictures)."""
    argv = ["train", "moons", "--out", str(out), "--steps", str(steps), "--quiet", "--no-pictures",
            "--set", "model.n_couplings=2", "--set", "model.hidden=16,16", "--set", "train.eval_every=10",
            "--set", "train.time_budget=0", "--set", "data.n_train=2000", "--set", "data.n_test=1000", *extra]
    assert main(argv) == 0
    return out
