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


def test_runs_say_their_splits_and_parameters_before_training(tmp_path, capsys):
    """Issue 28: image and table runs alike print the split sizes and the model's parameter count (the
    trained model's own count) before the first step."""
    image = ["--steps", "2", "--no-pictures", "--set", "model.feature_maps=4", "--set", "model.n_blocks=1",
             "--set", "model.n_scales=1", "--set", "train.eval_every=2", "--set", "train.batch_size=16",
             "--set", "train.time_budget=0"]
    for preset, args, unit in (("digits", image, "images"), ("moons", TINY, "rows")):
        run = tmp_path / preset
        assert main(["train", preset, "--out", str(run), *args]) == 0
        lines = capsys.readouterr().err.splitlines()
        metrics = json.loads((run / "evaluation.json").read_text())
        first_step = next(i for i, line in enumerate(lines) if line.startswith("step "))
        data = next(i for i, line in enumerate(lines) if line.startswith("data: "))
        n_val = int(re.search(r", (\d[\d,]*) validation,", lines[data]).group(1).replace(",", ""))
        assert lines[data] == (f"data: {metrics['n_train']:,} training, {n_val:,} validation, "
                               f"{metrics['n_test']:,} test {unit}")
        assert lines[data + 1] == f"model: {metrics['n_params']:,} parameters" and data + 1 < first_step


def test_log_file_gets_progress_lines_between_evaluations(tmp_path, capsys, monkeypatch):
    """Issue 28: in a log file an image run with rare evaluations (and running records rarer still)
    prints a progress line every PLAIN_EVERY seconds between them: the step and the speed, with the
    running train value once there is one; here PLAIN_EVERY=0, so after every step."""
    import realnvp.training.logs as logs

    monkeypatch.setattr(logs, "PLAIN_EVERY", 0.0)
    image = ["--steps", "6", "--no-pictures", "--set", "model.feature_maps=4", "--set", "model.n_blocks=1",
             "--set", "model.n_scales=1", "--set", "train.eval_every=6", "--set", "train.log_every=3",
             "--set", "train.batch_size=16", "--set", "train.time_budget=0"]
    assert main(["train", "digits", "--out", str(tmp_path / "run"), *image]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("step ")]
    assert [line.split(":")[0] for line in lines] == [f"step {k}/6" for k in (1, 2, 3, 4, 5, 6, 6)], lines
    assert all(re.fullmatch(r"step \d/6: \S+ steps/s", line) for line in lines[:2]), lines
    assert all(re.fullmatch(r"step \d/6: \S+ steps/s, running train bits/dim \d+\.\d{4}", line)
               for line in lines[2:5]), lines
    assert "val bits/dim" in lines[5] and lines[6] == lines[6].split(",")[0]  # after the evaluation: none shown


def test_progress_lines_wait_for_the_interval():
    out = io.StringIO()
    progress = Progress(total=100, initial=0, enabled=True, stream=out, every=3600.0)
    for _ in range(50):
        progress.advance()
    progress.close()
    assert out.getvalue() == ""  # nothing before an hour has passed, and no bar in a log file
