"""The whole multi-scale image model: exact log-det, latent layout, every preset's model training a
few steps on CPU, exact resume, and the command line on an image run."""

import json

import numpy as np
import pytest
import torch
from tiny import counting_optimizer_steps, same_records, same_weights

from realnvp.bijectors import Chain, FactorOut, Squeeze, Unsqueeze, checkerboard_mask
from realnvp.cli import main
from realnvp.config import load_config
from realnvp.errors import UserError
from realnvp.evaluation.metrics import evaluate_run
from realnvp.models import build_image_flow, build_model, latent_scale_map
from realnvp.models.image import CouplingSettings
from realnvp.training.loop import train

from checks import check_bijector, perturb_


@pytest.mark.parametrize(("shape", "norm", "variant"), [((1, 4, 4), "batch", {}), ((3, 4, 4), "instance", {}),
                                                    ((2, 4, 4), "batch", {"squeezed": True, "linear": True})])
def test_whole_model_log_det_matches_autograd(shape, norm, variant):
    torch.manual_seed(0)
    flow = build_image_flow(shape, n_scales=2, feature_maps=4, n_blocks=1, norm=norm, **variant)
    perturb_(flow.chain, scale=0.1)
    x = torch.rand(5, *shape, dtype=torch.float64) * 0.9 + 0.05
    flow.chain.double().train()(x)  # batch-norm statistics from a first batch, as in training
    check_bijector(flow.chain, x, atol=1e-6, eval_matches_train=False)


def test_squeezed_model_keeps_an_odd_last_scale_at_full_resolution():
    """MNIST's layout: 3 scales of 12x12 end at 3x3, which cannot be squeezed; its couplings stay plain
    checkerboard ones and the whole model is still exact."""
    torch.manual_seed(0)
    flow = build_image_flow((1, 12, 12), n_scales=3, feature_maps=4, n_blocks=1, squeezed=True, linear=True)
    kinds = [type(layer).__name__ for layer in flow.modules()]
    assert kinds.count("MaskedAffineCoupling") == 4 and kinds.count("Squeeze") == 2  # one per even scale
    perturb_(flow.chain, scale=0.1)
    x = torch.rand(2, 1, 12, 12, dtype=torch.float64) * 0.9 + 0.05
    flow.chain.double().train()(x)
    check_bijector(flow.chain, x, atol=1e-6, eval_matches_train=False)


def test_three_scales_round_trip_and_layout():
    flow = build_image_flow((1, 8, 8), n_scales=3, feature_maps=4, n_blocks=1).eval()
    x = torch.rand(3, 1, 8, 8)
    z, _ = flow(x)
    assert z.shape == x.shape
    torch.testing.assert_close(flow.inverse(z), x, atol=1e-5, rtol=0)
    scales = latent_scale_map((1, 8, 8), 3)
    assert [(scales == k).sum().item() for k in range(3)] == [32, 16, 16]  # half, then half of the rest


@pytest.mark.parametrize("parity", [0, 1])
def test_squeezed_checkerboard_coupling_passes_the_same_pixels(parity):
    """On the squeezed image a checkerboard coupling leaves exactly checkerboard_mask's pixels unchanged."""
    settings = CouplingSettings(feature_maps=4, n_blocks=1, batch_norm=False, squeezed=True)
    coupling = perturb_(settings.checkerboard(2, 4, 4, count=parity + 1, scale=0)[parity])
    x = torch.rand(3, 2, 4, 4)
    y = Chain([Squeeze(), coupling, Unsqueeze()])(x)[0]
    passing = checkerboard_mask(4, 4, parity).expand_as(x)
    assert torch.equal(y[passing], x[passing]) and (y[~passing] - x[~passing]).abs().min() > 0


@pytest.mark.parametrize("squeezed", [False, True])
def test_latent_scale_map_marks_what_each_scale_factors_out(squeezed):
    """Changing the coarser scale's layers moves exactly the latents the map assigns to it."""
    torch.manual_seed(0)
    flow = perturb_(build_image_flow((2, 4, 4), n_scales=2, feature_maps=4, n_blocks=1, squeezed=squeezed)).eval()
    x = torch.rand(3, 2, 4, 4)
    z = flow(x)[0]
    inner = next(m for m in flow.modules() if isinstance(m, FactorOut)).inner
    perturb_(inner, seed=1)
    z2 = flow(x)[0]
    coarse = (latent_scale_map((2, 4, 4), 2) == 1).expand_as(z)
    assert torch.equal(z[~coarse], z2[~coarse])
    assert (z[coarse] - z2[coarse]).abs().min() > 0


def test_bad_model_settings_are_user_errors():
    cfg = load_config("digits").model
    cfg.n_scales = 4
    with pytest.raises(UserError, match="multiples of 8 and at least 16; got 8x8"):
        build_model(cfg, (1, 8, 8))
    cfg.n_scales, cfg.conditioner_norm = 2, "layer"
    with pytest.raises(UserError, match="unknown conditioner norm 'layer'"):
        build_model(cfg, (1, 8, 8))
    with pytest.raises(UserError, match=r"\[C, H, W\]"):
        build_model(load_config("digits").model, (64,))


def resnet_params(c_in, c_out, hidden, blocks):
    """Weight-normed 3x3 convs (v, g, bias), batch norms (weight, bias), zero-initialised output conv."""
    conv = lambda i, o: o * i * 9 + o + o  # noqa: E731
    body = conv(c_in, hidden) + blocks * (2 * conv(hidden, hidden) + 4 * hidden) + 2 * hidden
    return body + hidden * c_out * 9 + c_out


def cifar_param_count():
    scale0 = 3 * (resnet_params(3, 6, 64, 8) + 3) + 3 * (resnet_params(6, 12, 64, 8) + 6)
    scale1 = 4 * (resnet_params(6, 12, 128, 8) + 6)
    return scale0 + scale1


def fake_npz(path, shape, levels=256, n_train=4, n_test=1):
    rng = np.random.RandomState(0)
    np.savez(path, x_train=rng.randint(0, levels, (n_train, *shape)).astype(np.uint8),
             x_test=rng.randint(0, levels, (n_test, *shape)).astype(np.uint8))
    return str(path)


@pytest.mark.parametrize(("preset", "shape"), [("digits", (1, 8, 8)), ("mnist-small", (1, 28, 28)),
                                               ("mnist-cpu", (1, 28, 28)),
                                               ("mnist", (1, 28, 28)), ("cifar10", (3, 32, 32)),
                                               ("celeba", (3, 64, 64))])
def test_each_preset_model_trains_a_few_steps_on_cpu(tmp_path, preset, shape):
    """The presets' own models (full size) on data of their shape: 2 steps of batch 2, then evaluate."""
    levels = 17 if preset == "digits" else 256
    data = fake_npz(tmp_path / "data.npz", shape[1:] if shape[0] == 1 else shape, levels)
    cfg = load_config(preset, [f"data.path={data}", "train.steps=2", "train.batch_size=2", "train.eval_every=2",
                               "train.device=cpu", "data.val_fraction=0.25", "data.test_draws=1",
                               "train.compile=false"])  # compilation: tests/test_compile.py
    result = train(cfg, tmp_path / "run", progress=False, log=lambda *a: None)
    assert result.step == 2 and np.isfinite(result.best_val_nll)
    metrics = evaluate_run(tmp_path / "run")
    assert metrics["n_params"] == sum(p.numel() for p in result.flow.parameters())
    # The pixels are uniform noise, so no model, trained or not, does better than log2(levels) bits/dim in
    # expectation: 2 steps give 4.28 (digits, log2 17 = 4.09) and 8.04-8.77 (256 levels), at initialisation
    # 4.26 and 8.21-9.03. A bits/dim that dropped dequantization's -D ln L (log2 L per dim) would be far
    # below it. Learning is checked on real digits (test_cli_image_run_end_to_end).
    assert metrics["bits_per_dim"] > np.log2(levels) - 0.1 and metrics["inverse_max_abs_error"] < 1e-3
    if preset == "cifar10":
        assert metrics["n_params"] == cifar_param_count() == 13_166_809


def small_digits(steps):
    return load_config("digits", [f"train.steps={steps}", "train.eval_every=2", "model.feature_maps=4",
                                  "model.n_blocks=1", "train.time_budget=0", "data.flip=true"])


def test_resume_is_exact_for_image_runs(tmp_path):
    """Stopped at step 2 and resumed to 4: the resumed call takes 2 optimizer steps from step 2 (the
    digits preset's learning rate is constant, so a silent restart from step 0 would reach the same
    weights: the step count and the log tell them apart), and the records, weights and batch-norm
    statistics equal the uninterrupted run's."""
    messages = []
    straight = train(small_digits(4), tmp_path / "a", progress=False, log=lambda *a: None)
    train(small_digits(2), tmp_path / "b", progress=False, log=lambda *a: None)
    with counting_optimizer_steps() as steps:
        resumed = train(small_digits(4), tmp_path / "b", resume=True, progress=False, log=messages.append)
    assert steps[0] == 2 and resumed.step == 4
    assert any(m.startswith(f"resumed {tmp_path / 'b'} at step 2 from checkpoint.pt") for m in messages), messages
    a = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)
    assert [k for k in a["model"] if "running_var" in k], "batch-norm statistics must be part of the checkpoint"
    same_weights(tmp_path / "a", tmp_path / "b")
    same_records(tmp_path / "a", tmp_path / "b")
    assert straight.best_val_nll == resumed.best_val_nll


@pytest.fixture
def digits_run(tiny_digits):
    return tiny_digits  # the shared run (tests/conftest.py): 40 steps of tiny.TINY_DIGITS, pictures included


def test_cli_image_run_end_to_end(digits_run, tmp_path, capsys):
    for name in ("samples.png", "samples_t0.7.png", "scales.png", "animation.gif", "evaluation.json"):
        assert (digits_run / name).stat().st_size > 0, name
    assert main(["evaluate", str(digits_run), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["n_levels"] == 17 and metrics["n_test"] == 360 and metrics["steps"] == 40
    # Better than uniform noise on 17 levels: 2.47-2.49 bits/dim (train.seed 0-1), 5.38 at initialisation.
    assert metrics["bits_per_dim_iw"] <= metrics["bits_per_dim"] < np.log2(17)
    assert main(["sample", str(digits_run), "-n", "9", "--temperature", "0.7", "-o", str(tmp_path / "g.png")]) == 0
    assert (tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["sample", str(digits_run), "-n", "5", "-o", str(tmp_path / "s.npy")]) == 0
    samples = np.load(tmp_path / "s.npy")
    assert samples.shape == (5, 1, 8, 8) and samples.dtype == np.uint8 and samples.max() <= 16
    assert main(["animate", str(digits_run), "-n", "4", "-o", str(tmp_path / "a.gif")]) == 0
    from PIL import Image

    with Image.open(tmp_path / "a.gif") as gif:
        assert gif.n_frames > 12  # the base, then one frame per elementary layer (15 in this model)


def test_cli_bad_image_data_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    np.savez(bad, x_train=np.full((10, 28, 28), 0.5), x_test=np.zeros((2, 28, 28)))
    assert main(["train", "mnist-small", "--data", str(bad), "--out", str(tmp_path / "r"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("realnvp: error:") and "must be integers" in err and "\n" not in err
    assert not (tmp_path / "r" / "checkpoint.pt").exists()
