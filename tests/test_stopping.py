"""Stopping on cases where the stop point is known: early stopping (``train.patience``) on a run whose
validation NLL cannot improve, the time budget (``train.time_budget``) on a clock that advances one
second per optimizer step, and both carried across ``--resume``."""

from __future__ import annotations

import json
import math
import time

import pytest
import torch
from tiny import TINY, counting_optimizer_steps
from torch.optim.optimizer import register_optimizer_step_post_hook

from realnvp.config import load_config
from realnvp.training import train

QUIET = {"progress": False, "log": lambda *args: None}
# A learning rate so small that no float32 weight moves (the updates are ~1e-30): the validation NLL
# is the same at every evaluation, so after the first one it never improves.
FROZEN = [*TINY, "train.lr=1e-30", "train.eval_every=5", "train.steps=1000"]


def evaluations(run) -> list[dict]:
    """The evaluation records of metrics.jsonl (the running train-NLL records between them left out)."""
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [line for line in lines if "val_nll" in line]


def test_patience_stops_after_that_many_evaluations_without_improvement(tmp_path):
    result = train(load_config("moons", [*FROZEN, "train.patience=3"]), tmp_path / "run", **QUIET)
    # evaluation 1 (step 5) sets the best; 10, 15, 20 do not improve on it: 3 stale evaluations
    assert result.step == 5 * (3 + 1) == 20
    assert result.stop_reason.startswith("early stopping: no validation improvement in 3 evaluations (15 steps)")
    lines = evaluations(tmp_path / "run")
    assert [r["step"] for r in lines] == [5, 10, 15, 20]
    assert len({r["val_nll"] for r in lines}) == 1  # the premise: validation never changed
    assert torch.load(tmp_path / "run" / "best.pt", weights_only=True)["step"] == 5  # the best is kept
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["step"] == 20


def test_no_patience_runs_every_step(tmp_path):
    cfg = load_config("moons", [*FROZEN, "train.patience=0", "train.steps=30"])
    result = train(cfg, tmp_path / "run", **QUIET)
    assert (result.step, result.stop_reason) == (30, "reached 30 steps")
    assert [r["step"] for r in evaluations(tmp_path / "run")] == [5, 10, 15, 20, 25, 30]


def test_patience_counts_across_resume(tmp_path):
    """A run that ended (at step 15) with 2 stale evaluations, resumed with patience 3, stops at the
    next stale one (step 20): the best NLL and the count of stale evaluations come from the checkpoint."""
    run = tmp_path / "run"
    train(load_config("moons", [*FROZEN, "train.patience=3", "train.steps=15"]), run, **QUIET)
    with counting_optimizer_steps() as steps:
        result = train(load_config("moons", [*FROZEN, "train.patience=3"]), run, resume=True, **QUIET)
    assert (result.step, steps[0]) == (20, 5)
    assert result.stop_reason.startswith("early stopping: no validation improvement in 3 evaluations")


class StepClock:
    """Reads the number of optimizer steps taken since it started, in seconds."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def tick(self, *args) -> None:
        self.seconds += 1.0

    def now(self) -> float:
        return self.seconds


@pytest.fixture
def step_clock(monkeypatch):
    """``time.perf_counter`` (and ``time.monotonic``) replaced by a ``StepClock``."""
    clock = StepClock()
    handle = register_optimizer_step_post_hook(clock.tick)
    monkeypatch.setattr(time, "perf_counter", clock.now)
    monkeypatch.setattr(time, "monotonic", clock.now)
    yield clock
    handle.remove()


def test_time_budget_stops_at_the_step_that_spends_it(tmp_path, step_clock):
    cfg = load_config("moons", [*TINY, "train.time_budget=7.5", "train.eval_every=5", "train.steps=1000"])
    result = train(cfg, tmp_path / "run", **QUIET)
    # after step 8 the clock reads 8 s >= 7.5 s: training stops there and evaluates that step
    assert (result.step, result.stop_reason) == (8, "time budget of 7.5 s used")
    lines = evaluations(tmp_path / "run")
    assert [(r["step"], r["elapsed_s"]) for r in lines] == [(5, 5.0), (8, 8.0)]
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["step"] == 8


def test_time_budget_counts_the_time_before_a_resume(tmp_path, step_clock):
    """4 s spent before the interruption count: the resumed run stops at step 8, 4 steps later."""
    run = tmp_path / "run"
    settings = [*TINY, "train.time_budget=7.5", "train.eval_every=2"]
    train(load_config("moons", [*settings, "train.steps=4"]), run, **QUIET)
    with counting_optimizer_steps() as steps:
        result = train(load_config("moons", [*settings, "train.steps=1000"]), run, resume=True, **QUIET)
    assert (result.step, steps[0], result.stop_reason) == (8, 4, "time budget of 7.5 s used")
    assert evaluations(run)[-1]["elapsed_s"] == 8.0


def test_without_a_budget_the_clock_does_not_stop_training(tmp_path, step_clock):
    cfg = load_config("moons", [*TINY, "train.time_budget=0", "train.eval_every=10", "train.steps=20"])
    assert train(cfg, tmp_path / "run", **QUIET).stop_reason == "reached 20 steps"
    assert step_clock.now() == 20.0


def test_time_cosine_reaches_zero_when_the_budget_is_spent(tmp_path, step_clock):
    """lr_schedule = cosine_time decays by the clock: with 1,000 steps allowed and 8 s of budget, the
    step taken at 4 s runs at half the learning rate and the last one (at 7 s) near zero."""
    cfg = load_config("moons", [*TINY, "train.time_budget=8", "train.steps=1000", "train.warmup_steps=0",
                                "train.lr_schedule=cosine_time", "train.log_every=1", "train.eval_every=4"])
    result = train(cfg, tmp_path / "run", **QUIET)
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    lr = {line["step"]: line["lr"] for line in lines if "val_nll" not in line}
    assert result.step == 8
    assert lr[5] == pytest.approx(cfg.train.lr * 0.5)  # step 5 was set up at 4 s of 8
    assert lr[8] == pytest.approx(cfg.train.lr * 0.5 * (1 + math.cos(math.pi * 7 / 8)))
    assert lr[8] < 0.04 * cfg.train.lr
