"""Crash safety: training SIGKILLed mid-run (twice, then with its latest checkpoint damaged) resumes
to exactly the uninterrupted run's final state; atomic writes and the checkpoint rotation hold at
every step; ``--resume`` falls back to the previous checkpoint and refuses what it cannot use.

The 20-trial version is ``python -m benchmarks.kill_resume_trial`` (its helpers are reused here)."""

from __future__ import annotations

import os
import random
import time

import pytest
import torch
from tiny import TINY, cli_settings

from benchmarks import kill_resume_trial as trial
from realnvp.atomic import atomic_write_bytes
from realnvp.checkpoint import Checkpoint
from realnvp.cli import main
from realnvp.config import Config
from realnvp.errors import UserError
from realnvp.rundir import PREVIOUS
from realnvp.training.resume import load_latest, save_latest, tidy

SETTINGS = ["--steps", "60", "--device", "cpu", "--no-pictures", "--seed", "1",
            "--set", "model.n_couplings=4", "--set", "model.hidden=16,16", "--set", "model.batch_norm=true",
            "--set", "data.n_train=1000", "--set", "data.n_test=300", "--set", "train.batch_size=64",
            "--set", "train.lr_schedule=cosine", "--set", "train.warmup_steps=10", "--set", "train.grad_clip=5",
            "--set", "train.eval_every=10", "--set", "train.time_budget=0"]


def _kill_after_step(ctx, run_dir, step, rng):
    """Start or resume the run, SIGKILL it a random few milliseconds after it logs ``step``."""
    proc = trial.start(ctx, run_dir, SETTINGS)
    while proc.is_alive() and trial.last_step(run_dir) < step:
        time.sleep(0.005)
    time.sleep(rng.uniform(0.0, 0.03))  # land anywhere: mid-step, mid-evaluation, mid-checkpoint write
    assert trial.kill(proc), "the run finished before it could be killed"


def test_sigkilled_run_resumes_bit_exactly(tmp_path):
    ctx = trial.context("fork")
    reference = tmp_path / "reference"
    trial.run_to_end(ctx, reference, SETTINGS)
    run, rng = tmp_path / "killed", random.Random(0)
    _kill_after_step(ctx, run, 20, rng)
    _kill_after_step(ctx, run, 40, rng)
    latest = run / "checkpoint.pt"
    damaged = latest.exists()  # (a kill just after the rotation's rename leaves only checkpoint.prev.pt)
    if damaged:
        latest.write_bytes(latest.read_bytes()[:1000])  # a damaged disk: resume must use checkpoint.prev.pt
    trial.run_to_end(ctx, run, SETTINGS)
    log = (tmp_path / "killed.log").read_text()
    assert log.count("resumed") == 2 and ("skipped a damaged checkpoint" in log) == damaged
    assert trial.differences(reference, run) == []


def test_atomic_write_keeps_the_old_file_when_interrupted(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    atomic_write_bytes(path, b"old")

    def die(fd):
        raise KeyboardInterrupt  # the process dies between writing and renaming

    monkeypatch.setattr(os, "fsync", die)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(path, b"new" * 1000)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temporary file left


def _training_state(step, value=0.0):
    return Checkpoint(Config(), (2,), {"w": torch.full((2,), value)}, {}, torch.zeros(1), torch.zeros(1), step,
                      elapsed_s=0.0, best_val_nll=1.0, stale=0, n_params=2)


def test_rotation_keeps_the_previous_checkpoint(tmp_path):
    for step in range(3):
        save_latest(tmp_path, _training_state(step, float(step)))
    assert Checkpoint.read(tmp_path / "checkpoint.pt").step == 2
    assert Checkpoint.read(tmp_path / PREVIOUS).step == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.prev.pt", "checkpoint.pt"]


def test_resume_takes_the_newest_valid_checkpoint(tmp_path):
    save_latest(tmp_path, _training_state(10))
    save_latest(tmp_path, _training_state(20, value=float("nan")))  # non-finite weights: not valid
    messages = []
    ckpt, path = load_latest(tmp_path, messages.append)
    assert (ckpt.step, path.name) == (10, PREVIOUS)
    assert "holds non-finite weights" in messages[0]
    (tmp_path / PREVIOUS).write_bytes(b"garbage")
    with pytest.raises(UserError, match="no valid checkpoint") as err:
        load_latest(tmp_path, messages.append)
    assert "checkpoint.pt holds non-finite weights" in str(err.value) and PREVIOUS in str(err.value)
    assert "\n" not in str(err.value)


def test_tidy_trims_metrics_and_temporary_files(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 10}\n{"step": 20}\n{"step": 30}\n{"ste')
    (tmp_path / ".checkpoint.pt.abc123.tmp").write_bytes(b"torn")
    tidy(tmp_path, 20)
    assert (tmp_path / "metrics.jsonl").read_text() == '{"step": 10}\n{"step": 20}\n'
    assert not (tmp_path / ".checkpoint.pt.abc123.tmp").exists()


def test_run_killed_before_its_first_checkpoint_resumes_from_zero(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")  # what a run killed during start-up leaves
    assert main(["train", "moons", "--out", str(run), "--resume", "--steps", "20", "--no-pictures",
                 *cli_settings(TINY)]) == 0
    assert "no checkpoint yet" in capsys.readouterr().err
    assert Checkpoint.read(run / "checkpoint.pt").step == 20
