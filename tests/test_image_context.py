"""Image flows conditioned on any context vector through the user's embedding network (issue 28,
nflows' ``embedding_net``): the log-det against the autograd Jacobian for a fixed context, invertibility,
the context reaching the first coupling, training from Python, saving with the module, and the CLI end
to end on an .npz with a 10-D context array."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import realnvp
from realnvp.cli import main
from realnvp.errors import UserError
from realnvp.models import build_image_flow

from checks import jacobian_log_det, perturb_

SHAPE = (1, 4, 4)
CONTEXT = 10


def embedding_net() -> nn.Module:
    """The user's network: a 10-D context to 6 features."""
    return nn.Sequential(nn.Linear(CONTEXT, 16), nn.Tanh(), nn.Linear(16, 6))


def conditional_flow(seed: int = 0, **options) -> realnvp.Flow:
    """A small image flow given a 10-D context through ``embedding_net``, every parameter moved off its
    identity start (zero-initialised outputs would hide the context), in float64 and eval mode."""
    torch.manual_seed(seed)
    flow = build_image_flow(SHAPE, n_scales=2, feature_maps=4, n_blocks=1, scale_couplings=1, final_couplings=2,
                            context_dim=CONTEXT, embedding=embedding_net(), **options)
    return perturb_(flow, scale=0.3, seed=seed).double().eval()


def test_log_det_equals_the_autograd_jacobian_for_a_fixed_context():
    flow = conditional_flow()
    x = torch.rand(3, *SHAPE, dtype=torch.float64) * 0.8 + 0.1
    c = torch.randn(CONTEXT, dtype=torch.float64)  # one context, held fixed
    _, log_det = flow(x, c)
    exact = jacobian_log_det(lambda v: flow(v, c), x)
    torch.testing.assert_close(log_det, exact, atol=1e-8, rtol=0)
    assert log_det.abs().min() > 0.1  # a non-trivial map


def test_inverse_undoes_forward_for_a_fixed_context_and_sampling_agrees():
    flow = conditional_flow()
    x = torch.rand(5, *SHAPE, dtype=torch.float64) * 0.8 + 0.1
    c = torch.randn(CONTEXT, dtype=torch.float64)  # one context for the whole batch
    z, _ = flow(x, c.expand(5, CONTEXT))
    torch.testing.assert_close(flow.inverse(z, c), x, atol=1e-9, rtol=0)
    samples, log_p = flow.sample_and_log_prob(4, context=c)
    torch.testing.assert_close(log_p, flow.log_prob(samples, context=c), atol=1e-8, rtol=0)


def test_the_context_changes_the_first_coupling_log_prob_and_samples():
    flow = conditional_flow()
    x = torch.rand(4, *SHAPE, dtype=torch.float64) * 0.8 + 0.1
    c1, c2 = torch.zeros(4, CONTEXT, dtype=torch.float64), torch.ones(4, CONTEXT, dtype=torch.float64)
    steps = [(a, b) for a, b in zip(flow.trace(x, context=c1), flow.trace(x, context=c2))
             if hasattr(a.layer, "conditioner")]
    assert steps, "no coupling traced"
    blind = [a.name for a, b in steps if torch.allclose(a.log_det, b.log_det)]
    assert not blind, f"couplings that ignore the context: {blind}"
    assert not torch.allclose(flow.log_prob(x, context=c1), flow.log_prob(x, context=c2))
    torch.manual_seed(1)
    s1 = flow.sample(4, context=c1)
    torch.manual_seed(1)
    assert not torch.allclose(s1, flow.sample(4, context=c2))


def test_the_embedding_runs_once_per_call_and_trains_with_the_flow():
    calls = []
    flow = conditional_flow()
    flow.embedding.register_forward_hook(lambda *_: calls.append(1))
    flow.log_prob(torch.rand(3, *SHAPE, dtype=torch.float64), context=torch.randn(3, CONTEXT, dtype=torch.float64))
    assert len(calls) == 1
    owned = {id(p) for p in flow.parameters()}
    assert all(id(p) in owned for p in flow.embedding.parameters())


def test_trained_from_python_the_loss_goes_down():
    """Images whose brightness follows the context's first value: the conditional flow learns it."""
    torch.manual_seed(0)
    c = torch.randn(256, CONTEXT)
    x = (torch.sigmoid(c[:, :1, None, None]) * 0.6 + 0.2 + 0.05 * torch.randn(256, *SHAPE)).clamp(0.01, 0.99)
    flow = build_image_flow(SHAPE, n_scales=2, feature_maps=8, n_blocks=1, scale_couplings=1, final_couplings=2,
                            context_dim=CONTEXT, embedding=embedding_net())
    flow.fit_context(c)
    opt = torch.optim.Adam(flow.parameters(), lr=3e-3)
    before = -flow.log_prob(x, context=c).mean().item()
    for _ in range(40):
        loss = -flow.log_prob(x, context=c).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = -flow.eval().log_prob(x, context=c).mean().item()
    assert after < before - 1.0
    assert flow.embedding[0].weight.grad.abs().sum() > 0  # the user's network learned too
    shuffled = -flow.log_prob(x, context=c[torch.randperm(256)]).mean().item()
    assert shuffled > after  # the context carries information the flow uses


def test_save_keeps_the_embedding_weights_and_load_needs_the_module(tmp_path):
    flow = conditional_flow().float()
    flow.save(tmp_path / "f.pt")
    with pytest.raises(UserError, match="embedding=net"):
        realnvp.load(tmp_path / "f.pt")
    again = realnvp.load(tmp_path / "f.pt", embedding=embedding_net())
    x, c = torch.rand(2, *SHAPE), torch.randn(2, CONTEXT)
    torch.testing.assert_close(again.log_prob(x, context=c), flow.log_prob(x, context=c))
    plain = build_image_flow(SHAPE, feature_maps=4, n_blocks=1)
    plain.save(tmp_path / "plain.pt")
    with pytest.raises(UserError, match="without embedding="):
        realnvp.load(tmp_path / "plain.pt", embedding=embedding_net())


@pytest.mark.parametrize("options, words", [
    ({"n_classes": 3}, "not both"),
    ({"context_dim": 0}, "needs context_dim"),
    ({"embedding": nn.Linear(3, 2)}, "does not take a context of shape"),
    ({"embedding": nn.Flatten(0)}, "to \\[N, E\\]"),
    ({"embedding": "transformer"}, "'mlp' or None"),
])
def test_misfit_contexts_and_embeddings_are_value_errors(options, words):
    args = {"context_dim": CONTEXT, "embedding": embedding_net(), **options}
    with pytest.raises(ValueError, match=words):
        build_image_flow(SHAPE, feature_maps=4, n_blocks=1, **args)


def test_bad_contexts_at_call_time_are_value_errors():
    flow = conditional_flow()
    x = torch.rand(2, *SHAPE, dtype=torch.float64)
    for context, words in ((None, "pass context"), (torch.zeros(3, CONTEXT), "shape"), (torch.zeros(2, 4), "shape")):
        with pytest.raises(ValueError, match=words):
            flow.log_prob(x, context=context)


# --- The CLI, end to end -----------------------------------------------------------------------------

def _context_npz(path: Path, n: int = 240, seed: int = 0) -> Path:
    """8x8 images (17 levels) whose brightness follows the first of 10 context values, split x_train /
    x_test with context_train / context_test beside them."""
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(n, CONTEXT)).astype(np.float32)
    level = 1 / (1 + np.exp(-c[:, 0])) * 10 + 3
    x = np.clip(np.round(level[:, None, None] + rng.normal(size=(n, 8, 8))), 0, 16).astype(np.uint8)
    k = n * 3 // 4
    np.savez(path, x_train=x[:k], x_test=x[k:], context_train=c[:k], context_test=c[k:])
    return path


@pytest.fixture(scope="module")
def context_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("image-context")
    data = _context_npz(folder / "data.npz")
    out = folder / "run"
    assert main(["train", "images", "--data", str(data), "--out", str(out), "--steps", "30", "--quiet",
                 "--no-pictures", "--set", "data.name=digits", "--set", "model.feature_maps=4",
                 "--set", "model.n_blocks=1", "--set", "model.scale_couplings=1", "--set", "model.final_couplings=2",
                 "--set", "train.eval_every=15", "--set", "train.time_budget=0", "--set", "data.test_draws=1"]) == 0
    return out


def test_cli_trains_evaluates_scores_and_samples_given_a_context(context_run, tmp_path, capsys):
    cfg = json.loads((context_run / "config.json").read_text())
    assert cfg["model"]["conditional"] and cfg["model"]["context_dim"] == CONTEXT
    flow = realnvp.load(context_run)  # rebuilt from config.json alone: the built-in MLP embedding
    assert flow.context_size == CONTEXT and flow.embedding is not None
    capsys.readouterr()
    assert main(["evaluate", str(context_run), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["conditional_on"] == f"context ({CONTEXT} values)" and 0 < metrics["bits_per_dim"] < 10
    held = _context_npz(tmp_path / "held.npz", n=40, seed=1)
    with np.load(held) as f:
        np.savez(tmp_path / "score.npz", x=f["x_test"], context=f["context_test"])
    assert main(["score", str(context_run), str(tmp_path / "score.npz"), "-o", str(tmp_path / "s.csv"), "--quiet"]) == 0
    assert len((tmp_path / "s.csv").read_text().splitlines()) == 1 + 10
    np.save(tmp_path / "ctx.npy", np.random.default_rng(2).normal(size=(5, CONTEXT)).astype(np.float32))
    assert main(["sample", str(context_run), "--context-file", str(tmp_path / "ctx.npy"), "-o",
                 str(tmp_path / "s.npy"), "--quiet"]) == 0
    assert np.load(tmp_path / "s.npy").shape == (5, 1, 8, 8)  # one image per context row
    assert main(["sample", str(context_run), "--context-file", str(tmp_path / "ctx.npy"), "-o",
                 str(tmp_path / "s.png"), "--quiet"]) == 0
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["animate", str(context_run), "-n", "6", "-o", str(tmp_path / "a.gif"), "--quiet"]) == 0
    assert main(["report", str(context_run), "-o", str(tmp_path / "r.html"), "--quiet"]) == 0
    assert "contexts, one per row" in (tmp_path / "r.html").read_text()


@pytest.mark.parametrize("rows, words", [
    (np.zeros((3, 4), np.float32), "10 values"),
    (np.array([[np.nan] * CONTEXT], np.float32), "finite"),
    (np.zeros((0, CONTEXT), np.float32), "no rows"),
])
def test_bad_context_files_are_one_line_errors(context_run, tmp_path, capsys, rows, words):
    np.save(tmp_path / "bad.npy", rows)
    assert main(["sample", str(context_run), "--context-file", str(tmp_path / "bad.npy"), "-o",
                 str(tmp_path / "s.png")]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1 and "Traceback" not in err


def test_bad_context_arrays_in_the_training_npz_are_one_line_errors(tmp_path, capsys):
    data = _context_npz(tmp_path / "d.npz", n=40)
    with np.load(data) as f:
        arrays = dict(f)
    np.savez(tmp_path / "rows.npz", **{**arrays, "context_test": arrays["context_test"][:-1]})
    arrays["context_train"][0, 3] = np.nan
    np.savez(tmp_path / "nan.npz", **arrays)
    for name, words in (("rows.npz", "context rows"), ("nan.npz", "finite")):
        assert main(["train", "images", "--data", str(tmp_path / name), "--out", str(tmp_path / name[:-4]),
                     "--steps", "1", "--quiet", "--no-pictures", "--set", "data.name=digits"]) == 2
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1
