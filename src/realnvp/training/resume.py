"""Crash-safe run directories: the latest checkpoint plus the one before it, rotated so a crash at any
moment leaves at least one complete checkpoint; ``--resume`` takes the newest valid one, and the
metrics log is trimmed back to it so every evaluation is logged exactly once."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from realnvp.atomic import atomic_write_bytes, fsync_dir
from realnvp.checkpoint import Checkpoint
from realnvp.config import Config
from realnvp.errors import UserError
from realnvp.rundir import CHECKPOINT, METRICS, PREVIOUS, RUN_FILES, well_typed


def save_latest(run_dir: Path, ckpt: Checkpoint) -> None:
    """Rename the current ``checkpoint.pt`` to ``checkpoint.prev.pt`` (atomic), then write the new one
    atomically. At every instant the newest complete checkpoint is one of the two names (just after
    the rename only the previous one exists; ``load_latest`` looks at both), and the two are always
    separate files, so damage to one cannot reach the other.

    Example:
        >>> (tmp / "rotation").mkdir()
        >>> ckpt = Checkpoint.read(run_dir / CHECKPOINT)
        >>> for step in (10, 20):
        ...     ckpt.step = step
        ...     save_latest(tmp / "rotation", ckpt)
        >>> [Checkpoint.read(tmp / "rotation" / name).step for name in (CHECKPOINT, PREVIOUS)]
        [20, 10]
    """
    latest = run_dir / CHECKPOINT
    if latest.exists():
        os.replace(latest, run_dir / PREVIOUS)
        fsync_dir(run_dir)
    ckpt.write(latest)


def load_latest(run_dir: Path, log: Callable[..., Any]) -> tuple[Checkpoint, Path] | None:
    """The newest valid training checkpoint of ``run_dir`` and its path, or None if it has none yet.

    ``checkpoint.pt`` and ``checkpoint.prev.pt`` are both read; damaged, incomplete or non-finite
    ones are skipped with a message. If every one present is damaged that is a ``UserError``.

    Example:
        >>> ckpt, path = load_latest(run_dir, print)
        >>> ckpt.step, path.name
        (60, 'checkpoint.pt')
        >>> load_latest(tmp / "new", print) is None
        True
    """
    found, problems = [], []
    for path in (run_dir / CHECKPOINT, run_dir / PREVIOUS):
        if not path.exists():
            continue
        try:
            ckpt = Checkpoint.read(path)
            if ckpt.non_finite():
                raise UserError(f"{path} holds non-finite weights")
        except UserError as exc:
            problems.append(str(exc))
            continue
        found.append((ckpt, path))
    if not found:
        if problems:
            raise UserError(f"cannot resume {run_dir}: no valid checkpoint ({'; '.join(problems)})")
        return None
    ckpt, path = max(found, key=lambda f: f[0].step)  # ties keep checkpoint.pt, the first
    for problem in problems:
        log(f"skipped a damaged checkpoint: {problem}; resuming from {path.name} (step {ckpt.step})")
    return ckpt, path


def check_compatible(ckpt: Checkpoint, cfg: Config, event_shape: tuple[int, ...], path: Path) -> None:
    """A run resumes only with the same data and model settings and example shape; train settings
    (steps, learning rate, budget...) may change. The message names up to three differences.

    Example:
        >>> ckpt, path = load_latest(run_dir, print)
        >>> cfg = Config.from_dict(ckpt.config.to_dict())
        >>> cfg.model.n_couplings += 1
        >>> cfg.data.name = "circles"
        >>> check_compatible(ckpt, cfg, (2,), path)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        realnvp.errors.UserError: cannot resume from ...: data.name is 'moons' in the run, 'circles' now; \
model.n_couplings is 2 in the run, 3 now (only train.* settings may change)
    """
    saved = ckpt.config
    diffs = [f"{section}.{f.name} is {getattr(old, f.name)!r} in the run, {getattr(new, f.name)!r} now"
             for section in ("data", "model")
             for old, new in [(getattr(saved, section), getattr(cfg, section))]
             for f in dataclasses.fields(old) if getattr(old, f.name) != getattr(new, f.name)]
    if diffs:
        more = f"; and {len(diffs) - 3} more" if len(diffs) > 3 else ""
        raise UserError(f"cannot resume from {path}: {'; '.join(diffs[:3])}{more} (only train.* settings may change)")
    if ckpt.event_shape != event_shape:
        raise UserError(f"cannot resume from {path}: the run has examples of shape {ckpt.event_shape}, "
                        f"the data has {event_shape}")


def restore(ckpt: Checkpoint, flow: torch.nn.Module, optimizer: torch.optim.Optimizer,
            batches: torch.Generator, path: Path) -> None:
    """Load weights, optimizer moments and both random streams; a tampered state is a ``UserError``.

    Example:
        >>> ckpt, path = load_latest(run_dir, print)
        >>> flow = ckpt.build_flow(path)
        >>> restore(ckpt, flow, torch.optim.Adam(flow.parameters()), torch.Generator(), path)
        >>> ckpt.batch_rng = torch.zeros(3, dtype=torch.uint8)  # tampered
        >>> restore(ckpt, flow, torch.optim.Adam(flow.parameters()), torch.Generator(), path)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        realnvp.errors.UserError: cannot resume from ...
    """
    try:
        flow.load_state_dict(ckpt.model)
        optimizer.load_state_dict(ckpt.optimizer)
        batches.set_state(ckpt.batch_rng)
        torch.set_rng_state(ckpt.torch_rng)
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"cannot resume from {path}: {str(exc).strip().splitlines()[0][:200]}") from None


def tidy(run_dir: Path, step: int) -> None:
    """Before (re)starting at ``step``: drop temporary files a killed write left behind and metrics
    lines past ``step`` (logged after the checkpoint we resume from, or torn by the kill).

    Example:
        >>> _ = (tmp / METRICS).write_text('{"step": 10}\\n{"step": 20}\\n{"st')
        >>> tidy(tmp, 10)
        >>> (tmp / METRICS).read_text()
        '{"step": 10}\\n'
    """
    for name in RUN_FILES:
        for tmp in run_dir.glob(f".{name}.*.tmp"):
            tmp.unlink(missing_ok=True)
    path = run_dir / METRICS
    if not path.exists():
        return
    lines = path.read_text().splitlines()
    keep = []
    for line in lines:
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            continue
        if isinstance(record, dict) and well_typed(record) and (record.get("step") or 0) <= step:
            keep.append(line)
    if keep != lines:
        atomic_write_bytes(path, "".join(line + "\n" for line in keep).encode())
