"""The user's own data by default: settings sized to the table, the Gaussian baseline beside every
vector result, held-out files (``--test-data``, ``evaluate --data``), whitening, and batch norm that
does not blow up on smooth 2-D data."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from tiny import TINY_DIGITS, cli_settings

import realnvp.cli.train as cli_train
from realnvp import load
from realnvp.autoconfig import capped_batch, vector_defaults
from realnvp.bijectors import BatchNormFlow, Whiten
from realnvp.cli import main
from realnvp.config import Config
from realnvp.data import load_splits
from realnvp.evaluation.baselines import gaussian_fit, gaussian_log_prob, gaussian_nll
from realnvp.models import build_vector_flow
from realnvp.rundir import RunDir
from realnvp.runlock import RunLock


def banana(n: int, seed: int) -> np.ndarray:
    """A smooth 2-D banana with a known density (``banana_log_prob``)."""
    rng = np.random.RandomState(seed)
    x1 = 1.2 * rng.randn(n)
    return np.stack([x1, 0.6 * rng.randn(n) + 0.3 * x1**2], 1).astype(np.float32)


def banana_log_prob(x: np.ndarray) -> np.ndarray:
    x1, x2 = x[:, 0].astype(np.float64), x[:, 1].astype(np.float64)
    normal = -0.5 * math.log(2 * math.pi)
    return (normal - 0.5 * (x1 / 1.2) ** 2 - math.log(1.2)) + (normal - 0.5 * ((x2 - 0.3 * x1**2) / 0.6) ** 2
                                                              - math.log(0.6))


def correlated(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, dim)) @ rng.normal(size=(dim, dim)) * 10 + 100).astype(np.float32)


def test_untrained_whitened_flow_is_the_gaussian_baseline():
    train, test = correlated(300, 5, 0), correlated(100, 5, 1)
    mean, chol = gaussian_fit(train)
    flow = build_vector_flow(5, n_couplings=3, hidden=(8,), mask="random",
                             loc=torch.tensor(mean, dtype=torch.float32), scale=torch.tensor(chol, dtype=torch.float32))
    ours = -flow.log_prob(torch.from_numpy(test)).double().mean().item()
    assert ours == pytest.approx(gaussian_nll(train, test), abs=1e-3)
    assert np.allclose(-flow.log_prob(torch.from_numpy(test)).detach().numpy(),
                       -gaussian_log_prob(test, mean, chol), atol=1e-3)


def test_whiten_round_trip_and_log_det():
    tril = torch.tensor([[2.0, 0.0, 0.0], [0.5, 1.0, 0.0], [-1.0, 0.3, 0.5]])
    layer = Whiten(torch.tensor([1.0, 2.0, 3.0]), tril)
    x = torch.randn(7, 3)
    z, log_det = layer(x)
    jac = torch.autograd.functional.jacobian(lambda v: layer(v[None])[0][0], x[0])
    assert torch.allclose(layer.inverse(z)[0], x, atol=1e-5)
    assert log_det[0].item() == pytest.approx(torch.linalg.slogdet(jac)[1].item(), abs=1e-5)


def test_defaults_adapt_to_rows_and_never_exceed_them():
    tiny, huge = vector_defaults(100, 13), vector_defaults(1_000_000, 13)
    assert tiny["train.batch_size"] <= 100 * (1 - tiny["data.val_fraction"])
    assert tiny["train.eval_every"] <= 20 < huge["train.eval_every"]  # early stopping acts on small data
    assert tiny["model.hidden"][0] < huge["model.hidden"][0]
    assert tiny["model.whiten"] and not tiny["model.batch_norm"]
    assert capped_batch(Config().train.batch_size, 50)[0] == 50 and capped_batch(32, 50) == (32, None)


def test_cli_sizes_small_table_keeps_explicit_settings(tmp_path, capsys):
    np.save(tmp_path / "t.npy", correlated(100, 13, 0))
    argv = ["train", "--data", str(tmp_path / "t.npy"), "--out", str(tmp_path / "run"), "--no-pictures",
            "--steps", "30", "--set", "model.hidden=16,16"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert len([line for line in err.splitlines() if line.startswith("defaults for 80 rows x 13 columns")]) == 1
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["model"]["hidden"] == [16, 16] and cfg["train"]["steps"] == 30  # the user's values win
    assert cfg["train"]["batch_size"] <= 64 and cfg["model"]["whiten"] is True
    evaluation = json.loads((tmp_path / "run" / "evaluation.json").read_text())
    assert evaluation["test_nll_nats"] <= evaluation["baseline_gaussian_test_nll_nats"] + 1e-3


def test_explicit_batch_larger_than_rows_is_said(tmp_path, capsys):
    np.save(tmp_path / "t.npy", correlated(60, 3, 0))
    argv = ["train", "vector", "--data", str(tmp_path / "t.npy"), "--out", str(tmp_path / "run"), "--no-pictures",
            "--steps", "5", "--set", "train.batch_size=500"]
    assert main(argv) == 0
    assert "train.batch_size 500 is more than the" in capsys.readouterr().err
    assert json.loads((tmp_path / "run" / "config.json").read_text())["train"]["batch_size"] < 60


def test_test_data_and_evaluate_data_end_to_end(tmp_path, capsys):
    train, test, other = correlated(400, 4, 0), correlated(123, 4, 1), correlated(77, 4, 2)
    for name, array in (("train", train), ("test", test), ("other", other)):
        np.save(tmp_path / f"{name}.npy", array)
    run = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path / "train.npy"), "--test-data", str(tmp_path / "test.npy"),
                 "--out", str(run), "--no-pictures", "--steps", "40", "--quiet"]) == 0
    evaluation = json.loads((run / "evaluation.json").read_text())
    assert evaluation["n_test"] == 123 and evaluation["n_train"] + round(0.2 * 400) == 400  # --steps: no folds
    assert evaluation["baseline_gaussian_test_nll_nats"] == pytest.approx(gaussian_nll(_train_rows(run), test))
    capsys.readouterr()
    assert main(["evaluate", str(run), "--data", str(tmp_path / "other.npy"), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    flow = load(run)
    expected = -flow.log_prob(torch.from_numpy(other)).double().mean().item()
    assert metrics["n_test"] == 77 and metrics["test_nll_nats"] == pytest.approx(expected, rel=1e-5)
    assert metrics["test_nll_nats_per_dim"] == pytest.approx(expected / 4, rel=1e-5)
    assert metrics["baseline_gaussian_test_nll_nats"] == pytest.approx(gaussian_nll(_train_rows(run), other))


def _train_rows(run) -> np.ndarray:
    """Every non-test row of the run's data: what the Gaussian baseline (and the whitening) is fitted on."""
    splits = load_splits(RunDir(run).config().data)
    return np.concatenate([splits.train, splits.val])


@pytest.mark.parametrize("bad, message", [
    ("missing.npy", "data file not found"),
    ("wide.npy", "the run was trained on 4 columns, the file has 5"),
    ("nan.npy", "rows have missing cells"),
])
def test_bad_held_out_files_are_one_line(tmp_path, capsys, bad, message):
    np.save(tmp_path / "train.npy", correlated(100, 4, 0))
    np.save(tmp_path / "wide.npy", correlated(10, 5, 0))
    np.save(tmp_path / "nan.npy", np.full((10, 4), np.nan, np.float32))
    run = tmp_path / "run"
    argv = ["train", "--data", str(tmp_path / "train.npy"), "--out", str(run), "--no-pictures", "--steps", "5"]
    assert main([*argv, "--test-data", str(tmp_path / bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and not run.exists()
    assert main([*argv, "--quiet"]) == 0
    before = sorted((p.name, p.stat().st_mtime_ns) for p in run.iterdir())
    assert main(["evaluate", str(run), "--data", str(tmp_path / bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert sorted((p.name, p.stat().st_mtime_ns) for p in run.iterdir()) == before


def test_images_test_data_and_evaluate_data(tmp_path, capsys):
    pixels = load_digits().data.reshape(-1, 1, 8, 8).astype(np.uint8)
    np.savez(tmp_path / "held.npz", x_test=pixels[:50])
    np.save(tmp_path / "held.npy", pixels[50:80, 0])  # [N, H, W]
    run = tmp_path / "run"
    assert main(["train", "digits", "--out", str(run), "--test-data", str(tmp_path / "held.npz"), "--steps", "4",
                 "--quiet", "--no-pictures", *cli_settings(TINY_DIGITS)]) == 0
    assert json.loads((run / "evaluation.json").read_text())["n_test"] == 50
    assert main(["evaluate", str(run), "--data", str(tmp_path / "held.npy"), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    # Better than uniform noise on the 17 levels: 4 steps reach 3.62-3.65 bits/dim (train.seed 0-3), the
    # model at initialisation scores 5.40.
    assert metrics["n_test"] == 30 and metrics["bits_per_dim"] < math.log2(17)
    np.save(tmp_path / "big.npy", np.full((3, 8, 8), 99, np.uint8))
    assert main(["evaluate", str(run), "--data", str(tmp_path / "big.npy")]) == 2
    assert "pixel values must lie in 0..16" in capsys.readouterr().err


def test_evaluate_says_when_the_flow_is_worse_than_the_gaussian(tmp_path, capsys):
    np.save(tmp_path / "t.npy", correlated(200, 3, 0))
    run = tmp_path / "run"
    # A raw-units flow without whitening, hardly trained: far worse than the Gaussian.
    assert main(["train", "--data", str(tmp_path / "t.npy"), "--out", str(run), "--no-pictures", "--quiet",
                 "--steps", "2", "--set", "model.whiten=false", "--set", "train.lr=1e-6"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run)]) == 0
    assert "the flow is WORSE than a full-covariance Gaussian" in capsys.readouterr().err


def test_batch_gradient_sees_the_scale_of_its_input():
    """Scaling a batch norm's input by c is (nearly) undone by its normalisation; with the full batch
    gradient the loss's derivative in c is small (exactly 0 once the running statistics match the
    batch), with only the momentum's share differentiated it is 60 times larger: the direction that
    let running variances drift 1 -> 280 on a 2-D banana."""
    torch.manual_seed(0)
    x = torch.randn(256, 2) * torch.tensor([1.0, 3.0])
    grads = {}
    for full in (True, False):
        bn = BatchNormFlow((2,), momentum=0.05, batch_gradient=full)
        bn(torch.randn(256, 2) * 2)  # running statistics initialised from another batch
        c = torch.tensor(1.5, requires_grad=True)
        z, log_det = bn(c * x)
        loss = (0.5 * (z**2).sum(1) - log_det - 2 * torch.log(c)).mean()  # -log p, the input scaled by c
        loss.backward()
        grads[full] = c.grad.item()
    assert abs(grads[True]) < 0.05 * abs(grads[False])


def test_defaults_reach_the_entropy_of_a_smooth_2d_density(tmp_path):
    """The defaults on 20,000 rows of a 2-D banana: no validation blow-up, test NLL within 0.03 nats of
    the entropy (Monte Carlo from the known log-density). The time budget is off so that a busy
    machine cannot cut the run short: the test is about the settings, not the clock."""
    np.save(tmp_path / "train.npy", banana(20_000, 0))
    np.save(tmp_path / "test.npy", banana(10_000, 1))
    run = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path / "train.npy"), "--test-data", str(tmp_path / "test.npy"),
                 "--out", str(run), "--no-pictures", "--quiet", "--time-budget", "0"]) == 0
    entropy = -banana_log_prob(banana(400_000, 2)).mean()
    test = np.load(tmp_path / "test.npy")
    gap = np.mean(banana_log_prob(test) + load(run).log_prob(torch.from_numpy(test)).double().detach().numpy())
    val = [r["val_nll"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "val_nll" in r]
    assert max(b - a for a, b in zip(val, val[1:])) < 0.1  # no jump between evaluations
    nll = json.loads((run / "evaluation.json").read_text())["test_nll_nats"]
    assert abs(nll - entropy) < 0.03 and gap < 0.03


@pytest.mark.parametrize("case", ["nan-data", "out-is-a-file", "already-a-run"])
def test_refused_input_is_one_stderr_line_without_quiet(tmp_path, capsys, case):
    """The chosen defaults are said only once the run passed its checks: a refusal is one line."""
    good, bad = correlated(200, 3, 0), correlated(200, 3, 0)
    bad[5, 1] = np.nan
    np.save(tmp_path / "ok.npy", good)
    np.save(tmp_path / "nan.npy", bad)
    (tmp_path / "a_file").write_text("x")
    out = tmp_path / "run"
    if case == "already-a-run":
        assert main(["train", "vector", "--data", str(tmp_path / "ok.npy"), "--out", str(out), "--steps", "5",
                     "--quiet", "--no-pictures"]) == 0
    data = tmp_path / ("nan.npy" if case == "nan-data" else "ok.npy")
    target = tmp_path / "a_file" if case == "out-is-a-file" else out
    capsys.readouterr()
    assert main(["train", "vector", "--data", str(data), "--out", str(target), "--steps", "5"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("realnvp: error: "), err


def test_cli_holds_the_run_lock_through_evaluation_and_pictures(tmp_path, capsys, monkeypatch):
    """A --resume started between train() and evaluation.json is refused: the lock is still held."""
    np.save(tmp_path / "ok.npy", correlated(200, 3, 0))
    out, held = tmp_path / "run", []
    original = cli_train.evaluate_run

    def evaluate_and_look(path, *args, **kwargs):
        held.append(RunLock.held_on(out) is not None)
        with pytest.raises(Exception, match="in use by another training"):
            RunLock(out).acquire()  # what a second `train --resume` would meet
        return original(path, *args, **kwargs)

    monkeypatch.setattr(cli_train, "evaluate_run", evaluate_and_look)
    assert main(["train", "vector", "--data", str(tmp_path / "ok.npy"), "--out", str(out), "--steps", "5",
                 "--quiet", "--no-pictures"]) == 0
    assert held == [True] and RunLock.held_on(out) is None and not (out / ".lock").exists()
