"""Shared set-up: the battery in checks.py is importable, and two tiny trained runs (moons and digits,
settings in tiny.py) are trained once per session for every test that reads a run. They are
read-only: a test that changes a run works on a copy (``shutil.copytree(tiny_moons, tmp_path / "run")``),
and the session fails if one of them changed."""

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, os.path.dirname(__file__))  # makes the shared battery importable as `checks`

from tiny import train_tiny, train_tiny_digits  # noqa: E402


def _fingerprint(run: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(run)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(run.rglob("*"))}


def _shared(run: Path):
    before = _fingerprint(run)
    yield run
    assert _fingerprint(run) == before, f"a test changed the shared run {run}: copy it before changing it"


@pytest.fixture(scope="session")
def tiny_moons(tmp_path_factory) -> Path:
    """``realnvp train moons`` with tiny.TINY for 60 steps, pictures included; alone in its folder
    (as ``runs/moons`` would be)."""
    yield from _shared(train_tiny(tmp_path_factory.mktemp("tiny") / "moons", pictures=True))


@pytest.fixture(scope="session")
def tiny_digits(tmp_path_factory) -> Path:
    """``realnvp train digits`` with tiny.TINY_DIGITS for 40 steps, pictures included; alone in its folder."""
    yield from _shared(train_tiny_digits(tmp_path_factory.mktemp("tiny-image") / "digits"))
