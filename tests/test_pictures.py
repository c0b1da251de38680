"""The pictures of vector runs say what they show (issue 14, items 1 and 8): the 2-D log-density
spends its colours on the data's range and states its floor; axes carry the coordinates' names;
more than two columns get a corner plot (data vs samples) and titles name no "file"."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from tiny import train_tiny

from realnvp.cli import main
from realnvp.data import load_splits
from realnvp.rundir import RunDir
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
