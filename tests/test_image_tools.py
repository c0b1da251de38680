"""The user tools on an image run (a tiny 8x8 digits model): the report renders its image grids,
per-scale picture and animation in chromium; score gives per-image bits/dim from a folder or an
.npy, noise scores worse than digits; runs shows the bits/dim."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from headless import need_chromium, render

from realnvp.cli import main


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("image-runs")
    argv = ["train", "digits", "--out", str(root / "digits"), "--steps", "40", "--quiet",
            "--set", "train.eval_every=20", "--set", "train.time_budget=0", "--set", "model.feature_maps=8",
            "--set", "model.n_blocks=1", "--set", "model.scale_couplings=2", "--set", "model.final_couplings=2",
            "--set", "data.test_draws=2", "--set", "train.lr=3e-3"]
    assert main(argv) == 0  # with pictures: samples, scales.png and the animation come from training
    return root / "digits"


def digits_images(n: int) -> np.ndarray:
    from sklearn.datasets import load_digits

    return load_digits().data[-n:].reshape(-1, 8, 8).astype(np.uint8)


def test_report_of_an_image_run_renders(digits_run, tmp_path):
    chromium = need_chromium()
    assert main(["report", str(digits_run), "-o", str(tmp_path / "r.html"), "--quiet"]) == 0
    result, console = render(chromium, tmp_path / "r.html", tmp_path)
    alts = [image["alt"] for image in result["images"]]
    assert "training images" in alts
    assert [a for a in alts if a.startswith("samples at temperature")] == [
        "samples at temperature 0.5", "samples at temperature 0.75", "samples at temperature 1"]
    assert any(a.startswith("what each scale encodes") for a in alts)
    assert sum(image["gif"] for image in result["images"]) == 1
    assert all(image["complete"] and image["width"] > 0 for image in result["images"])
    assert result["errors"] == [] and console == [] and result["fetched"] == [] and result["external"] == []
    assert "bits/dim" in (tmp_path / "r.html").read_text()


def test_score_images_from_folder_and_npy(digits_run, tmp_path):
    from PIL import Image

    images = digits_images(20)
    (tmp_path / "imgs").mkdir()
    for i, img in enumerate(images):
        Image.fromarray(img).save(tmp_path / "imgs" / f"{i:02d}.png")
    np.save(tmp_path / "digits.npy", images)
    tables = []
    for source in ("imgs", "digits.npy"):
        assert main(["score", str(digits_run), str(tmp_path / source), "-o", str(tmp_path / "s.csv"), "--quiet"]) == 0
        rows = list(csv.reader(io.StringIO((tmp_path / "s.csv").read_text())))
        assert rows[0] == ["row", "log_likelihood_nats", "bits_per_dim"] and len(rows) == 21
        tables.append(np.array(rows[1:], dtype=float))
    np.testing.assert_allclose(tables[0], tables[1])  # same images, same seeded dequantization
    np.testing.assert_allclose(tables[0][:, 2], -tables[0][:, 1] / (64 * np.log(2)))


def test_noise_scores_worse_than_digits(digits_run, tmp_path, capsys):
    """The docs' image example: uniform noise images cost more bits/dim than held-out digits."""
    noise = np.random.RandomState(0).randint(0, 17, size=(50, 1, 8, 8)).astype(np.uint8)
    np.save(tmp_path / "noise.npy", noise)
    np.save(tmp_path / "digits.npy", digits_images(50))
    means = {}
    for name in ("digits", "noise"):
        assert main(["score", str(digits_run), str(tmp_path / f"{name}.npy"), "-o", str(tmp_path / "s.csv"),
                     "--json", "--quiet"]) == 0
        means[name] = json.loads(capsys.readouterr().out)["bits_per_dim_mean"]
    assert means["noise"] > means["digits"] + 0.5


@pytest.mark.parametrize("make, message", [
    (lambda: np.zeros((3, 28, 28), np.uint8), "the run takes images of shape (1, 8, 8)"),
    (lambda: np.full((3, 8, 8), 200, np.uint8), "pixel values must lie in 0..16"),
    (lambda: np.full((3, 8, 8), 0.5), "must be integers"),
])
def test_bad_images_are_one_line(digits_run, tmp_path, capsys, make, message):
    np.save(tmp_path / "x.npy", make())
    assert main(["score", str(digits_run), str(tmp_path / "x.npy"), "-o", str(tmp_path / "s.csv")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("realnvp: error:") and message in err and err.count("\n") == 1


def test_runs_table_shows_bits_per_dim(digits_run, capsys):
    evaluation = json.loads((digits_run / "evaluation.json").read_text())
    assert main(["runs", str(digits_run.parent), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["bits_per_dim"] == evaluation["bits_per_dim"] and row["data"] == "digits"
