"""The pictures of vector runs say what they show (issue 14, items 1 and 8): the 2-D log-density
spends its colours on the data's range and states its floor; axes carry the coordinates' names;
more than two columns get a corner plot (data vs samples) and titles name no "file"."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from tiny import TINY_DIGITS, cli_settings, train_tiny

from realnvp.cli import main
from realnvp.data import load_splits
from realnvp.models import build_image_flow
from realnvp.rundir import RunDir
from realnvp.viz.conditional import class_temperature_grid
from realnvp.viz.images import THUMBNAIL, _font, _wrap, grid, scale_headers, scales_picture
from realnvp.viz.plots import FLOOR_MARGIN, _log_prob, corner_figure, density_figure, samples_figure


@pytest.fixture(scope="module")
def moons(tmp_path_factory):
    """A small moons flow trained long enough to have structure, and its training data."""
    run = train_tiny(tmp_path_factory.mktemp("pictures") / "moons", steps=150)
    flow, cfg, _ = RunDir(run).load_flow()
    return flow, load_splits(cfg.data).train


def test_density_colours_cover_the_data(moons):
    """The colour range is chosen from the data: its 1st..99th percentile of log p(x) spans most of
    the range, the floor sits FLOOR_MARGIN nats below the 1st percentile and the colour bar says so.
    (The old floor, the grid's own 5th percentile, gave 0.13 here and 0.006 on the moons preset.)"""
    flow, data = moons
    fig = density_figure(flow, data, title="moons: model log-density")
    (ax,) = fig.axes
    mesh = ax.collections[0]
    bar = mesh.colorbar.ax
    low, high = mesh.get_clim()
    p1, p99 = np.percentile(_log_prob(flow, data[:5000]), [1, 99])
    assert low == pytest.approx(p1 - FLOOR_MARGIN, abs=1e-4)
    assert (p99 - p1) / (high - low) > 0.5, (p1, p99, low, high)
    assert high >= p99  # the densest data is not clipped
    assert f"floor {low:.2f}" in bar.get_ylabel() and "nats" in bar.get_ylabel()
    assert ax.get_title() == "moons: model log-density"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("x0", "x1")
    assert ax.get_aspect() == 1.0


def test_samples_say_which_columns(moons):
    flow, data = moons
    two = samples_figure(data[:300], data[300:600], title="moons: data vs Real NVP samples")
    assert [ax.get_title() for ax in two.axes] == ["data (n=300)", "samples (n=300)"]
    assert two.axes[0].get_xlabel() == "x0" and two.axes[0].get_ylabel() == "x1"
    assert two.get_suptitle() == "moons: data vs Real NVP samples"  # 2 columns: nothing left out to mention
    rng = np.random.RandomState(0)
    wide = samples_figure(rng.randn(100, 5), rng.randn(100, 5), title="t", names=["a", "b", "c", "d", "e"])
    assert wide.get_suptitle() == "t: columns a, b of 5"
    assert wide.axes[1].get_xlabel() == "a" and wide.axes[0].get_ylabel() == "b"


def test_corner_plot_limits_and_labels():
    rng = np.random.RandomState(0)
    data, samples = rng.randn(300, 9), rng.randn(300, 9) + 5
    fig = corner_figure(data, samples, title="mine")
    assert len(fig.axes) == 36  # the first 6 of 9 columns
    assert "first 6 of 9 columns" in fig.get_suptitle() and "below the diagonal: data" in fig.get_suptitle()
    bottom = [ax.get_xlabel() for ax in fig.axes[-6:]]
    left = [fig.axes[6 * i].get_ylabel() for i in range(1, 6)]
    assert bottom == [f"x{i}" for i in range(6)] and left == [f"x{i}" for i in range(1, 6)]
    lower, upper = fig.axes[6 * 2 + 0], fig.axes[0 * 6 + 2]  # panels (2, 0): data; (0, 2): samples, same axes
    assert lower.get_xlim() == upper.get_xlim() and lower.get_ylim() == upper.get_ylim()
    assert np.allclose(lower.collections[0].get_offsets(), data[:, [0, 2]])
    assert np.allclose(upper.collections[0].get_offsets(), samples[:, [0, 2]])
    assert len(corner_figure(data[:, :3], samples[:, :3]).axes) == 9


def test_a_csv_run_names_its_columns(tmp_path):
    """A 3-column CSV with a header: samples.png and corner.png use the column names, titles give the
    file's name rather than "file", and there is no density.png (it is 2-D only)."""
    rng = np.random.RandomState(0)
    table = np.c_[rng.randn(400), rng.randn(400) * 2, rng.rand(400)]
    path = tmp_path / "people.csv"
    np.savetxt(path, table, delimiter=",", header="height,weight,score", comments="")
    # 2 couplings: the animation train draws has 50 frames instead of the 4-coupling default's 80
    assert main(["train", "--data", str(path), "--out", str(tmp_path / "run"), "--steps", "20", "--quiet",
                 "--set", "model.hidden=8,8", "--set", "model.n_couplings=2", "--set", "train.eval_every=10",
                 "--set", "train.time_budget=0"]) == 0
    titles = {p.name: Image.open(p).text.get("Title", "") for p in (tmp_path / "run").glob("*.png")}
    assert sorted(titles) == ["corner.png", "samples.png"]
    assert titles["samples.png"] == "people.csv: data vs Real NVP samples: columns height, weight of 3"
    assert titles["corner.png"].startswith("people.csv: data vs samples, all 3 columns")
    assert not any("file" in title.split(":")[0] for title in titles.values())


def test_conditional_table_sample_names_columns_and_shows_rows_of_that_context(tmp_path, capsys, monkeypatch):
    """Issue 28: after --context-columns 2 on a CSV with a header, `sample --context 3` labels the axes
    with the header's names, its data panel holds only the training rows whose context is 3 and says
    so, and its title gives the temperature; training counts the modelled columns only and ends with the
    Gaussians beside the flow."""
    import realnvp.viz.plots as plots

    rng = np.random.default_rng(0)
    c = rng.integers(1, 6, 400).astype(float)
    a = rng.normal(size=400) + c
    table = np.c_[a, 0.5 * a + rng.normal(size=400), c, rng.normal(size=400) * c]
    np.savetxt(tmp_path / "t.csv", table, delimiter=",", header="alpha,beta,ctx,delta", comments="", fmt="%.6g")
    run = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path / "t.csv"), "--context-columns", "2", "--out", str(run),
                 "--steps", "20", "--no-pictures", "--set", "model.hidden=8,8", "--set", "model.n_couplings=2",
                 "--set", "train.eval_every=10", "--set", "train.time_budget=0"]) == 0
    err = capsys.readouterr().err
    assert "rows x 3 columns" in err and "rows x 4 columns" not in err
    assert "the Gaussians of the same rows score" in err
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig))
    assert main(["sample", str(run), "--context", "3", "-n", "500", "--temperature", "0.8",
                 "-o", str(tmp_path / "ctx.png")]) == 0
    (fig,) = figures
    data_ax, samples_ax = fig.axes
    _, cfg, _ = RunDir(run).load_flow()
    splits = load_splits(cfg.data)
    wanted = splits.train[splits.train_c[:, 0] == 3]
    assert 0 < len(wanted) < len(splits.train)
    assert data_ax.get_title() == f"training rows with context 3 (n={len(wanted)})"
    assert np.allclose(data_ax.collections[0].get_offsets(), wanted[:, :2])
    assert samples_ax.get_title() == "samples (n=500)"
    assert (data_ax.get_xlabel(), data_ax.get_ylabel(), samples_ax.get_xlabel()) == ("alpha", "beta", "alpha")
    assert fig.get_suptitle() == "temperature 0.8, context 3: columns alpha, beta of 3"
    plots._pyplot().close(fig)


@pytest.fixture(scope="module")
def digits_cond(tmp_path_factory):
    """A class-conditional digits run (the digits-cond preset, tiny, 4 steps), without pictures."""
    run = tmp_path_factory.mktemp("pictures") / "cond"
    assert main(["train", "digits-cond", "--out", str(run), "--steps", "4", "--quiet", "--no-pictures",
                 *cli_settings(TINY_DIGITS)]) == 0
    return run


def _ink_rows(picture: np.ndarray, bands: int) -> list[bool]:
    """Whether each of ``bands`` equal horizontal bands of a grey picture holds dark (text) pixels."""
    return [bool((band < 128).any()) for band in np.array_split(picture, bands, axis=0)]


def test_class_grids_label_each_row_and_sample_pngs_give_the_temperature(digits_cond, tmp_path):
    """Issue 28: `sample` without --class draws one row per class with each row labelled (a margin on the
    left holds text beside every row), classes.png likewise; every image `sample` PNG is titled with
    the temperature (and the class)."""
    assert main(["sample", str(digits_cond), "-n", "20", "--temperature", "0.7", "-o", str(tmp_path / "a.png"),
                 "--quiet"]) == 0
    picture = Image.open(tmp_path / "a.png")
    assert picture.text["Title"] == "digits: Real NVP samples, temperature 0.7, one row per class"
    tiles = grid(np.zeros((20, 1, 8, 8)), ncol=2, zoom=8)  # 2 per class, 10 rows
    pixels = np.asarray(picture.convert("L"))
    margin, top = pixels.shape[1] - tiles.shape[1], pixels.shape[0] - tiles.shape[0]
    assert margin > 30
    assert _ink_rows(pixels[top:, :margin], 10) == [True] * 10
    assert main(["sample", str(digits_cond), "-n", "4", "--class", "3", "-o", str(tmp_path / "b.png"),
                 "--quiet"]) == 0
    assert Image.open(tmp_path / "b.png").text["Title"] == "digits: Real NVP samples, temperature 1, class 3"
    flow, _, _ = RunDir(digits_cond).load_flow()
    class_temperature_grid(flow, tmp_path / "classes.png", per_cell=2)
    pixels = np.asarray(Image.open(tmp_path / "classes.png").convert("L"))
    tiles = grid(np.zeros((80, 1, 8, 8)), ncol=8, zoom=8)
    margin, top = pixels.shape[1] - tiles.shape[1], pixels.shape[0] - tiles.shape[0]
    assert margin > 30 and _ink_rows(pixels[top:, :margin], 10) == [True] * 10


def test_image_animation_ends_on_the_samples(digits_cond, tmp_path):
    """Issue 28: the digits animation's last frame is the samples themselves (it was them pushed through
    the sigmoid a second time: grey, 127..186), with the sample grid's contrast."""
    assert main(["animate", str(digits_cond), "-o", str(tmp_path / "a.gif"), "--quiet"]) == 0
    flow, _, _ = RunDir(digits_cond).load_flow()
    torch.manual_seed(0)
    samples = flow.eval().sample(64, context=torch.arange(64) % flow.n_classes).clamp(0, 1).numpy()
    expected = grid(samples, zoom=8).astype(int)
    with Image.open(tmp_path / "a.gif") as gif:
        gif.seek(gif.n_frames - 1)
        last = np.asarray(gif.convert("L")).astype(int)[16:, : expected.shape[1]]
    assert np.abs(last - expected).max() <= 2
    assert np.ptp(last) > 200 and last.std() > 0.8 * expected.std()


def test_colour_scales_thumbnails_are_large_and_the_title_one_line(tmp_path):
    """Issue 28: scales.png shows each image at least THUMBNAIL pixels tall and its title on one line
    (the picture is exactly one title line, the headers and the tiles tall)."""
    torch.manual_seed(0)
    flow = build_image_flow((3, 8, 8), feature_maps=4, n_blocks=1)
    scales_picture(flow, torch.rand(3, 3, 8, 8), 2, tmp_path / "scales.png")
    picture = Image.open(tmp_path / "scales.png")
    zoom = THUMBNAIL // 8
    tiles = grid(np.zeros((9, 3, 8, 8)), ncol=3, zoom=zoom)
    font = _font()
    header_lines = max(len(_wrap(h, tiles.shape[1] // 3 - 4, font)) for h in scale_headers(2))
    assert picture.size == (tiles.shape[1], 4 + 15 + 15 * header_lines + 4 + tiles.shape[0])
    title = picture.text["Title"].split(";")[0]
    assert title == "what each scale encodes, finest to coarsest (temperature 1)"
    assert font.getlength(title) < picture.size[0]
