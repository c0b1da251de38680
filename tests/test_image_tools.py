"""The user tools on an image run (a tiny 8x8 digits model): the report renders its image grids,
per-scale picture and animation in chromium, laid out for reading; the run's pictures are labelled;
score gives per-image bits/dim from a folder or an .npy, noise scores worse than digits; runs shows
the bits/dim, never mixed with nats."""

from __future__ import annotations

import csv
import io
import json
import shutil

import numpy as np
import pytest
from headless import looks_drawn, need_chromium, render, screenshot
from PIL import Image

from realnvp.cli import main


@pytest.fixture(scope="module")
def digits_run(tiny_digits):
    return tiny_digits  # trained with pictures: samples, scales.png and the animation come from training


def digits_images(n: int) -> np.ndarray:
    from sklearn.datasets import load_digits

    return load_digits().data[-n:].reshape(-1, 8, 8).astype(np.uint8)


def test_report_of_an_image_run_renders(digits_run, tmp_path):
    """Training images beside samples first, lower temperatures side by side in one row, the scales
    picture named finest to coarsest, curves in bits/dim, no vector settings; drawn in chromium."""
    chromium = need_chromium()
    assert main(["report", str(digits_run), "-o", str(tmp_path / "r.html"), "--quiet"]) == 0
    result, console = render(chromium, tmp_path / "r.html", tmp_path)
    alts = [image["alt"] for image in result["images"]]
    assert alts.index("training images") == 0
    assert [a for a in alts if a.startswith("samples at temperature")] == [
        "samples at temperature 1", "samples at temperature 0.5", "samples at temperature 0.75"]
    assert any(a.startswith("what each scale encodes") and "scale 1 (finest) resampled" in a for a in alts)
    assert not any("coarse to fine" in a for a in alts)
    assert sum(image["gif"] for image in result["images"]) == 1
    assert all(image["complete"] and image["width"] > 0 for image in result["images"])
    assert result["errors"] == [] and console == [] and result["fetched"] == [] and result["external"] == []
    text = (tmp_path / "r.html").read_text()
    lower = text[text.index("Lower temperatures"):]
    row = lower[lower.index('<div class="row">'):lower.index("</div>")]
    assert 'alt="samples at temperature 0.5"' in row and 'alt="samples at temperature 0.75"' in row
    assert 'alt="NLL in bits/dim against the training step' in text
    for key in ("model.hidden", "model.n_couplings", "data.n_train", "data.noise"):
        assert f"<td>{key}</td>" not in text, key
    assert "<td>model.n_scales</td>" in text
    drawn, numbers = looks_drawn(screenshot(chromium, tmp_path / "r.html", tmp_path))
    assert drawn, numbers


def test_image_pictures_are_labelled(digits_run):
    """samples.png, samples_t0.7.png and scales.png carry their title (temperature; column headers,
    finest to coarsest) drawn above the tiles and in the PNG's metadata."""
    titles = {name: Image.open(digits_run / name).text.get("Title", "")
              for name in ("samples.png", "samples_t0.7.png", "scales.png")}
    assert titles["samples.png"].endswith("Real NVP samples, temperature 1")
    assert titles["samples_t0.7.png"].endswith("Real NVP samples, temperature 0.7")
    assert "finest to coarsest" in titles["scales.png"]
    assert "columns: image, scale 1 (finest) resampled, scale 2 (coarsest) resampled" in titles["scales.png"]
    tiles = 8 * (8 + 1) + 1  # grid(): 8 rows of 8x8 tiles with 1-pixel gaps, zoomed 8 times
    for name in ("samples.png", "samples_t0.7.png"):
        picture = np.asarray(Image.open(digits_run / name).convert("L"))
        assert picture.shape[0] > tiles * 8  # a title strip above the tiles
        assert (picture[: picture.shape[0] - tiles * 8] < 128).any()  # with ink in it (the text)
    scales = np.asarray(Image.open(digits_run / "scales.png").convert("L"))
    header = scales[: scales.shape[0] - 8 * tiles]
    assert header.shape[0] > 40 and (header < 128).any()  # title and column headers


def test_score_images_from_folder_and_npy(digits_run, tmp_path):
    images = digits_images(20)
    (tmp_path / "imgs").mkdir()
    for i, img in enumerate(images):
        Image.fromarray(img).save(tmp_path / "imgs" / f"{i:02d}.png")
    np.save(tmp_path / "digits.npy", images)
    tables = []
    for source in ("imgs", "digits.npy"):
        assert main(["score", str(digits_run), str(tmp_path / source), "-o", str(tmp_path / "s.csv"), "--quiet"]) == 0
        rows = list(csv.reader(io.StringIO((tmp_path / "s.csv").read_text())))
        assert rows[0] == ["row", "log_likelihood_discrete_nats", "bits_per_dim"] and len(rows) == 21
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


def test_runs_table_shows_bits_per_dim(digits_run, tiny_moons, tmp_path, capsys):
    """An image run's score is in bits/dim with the unit beside it, in the same column as a vector
    run's nats/example; the nats stay in --json under their own name."""
    evaluation = json.loads((digits_run / "evaluation.json").read_text())
    assert main(["runs", str(digits_run.parent), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["bits_per_dim"] == evaluation["bits_per_dim"] and row["data"] == "digits"
    assert row["test_nll"] == evaluation["bits_per_dim"] and row["unit"] == "bits/dim"
    assert row["test_nll_nats"] == evaluation["test_nll_nats"]
    root = tmp_path / "both"
    shutil.copytree(digits_run, root / "digits")
    shutil.copytree(tiny_moons, root / "moons")
    assert main(["runs", str(root)]) == 0
    lines = capsys.readouterr().out.splitlines()
    digits = next(line for line in lines if line.startswith("digits"))
    moons = next(line for line in lines if line.startswith("moons"))
    assert f"{evaluation['bits_per_dim']:.4f}  bits/dim" in digits and "nats" not in digits
    assert f"{evaluation['test_nll_nats']:.4f}" not in digits
    assert "nats/example" in moons and "bits/dim" not in moons
