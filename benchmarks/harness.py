"""What the torch-side benchmark modules share: the peers' protocol module ``common`` (from
``drivers.PEERS_DIR``), the moons protocol's data, quiet training with its log, timing and profiler
tables. Drivers need none of it (``drivers.py``); rendering neither (``render/``)."""

from __future__ import annotations

import importlib
import json
import math
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch

from benchmarks.drivers import PEERS_DIR
from realnvp.config import Config
from realnvp.data import make_toy
from realnvp.training import TrainResult, train


def peers_common() -> ModuleType:
    """The peers' protocol module ``common`` (constants, data, batch stream, timer, JSON line)."""
    if str(PEERS_DIR) not in sys.path:
        sys.path.insert(0, str(PEERS_DIR))
    return importlib.import_module("common")


def moons_protocol_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Train/test moons in original units plus the training mean/std, checked against the protocol's
    own standardised arrays (``common.moons``) so both sides provably see the same points."""
    common = peers_common()
    train_x = make_toy("moons", 10_000, seed=0).astype(np.float64)
    test_x = make_toy("moons", 10_000, seed=1).astype(np.float64)
    mu, sd = train_x.mean(0), train_x.std(0)  # population std, as the protocol's numpy code
    tr_std, te_std, log_sd = common.moons()
    if not (np.allclose((train_x - mu) / sd, tr_std, atol=1e-6) and np.allclose((test_x - mu) / sd, te_std, atol=1e-6)
            and math.isclose(np.log(sd).sum(), log_sd, rel_tol=1e-6)):
        raise SystemExit("realnvp's moons data differ from the protocol's (common.moons)")
    return train_x.astype(np.float32), test_x.astype(np.float32), mu, sd


def image_rows(images: np.ndarray) -> list[bytes]:
    """The images as sorted byte strings: equal lists mean the same multiset of images."""
    return sorted(r.tobytes() for r in images.reshape(len(images), -1).astype(np.uint8))


def train_logged(cfg: Config, run_dir: Path,
                 resume: bool = False) -> tuple[TrainResult, list[dict[str, Any]], list[str]]:
    """``train`` quietly into ``run_dir`` (``resume``: from its checkpoint): the result, the evaluation
    records of ``metrics.jsonl`` (those with a validation NLL or, without a validation split, every
    record) and the log lines."""
    messages: list[str] = []
    result = train(cfg, run_dir, resume=resume, progress=False, log=messages.append)
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    evaluations = [r for r in records if "val_nll" in r] or records
    return result, evaluations, messages


def median_seconds(fn: Callable[[], object], reps: int, warmup: int = 3) -> float:
    """Median wall seconds of ``reps`` calls of ``fn`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def self_time_by_kind(prof: torch.profiler.profile, kinds: dict[str, str]) -> dict[str, float]:
    """Profiler self CPU time (microseconds) summed per kind of op; ops not in ``kinds`` count as overhead."""
    per_kind: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        if event.self_cpu_time_total > 0:
            per_kind[kinds.get(event.key, "other ops + Python/autograd overhead")] += event.self_cpu_time_total
    return per_kind


def print_by_kind(per_kind: dict[str, float], steps: int) -> None:
    """The markdown table of ``self_time_by_kind``: ms per step and share, largest first."""
    total = sum(per_kind.values())
    print("| kind | ms/step (self CPU) | share |\n| --- | ---: | ---: |")
    for kind, us in sorted(per_kind.items(), key=lambda kv: -kv[1]):
        print(f"| {kind} | {us / 1e3 / steps:.2f} | {us / total:.0%} |")
