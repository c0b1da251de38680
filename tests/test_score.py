"""Scoring: per-example log-likelihoods equal the flow's exact density (analytic where the flow is a
known Gaussian), the CLI writes them to CSV in input order, image scores agree with ``evaluate``'s
bits/dim, and bad input ends in one line."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny import cli_settings, train_tiny

import realnvp
from realnvp.bijectors import Chain, Standardize
from realnvp.cli import main
from realnvp.errors import UserError
from realnvp.evaluation.scoring import score, score_array, score_images
from realnvp.flow import Flow

from checks import perturb_


@pytest.fixture(scope="module")
def run(tiny_moons):
    return tiny_moons


def read_csv(text: str) -> tuple[list[str], np.ndarray]:
    rows = list(csv.reader(io.StringIO(text)))
    return rows[0], np.array(rows[1:], dtype=np.float64)


def test_score_array_is_the_analytic_gaussian_density():
    loc, scale = torch.tensor([1.0, -2.0, 0.5]), torch.tensor([2.0, 0.5, 1.0])
    flow = Flow(Chain([Standardize(loc, scale)]), (3,))  # x ~ N(loc, diag(scale^2)) exactly
    x = np.random.RandomState(0).randn(1000, 3).astype(np.float32) * 3
    expected = (-0.5 * ((x - loc.numpy()) / scale.numpy()) ** 2 - np.log(scale.numpy())
                - 0.5 * math.log(2 * math.pi)).sum(1)
    got = score_array(flow, x, batch_size=64)  # several batches, order kept
    assert got.dtype == np.float64 and got.shape == (1000,)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)


def test_cli_scores_match_the_python_api_row_by_row(run, tmp_path, capsys):
    points = np.random.RandomState(1).randn(50, 2).astype(np.float32)
    np.save(tmp_path / "p.npy", points)
    np.savetxt(tmp_path / "p.csv", points, delimiter=",", header="x,y", comments="")
    for name in ("p.npy", "p.csv"):
        assert main(["score", str(run), str(tmp_path / name), "-o", str(tmp_path / "s.csv"), "--quiet"]) == 0
        header, table = read_csv((tmp_path / "s.csv").read_text())
        assert header == ["row", "log_likelihood_nats"]
        np.testing.assert_array_equal(table[:, 0], np.arange(50))
        np.testing.assert_allclose(table[:, 1], score(run, points)["log_likelihood_nats"], rtol=1e-6)
    flow = realnvp.load(run)
    np.testing.assert_allclose(table[:, 1], flow.log_prob(torch.from_numpy(points)).detach().double().numpy(),
                               rtol=1e-5)
    assert capsys.readouterr().err == ""


def test_stdout_and_json_summary(run, tmp_path, capsys):
    np.save(tmp_path / "p.npy", np.zeros((4, 2), np.float32) + [[0.5, 0.25]])
    assert main(["score", str(run), str(tmp_path / "p.npy"), "-o", "-", "--quiet"]) == 0
    header, table = read_csv(capsys.readouterr().out)
    assert header == ["row", "log_likelihood_nats"] and len(table) == 4
    assert main(["score", str(run), str(tmp_path / "p.npy"), "-o", str(tmp_path / "s.csv"), "--json"]) == 0
    out = capsys.readouterr()
    summary = json.loads(out.out)
    assert summary["n"] == 4
    assert summary["log_likelihood_nats_mean"] == pytest.approx(table[:, 1].mean())
    assert "scored 4 examples" in out.err


# A moons flow that learns the moons in a few seconds (TINY's 2 couplings of width 8 do not: after 600
# steps their flag rates below are the untrained Gaussian's), and the same flow at initialisation.
LEARNS_MOONS = ["model.n_couplings=6", "model.hidden=32,32", "train.lr=3e-3", "train.eval_every=100"]


@pytest.fixture(scope="module")
def moons_flows(tmp_path_factory) -> dict[str, Path]:
    """``{"trained": 300 steps of LEARNS_MOONS, "untrained": the same run with --steps 0}``."""
    root = tmp_path_factory.mktemp("ood")
    return {name: train_tiny(root / name, *cli_settings(LEARNS_MOONS), steps=steps)
            for name, steps in (("trained", 300), ("untrained", 0))}


def test_out_of_distribution_points_score_lower_than_moons_where_the_gaussian_cannot_tell(moons_flows):
    """The docs' out-of-distribution example (docs/scoring.md): moons shifted up by 0.3, uniform noise
    on [-1.5, 2.5]^2, and points at the moons' centre, where their Gaussian is densest. Flagging the
    least likely 5 % of fresh moons, the trained flow flags 64-81 %, 86-90 % and 100 % of them
    (train.seed 0-3); the flow at initialisation (the data's Gaussian) 34 %, 73 % and 0 %."""
    from realnvp.data import make_toy

    moons = make_toy("moons", 2000, seed=7)
    rng = np.random.RandomState(0)
    angle, radius = rng.uniform(0, 2 * np.pi, 2000), 0.15 * np.sqrt(rng.uniform(0, 1, 2000))
    inputs = {"moons": moons, "shifted": moons + np.float32([0.0, 0.3]),
              "noise": rng.uniform(-1.5, 2.5, size=(2000, 2)).astype(np.float32),
              "centre": np.stack([0.5 + radius * np.cos(angle), 0.25 + radius * np.sin(angle)], 1).astype(np.float32)}
    flagged, mean = {}, {}
    for name, run in moons_flows.items():
        scores = {k: score(run, x)["log_likelihood_nats"] for k, x in inputs.items()}
        threshold = np.quantile(scores["moons"], 0.05)  # flag the least likely 5% of in-distribution points
        flagged[name] = {k: (v < threshold).mean() for k, v in scores.items() if k != "moons"}
        mean[name] = scores["moons"].mean()
    trained, untrained = flagged["trained"], flagged["untrained"]
    assert mean["trained"] > mean["untrained"] + 1  # -0.61 against -2.00 nats
    assert trained["shifted"] > 0.5 and trained["noise"] > 0.8 and trained["centre"] > 0.9, flagged
    assert untrained["shifted"] < 0.5 and untrained["noise"] < 0.8 and untrained["centre"] < 0.1, flagged
    assert trained["shifted"] > untrained["shifted"] + 0.2 and trained["noise"] > untrained["noise"] + 0.05


def test_image_scores_agree_with_evaluate_bits_per_dim():
    """Per-image bits/dim averaged over a set equals evaluate's dequantized bits/dim: one noise, one loop."""
    from realnvp.evaluation.metrics import bits_per_dim, dequantized_nll
    from realnvp.models.image import build_image_flow

    torch.manual_seed(0)
    flow = perturb_(build_image_flow((1, 4, 4), n_scales=2, feature_maps=4, n_blocks=1), scale=0.3).eval()
    images = np.random.RandomState(0).randint(0, 17, size=(400, 1, 4, 4)).astype(np.uint8)
    out = score_images(flow, images, n_levels=17, draws=4)
    nll, _ = dequantized_nll(flow, torch.from_numpy(images), 17, draws=4)
    assert out["bits_per_dim"].mean() == pytest.approx(bits_per_dim(nll, 16, 17), abs=1e-9)
    np.testing.assert_allclose(out["bits_per_dim"], -out["log_likelihood_discrete_nats"] / (16 * math.log(2)))
    with pytest.warns(DeprecationWarning, match="log_likelihood_discrete_nats"):
        np.testing.assert_array_equal(out["log_likelihood_nats"], out["log_likelihood_discrete_nats"])  # old name
    with pytest.raises(UserError, match="pixel levels"):
        score(flow, images)  # a bare image Flow needs n_levels
    with pytest.raises(UserError, match=r"0\.\.16"):
        score(flow, images + 100, n_levels=17)


def test_score_of_the_test_images_matches_evaluate_to_1e6(tiny_digits, tmp_path, capsys):
    """Issue 14 item 9: ``realnvp score`` of the run's test images and ``realnvp evaluate`` agree (same
    noise, same draws, same batches); the columns say discrete, evaluate's NLL is the continuous density."""
    from realnvp.data import load_splits
    from realnvp.evaluation.metrics import evaluate_run

    digits_run = tiny_digits
    test = load_splits(realnvp.RunDir(digits_run).config().data).test
    np.save(tmp_path / "test.npy", test)
    assert main(["score", str(digits_run), str(tmp_path / "test.npy"), "-o", str(tmp_path / "s.csv"), "--json"]) == 0
    out = capsys.readouterr()
    header, table = read_csv((tmp_path / "s.csv").read_text())
    assert header == ["row", "log_likelihood_discrete_nats", "bits_per_dim"] and len(table) == len(test)
    assert "discrete log-likelihood mean" in out.err
    metrics = evaluate_run(digits_run)
    assert json.loads(out.out)["bits_per_dim_mean"] == pytest.approx(metrics["bits_per_dim"], abs=1e-6)
    assert table[:, 2].mean() == pytest.approx(metrics["bits_per_dim"], abs=1e-6)
    # evaluate's test NLL is the density of y = (v + u) / 17 in [0, 1)^64, not log P(v): they differ by D ln L
    assert -table[:, 1].mean() == pytest.approx(metrics["test_nll_nats"] + 64 * math.log(17), abs=1e-4)


@pytest.mark.parametrize("content, args, message", [
    ("1,2,3\n4,5,6\n", [], "the run was trained on 2 columns, the file has 3"),
    ("1,2\nnan,5\n", [], "missing cells, first at line 2"),
    ("1,2\n", ["-o", "{tmp}/s.txt"], "must end in .csv"),
    ("1,2\n", ["-o", "-", "--json"], "both write to standard output"),
    ("1,2\n", ["-o", "{tmp}/missing/s.csv"], "does not exist"),
])
def test_bad_input_is_one_line_and_writes_nothing(run, tmp_path, capsys, content, args, message):
    (tmp_path / "in.csv").write_text(content)
    argv = ["score", str(run), str(tmp_path / "in.csv"), *[a.format(tmp=tmp_path) for a in args]]
    if "-o" not in args:
        argv += ["-o", str(tmp_path / "s.csv")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("realnvp: error:") and message in err and err.count("\n") == 1
    assert not (tmp_path / "s.csv").exists()
