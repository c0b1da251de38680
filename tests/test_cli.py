"""The command line end to end in a temporary directory: train, evaluate, sample, animate, load."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import realnvp
from realnvp.cli import main

SMALL = ["--set", "model.hidden=32,32", "--set", "model.n_couplings=4", "--set", "train.eval_every=20",
         "--set", "data.n_train=2000", "--set", "data.n_test=1000", "--quiet"]


@pytest.fixture(scope="module")
def moons_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "moons"
    assert main(["train", "moons", "--out", str(run), "--steps", "60", *SMALL]) == 0
    return run


def test_train_writes_run_directory(moons_run):
    for name in ("config.json", "checkpoint.pt", "best.pt", "metrics.jsonl", "evaluation.json",
                 "samples.png", "density.png", "animation.gif"):
        assert (moons_run / name).stat().st_size > 0, name
    lines = [json.loads(line) for line in (moons_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [20, 40, 60]
    assert lines[-1]["train_nll"] < lines[0]["train_nll"] + 1.0


def test_evaluate_json(moons_run, capsys):
    assert main(["evaluate", str(moons_run), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    for key in ("test_nll_nats", "train_nll_nats", "inverse_max_abs_error", "n_params", "steps"):
        assert key in metrics
    assert metrics["steps"] == 60
    assert metrics["inverse_max_abs_error"] < 1e-4
    assert np.isfinite(metrics["test_nll_nats"]) and metrics["test_nll_nats"] < 3.0  # a 2-D Gaussian fit gets 1.88


def test_evaluate_matches_python_api(moons_run, capsys):
    from realnvp.data import make_toy

    flow = realnvp.load(moons_run)
    test = torch.from_numpy(make_toy("moons", 1000, seed=1))
    main(["evaluate", str(moons_run), "--json"])
    metrics = json.loads(capsys.readouterr().out)
    assert abs(-flow.log_prob(test).double().mean().item() - metrics["test_nll_nats"]) < 1e-5
    assert flow.sample(7).shape == (7, 2)


def test_sample_png_and_npy(moons_run, tmp_path):
    assert main(["sample", str(moons_run), "-n", "300", "--temperature", "0.7", "-o", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["sample", str(moons_run), "-n", "300", "-o", str(tmp_path / "s.npy")]) == 0
    samples = np.load(tmp_path / "s.npy")
    assert samples.shape == (300, 2) and np.isfinite(samples).all()


def test_animate_gif(moons_run, tmp_path):
    from PIL import Image

    out = tmp_path / "a.gif"
    assert main(["animate", str(moons_run), "-o", str(out), "-n", "200"]) == 0
    with Image.open(out) as gif:
        assert gif.n_frames > 4 * 10  # several frames per coupling layer (4 in this run)


def test_resume_continues_to_more_steps(moons_run, tmp_path):
    import shutil

    run = tmp_path / "resumed"
    shutil.copytree(moons_run, run)
    assert main(["train", "moons", "--out", str(run), "--steps", "80", "--resume", "--no-pictures", *SMALL]) == 0
    metrics = json.loads((run / "evaluation.json").read_text())
    assert metrics["steps"] == 80


def test_user_vectors_5d_end_to_end(tmp_path):
    rng = np.random.RandomState(0)
    data = rng.randn(1500, 5).astype(np.float32) @ rng.randn(5, 5).astype(np.float32) + 3.0
    np.save(tmp_path / "mine.npy", data)
    run = tmp_path / "mine"
    assert main(["train", "vector", "--data", str(tmp_path / "mine.npy"), "--out", str(run), "--steps", "40",
                 "--set", "model.hidden=32", "--set", "model.n_couplings=4", "--set", "train.eval_every=20",
                 "--quiet", "--no-pictures"]) == 0
    metrics = json.loads((run / "evaluation.json").read_text())
    assert metrics["dim"] == 5 and metrics["n_test"] == 300
    assert main(["sample", str(run), "-n", "50", "-o", str(tmp_path / "m.npy")]) == 0
    assert np.load(tmp_path / "m.npy").shape == (50, 5)
    assert main(["sample", str(run), "-n", "50", "-o", str(tmp_path / "m.png")]) == 0
    assert main(["animate", str(run), "-o", str(tmp_path / "m.gif"), "-n", "100"]) == 0
    flow = realnvp.load(run)
    assert flow.log_prob(torch.from_numpy(data[:3])).shape == (3,)


def test_console_script_runs_as_module():
    out = subprocess.run([sys.executable, "-m", "realnvp", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "train" in out.stdout and "examples:" in out.stdout
