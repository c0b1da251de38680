"""Small tables choose their number of steps by K-fold cross-validation (realnvp.training.crossval):
every row is scored by a flow that never saw it, a step wins only by more than a paired standard error,
and the run then trains on every row for that many steps; zero steps keeps the Gaussian exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_own_data import banana, correlated

from realnvp import load
from realnvp.cli import main
from realnvp.config import load_config
from realnvp.evaluation.baselines import gaussian_nll
from realnvp.training.crossval import _choose, cross_validate_steps


def test_held_out_rows_are_scored_by_the_fold_that_never_saw_them():
    """At step 0 each whitened fold flow is the Gaussian of the other folds' rows: the pooled NLL must
    equal those Gaussians scored on the held-out folds (a flow fitted on its own test rows scores lower)."""
    rows = torch.from_numpy(correlated(90, 3, 0))
    cfg = load_config("vector", ["train.cv_folds=3", "train.steps=1", "train.eval_every=1", "model.hidden=8",
                                 "model.whiten=true", "train.batch_size=30", "train.seed=4"])
    result = cross_validate_steps(cfg, rows)
    order = torch.randperm(90, generator=torch.Generator().manual_seed(4))
    folds = [order[k::3].numpy() for k in range(3)]
    x = rows.double().numpy()
    expected = sum(gaussian_nll(np.delete(x, f, 0), x[f]) * len(f) for f in folds) / 90
    assert result.start_nll == pytest.approx(expected, abs=1e-4)
    assert result.start_nll > sum(gaussian_nll(x[f], x[f]) * len(f) for f in folds) / 90 + 0.1


def test_a_step_must_beat_step_zero_by_a_paired_standard_error():
    rng = np.random.default_rng(0)
    start = torch.from_numpy(rng.normal(3.0, 1.0, 200))
    noise = torch.from_numpy(rng.normal(0.0, 1.0, 200))
    noise -= noise.mean()  # the gains below are exactly 0.02 and 0.5
    small_gain = [start, start - 0.02 + noise * 0.5]  # gain 0.02, paired SE ~0.035
    large_gain = [start, start - 0.02 + noise * 0.5, start - 0.5 + noise * 0.5]
    assert _choose(small_gain, 1, every=10, folds=5).steps == 0
    chosen = _choose(large_gain, 2, every=10, folds=5)
    assert chosen.steps == 20 and chosen.nll == pytest.approx(float(large_gain[2].mean()))
    assert chosen.paired_se == pytest.approx(float((large_gain[2] - start).std() / np.sqrt(200)), rel=1e-6)


def test_small_table_without_flags_cross_validates_and_trains_every_row(tmp_path, capsys):
    np.save(tmp_path / "train.npy", banana(150, 0))
    np.save(tmp_path / "test.npy", banana(2000, 1))
    run = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path / "train.npy"), "--test-data", str(tmp_path / "test.npy"),
                 "--out", str(run), "--no-pictures"]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "fold cross-validation on" in line]
    assert len(lines) == 1 and lines[0].startswith("5-fold cross-validation on 150 rows")
    steps = json.loads((run / "config.json").read_text())["train"]["steps"]
    assert lines[0].endswith(f"training on all 150 rows for {steps} steps") and steps > 0
    evaluation = json.loads((run / "evaluation.json").read_text())
    assert evaluation["n_train"] == 150
    assert evaluation["stop_reason"] == f"reached {steps} steps (chosen by 5-fold cross-validation)"
    assert evaluation["test_nll_nats"] < evaluation["baseline_gaussian_test_nll_nats"] - 0.05


def test_zero_steps_keeps_the_untrained_whitened_flow_the_gaussian(tmp_path, capsys):
    train, test = correlated(200, 4, 0), correlated(50, 4, 1)
    np.save(tmp_path / "train.npy", train)
    np.save(tmp_path / "test.npy", test)
    assert main(["train", "--data", str(tmp_path / "train.npy"), "--test-data", str(tmp_path / "test.npy"),
                 "--out", str(tmp_path / "run"), "--no-pictures", "--quiet", "--steps", "0", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    own = -load(tmp_path / "run").log_prob(torch.from_numpy(test), defensive=False).double().mean().item()
    assert own == pytest.approx(gaussian_nll(train, test), abs=1e-4)
    # The defensive Student-t share only lowers the cost of rows (these come from another mixing matrix).
    assert metrics["test_nll_nats"] <= gaussian_nll(train, test) + 1e-3


@pytest.mark.parametrize("extra, message", [
    (["--set", "train.cv_folds=1"], "train.cv_folds must be 0 (off) or at least 2 folds, got 1"),
    (["--set", "model.conditional=true", "--context-columns", "1"], "train.cv_folds works on unconditional"),
])
def test_impossible_cross_validation_is_one_line(tmp_path, capsys, extra, message):
    np.save(tmp_path / "t.npy", correlated(100, 3, 0))
    code = main(["train", "--data", str(tmp_path / "t.npy"), "--out", str(tmp_path / "run"), "--no-pictures",
                 "--quiet", *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0]
    assert not (tmp_path / "run").exists()
