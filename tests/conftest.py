"""Shared set-up: the battery in checks.py is importable, and two tiny trained runs (moons and digits,
settings in tiny.py) are trained once per session for every test that reads a run. They are
read-only: a test that changes a run works on a copy (``shutil.copytree(tiny_moons, tmp_path / "run")``),
and the session fails if one of them changed.

``make test`` runs the tests in two pytest-xdist workers, a whole file at a time, the slowest files
first (``SLOW_FIRST``); the shared runs are trained once for both workers."""

import os
import shutil
import sys
from pathlib import Path

import pytest

try:
    import fcntl  # the lock around the shared runs under xdist (POSIX)
except ImportError:  # pragma: no cover (Windows: each worker trains its own)
    fcntl = None

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# Inductor compiles in this process instead of starting a pool of compile workers, each of which imports
# torch again (tests/test_compile.py compiles one tiny graph; the pool only pays off on big machines).
os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")
sys.path.insert(0, os.path.dirname(__file__))  # makes the shared battery importable as `checks`

from tiny import train_tiny, train_tiny_digits  # noqa: E402

# The test files that take longest, longest first: under xdist each file goes whole to one worker
# (``--dist loadfile``: a module's fixtures are built once), in this order, so that no long file starts
# last while the other worker idles. The other files follow in their usual order.
SLOW_FIRST = ["test_own_data.py", "test_distributed.py", "test_image_model.py", "test_compile.py",
              "test_conditional.py", "test_colour.py", "test_bad_input.py", "test_report.py", "test_lock.py"]


def pytest_collection_modifyitems(config, items):
    """The files of ``SLOW_FIRST`` first (each file's tests keep their order)."""
    def rank(item) -> int:
        name = item.nodeid.split("::")[0].rsplit("/", 1)[-1]
        return SLOW_FIRST.index(name) if name in SLOW_FIRST else len(SLOW_FIRST)

    items.sort(key=rank)


def _fingerprint(run: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(run)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(run.rglob("*"))}


def _shared(run: Path):
    before = _fingerprint(run)
    yield run
    assert _fingerprint(run) == before, f"a test changed the shared run {run}: copy it before changing it"


def _trained_once(tmp_path_factory, name: str, train) -> Path:
    """``train(folder / name)`` once per session, ``name`` alone in its folder. Under xdist once for all
    workers: the first worker to ask trains it under a file lock in the session's shared temporary
    folder, the others wait for it and read the same run."""
    if os.environ.get("PYTEST_XDIST_WORKER") is None or fcntl is None:
        return train(tmp_path_factory.mktemp(f"tiny-{name}") / name)
    shared = tmp_path_factory.getbasetemp().parent  # the workers' basetemps are popen-gw0, popen-gw1, ...
    run, done = shared / f"tiny-{name}" / name, shared / f"tiny-{name}.done"
    with open(shared / f"tiny-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(run.parent, ignore_errors=True)  # left by a worker that died while training it
            train(run)
            done.touch()
    return run


@pytest.fixture(scope="session")
def tiny_moons(tmp_path_factory) -> Path:
    """``realnvp train moons`` with tiny.TINY for 60 steps, pictures included; alone in its folder
    (as ``runs/moons`` would be)."""
    yield from _shared(_trained_once(tmp_path_factory, "moons", lambda run: train_tiny(run, pictures=True)))


@pytest.fixture(scope="session")
def tiny_digits(tmp_path_factory) -> Path:
    """``realnvp train digits`` with tiny.TINY_DIGITS for 40 steps, pictures included; alone in its folder."""
    yield from _shared(_trained_once(tmp_path_factory, "digits", train_tiny_digits))
