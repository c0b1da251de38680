"""The non-finite guard: a NaN batch, a layer whose weights turn to Inf mid-run and a layer whose
activations explode are each caught on their step, rolled back with half the learning rate, named
in the message, and the run ends with a finite checkpoint; repeated failure stops with one line and
leaves the last good checkpoint untouched."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import torch

import realnvp.training.loop
import realnvp.training.step
from realnvp.cli import main
from realnvp.config import load_config
from realnvp.data import make_toy
from realnvp.errors import UserError
from realnvp.models import build_vector_flow
from realnvp.rundir import load_checkpoint
from realnvp.training.guard import NonFiniteGuard, diagnose, locate_blowup, step_is_finite

SETTINGS = ["model.n_couplings=4", "model.hidden=16,16", "train.steps=60", "train.eval_every=20",
            "train.batch_size=64", "train.time_budget=0", "train.device=cpu", "data.n_train=1000",
            "data.n_test=200"]


def _patch_build(monkeypatch, install):
    """Make training apply ``install(flow)`` to the flow it builds."""
    real_build = realnvp.training.loop.build_model

    def build(*args, **kwargs):
        flow = real_build(*args, **kwargs)
        install(flow)
        return flow

    monkeypatch.setattr(realnvp.training.loop, "build_model", build)


def _train_with_hook(tmp_path, monkeypatch, install, extra=()):
    """Train the small run with ``install(flow)`` applied to the freshly built flow; returns the log."""
    _patch_build(monkeypatch, install)
    messages: list[str] = []
    realnvp.training.loop.train(load_config("moons", [*SETTINGS, *extra]), tmp_path / "run", progress=False,
                        log=messages.append)
    return messages


def _on_training_call(layer, n, action):
    """Run ``action(inputs)`` on the ``n``-th training-mode call of ``layer`` (a forward pre-hook)."""
    calls = {"n": 0}

    def hook(module, inputs):
        if module.training:
            calls["n"] += 1
            if calls["n"] == n:
                with torch.no_grad():
                    action(inputs)

    layer.register_forward_pre_hook(hook)


def _assert_finite_run(run_dir):
    state = load_checkpoint(run_dir / "checkpoint.pt")
    assert state["step"] == 60
    assert all(torch.isfinite(t).all() for t in state["model"].values() if t.is_floating_point())
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "val_nll" in r] == [20, 40, 60]  # each evaluation logged once
    steps = [r["step"] for r in records]
    assert steps == sorted(steps) and len(steps) == len(set(steps)) + 3  # none from the rejected stretch
    return state


def test_nan_batch_is_rejected_and_rolled_back(tmp_path, monkeypatch):
    # The batch tensor itself is poisoned on the 30th training step (the chain sees the same object).
    log = _train_with_hook(tmp_path, monkeypatch,
                           lambda flow: _on_training_call(flow.chain, 30, lambda inputs: inputs[0][0].fill_(math.nan)))
    rejected = [m for m in log if "rejected" in m]
    assert len(rejected) == 1, log
    assert "step 30 rejected" in rejected[0] and "the batch itself holds 2 non-finite values" in rejected[0]
    assert "rolled back to step 20" in rejected[0] and "x0.5" in rejected[0]
    state = _assert_finite_run(tmp_path / "run")
    assert state["lr_scale"] == 0.5
    first, *_, last = (json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines())
    cfg = load_config("moons", SETTINGS)
    assert last["lr"] == pytest.approx(cfg.train.lr * realnvp.training.step.lr_factor(59, cfg) * 0.5)


def test_layer_with_infinite_weights_is_named_and_rolled_back(tmp_path, monkeypatch):
    def explode(flow):
        coupling = flow.chain.layers[3]
        _on_training_call(coupling, 25, lambda inputs: coupling.conditioner[0].weight.fill_(math.inf))

    log = _train_with_hook(tmp_path, monkeypatch, explode)
    rejected = [m for m in log if "rejected" in m]
    assert len(rejected) == 1, log
    assert "chain.layers.3 (AffineCoupling) has 16 non-finite values in conditioner.0.weight" in rejected[0]
    assert "rolled back to step 20" in rejected[0]
    _assert_finite_run(tmp_path / "run")


def test_repeated_failure_stops_and_keeps_the_good_checkpoint(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    saved = {}

    def poison_from_step_25(flow):
        calls = {"n": 0}

        def hook(module, inputs):
            if module.training:
                calls["n"] += 1
                if calls["n"] == 25:
                    saved["bytes"] = (run / "checkpoint.pt").read_bytes()
                if calls["n"] >= 25:
                    inputs[0].fill_(math.inf)

        flow.chain.register_forward_pre_hook(hook)

    _patch_build(monkeypatch, poison_from_step_25)
    argv = ["train", "moons", "--out", str(run), "--quiet", "--no-pictures", "--set", "train.max_bad_steps=3"]
    for setting in SETTINGS:
        argv += ["--set", setting]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("realnvp: error: training diverged: 4 non-finite steps since the last good "
                          "checkpoint (step 20)")
    assert (run / "checkpoint.pt").read_bytes() == saved["bytes"]
    assert load_checkpoint(run / "checkpoint.pt")["step"] == 20


def test_step_check_sees_loss_and_gradients_and_checkpoints_see_parameters():
    w = torch.nn.Parameter(torch.ones(3))
    (w * 2).sum().backward()
    assert step_is_finite(torch.tensor(1.0), [w])
    assert torch.equal(w.grad, torch.full((3,), 2.0))  # the scan leaves gradients bit-identical
    assert not step_is_finite(torch.tensor(math.inf), [w])
    w.grad[1] = math.nan
    assert not step_is_finite(torch.tensor(1.0), [w])
    flow = build_vector_flow(2, 2, hidden=(4,))
    guard = NonFiniteGuard(flow, torch.optim.Adam(flow.parameters()), 5, log=lambda *a: None)
    assert guard.state_is_finite()
    with torch.no_grad():
        flow.chain.layers[1].tanh_scale.scale[0] = math.inf
    assert not guard.state_is_finite()
    assert not torch.isfinite(flow.log_prob(torch.randn(4, 2))).all()  # and the next loss shows it


def test_exploding_activation_names_the_layer_that_amplifies():
    torch.manual_seed(0)
    flow = build_vector_flow(2, 4, hidden=(8,))
    with torch.no_grad():
        flow.chain.layers[2].conditioner[-1].bias[1] = 1e30  # the shift t of layer 2: huge but finite
    x = torch.randn(16, 2)
    assert not torch.isfinite(flow.log_prob(x)).all()  # the base density overflows, not a layer
    why = diagnose(flow, x)
    assert "the largest growth is in chain.layers.2 (AffineCoupling)" in why
    assert "max|output| 1e+30" in why


def test_non_finite_sample_warns_with_the_layer():
    torch.manual_seed(0)
    flow = build_vector_flow(2, 4, hidden=(8,)).eval()
    with torch.no_grad():
        flow.chain.layers[1].conditioner[-1].weight.fill_(math.nan)
    with pytest.warns(RuntimeWarning, match=r"5 of 5 samples are not finite \(first non-finite after "
                                            r"chain.layers.1 \(AffineCoupling\)"):
        flow.sample(5)
    healthy = build_vector_flow(2, 4, hidden=(8,)).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.isfinite(healthy.sample(5)).all()


def test_log_scale_is_clamped_on_both_paths():
    from realnvp.bijectors.coupling import LOG_SCALE_MAX

    flow = build_vector_flow(2, 2, hidden=(8,)).eval()
    with torch.no_grad():
        for layer in flow.chain.layers:
            layer.tanh_scale.scale.fill_(1e4)  # a runaway learned scale
            layer.conditioner[-1].bias.fill_(5.0)  # tanh(raw_s) ~ 1: s would be 1e4 unclamped
    z = torch.randn(64, 2, dtype=torch.float64)
    flow = flow.double()
    x = flow.inverse(z)
    assert torch.isfinite(x).all()
    z_back, log_det = flow(x)
    torch.testing.assert_close(z_back, z)  # still an exact bijection
    assert log_det.abs().max() <= 2 * LOG_SCALE_MAX + 1e-9
    assert "max|s| 10" in locate_blowup(flow, z, inverse=True)


def test_bad_max_bad_steps_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match=r"train.max_bad_steps must be > 0, got 0"):
        realnvp.training.loop.train(load_config("moons", [*SETTINGS, "train.max_bad_steps=0"]), tmp_path / "r",
                            progress=False, log=lambda *a: None)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("whiten", ["true", "false"])
def test_large_but_finite_data_trains_as_unit_data(tmp_path, whiten):
    """Moons scaled by 1e20 (finite in float32) is not called divergent: the standardisation statistics,
    the finiteness check before each checkpoint and the gradient clipping work in float64 where float32
    would overflow, so the run is the unit-scale run in other units: test NLL + 2 ln(1e20)."""
    x = make_toy("moons", 2000, seed=0).astype(np.float64)
    nll = {}
    for name, scale in (("unit", 1.0), ("large", 1e20)):
        np.save(tmp_path / f"{name}.npy", x * scale)
        assert main(["train", "--data", str(tmp_path / f"{name}.npy"), "--out", str(tmp_path / name), "--steps", "40",
                     "--quiet", "--no-pictures", "--set", f"model.whiten={whiten}", "--set", "train.grad_clip=1",
                     "--set", "train.eval_every=20", "--set", "train.time_budget=0"]) == 0
        nll[name] = json.loads((tmp_path / name / "evaluation.json").read_text())["test_nll_nats"]
    assert math.isfinite(nll["large"])
    assert nll["large"] - nll["unit"] == pytest.approx(2 * math.log(1e20), abs=1e-3)
