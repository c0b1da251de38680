"""The fixed parts of ``RESULTS.md``: the goals (``benchmarks/goals.toml``, the one place a goal or an
issue number is written) and the prose (``templates/NAME.md``, filled in with ``str.format``)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the realnvp package depends on tomli there
    import tomli as tomllib

from benchmarks.rawlines import HERE

GOALS_FILE = HERE / "goals.toml"
TEMPLATES = Path(__file__).resolve().parent / "templates"


@functools.cache
def goals() -> dict[str, dict[str, Any]]:
    """``{section: {name: value}}`` of ``goals.toml``."""
    return tomllib.loads(GOALS_FILE.read_text())


def goal(section: str, name: str) -> Any:
    """One goal (or issue number) of ``goals.toml``."""
    return goals()[section][name]


def met(value: float, limit: float) -> str:
    """``"met"`` when ``value <= limit``, else ``"not met"``."""
    return "met" if value <= limit else "not met"


def prose(name: str, **fields: Any) -> str:
    """``templates/NAME.md`` with ``fields`` and ``{goals[SECTION][NAME]}`` filled in, without its
    final newline."""
    return (TEMPLATES / f"{name}.md").read_text().format(goals=goals(), **fields).rstrip("\n")
