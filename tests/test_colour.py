"""Colour images end to end: [N, H, W, C] and [N, C, H, W] arrays and folders of RGB, RGBA, palette
and 16-bit PNGs (files the tests write) all read to the same pixels, train, evaluate, sample and score
through the command line; conversions are said in one warning line, 16-bit pixels are never clipped."""

import json
import struct
import warnings
import zlib

import numpy as np
import pytest
import torch
from PIL import Image
from tiny import cli_settings

from realnvp.cli import main
from realnvp.config import DataConfig, load_config
from realnvp.data.image_files import read_image_folder, to_nchw
from realnvp.data.images import load_images
from realnvp.errors import UserError
from realnvp.evaluation.metrics import evaluate_run
from realnvp.flow import Flow
from realnvp.training import train

# A tiny two-scale colour model: a few seconds per run, pictures included.
TINY_COLOUR = ["model.feature_maps=4", "model.n_blocks=1", "model.scale_couplings=2", "model.final_couplings=2",
               "train.eval_every=3", "train.time_budget=0", "train.batch_size=8", "data.test_draws=2",
               "data.test_fraction=0.25"]

# Enough training for the tiny model to learn these photos: 24 steps at lr 1e-2 reach test 6.25-6.75
# bits/dim (train.seed 0-3, every layout), where the model at initialisation (--steps 0) scores 7.65-7.71.
LEARNS = ["train.lr=1e-2", "train.eval_every=8"]
LEARNED_BPD = 7.2


def photos(n=32, size=8, seed=0):
    """Smooth colour images ``[N, H, W, 3]`` (gradients plus noise), values 0..255."""
    rng = np.random.RandomState(seed)
    ramp = np.linspace(0, 1, size)
    base = rng.rand(n, 1, 1, 3) * 160 + 40 * ramp[None, :, None, None] + 40 * ramp[None, None, :, None]
    return np.clip(base + rng.randint(0, 16, (n, size, size, 3)), 0, 255).astype(np.uint8)


def write_png16(path, pixels):
    """A 16-bit PNG of ``pixels`` ``[H, W, C]`` (C = 1 grey, 3 RGB, 4 RGBA), written by hand: Pillow
    cannot write 16-bit colour, and it decodes it to 8 bits on its own when reading."""
    h, w, c = pixels.shape
    rows = b"".join(b"\x00" + pixels[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 16, {1: 0, 3: 2, 4: 6}[c], 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
                     + chunk(b"IEND", b""))


def write_folder(folder, kind, images):
    """``images`` ``[N, H, W, 3]`` saved as PNGs of one ``kind``; returns the pixels the reader must give."""
    folder.mkdir()
    expected = images
    for i, img in enumerate(images):
        path = folder / f"{i:03d}.png"
        if kind == "rgb":
            Image.fromarray(img).save(path)
        elif kind == "rgba":
            Image.fromarray(np.concatenate([img, np.full(img.shape[:2] + (1,), 128, np.uint8)], -1)).save(path)
        elif kind == "palette":
            Image.fromarray(img).quantize(64, dither=Image.Dither.NONE).save(path)
        elif kind == "rgb16":
            write_png16(path, img.astype(np.uint16) * 256 + 255)  # low bytes that clipping or rounding would show
        elif kind == "grey16":
            write_png16(path, img[..., :1].astype(np.uint16) * 256 + 200)
            expected = images[..., :1]
    if kind == "palette":
        expected = np.stack([np.asarray(Image.open(path).convert("RGB")) for path in sorted(folder.iterdir())])
    return expected.transpose(0, 3, 1, 2)


@pytest.mark.parametrize(("kind", "notice"), [("rgb", None), ("rgba", "32 RGBA (alpha dropped)"),
                                              ("palette", "32 palette"),
                                              ("rgb16", "32 16-bit RGB (scaled to 8 bits: value // 256)"),
                                              ("grey16", "32 16-bit grey (scaled to 8 bits: value // 256)")])
def test_folders_read_to_the_stored_pixels_and_say_what_they_converted(tmp_path, kind, notice):
    expected = write_folder(tmp_path / kind, kind, photos())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pixels = read_image_folder(tmp_path / kind)
    np.testing.assert_array_equal(pixels, expected)  # 16-bit: value // 256 exactly, never 255 everywhere
    assert pixels.flags.c_contiguous and pixels.dtype == np.uint8
    messages = [str(w.message) for w in caught]
    assert messages == ([] if notice is None else [f"{tmp_path / kind}: converted to 8-bit "
                                                   f"{'grey' if kind == 'grey16' else 'RGB'}: {notice}"])


def test_array_layouts_read_alike(tmp_path):
    nhwc = photos()
    for name, array in (("nhwc", nhwc), ("nchw", nhwc.transpose(0, 3, 1, 2))):
        np.savez(tmp_path / f"{name}.npz", x_train=array[:24], x_test=array[24:])
        np.save(tmp_path / f"{name}.npy", array)
    a, b = (load_images(DataConfig(name="folder", path=str(tmp_path / f"{n}.npz"))) for n in ("nhwc", "nchw"))
    np.testing.assert_array_equal(a.train, nhwc[:24].transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(a.train, b.train)
    np.testing.assert_array_equal(a.test, b.test)
    c, d = (load_images(DataConfig(name="folder", path=str(tmp_path / f"{n}.npy"))) for n in ("nhwc", "nchw"))
    np.testing.assert_array_equal(c.train, d.train)
    assert c.train.shape == (25, 3, 8, 8) and c.test.shape == (7, 3, 8, 8) and c.train.flags.c_contiguous


def test_layout_detection_and_its_one_line_errors():
    assert to_nchw(np.zeros((2, 32, 32, 4)), "x").shape == (2, 4, 32, 32)  # RGBA arrays keep 4 channels
    assert to_nchw(np.zeros((2, 3, 32, 3)), "x").shape == (2, 3, 32, 3)  # both readings fit: NCHW
    assert to_nchw(np.zeros((2, 3, 32, 3)), "x", expected=(3, 3, 32)).shape == (2, 3, 3, 32)  # the run decides
    with pytest.raises(UserError, match=r"x: expected images \[N, H, W\], \[N, C, H, W\] or \[N, H, W, C\] "
                                        r"with C = 1, 3 or 4, got shape \(2, 5, 8, 7\)"):
        to_nchw(np.zeros((2, 5, 8, 7)), "x")


def test_sixteen_bit_arrays_are_refused_with_the_way_out(tmp_path):
    np.savez(tmp_path / "deep.npz", x_train=np.full((4, 8, 8, 3), 4000, np.uint16), x_test=np.zeros((2, 8, 8, 3)))
    with pytest.raises(UserError, match=r"found 4000\.\.4000 \(16-bit pixels\? scale them to 0\.\.255 first"):
        load_images(DataConfig(name="folder", path=str(tmp_path / "deep.npz")))


def cli(*argv):
    assert main(list(argv)) == 0


def cli_json(capsys, *argv):
    capsys.readouterr()
    cli(*argv, "--json") if argv[0] == "evaluate" else cli(*argv)
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.mark.parametrize("layout", ["nhwc.npz", "nchw.npz", "nhwc.npy", "rgb", "rgba", "palette", "rgb16"])
def test_colour_data_trains_evaluates_samples_and_scores(tmp_path, capsys, layout):
    images = photos()
    if layout.endswith(".npz"):
        array = images if layout.startswith("nhwc") else images.transpose(0, 3, 1, 2)
        data = tmp_path / layout
        np.savez(data, x_train=array[:24], x_test=array[24:])
    elif layout.endswith(".npy"):
        data = tmp_path / layout
        np.save(data, images)
    else:
        data = tmp_path / layout
        write_folder(data, layout, images)
    run = tmp_path / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the conversion notice (tested above)
        cli("train", "images", "--data", str(data), "--out", str(run), "--steps", "24", "--quiet",
            *cli_settings([*TINY_COLOUR, *LEARNS]), *([] if layout == "rgb" else ["--no-pictures"]))
        evaluation = cli_json(capsys, "evaluate", str(run))
        cli("sample", str(run), "-n", "4", "-o", str(tmp_path / "s.npy"), "--quiet")
        cli("score", str(run), str(data), "-o", str(tmp_path / "scores.csv"), "--json", "--quiet")
    scores = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert evaluation["data"] == str(data) and evaluation["dim"] == 3 * 8 * 8 and evaluation["n_levels"] == 256
    assert evaluation["bits_per_dim"] < LEARNED_BPD and evaluation["inverse_max_abs_error"] < 1e-3
    samples = np.load(tmp_path / "s.npy")
    assert samples.shape == (4, 3, 8, 8) and samples.dtype == np.uint8
    if layout.endswith(".npz"):  # score reads x_test: the same images and noise as evaluate
        assert scores["n"] == 8
        assert scores["bits_per_dim_mean"] == pytest.approx(evaluation["bits_per_dim"], rel=1e-6)
    else:
        assert scores["n"] == 32 and np.isfinite(scores["bits_per_dim_mean"])
    if layout == "rgb":
        for name in ("samples.png", "samples_t0.7.png", "scales.png"):
            picture = Image.open(run / name)
            assert picture.mode == "RGB" and picture.text["Title"].startswith(("rgb: Real NVP samples, temperature",
                                                                               "what each scale encodes"))


def test_score_reads_a_channels_last_array_as_its_channels_first_twin(tmp_path, capsys):
    images = photos()
    np.savez(tmp_path / "d.npz", x_train=images[:24], x_test=images[24:])
    run = tmp_path / "run"
    cli("train", "images", "--data", str(tmp_path / "d.npz"), "--out", str(run), "--steps", "3", "--quiet",
        "--no-pictures", *cli_settings(TINY_COLOUR))
    np.save(tmp_path / "nhwc.npy", images[:5])
    np.save(tmp_path / "nchw.npy", np.ascontiguousarray(images[:5].transpose(0, 3, 1, 2)))
    for name in ("nhwc", "nchw"):
        cli("score", str(run), str(tmp_path / f"{name}.npy"), "-o", str(tmp_path / f"{name}.csv"), "--quiet")
    assert (tmp_path / "nhwc.csv").read_text() == (tmp_path / "nchw.csv").read_text()
    capsys.readouterr()
    assert main(["score", str(run), str(tmp_path / "nhwc.npy"), "-o", str(tmp_path / "x.csv")]) == 0
    assert main(["evaluate", str(run), "--data", str(tmp_path / "nhwc.npy"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_test"] == 5
    np.save(tmp_path / "grey.npy", images[:5, ..., :1])
    assert main(["score", str(run), str(tmp_path / "grey.npy"), "-o", str(tmp_path / "y.csv")]) == 2
    assert "the run takes images of shape (3, 8, 8) [C, H, W], got (1, 8, 8)" in capsys.readouterr().err


def test_folder_notice_is_one_line_on_the_command_line(tmp_path, capsys):
    write_folder(tmp_path / "rgba", "rgba", photos())
    cli("train", "images", "--data", str(tmp_path / "rgba"), "--out", str(tmp_path / "run"), "--steps", "2",
        "--no-pictures", *cli_settings(TINY_COLOUR))
    err = capsys.readouterr().err
    notices = [line for line in err.splitlines() if "alpha dropped" in line]
    assert notices == [f"realnvp: warning: {tmp_path / 'rgba'}: converted to 8-bit RGB: 32 RGBA (alpha dropped)"]



def test_cifar_cpu_preset_is_the_multiscale_model_with_1x1_convolutions_and_trains_on_channels_last_photos(tmp_path):
    images = np.concatenate([photos(16, 32, seed) for seed in range(2)])
    np.savez(tmp_path / "p.npz", x_train=images[:24], x_test=images[24:])
    cfg = load_config("cifar-cpu", [f"data.path={tmp_path / 'p.npz'}", "train.steps=2", "train.batch_size=4",
                                    "train.eval_every=2", "data.test_draws=1", "train.compile=false"])
    assert (cfg.model.n_scales, cfg.model.scale_couplings, cfg.model.final_couplings) == (3, 3, 4)
    assert cfg.model.batch_norm and cfg.train.lr_schedule == "cosine_time" and cfg.train.time_budget == 1800
    result = train(cfg, tmp_path / "run", progress=False, log=lambda *a: None)
    kinds = {type(m).__name__ for m in result.flow.modules()}
    # checkerboard couplings on the squeezed image (AffineCoupling with a squeezed checkerboard mask), 1x1 convolutions
    assert {"AffineCoupling", "InvertibleLinear", "Squeeze", "FactorOut", "BatchNormFlow", "ResNet"} <= kinds
    blocks = [m for m in result.flow.modules() if type(m).__name__ == "ResidualBlock"]
    inner = [m for block in blocks for m in block.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(blocks) == 3 + 3 + 3 + 3 + 4  # one block per coupling's s/t ResNet
    assert sorted({m.in_channels for m in inner}) == [32, 64, 128]  # no 1-4-channel convolution inside
    metrics = evaluate_run(tmp_path / "run")
    # Two steps learn nothing (test 7.81 bits/dim, 7.77 at initialisation): this test checks the model's
    # structure and that it evaluates; test_colour_data_trains_evaluates_samples_and_scores checks learning.
    assert metrics["data"] == str(tmp_path / "p.npz") and np.isfinite(metrics["bits_per_dim"])


def test_evaluate_visits_each_test_image_once_per_draw_and_a_bounded_train_sample(tmp_path, monkeypatch):
    """evaluate's work on images: every test image once per draw, at most 1000 training images once,
    and the inverse check on at most 100 test images; nothing computed twice."""
    images = np.concatenate([photos(40, 8, seed) for seed in range(40)])  # 1600 images
    np.savez(tmp_path / "p.npz", x_train=images[:1500], x_test=images[1500:])
    cli("train", "images", "--data", str(tmp_path / "p.npz"), "--out", str(tmp_path / "run"), "--steps", "2",
        "--quiet", "--no-pictures", *cli_settings(TINY_COLOUR), "--set", "data.test_draws=3")
    seen = {"log_prob": 0, "inverse": 0}
    log_prob, inverse = Flow.log_prob, Flow.inverse
    monkeypatch.setattr(Flow, "log_prob", lambda self, x, *a: seen.__setitem__("log_prob", seen["log_prob"] + len(x))
                        or log_prob(self, x, *a))
    monkeypatch.setattr(Flow, "inverse", lambda self, z, *a: seen.__setitem__("inverse", seen["inverse"] + len(z))
                        or inverse(self, z, *a))
    metrics = evaluate_run(tmp_path / "run")
    assert metrics["n_test"] == 100 and metrics["test_draws"] == 3
    assert seen == {"log_prob": 100 * 3 + 1000, "inverse": 100}
