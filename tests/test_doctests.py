"""Every docstring example in src/realnvp and every ``>>>`` example in docs/*.md and the README runs
and prints what it shows; every public function and class has one. Examples that need a trained
run use ``run_dir`` (a tiny trained moons run, as ``runs/moons`` would be for a user) and ``tmp``
(an empty folder to write into)."""

from __future__ import annotations

import doctest
import importlib
import inspect
import io
import pkgutil
from pathlib import Path

import pytest

import realnvp

MODULES = sorted(m.name for m in pkgutil.walk_packages(realnvp.__path__, "realnvp.")
                 if not m.name.endswith("__main__"))  # __main__ runs the CLI on import
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


@pytest.fixture
def run_dir(tiny_moons) -> Path:
    return tiny_moons  # the shared tiny moons run (tests/conftest.py), alone in its folder as runs/moons is


@pytest.mark.parametrize("name", MODULES)
def test_examples_run(name, run_dir, tmp_path):
    module = importlib.import_module(name)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    out = io.StringIO()
    for test in doctest.DocTestFinder().find(module, name, extraglobs={"run_dir": run_dir, "tmp": tmp_path}):
        runner.run(test, out=out.write)
    assert runner.failures == 0, out.getvalue()


DOCS = sorted((Path(__file__).parents[1] / "docs").glob("*.md")) + [Path(__file__).parents[1] / "README.md"]


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_docs_examples_run(path, run_dir, tmp_path):
    """The ``>>>`` examples of the Markdown docs and the README, with the same ``run_dir`` and ``tmp``."""
    if not path.exists():
        pytest.skip(f"{path.name} not written yet")
    test = doctest.DocTestParser().get_doctest(path.read_text(), {"run_dir": run_dir, "tmp": tmp_path},
                                               path.name, str(path), 0)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    out = io.StringIO()
    runner.run(test, out=out.write)
    assert runner.failures == 0, out.getvalue()


def public_objects(name: str) -> list[str]:
    """Functions and classes a module defines whose names do not start with an underscore."""
    module = importlib.import_module(name)
    return [f"{name}.{key}" for key, obj in vars(module).items()
            if not key.startswith("_") and (inspect.isfunction(obj) or inspect.isclass(obj))
            and obj.__module__ == name]


def has_example(qualified: str) -> bool:
    module, _, key = qualified.rpartition(".")
    return ">>>" in (inspect.getdoc(getattr(importlib.import_module(module), key)) or "")


@pytest.mark.parametrize("name", MODULES)
def test_every_public_object_has_an_example(name):
    missing = [q for q in public_objects(name) if not has_example(q)]
    assert not missing, f"public without a docstring example: {', '.join(missing)}"

