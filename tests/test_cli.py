"""The command line end to end in a temporary directory: train, evaluate, sample, animate, resume, load.
Learning is judged against the untrained model's own NLL (tiny.untrained_nll), not a fixed bound."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from tiny import TINY, cli_settings, counting_optimizer_steps, same_records, same_weights, train_tiny, untrained_nll

import realnvp
from realnvp.cli import main


@pytest.fixture
def moons_run(tiny_moons):
    return tiny_moons  # the shared run (tests/conftest.py): 60 steps of tiny.TINY, pictures included


def test_train_writes_run_directory(moons_run):
    for name in ("config.json", "checkpoint.pt", "best.pt", "metrics.jsonl", "evaluation.json",
                 "samples.png", "density.png", "animation.gif"):
        assert (moons_run / name).stat().st_size > 0, name
    lines = [json.loads(line) for line in (moons_run / "metrics.jsonl").read_text().splitlines()]
    lines = [r for r in lines if "val_nll" in r]  # the evaluations (the running train-NLL records left out)
    assert [r["step"] for r in lines] == [20, 40, 60]
    # It learned: validation NLL 0.1 nats below the untrained model's (~2.01 -> ~1.81 in 60 steps),
    # and the mean training NLL of the last 20 steps below that of the first 20.
    assert lines[-1]["val_nll"] < untrained_nll(moons_run, "val") - 0.1
    assert lines[-1]["train_nll"] < lines[0]["train_nll"] - 0.05


def test_evaluate_json(moons_run, capsys):
    assert main(["evaluate", str(moons_run), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    for key in ("test_nll_nats", "train_nll_nats", "inverse_max_abs_error", "n_params", "steps"):
        assert key in metrics
    assert metrics["steps"] == 60
    assert metrics["inverse_max_abs_error"] < 1e-4
    assert np.isfinite(metrics["test_nll_nats"])
    assert metrics["test_nll_nats"] < untrained_nll(moons_run) - 0.1  # ~1.78 against ~1.99 untrained


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
        assert gif.n_frames > 2 * 10  # several frames per coupling layer (2 in this run)


def test_animate_mp4(moons_run, tmp_path, capsys):
    out = tmp_path / "a.mp4"
    argv = ["animate", str(moons_run), "-o", str(out), "-n", "100", "--quiet"]
    if shutil.which("ffmpeg") is None:
        assert main(argv) == 2
        assert "needs ffmpeg" in capsys.readouterr().err
        pytest.skip("ffmpeg is not on PATH: .mp4 writing is untested here (only its one-line error was checked)")
    assert main(argv) == 0
    assert out.read_bytes()[4:8] == b"ftyp"  # an MP4 container


def test_resume_continues_where_the_run_stopped(moons_run, tmp_path, capsys):
    """--resume of the 60-step run to 80 steps takes 20 optimizer steps, from step 60, and ends exactly
    where an uninterrupted 80-step run does (a constant learning rate: the same schedule either way)."""
    run = shutil.copytree(moons_run, tmp_path / "resumed")
    with counting_optimizer_steps() as steps:
        assert main(["train", "moons", "--out", str(run), "--steps", "80", "--resume", "--no-pictures",
                     *cli_settings(TINY)]) == 0
    assert steps[0] == 20
    assert f"resumed {run} at step 60 from checkpoint.pt" in capsys.readouterr().err
    assert json.loads((run / "evaluation.json").read_text())["steps"] == 80
    straight = train_tiny(tmp_path / "straight", steps=80)
    same_records(run, straight)  # the first 60 steps' records kept, the next 20 the same as uninterrupted
    same_weights(run, straight)


def test_user_vectors_5d_end_to_end(tmp_path):
    rng = np.random.RandomState(0)
    data = rng.randn(1500, 5).astype(np.float32) @ rng.randn(5, 5).astype(np.float32) + 3.0
    np.save(tmp_path / "mine.npy", data)
    run = tmp_path / "mine"
    assert main(["train", "vector", "--data", str(tmp_path / "mine.npy"), "--out", str(run), "--steps", "40",
                 "--set", "model.hidden=32", "--set", "model.n_couplings=2", "--set", "train.eval_every=20",
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


def test_evaluate_table_aligns_every_key_and_names_what_was_not_measured(tmp_path, capsys):
    """Issue 28: the table's colons line up after the longest key (baseline_shrinkage_test_nll_nats), and a
    run without a validation split says val_nll_nats was not measured instead of printing None."""
    run = train_tiny(tmp_path / "run", "--set", "data.val_fraction=0", steps=20)
    capsys.readouterr()
    assert main(["evaluate", str(run)]) == 0
    lines = capsys.readouterr().out.splitlines()
    width = max(len(line.split(": ")[0].strip()) for line in lines)
    assert width == len("baseline_shrinkage_test_nll_nats")
    assert {line.index(": ") for line in lines} == {width}
    assert not any(line.endswith("None") for line in lines)
    assert "val_nll_nats: not measured" in [line.strip() for line in lines]
