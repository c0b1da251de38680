"""Conditional Real NVP (issue 16): layers that take a context keep the bijector contract for every
fixed context (the checks.py battery), flows give log p(x | c) and sample given c, and the CLI trains,
evaluates, samples and scores conditional runs end to end."""

from __future__ import annotations

import torch
from torch import Tensor

from realnvp.bijectors import (
    AffineCoupling,
    Bijector,
    Chain,
    FactorOut,
    MaskedAffineCoupling,
    SplineCoupling,
    Squeeze,
    Unsqueeze,
    alternating_mask,
    checkerboard_mask,
    half_mask,
)
from realnvp.models import build_image_flow, build_vector_flow
from realnvp.nets import ContextMLP, ContextResNet

from checks import check_bijector, perturb_


class Bound(Bijector):
    """``layer`` with one context held fixed (broadcast over the batch): the map the contract is about."""

    def __init__(self, layer: Bijector, context: Tensor) -> None:
        super().__init__()
        self.layer, self.context = layer, context

    def _c(self, x: Tensor) -> Tensor:
        return self.context.expand(len(x), *self.context.shape[1:])

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.layer(x, context=self._c(x))

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return self.layer.inverse(z, context=self._c(z))


def test_vector_coupling_with_context_keeps_the_contract_for_each_fixed_context():
    torch.manual_seed(0)
    layer = perturb_(AffineCoupling(alternating_mask(3, 0), ContextMLP(2, 2, 2, hidden=(8,))))
    for c in ([0.0, 0.0], [1.5, -2.0]):
        check_bijector(Bound(layer, torch.tensor([c])), torch.randn(6, 3))


def test_spline_coupling_with_context_keeps_the_contract_for_each_fixed_context():
    torch.manual_seed(0)
    layer = perturb_(SplineCoupling(alternating_mask(3, 0), ContextMLP(2, 2, 3 * 4 - 1, hidden=(8,)), bins=4,
                                    bound=2.0), scale=1.0)
    for c in ([0.0, 0.0], [1.5, -2.0]):
        check_bijector(Bound(layer, torch.tensor([c])), torch.randn(6, 3) * 1.5)  # some in the tails
    flow = perturb_(build_vector_flow(3, 4, hidden=(16,), context_size=2, coupling="spline", bins=4)).double().eval()
    c = torch.randn(5, 2, dtype=torch.float64)
    x, log_p = flow.sample_and_log_prob(5, context=c)
    torch.testing.assert_close(log_p, flow.log_prob(x, context=c), atol=1e-9, rtol=0)


def test_image_couplings_with_a_label_keep_the_contract_for_each_label():
    torch.manual_seed(0)
    checker = MaskedAffineCoupling(checkerboard_mask(4, 4, 1), ContextResNet(2, 4, 3, embed=2, hidden=4, n_blocks=1,
                                                                            norm="none"), 2)
    channel = AffineCoupling(half_mask(4, 0), ContextResNet(2, 4, 3, embed=2, hidden=4, n_blocks=1, norm="none"), 3)
    layers = Chain([perturb_(checker), Squeeze(), FactorOut(Chain([perturb_(channel)])), Unsqueeze()])
    x = torch.randn(3, 2, 4, 4)
    for label in (0, 2):
        check_bijector(Bound(layers, torch.tensor([label])), x)


def test_every_bijector_takes_context_none_in_forward_inverse_and_trace():
    """nflows' one signature: a chain hands every layer the context, so every layer must take it."""
    import inspect

    import realnvp.bijectors as bijectors

    exported = [getattr(bijectors, name) for name in bijectors.__all__]
    classes = [c for c in exported if inspect.isclass(c) and issubclass(c, Bijector)]
    assert len(classes) >= 12
    for cls in classes:
        for method in ("forward", "inverse", "trace"):
            context = inspect.signature(getattr(cls, method)).parameters.get("context")
            assert context is not None and context.default is None, f"{cls.__name__}.{method}"


def test_a_conditional_coupling_without_its_context_is_an_error():
    import pytest

    layer = Chain([AffineCoupling(alternating_mask(2, 0), ContextMLP(1, 1, 2, hidden=(4,)))])
    for call in (layer, layer.inverse, layer.trace):
        with pytest.raises(ValueError, match="this coupling is conditional: pass a context"):
            call(torch.zeros(3, 2))


def test_the_context_changes_the_map_and_log_det():
    torch.manual_seed(0)
    layer = perturb_(AffineCoupling(alternating_mask(2, 0), ContextMLP(1, 1, 2, hidden=(8,))))
    x = torch.randn(4, 2)
    z0, ld0 = layer(x, context=torch.zeros(4, 1))
    z1, ld1 = layer(x, context=torch.ones(4, 1))
    assert not torch.allclose(z0, z1) and not torch.allclose(ld0, ld1)


def test_per_example_contexts_equal_one_call_per_example():
    torch.manual_seed(0)
    flow = perturb_(build_image_flow((1, 4, 4), feature_maps=4, n_blocks=1, batch_norm=False, norm="none", n_classes=3))
    x, labels = torch.rand(3, 1, 4, 4), torch.tensor([0, 1, 2])
    together = flow.log_prob(x, context=labels)
    alone = torch.stack([flow.log_prob(x[i], context=int(labels[i])) for i in range(3)])
    torch.testing.assert_close(together, alone)
    assert len(set(together.tolist())) == 3


def test_flow_log_prob_matches_sample_and_log_prob_given_the_context():
    torch.manual_seed(0)
    flow = perturb_(build_vector_flow(3, 4, hidden=(16,), context_size=2)).eval()
    c = torch.randn(5, 2)
    x, log_p = flow.sample_and_log_prob(5, temperature=0.8, context=c)
    torch.testing.assert_close(log_p, flow.log_prob(x, context=c), atol=1e-5, rtol=0)
    torch.testing.assert_close(flow.inverse(flow(x, c)[0], c), x, atol=1e-5, rtol=0)
    assert flow.sample(7, context=c[0]).shape == (7, 3)  # one context for every sample


def test_missing_surplus_or_bad_contexts_are_value_errors():
    import pytest

    vec = build_vector_flow(2, 2, hidden=(8,), context_size=1)
    img = build_image_flow((1, 4, 4), feature_maps=4, n_blocks=1, n_classes=10)
    plain = build_vector_flow(2, 2, hidden=(8,))
    cases = [(lambda: vec.log_prob(torch.zeros(3, 2)), "conditional: pass context"),
             (lambda: plain.log_prob(torch.zeros(3, 2), context=1.0), "not conditional"),
             (lambda: vec.log_prob(torch.zeros(3, 2), context=torch.zeros(2, 1)), "shape"),
             (lambda: img.sample(2, context=10), "0..9"),
             (lambda: img.sample(2, context=[1.5, 2]), "integers"),
             (lambda: img.sample(3, context=[1, 2]), "one class label or 3")]
    for call, words in cases:
        with pytest.raises(ValueError, match=words):
            call()


def test_an_unconditional_flow_ignores_nothing_and_keeps_its_outputs():
    torch.manual_seed(0)
    flow = perturb_(build_vector_flow(2, 4, hidden=(8,)))
    x = torch.randn(5, 2)
    z, log_det = flow(x)
    torch.testing.assert_close(flow.chain(x)[0], z)
    assert not flow.conditional and flow.as_context(None, 5) is None


# --- The CLI, end to end -----------------------------------------------------------------------------

import json  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402
from tiny import TINY, TINY_DIGITS, cli_settings  # noqa: E402

from realnvp import load  # noqa: E402
from realnvp.cli import main  # noqa: E402
from realnvp.data import load_splits  # noqa: E402
from realnvp.data.rotated import rotated_moons, rotated_moons_log_density  # noqa: E402
from realnvp.evaluation.scoring import score  # noqa: E402


@pytest.fixture(scope="module")
def cond_digits(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cond") / "digits"
    assert main(["train", "digits-cond", "--out", str(out), "--steps", "30", "--quiet",
                 *cli_settings(TINY_DIGITS)]) == 0
    return out


@pytest.fixture(scope="module")
def cond_moons(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cond") / "rotated"
    assert main(["train", "rotated-moons", "--out", str(out), "--steps", "60", "--quiet", *cli_settings(TINY)]) == 0
    return out


def test_conditional_digits_train_evaluate_and_pictures(cond_digits, capsys):
    cfg = json.loads((cond_digits / "config.json").read_text())
    assert cfg["model"]["conditional"] and cfg["model"]["n_context"] == 10
    assert (cond_digits / "classes.png").stat().st_size > 0
    capsys.readouterr()
    assert main(["evaluate", str(cond_digits), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["conditional_on"] == "class label" and 1.0 < metrics["bits_per_dim"] < 6.0
    flow = load(cond_digits)  # evaluate's bits/dim is the mean of log p(x | y) over the test labels
    splits = load_splits(load_splits.__globals__["DataConfig"](name="digits"), labels=True)
    wrong = np.roll(splits.test_c, 1)  # the same images scored with other labels: a different number
    from realnvp.evaluation.metrics import bits_per_dim, dequantized_nll
    nll_wrong, _ = dequantized_nll(flow, torch.from_numpy(splits.test), 17, draws=2, labels=wrong)
    assert bits_per_dim(nll_wrong, 64, 17) != pytest.approx(metrics["bits_per_dim"], abs=1e-6)


def test_sample_one_class_or_one_row_per_class(cond_digits, tmp_path):
    assert main(["sample", str(cond_digits), "--class", "3", "-n", "12", "-o", str(tmp_path / "t.npy"),
                 "--quiet"]) == 0
    assert np.load(tmp_path / "t.npy").shape == (12, 1, 8, 8)
    assert main(["sample", str(cond_digits), "-n", "25", "-o", str(tmp_path / "all.npy"), "--quiet"]) == 0
    assert np.load(tmp_path / "all.npy").shape == (30, 1, 8, 8)  # 3 per class, rounded up to full rows
    assert main(["sample", str(cond_digits), "-n", "20", "-o", str(tmp_path / "grid.png"), "--quiet"]) == 0
    width, height = Image.open(tmp_path / "grid.png").size
    assert height > 3 * width  # 10 rows (one per class) of 2 samples, a label margin on the left


@pytest.mark.parametrize("argv, words", [(["--class", "10"], "0..9"), (["--context", "1"], "takes --class")])
def test_bad_class_requests_are_one_line_errors(cond_digits, tmp_path, capsys, argv, words):
    assert main(["sample", str(cond_digits), *argv, "-o", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1 and "Traceback" not in err


def test_class_on_an_unconditional_run_is_a_one_line_error(tiny_moons, tmp_path, capsys):
    assert main(["sample", str(tiny_moons), "--class", "1", "-o", str(tmp_path / "x.png")]) == 2
    assert "not conditional" in capsys.readouterr().err


def test_score_takes_labels_from_an_npz_and_matches_evaluate(cond_digits, tmp_path, capsys):
    splits = load_splits(load_splits.__globals__["DataConfig"](name="digits"), labels=True)
    np.savez(tmp_path / "test.npz", x=splits.test[:, 0], y=splits.test_c)
    assert main(["score", str(cond_digits), str(tmp_path / "test.npz"), "-o", str(tmp_path / "s.csv"),
                 "--json", "--quiet"]) == 0
    stats = json.loads(capsys.readouterr().out)
    evaluated = json.loads((cond_digits / "evaluation.json").read_text())
    assert stats["bits_per_dim_mean"] == pytest.approx(evaluated["bits_per_dim"], abs=1e-6)
    np.savez(tmp_path / "nolabels.npz", x=splits.test)
    assert main(["score", str(cond_digits), str(tmp_path / "nolabels.npz"), "-o", str(tmp_path / "s.csv")]) == 2
    assert "x and y" in capsys.readouterr().err


def test_conditional_vectors_train_sample_score_and_evaluate(cond_moons, tmp_path, capsys):
    assert {p.name for p in cond_moons.iterdir()} >= {"samples.png", "contexts.png", "evaluation.json"}
    evaluated = json.loads((cond_moons / "evaluation.json").read_text())
    assert evaluated["conditional_on"] == "columns [2]" and evaluated["dim"] == 2
    assert main(["sample", str(cond_moons), "--context", "1.2", "-n", "50", "-o", str(tmp_path / "s.npy"),
                 "--quiet"]) == 0
    assert np.load(tmp_path / "s.npy").shape == (50, 2)
    assert main(["sample", str(cond_moons), "-o", str(tmp_path / "s.png")]) == 2
    assert "--context" in capsys.readouterr().err
    rows = rotated_moons(40, np.random.RandomState(7))
    np.savetxt(tmp_path / "rows.csv", rows, delimiter=",")
    assert main(["score", str(cond_moons), str(tmp_path / "rows.csv"), "-o", str(tmp_path / "s.csv"), "--quiet"]) == 0
    flow = load(cond_moons)
    expected = flow.log_prob(torch.from_numpy(rows[:, :2]).float(), context=torch.from_numpy(rows[:, 2:]).float())
    np.testing.assert_allclose(score(cond_moons, tmp_path / "rows.csv")["log_likelihood_nats"], expected.detach(),
                               rtol=1e-5)
    assert main(["evaluate", str(cond_moons), "--data", str(tmp_path / "rows.csv"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["test_nll_nats"] == pytest.approx(-expected.mean().item(), rel=1e-5)


def test_context_columns_flag_on_a_users_table(tmp_path, capsys):
    rows = rotated_moons(600, np.random.RandomState(0))
    table = np.concatenate([rows[:, 2:], rows[:, :2]], 1)  # the context first this time
    np.save(tmp_path / "t.npy", table.astype(np.float32))
    out = tmp_path / "run"
    assert main(["train", "vector", "--data", str(tmp_path / "t.npy"), "--context-columns", "0", "--out", str(out),
                 "--steps", "20", "--quiet", "--no-pictures", "--set", "model.hidden=8"]) == 0
    flow = load(out)
    assert flow.context_size == 1 and flow.event_shape == (2,)
    assert flow.context_loc.item() == pytest.approx(float(table[:, 0].mean()), abs=0.2)  # standardised context
    assert main(["train", "vector", "--data", str(tmp_path / "t.npy"), "--context-columns", "5", "--out",
                 str(tmp_path / "bad"), "--quiet"]) == 2
    assert "column 5" in capsys.readouterr().err


def test_rotated_moons_log_density_is_normalised_for_every_angle():
    xs = np.linspace(-2.5, 2.5, 301)
    points = np.stack([a.ravel() for a in np.meshgrid(xs, xs)], 1)
    for theta in (0.0, 1.0, 2.5):
        mass = np.exp(rotated_moons_log_density(points, np.full(len(points), theta), grid=400)).sum()
        assert mass * (xs[1] - xs[0]) ** 2 == pytest.approx(1.0, abs=2e-3)


@pytest.mark.parametrize("which", ["cond_digits", "cond_moons"])
def test_report_and_animate_draw_conditional_runs(which, request, tmp_path):
    run = request.getfixturevalue(which)
    assert main(["report", str(run), "-o", str(tmp_path / "r.html"), "--quiet"]) == 0
    page = (tmp_path / "r.html").read_text()
    assert ("one row per class" in page) if which == "cond_digits" else ("log p(x | c)" in page)
    assert main(["animate", str(run), "-n", "40", "-o", str(tmp_path / "a.gif"), "--quiet"]) == 0
    assert (tmp_path / "a.gif").read_bytes()[:6] == b"GIF89a"
