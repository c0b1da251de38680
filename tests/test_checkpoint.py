"""The checkpoint schema (``realnvp.checkpoint.Checkpoint``): a file round-trips through it unchanged,
files written before the version entry (and before ``n_levels``/``lr_scale``) still load, anything
missing, mistyped or from a newer realnvp is one line; ``train`` hands back the best-validation
weights (``best.pt``'s, not ``checkpoint.pt``'s), which ``realnvp train`` evaluates and draws
without reading them again, to the same metrics a fresh read gives."""

from __future__ import annotations

import io
import json
import shutil

import pytest
import torch
from tiny import TINY

from realnvp.checkpoint import VERSION, Checkpoint
from realnvp.cli import main
from realnvp.config import load_config
from realnvp.errors import UserError
from realnvp.evaluation.metrics import evaluate_run
from realnvp.rundir import BEST, CHECKPOINT, EVALUATION, RunDir
from realnvp.training import train
from realnvp.viz import pictures

QUIET = {"progress": False, "log": lambda *args: None}
# A learning rate high enough for the validation NLL to get worse: early stopping after two worse
# evaluations leaves best.pt (step 30 here) behind checkpoint.pt (step 40), with other weights.
UNSTEADY = [*TINY, "train.lr=0.03", "train.eval_every=5", "train.steps=40", "train.patience=2",
            "data.n_train=300", "data.n_test=100"]


def _saved(table: dict, path) -> None:
    """``table`` as a torch file, as any realnvp (or a tamperer) may have written it."""
    buffer = io.BytesIO()
    torch.save(table, buffer)
    path.write_bytes(buffer.getvalue())


def _same_tensors(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def unsteady(tmp_path_factory):
    run = tmp_path_factory.mktemp("unsteady") / "run"
    return run, train(load_config("moons", UNSTEADY), run, **QUIET)


def test_a_file_round_trips_unchanged(tiny_moons, tmp_path):
    raw = torch.load(tiny_moons / CHECKPOINT, weights_only=True)
    ckpt = Checkpoint.read(tiny_moons / CHECKPOINT)
    assert ckpt.version == VERSION == 1
    ckpt.write(tmp_path / "again.pt")
    again = torch.load(tmp_path / "again.pt", weights_only=True)
    assert again.keys() == {*raw.keys(), "version"}
    assert _same_tensors(again["model"], raw["model"]) and torch.equal(again["batch_rng"], raw["batch_rng"])
    assert again["optimizer"]["param_groups"] == raw["optimizer"]["param_groups"]
    assert {k: again[k] for k in ("config", "event_shape", "step", "elapsed_s", "best_val_nll", "stale")} == {
        k: raw[k] for k in ("config", "event_shape", "step", "elapsed_s", "best_val_nll", "stale")}


def test_files_from_before_the_version_entry_still_load(tiny_moons, tmp_path):
    """The layout written before this schema (no ``version``), and the first files (no ``n_levels``,
    no ``lr_scale``), read as version 1 with the defaults; the flow they hold loads and evaluates."""
    raw = torch.load(tiny_moons / BEST, weights_only=True)
    raw.pop("version", None)
    _saved(raw, tmp_path / "current.pt")
    _saved({k: v for k, v in raw.items() if k not in ("n_levels", "lr_scale")}, tmp_path / "first.pt")
    for name in ("current.pt", "first.pt"):
        ckpt = Checkpoint.read(tmp_path / name)
        assert (ckpt.version, ckpt.n_levels, ckpt.lr_scale, ckpt.step) == (1, 0, 1.0, raw["step"])
        assert _same_tensors(ckpt.build_flow().state_dict(), raw["model"])
    copy = shutil.copytree(tiny_moons, tmp_path / "old")
    shutil.copy(tmp_path / "current.pt", copy / BEST)
    assert evaluate_run(copy)["test_nll_nats"] == evaluate_run(tiny_moons)["test_nll_nats"]


@pytest.mark.parametrize("edit, message", [
    (lambda t: {**t, "version": VERSION + 1}, "was written by a newer realnvp (checkpoint version 2; this one reads up "
                                              "to 1): upgrade realnvp to read it"),
    (lambda t: {**t, "version": "one"}, "is not a realnvp checkpoint (its version is one)"),
    (lambda t: {k: v for k, v in t.items() if k not in ("optimizer", "stale")},
     "is not a complete realnvp checkpoint (no optimizer, stale)"),
    (lambda t: {**t, "step": 3.5}, "is not a complete realnvp checkpoint (step is a float, not a whole number)"),
    (lambda t: {**t, "stale": True}, "is not a complete realnvp checkpoint (stale is a bool, not a whole number)"),
    (lambda t: {**t, "torch_rng": [1, 2]}, "is not a complete realnvp checkpoint (torch_rng is a list, not a tensor)"),
    (lambda t: {**t, "event_shape": [2, 0]}, "is not a complete realnvp checkpoint (event_shape is [2, 0], expected"),
    (lambda t: {**t, "model": {**t["model"], "extra": "text"}}, "its model entry extra is not a tensor"),
    (lambda t: {**t, "config": {"train": {"lr": -1.0}}}, ": train.lr must be > 0, got -1.0"),
])
def test_what_does_not_fit_the_schema_is_one_line(tiny_moons, tmp_path, edit, message):
    _saved(edit(torch.load(tiny_moons / BEST, weights_only=True)), tmp_path / "edited.pt")
    with pytest.raises(UserError) as err:
        Checkpoint.read(tmp_path / "edited.pt")
    assert str(err.value).startswith(str(tmp_path / "edited.pt")) and message in str(err.value)
    assert "\n" not in str(err.value)


def test_train_returns_the_best_weights_not_the_last(unsteady):
    run, result = unsteady
    best, last = Checkpoint.read(run / BEST), Checkpoint.read(run / CHECKPOINT)
    assert (result.best_step, result.step) == (best.step, last.step) == (30, 40)  # the premise: they differ
    assert not _same_tensors(best.model, last.model)
    weights = {k: v.cpu() for k, v in result.flow.state_dict().items()}
    assert _same_tensors(weights, best.model)
    assert not _same_tensors(weights, last.model)
    assert result.best_val_nll == best.best_val_nll and result.elapsed_s == last.elapsed_s
    assert result.cfg.to_dict() == best.config.to_dict()


def test_the_returned_flow_evaluates_as_a_fresh_read_of_the_run(unsteady):
    run, result = unsteady
    assert evaluate_run(run, result.to_cpu()) == evaluate_run(run)


def test_train_evaluates_and_draws_the_flow_it_trained_without_reading_it_again(tmp_path, monkeypatch):
    """``realnvp train`` hands train's flow to the evaluation and the pictures: best.pt is read once (by
    train, for the best weights); why training stopped comes from train, not from a file."""
    reads = []
    real = Checkpoint.read.__func__
    monkeypatch.setattr(Checkpoint, "read", classmethod(lambda cls, path: reads.append(path.name) or real(cls, path)))
    drawn = []
    monkeypatch.setattr(pictures, "animate", lambda flow, path, **kwargs: drawn.append(path.name))  # (slow)
    settings = [arg for setting in UNSTEADY for arg in ("--set", setting)]
    assert main(["train", "moons", "--out", str(tmp_path / "run"), "--quiet", *settings]) == 0
    assert reads == [BEST]
    assert drawn == ["animation.gif"] and (tmp_path / "run" / "density.png").is_file()
    evaluation = json.loads((tmp_path / "run" / EVALUATION).read_text())
    assert evaluation["stop_reason"].startswith("early stopping")
    assert (evaluation["steps"], evaluation["best_step"]) == (40, 30)
    assert "stop_reason" not in evaluate_run(tmp_path / "run")


def test_the_trained_run_of_a_directory(tiny_moons):
    trained = RunDir(tiny_moons).trained()
    best, last = Checkpoint.read(tiny_moons / BEST), Checkpoint.read(tiny_moons / CHECKPOINT)
    assert (trained.step, trained.best_step, trained.elapsed_s) == (last.step, best.step, last.elapsed_s)
    assert not trained.flow.training and _same_tensors(trained.flow.state_dict(), best.model)


@pytest.mark.parametrize("link", ["loop", "dangling"])
def test_a_broken_best_pt_link_is_an_error_not_a_silent_fallback(tiny_moons, tmp_path, capsys, link):
    run = shutil.copytree(tiny_moons, tmp_path / "run")
    (run / "best.pt").unlink()
    (run / "best.pt").symlink_to(run / ("best.pt" if link == "loop" else "gone.pt"))
    for command in (["evaluate", str(run)], ["sample", str(run), "-o", str(tmp_path / "s.npy"), "--quiet"]):
        assert main(command) == 2  # was 0: the command used checkpoint.pt as if best.pt did not exist
        assert capsys.readouterr().err.strip().endswith(f"{run}/best.pt")
