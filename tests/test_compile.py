"""``train.compile``: the compiled step gives the eager step's numbers, and a compiler that fails falls
back to eager training with one line saying why."""

import json

import pytest
import torch

import realnvp.training.step
from realnvp.config import load_config
from realnvp.training.loop import train

TINY = ["model.hidden=16,16", "model.n_couplings=2", "train.steps=30", "train.eval_every=10",
        "train.time_budget=0", "data.n_train=1000", "data.n_test=200"]


def val_curve(run_dir) -> list[float]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["val_nll"] for r in records if "val_nll" in r]


@pytest.fixture(scope="module")
def eager_run(tmp_path_factory):
    """The eager run both comparisons read, trained once: (its result, its run directory)."""
    run = tmp_path_factory.mktemp("eager") / "run"
    return train(load_config("moons", TINY), run, progress=False, log=lambda *a: None), run


def test_compiled_training_matches_eager(tmp_path, eager_run):
    (eager, eager_dir), messages = eager_run, []
    compiled = train(load_config("moons", [*TINY, "train.compile=true"]), tmp_path / "compiled", progress=False,
                     log=messages.append)
    assert not any("torch.compile failed" in m for m in messages), messages
    assert compiled.step == eager.step == 30
    # Same maths, different kernels: float rounding only.
    assert val_curve(tmp_path / "compiled") == pytest.approx(val_curve(eager_dir), abs=1e-4)


def test_failing_compiler_falls_back_to_eager(tmp_path, monkeypatch, eager_run):
    def broken_compile(model):
        def call(*args):
            raise RuntimeError("InductorError: no working C++ compiler found\n(long traceback)")
        return call

    monkeypatch.setattr(realnvp.training.step.torch, "compile", broken_compile)
    messages = []
    train(load_config("moons", [*TINY, "train.compile=true"]), tmp_path / "fallback", progress=False,
          log=messages.append)
    monkeypatch.undo()
    failures = [m for m in messages if m.startswith("torch.compile failed")]
    assert failures == ["torch.compile failed (RuntimeError: InductorError: no working C++ compiler found); "
                        "training without it"]
    assert val_curve(tmp_path / "fallback") == val_curve(eager_run[1])  # eager maths, bit for bit


def test_errors_after_a_working_compile_propagate():
    model = realnvp.training.step.CompiledOrEager(torch.nn.Linear(2, 1), log=print)
    model(torch.zeros(3, 2))
    with pytest.raises(RuntimeError):
        model(torch.zeros(3, 5))  # a genuine shape error is not hidden behind a fallback
