"""A run directory: the one place that knows its file names (pictures included), reads its config,
metrics and evaluation, writes atomically, reads checkpoints (``realnvp.checkpoint``) and picks the best
or the last weights."""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from realnvp.atomic import atomic_write_bytes
from realnvp.checkpoint import Checkpoint
from realnvp.config import Config
from realnvp.errors import UserError
from realnvp.flow import Flow
from realnvp.models.saved import read_flow
from realnvp.runlock import RunLock

CONFIG = "config.json"  # the resolved settings the run was trained with
CHECKPOINT = "checkpoint.pt"  # the latest state, for --resume
PREVIOUS = "checkpoint.prev.pt"  # the checkpoint before the latest: the fallback if the latest is damaged
BEST = "best.pt"  # the weights with the best validation NLL, used by evaluate/sample/load
METRICS = "metrics.jsonl"  # one JSON record per evaluation
EVALUATION = "evaluation.json"  # the final metrics of the best weights
REPORT = "report.html"
TENSORBOARD = "tensorboard"  # optional TensorBoard event files
RUN_FILES = (CONFIG, CHECKPOINT, PREVIOUS, BEST, METRICS)  # any of them means the folder holds a run
T = TypeVar("T")
CHECKPOINTS = (CHECKPOINT, PREVIOUS, BEST)  # any of them means training got somewhere: never started over
# The pictures (viz/pictures.py draws each): which a run gets depends on its kind.
SAMPLES = "samples.png"  # vectors: training data beside samples; images: a sample grid at temperature 1
SAMPLES_COLD = "samples_t0.7.png"  # images: a sample grid at temperature 0.7
DENSITY = "density.png"  # 2-D vectors: the model's log-density
CORNER = "corner.png"  # more than 2 columns: every pair of coordinates, data and samples
CONTEXTS = "contexts.png"  # conditional 2-D vectors with one context column: the density at four contexts
CLASSES = "classes.png"  # class-conditional images: one row of samples per class, by temperature
SCALES = "scales.png"  # images: what each scale of the multi-scale model encodes
ANIMATION = "animation.gif"  # base samples bent through each coupling layer in turn
_SCOPES: dict[str, int] = {}  # open ``RunDir.training`` scopes by directory: only the outermost ends one


@dataclass
class TrainedRun:
    """A trained run's best-validation flow (in eval mode), its config and the counters its evaluation
    reports: what ``train`` hands back (a ``TrainResult`` is one) or ``RunDir.trained`` reads from the
    checkpoints, so that evaluation and pictures never reload a flow they were given.

    Example:
        >>> trained = RunDir(run_dir).trained()
        >>> trained.step, trained.flow.training, trained.cfg.data.name, trained.best_step <= trained.step
        (60, False, 'moons', True)
    """

    flow: Flow
    cfg: Config
    step: int  # where training stopped: the latest checkpoint's step
    best_step: int  # the step of the best-validation weights (the flow)
    best_val_nll: float  # the best validation NLL (inf without a validation split)
    elapsed_s: float  # training time up to ``step``

    def to_cpu(self) -> TrainedRun:
        """The flow moved to the CPU in the default memory layout (as a flow read from ``best.pt`` is),
        where evaluation and the pictures run; returns this run.

        Example:
            >>> RunDir(run_dir).trained().to_cpu().flow.device
            device(type='cpu')
        """
        self.flow.to("cpu", memory_format=torch.contiguous_format)
        return self


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint file as the plain table stored in it, every entry checked (``Checkpoint.read``): for
    tools that compare every stored entry (benchmarks/kill_resume_trial.py); code reads ``Checkpoint``.

    Example:
        >>> load_checkpoint(run_dir / "best.pt")["step"]
        60
    """
    return Checkpoint.read(path).to_dict()


def load(run_dir: str | os.PathLike, which: str = "best", *, embedding: nn.Module | None = None) -> Flow:
    """The trained flow of a run directory, in eval mode, ready to call.

    ``which`` is "best" (best validation NLL, the default) or "last" (the latest checkpoint). A file
    written by ``Flow.save`` is loaded too; an image flow built with your own context ``embedding``
    network needs that module again (its weights come from the file).

    Example:
        >>> import realnvp, torch
        >>> flow = realnvp.load(run_dir)  # e.g. realnvp.load("runs/moons")
        >>> flow.log_prob(torch.zeros(1, 2)).shape, flow.sample(10).shape, flow.training
        (torch.Size([1]), torch.Size([10, 2]), False)
    """
    if Path(run_dir).is_file():  # one file written by Flow.save
        return read_flow(run_dir, embedding)
    if embedding is not None:
        raise UserError("embedding= is for files Flow.save wrote; a run directory rebuilds its own from config.json")
    return RunDir(run_dir).load_flow(which)[0]


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None when the file is missing, not a regular file, torn or not an
    object (a run killed mid-write must not break the listing or the report).

    Example:
        >>> (tmp / "torn.json").write_text('{"steps": 3')
        11
        >>> read_json(tmp / "torn.json") is None, read_json(run_dir / "config.json")["data"]["name"]
        (True, 'moons')
    """
    if not os.path.isfile(path):  # missing, a folder, or a fifo or device that a read would wait on forever
        return None
    try:
        value = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    return value if isinstance(value, dict) and well_typed(value) else None


# Run-file keys that hold numbers: a record where one holds anything else (a string, a list) was
# altered, and is skipped like a torn line rather than breaking report or resume with a TypeError.
NUMERIC_SUFFIXES = ("step", "steps", "nll", "nats", "bpd", "_s", "seconds", "lr", "error", "params", "per_dim",
                    "bits_per_dim", "bits_per_dim_iw", "n_train", "n_test", "dim")


def well_typed(record: dict[str, Any]) -> bool:
    """Whether every numeric field of a run-file record (``NUMERIC_SUFFIXES``) is a number or null.

    Example:
        >>> well_typed({"step": 10, "val_nll": 0.4}), well_typed({"step": "x"}), well_typed({"test_nll_nats": "abc"})
        (True, False, False)
    """
    return all(value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))
               for key, value in record.items() if key.endswith(NUMERIC_SUFFIXES))


def append_metrics(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line and fsync it, so it is on disk before the checkpoint that follows it.

    Example:
        >>> append_metrics(tmp / "log.jsonl", {"step": 10, "val_nll": 0.4})
        >>> (tmp / "log.jsonl").read_text()
        '{"step": 10, "val_nll": 0.4}\\n'
    """
    try:
        with Path(path).open("a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:  # a torn last line is skipped by the readers and trimmed by --resume
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None


class RunDir:
    """One run directory and everything known about its files; every other module asks it.

    Example:
        >>> run = RunDir(run_dir)
        >>> run.holds_run(), run.config().data.name, [r["step"] for r in run.metrics()][-1]
        (True, 'moons', 60)
        >>> run.weights_path().name, RunDir(tmp / "new").holds_run()
        ('best.pt', False)
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def holds_run(self) -> bool:
        """Whether any file of a run is here (so a fresh run would overwrite it)."""
        return any((self.path / name).exists() for name in RUN_FILES)

    def has_checkpoint(self) -> bool:
        """Whether training here reached a first checkpoint (a fresh start would then lose work)."""
        return any((self.path / name).exists() for name in CHECKPOINTS)

    def lock(self, log: Callable[..., Any] = print) -> RunLock:
        """Create the directory if needed and take its training lock (``runlock.RunLock``) until the
        ``training`` scope around this call ends; a directory in use is a ``UserError`` naming its user."""
        existed = self.path.is_dir()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot write to run directory {self.path}: {exc.strerror}") from None
        try:
            lock = RunLock(self.path, log).acquire()
        except UserError:
            if not existed:
                self.path.rmdir()  # made a moment ago, still empty
            raise
        lock.created_dir = not existed
        return lock

    @contextlib.contextmanager
    def training(self) -> Iterator[RunDir]:
        """The life of one training here: a lock taken inside (``lock``) is released at the end, however
        it ends; if it fails before its first checkpoint, what its start wrote is removed, so the retry
        is a fresh start (and a folder it created goes too). Scopes nest: only the outermost releases,
        so ``realnvp train`` holds the lock through the evaluation and pictures that follow ``train``.

        Example:
            >>> run = RunDir(tmp / "failed")
            >>> with run.training():
            ...     _ = run.lock()
            ...     run.write_config(Config())
            ...     raise UserError("the first step diverged")
            Traceback (most recent call last):
            ...
            realnvp.errors.UserError: the first step diverged
            >>> (tmp / "failed").exists()
            False
        """
        failed, key = False, os.path.realpath(self.path)
        _SCOPES[key] = _SCOPES.get(key, 0) + 1
        try:
            yield self
        except Exception:
            failed = True
            raise
        finally:
            _SCOPES[key] -= 1
            outermost = _SCOPES[key] == 0
            if outermost:
                del _SCOPES[key]
            lock = RunLock.held_on(self.path) if outermost and os.path.isdir(self.path) else None  # never raises
            if lock is not None:
                # best.pt alone (the untrained start, written before the first checkpoint) is no progress.
                resumable = any((self.path / name).exists() for name in (CHECKPOINT, PREVIOUS))
                self._end_training(lock, discard=failed and not resumable)

    def _end_training(self, lock: RunLock, discard: bool) -> None:
        if discard:
            for name in (CONFIG, METRICS, BEST):
                (self.path / name).unlink(missing_ok=True)
            for tmp in self.path.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)
            if TENSORBOARD not in lock.found:
                shutil.rmtree(self.path / TENSORBOARD, ignore_errors=True)
        lock.release()
        if discard and lock.created_dir and not any(self.path.iterdir()):
            self.path.rmdir()


    def require(self) -> RunDir:
        """This run directory, or a ``UserError`` when it does not exist."""
        try:
            found = self.path.is_dir()
        except OSError as exc:  # a name too long for the file system (ENAMETOOLONG) is no directory either
            raise UserError(f"run directory not found: {self.path} ({exc.strerror})") from None
        if not found:
            raise UserError(f"run directory not found: {self.path}")
        return self

    def config_dict(self) -> dict[str, Any]:
        """The raw ``config.json``; missing, torn or not an object is a ``UserError``."""
        raw = read_json(self.path / CONFIG)
        if raw is None:
            raise UserError(f"{self.path / CONFIG} is missing or unreadable (not a JSON object); "
                            f"is {self.path} a run directory?")
        return raw

    def config(self) -> Config:
        """The settings the run was trained with, as a ``Config``."""
        return Config.from_dict(self.config_dict(), origin=str(self.path / CONFIG))

    def write_config(self, cfg: Config) -> None:
        atomic_write_bytes(self.path / CONFIG, (json.dumps(cfg.to_dict(), indent=2) + "\n").encode())

    def metrics(self) -> list[dict[str, Any]]:
        """The records of ``metrics.jsonl`` (one per evaluation); torn lines (a run killed while
        writing) are skipped."""
        path = self.path / METRICS
        if not path.is_file():
            return []
        records = []
        for line in path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, RecursionError):
                continue
            if isinstance(record, dict) and well_typed(record):
                records.append(record)
        return records

    def append_metrics(self, record: dict[str, Any]) -> None:
        append_metrics(self.path / METRICS, record)

    def evaluation(self) -> dict[str, Any] | None:
        """``evaluation.json`` (the final metrics), or None while the run has not finished."""
        return read_json(self.path / EVALUATION)

    def write_evaluation(self, metrics: dict[str, Any]) -> None:
        atomic_write_bytes(self.path / EVALUATION, (json.dumps(metrics, indent=2) + "\n").encode())

    def weights_path(self, which: str = "best") -> Path:
        """``best.pt`` (falling back to the latest checkpoint before the first evaluation) or, with
        ``which="last"``, ``checkpoint.pt``."""
        if which not in ("best", "last"):
            raise UserError(f"which weights: expected 'best' or 'last', got {which!r}")
        best = self.path / BEST
        # lexists: a dangling or looping link named best.pt is an error to report, not a missing file to skip
        return best if which == "best" and os.path.lexists(best) else self.path / CHECKPOINT

    def read_checkpoint(self, which: str = "best") -> tuple[Checkpoint, Path]:
        """The checkpoint ``which`` names (``weights_path``) and its path."""
        path = self.require().weights_path(which)
        return Checkpoint.read(path), path

    def load_flow(self, which: str = "best") -> tuple[Flow, Config, Checkpoint]:
        """``(flow in eval mode, its config, its checkpoint)`` of the weights ``which`` names."""
        ckpt, path = self.read_checkpoint(which)
        return ckpt.build_flow(path).eval(), ckpt.config, ckpt

    def trained(self) -> TrainedRun:
        """The best flow with the counters of the best and the latest checkpoints (``TrainedRun``)."""
        flow, cfg, best = self.load_flow("best")
        latest = self.path / CHECKPOINT
        last = Checkpoint.read(latest) if latest.exists() and self.weights_path() != latest else best
        return TrainedRun(flow, cfg, last.step, best.step, best.best_val_nll, last.elapsed_s)


def training_scope(train_fn: Callable[..., T]) -> Callable[..., T]:
    """Run ``train_fn(cfg, run_dir, ...)`` inside ``RunDir(run_dir).training()``: whatever lock the
    training takes is released, and a start that failed is cleaned up, however the call ends.

    Example:
        >>> @training_scope
        ... def fails(cfg, run_dir):
        ...     _ = RunDir(run_dir).lock()
        ...     raise UserError("bad data")
        >>> fails(Config(), tmp / "run")
        Traceback (most recent call last):
        ...
        realnvp.errors.UserError: bad data
        >>> (tmp / "run").exists(), RunLock.held_on(tmp) is None
        (False, True)
    """
    @functools.wraps(train_fn)
    def scoped(*args: Any, **kwargs: Any) -> T:
        run_dir = inspect.signature(train_fn).bind(*args, **kwargs).arguments["run_dir"]
        with RunDir(run_dir).training():
            return train_fn(*args, **kwargs)

    return scoped
