"""What training prints and logs: in a log file (stderr not a terminal) one plain line per evaluation
and no carriage returns; on a terminal a live bar that shows a train NLL from the first log point;
running train-NLL records every ``train.log_every`` steps in metrics.jsonl beside the evaluation
records; bits/dim for image runs; no ``val_nll=inf`` without a validation split."""

from __future__ import annotations

import io
import json
import re

from realnvp.cli import main
from realnvp.training.logs import Progress

TINY = ["--steps", "60", "--no-pictures", "--set", "model.n_couplings=2", "--set", "model.hidden=8",
        "--set", "train.eval_every=20", "--set", "train.time_budget=0", "--set", "data.n_train=300",
        "--set", "data.n_test=100"]


def _records(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_log_file_gets_one_plain_line_per_evaluation(tmp_path, capsys):
    assert main(["train", "moons", "--out", str(tmp_path / "run"), *TINY, "--set", "train.log_every=7"]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = [line for line in err.splitlines() if line.startswith("step ")]
    assert [line.split(":")[0] for line in lines] == ["step 20/60", "step 40/60", "step 60/60"]
    assert all(re.search(r"train NLL -?\d+\.\d{4}, val NLL -?\d+\.\d{4} \(best -?\d+\.\d{4}\), lr \S+, \d+\.\d s$",
                         line) for line in lines), lines
    records = _records(tmp_path / "run")
    evaluations = [r for r in records if "val_nll" in r]
    running = [r for r in records if "val_nll" not in r]
    assert [r["step"] for r in evaluations] == [20, 40, 60]
    # Every 7 steps, the window restarting at each checkpoint (so --resume repeats them exactly).
    assert [r["step"] for r in running] == [7, 14, 21, 28, 35, 42, 49, 56]
    assert all(set(r) == {"step", "train_nll", "lr", "elapsed_s"} for r in running)
    assert [r["step"] for r in records] == sorted(r["step"] for r in records)


def test_default_log_every_is_about_50_points(tmp_path):
    assert main(["train", "moons", "--out", str(tmp_path / "run"), "--quiet", *TINY, "--steps", "100"]) == 0
    running = [r for r in _records(tmp_path / "run") if "val_nll" not in r]
    assert [r["step"] for r in running] == list(range(2, 101, 2))  # max(1, 100 // 50) = 2


def test_without_validation_split_no_infinity(tmp_path, capsys):
    assert main(["train", "moons", "--out", str(tmp_path / "run"), *TINY, "--set", "data.val_fraction=0"]) == 0
    err = capsys.readouterr().err
    assert "inf" not in err
    assert "step 60/60: train NLL" in err and "no validation split" in err


def test_image_runs_show_bits_per_dim(tmp_path, capsys):
    image = ["--steps", "4", "--no-pictures", "--set", "model.feature_maps=4", "--set", "model.n_blocks=1",
             "--set", "model.n_scales=1", "--set", "train.eval_every=2", "--set", "train.log_every=1",
             "--set", "train.batch_size=16", "--set", "train.time_budget=0"]
    assert main(["train", "digits", "--out", str(tmp_path / "run"), *image]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("step ")]
    assert len(lines) == 2 and all("train bits/dim" in line and "val bits/dim" in line for line in lines), lines
    records = _records(tmp_path / "run")
    assert all("train_bpd" in r for r in records)
    for r in records:  # bits/dim of 64 pixels of 17 levels, from the NLL in nats kept beside it
        assert abs(r["train_bpd"] - (r["train_nll"] + 64 * 2.833213344056216) / (64 * 0.6931471805599453)) < 1e-9
    assert [r["step"] for r in records if "val_bpd" in r] == [2, 4]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_bar_shows_train_nll_from_the_first_log_point():
    out = _Terminal()
    progress = Progress(total=100, initial=0, enabled=True, stream=out)
    progress.advance()
    progress.running({"step": 2, "train_nll": 1.5, "lr": 1e-3, "elapsed_s": 0.1})
    assert progress.bar.postfix == "train_nll=1.5000"
    progress.evaluation({"step": 10, "train_nll": 1.25, "lr": 1e-3, "elapsed_s": 1.0}, None)
    assert progress.bar.postfix == "train_nll=1.2500"  # no validation split: no val_nll=inf
    progress.close()
    assert out.getvalue().endswith("\n")  # closed: the next message starts on a line of its own
    assert "step 10/100" not in out.getvalue()  # on a terminal the bar, not plain lines
