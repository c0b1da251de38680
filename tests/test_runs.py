"""``realnvp runs`` lists every run under a folder with the numbers its evaluation.json holds (one
score column with its unit beside it, never nats and bits/dim mixed, and the Gaussian baseline in the
same unit), marks unfinished runs, and TensorBoard logging mirrors metrics.jsonl."""

from __future__ import annotations

import json
import shutil
import sys

import pytest
from tiny import train_tiny

from realnvp.cli import main
from realnvp.cli.runs import list_runs


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory, tiny_moons):
    root = tmp_path_factory.mktemp("runs")
    shutil.copytree(tiny_moons, root / "moons")
    shutil.copytree(root / "moons", root / "group" / "unfinished")
    (root / "group" / "unfinished" / "evaluation.json").unlink()
    shutil.copytree(root / "moons", root / "broken")
    (root / "broken" / "evaluation.json").write_text("{not json")
    (root / "not-a-run").mkdir()
    (root / "not-a-run" / "notes.txt").write_text("hello")
    return root


def test_lists_every_run_with_its_evaluation(runs_dir):
    rows = {row["name"]: row for row in list_runs(runs_dir)}
    assert sorted(rows) == ["broken", "group/unfinished", "moons"]
    evaluation = json.loads((runs_dir / "moons" / "evaluation.json").read_text())
    gaussian = evaluation.get("baseline_gaussian_test_nll_nats")
    assert rows["moons"] == {"name": "moons", "data": "moons", "steps": evaluation["steps"],
                             "test_nll": evaluation["test_nll_nats"], "unit": "nats/example",
                             "gaussian_nll": gaussian, "params": evaluation["n_params"],
                             "stop_reason": evaluation["stop_reason"], "test_nll_nats": evaluation["test_nll_nats"],
                             "bits_per_dim": None, "baseline_gaussian_test_nll_nats": gaussian}
    last_step = json.loads((runs_dir / "moons" / "metrics.jsonl").read_text().splitlines()[-1])["step"]
    for name in ("group/unfinished", "broken"):
        assert rows[name]["steps"] == last_step and rows[name]["test_nll"] is None
        assert rows[name]["stop_reason"].startswith("unfinished")


def test_cli_table_and_json(runs_dir, capsys):
    assert main(["runs", str(runs_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "data", "steps", "test_nll", "unit", "gaussian_nll", "params", "stop_reason"]
    evaluation = json.loads((runs_dir / "moons" / "evaluation.json").read_text())
    moons = next(line for line in lines if line.startswith("moons"))
    assert f"{evaluation['test_nll_nats']:.4f}  nats/example" in moons and f"{evaluation['n_params']:,}" in moons
    if "baseline_gaussian_test_nll_nats" in evaluation:  # the Gaussian, in the same unit, beside the flow
        assert f"nats/example  {evaluation['baseline_gaussian_test_nll_nats']:12.4f}" in moons
    assert len(lines) == 4
    assert main(["runs", str(runs_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == list_runs(runs_dir)


def test_empty_and_missing_folders(tmp_path, capsys):
    assert main(["runs", str(tmp_path)]) == 0
    out = capsys.readouterr()
    assert out.out == "" and "no runs under" in out.err
    assert main(["runs", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err.strip() == f"realnvp: error: runs folder not found: {tmp_path / 'nope'}"


def test_tensorboard_logging_mirrors_metrics(tmp_path, tiny_moons):
    """train.tensorboard=true: the event files, read back, hold every record of metrics.jsonl."""
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed (pip install -e '.[dev]')")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = train_tiny(tmp_path / "tb", "--set", "train.tensorboard=true")
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for key in ("train_nll", "val_nll", "lr"):
        logged = [(e.step, e.value) for e in events.Scalars(key)]
        assert logged == [(r["step"], pytest.approx(r[key], rel=1e-6)) for r in records if key in r]
    assert not (tiny_moons / "tensorboard").exists()  # off by default


def test_tensorboard_missing_is_one_line(tmp_path, capsys, monkeypatch):
    """Without the extra (its import made to fail here) the option says how to get it, in one line."""
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # `import` of it raises ImportError
    with pytest.raises(AssertionError):
        train_tiny(tmp_path / "tb", "--set", "train.tensorboard=true")
    err = capsys.readouterr().err.strip()
    assert err == "realnvp: error: train.tensorboard=true needs TensorBoard: pip install 'realnvp[tensorboard]'"
