"""``realnvp report``: the page renders in a real headless browser (Debian's chromium) with every
picture decoded, nothing fetched from the network and nothing in the console, and its screenshot is a
drawn page; it is laid out for reading (headline figure, curves, samples, metrics, the settings that
apply); its tables hold the run; curves are in the run's unit with every point marked."""

from __future__ import annotations

import base64
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from headless import looks_drawn, need_chromium, render, screenshot
from PIL import Image

from realnvp.cli import main
from realnvp.evaluation.metrics import bits_per_dim
from realnvp.viz.curves import curves_figure
from realnvp.viz.report import BASELINE, baseline_line


@pytest.fixture
def browser() -> str:
    return need_chromium()


@pytest.fixture(scope="module")
def report(tmp_path_factory, tiny_moons) -> tuple[Path, Path]:
    """A copy of the tiny run with an extra picture (as the image model's per-scale pictures), and its
    report written by the CLI to the default place."""
    run = shutil.copytree(tiny_moons, tmp_path_factory.mktemp("report") / "moons")
    Image.fromarray((np.arange(48 * 64).reshape(48, 64) % 256).astype(np.uint8)).save(run / "scale_1.png")
    assert main(["report", str(run), "--quiet"]) == 0
    return run, run / "report.html"


def test_report_renders_in_chromium(report, browser, tmp_path):
    _, page = report
    result, console = render(browser, page, tmp_path)
    alts = [image["alt"] for image in result["images"]]
    # curves, samples beside data, log-density, animation, and the run's extra picture
    assert len(alts) == 5, alts
    assert "scale_1.png" in alts
    for image in result["images"]:
        assert image["complete"] and image["width"] > 0 and image["height"] > 0, image
    assert sum(image["gif"] for image in result["images"]) == 1  # the animation is embedded as a GIF
    assert result["errors"] == []
    assert console == []
    assert result["fetched"] == [] and result["external"] == []  # self-contained: data: URIs only


def test_report_screenshot_is_a_drawn_page(report, browser, tmp_path):
    """What a reader first sees is drawn: the screenshot's check passes on the report and fails on a
    blank page and on a page of text with broken pictures."""
    _, page = report
    drawn, numbers = looks_drawn(screenshot(browser, page, tmp_path))
    assert drawn, numbers
    (tmp_path / "blank.html").write_text("<!DOCTYPE html><html><head></head><body></body></html>")
    (tmp_path / "broken.html").write_text(
        "<!DOCTYPE html><html><head></head><body><h1>Real NVP run</h1><p>test NLL 0.3</p>"
        "<img alt='bad' src='data:image/png;base64,AAAA'><img alt='gone' src='missing.png'></body></html>")
    for name in ("blank", "broken"):
        drawn, numbers = looks_drawn(screenshot(browser, tmp_path / f"{name}.html", tmp_path))
        assert not drawn, (name, numbers)


def test_report_reads_top_down(report):
    """Headline number, the Gaussian beside it, the headline figure (the log-density of a 2-D run),
    then curves, samples, metrics and the settings; no image settings in a 2-D run's table."""
    run, page = report
    text = page.read_text()
    order = [text.index(mark) for mark in ("class='headline'", 'alt="model log-density', "<h2>Training curves",
                                           "<h2>Samples", 'alt="training data (left) beside samples',
                                           "<h2>Metrics", "<summary>Configuration")]
    assert order == sorted(order)
    assert 'class="row"' in text[text.index("<h2>Samples"):text.index("<h2>Metrics")]  # side by side
    for key in ("model.n_scales", "model.feature_maps", "data.test_draws", "data.flip", "model.logit",
                "data.test_fraction", "data.path"):
        assert f"<td>{key}</td>" not in text, key
    for key in ("model.n_couplings", "data.n_train", "train.lr"):
        assert f"<td>{key}</td>" in text, key
    evaluation = json.loads((run / "evaluation.json").read_text())
    if BASELINE in evaluation:
        assert "flow vs full-covariance Gaussian" in text


@pytest.mark.parametrize("gaussian, word", [(3.0, "better by 1.0000"), (1.5, "WORSE than the Gaussian by 0.5000")])
def test_baseline_says_which_is_better(gaussian, word):
    line = baseline_line({"test_nll_nats": 2.0, BASELINE: gaussian})
    assert "flow vs full-covariance Gaussian: 2.0000 vs" in line and word in line
    assert baseline_line({"test_nll_nats": 2.0}) == ""  # runs evaluated before the baseline existed
    image = baseline_line({"test_nll_nats": -90.0, BASELINE: -80.0, "dim": 64, "n_levels": 17})
    assert f"{bits_per_dim(-90.0, 64, 17):.4f} vs {bits_per_dim(-80.0, 64, 17):.4f} bits/dim" in image


def test_curves_mark_every_point_and_use_the_runs_unit():
    """A run with one evaluation is a visible marked point (not an invisible one-point line); running
    train records (train_nll without val_nll) and evaluation records both appear; image runs in bits/dim."""
    old = [{"step": 300, "train_nll": -90.0, "val_nll": -95.0, "lr": 1e-3}]
    new = [{"step": s, "train_nll": -80.0 - s / 10, "lr": 1e-3} for s in (50, 100, 150, 200, 250)] + old
    for records in (old, new):
        fig = curves_figure(records, dim=64, n_levels=17)
        ax = fig.axes[0]
        assert ax.get_ylabel() == "NLL [bits/dim]"
        lines = {line.get_label(): line for line in ax.get_lines()}
        assert all(line.get_marker() not in ("None", "", None) for line in lines.values())
        assert list(lines["validation"].get_ydata()) == [pytest.approx(bits_per_dim(-95.0, 64, 17))]
    assert len(lines["train (running mean)"].get_xdata()) == 5
    assert curves_figure(old).axes[0].get_ylabel() == "NLL [nats/example]"


def test_probe_catches_a_broken_page(browser, tmp_path):
    """The checks above can fail: a broken picture, a file and a network address referred to, a
    script error, a console error."""
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><html><head></head><body><img alt='bad' src='data:image/png;base64,AAAA'>"
                    "<img alt='missing' src='missing.png'><img alt='net' src='http://127.0.0.1:9/x.png'>"
                    "<script>console.error('boom'); nope();</script></body></html>")
    result, console = render(browser, page, tmp_path)
    assert [image["width"] for image in result["images"]] == [0, 0, 0]
    assert any("nope" in error for error in result["errors"])
    assert result["fetched"] == ["http://127.0.0.1:9/x.png"]
    assert result["external"] == ["missing.png", "http://127.0.0.1:9/x.png"]
    assert any("boom" in line for line in console)


def test_report_tables_hold_the_run(report):
    run, page = report
    text = page.read_text()
    evaluation = json.loads((run / "evaluation.json").read_text())
    config = json.loads((run / "config.json").read_text())
    assert f"{evaluation['test_nll_nats']:.4g}" in text
    assert f"{evaluation['n_params']}" in text
    assert f"model.hidden</td><td>{', '.join(map(str, config['model']['hidden']))}</td>" in text
    assert f"train.steps</td><td class=\"num\">{config['train']['steps']}</td>" in text
    assert "<script" not in text.lower()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)


def test_report_reuses_the_runs_pictures(report, tmp_path, capsys):
    """Pictures training drew are embedded as they are (not redrawn), -o picks the file, and a torn
    evaluation.json (a run killed while writing it) is recomputed rather than failing the report."""
    run, page = report
    copy = shutil.copytree(run, tmp_path / "copy")
    evaluation = json.loads((copy / "evaluation.json").read_text())
    (copy / "evaluation.json").write_text('{"test_nll_nats": 1.')
    sources = re.findall(r'<img src="data:image/(?:png|gif);base64,([^"]+)" alt="([^"]+)"', page.read_text())
    drawn = dict(zip(["density.png", "curves", "samples.png", "animation.gif"], sources[:4], strict=True))
    for name in ("samples.png", "density.png", "animation.gif"):
        (copy / name).write_bytes(base64.b64decode(drawn[name][0]))
    assert main(["report", str(copy), "-o", str(tmp_path / "r.html")]) == 0
    assert f"wrote {tmp_path / 'r.html'}" in capsys.readouterr().err
    again = re.findall(r'<img src="data:image/(?:png|gif);base64,([^"]+)" alt="([^"]+)"',
                       (tmp_path / "r.html").read_text())
    assert again == sources
    assert f"{evaluation['test_nll_nats']:.4g}" in (tmp_path / "r.html").read_text()


@pytest.mark.parametrize("args, message", [
    (["report", "{tmp}"], "is not a run directory"),
    (["report", "{run}", "-o", "{tmp}/r.pdf"], "must end in .html"),
    (["report", "{run}", "-o", "{tmp}/no/such/dir/r.html"], "cannot write"),
])
def test_report_bad_input_is_one_line(report, tmp_path, capsys, args, message):
    run, _ = report
    argv = [a.format(tmp=tmp_path, run=run) for a in args]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("realnvp: error:") and message in err and err.count("\n") == 1


def test_report_of_a_table_leads_with_the_corner_plot(tmp_path):
    """A 3-column CSV run: the corner plot (data vs samples) is the headline figure, the settings are a
    file run's (data.path, no toy sizes, no image settings) and the Gaussian baseline is beside the NLL."""
    rng = np.random.RandomState(0)
    path = tmp_path / "table.csv"
    np.savetxt(path, np.c_[rng.randn(400), rng.randn(400) ** 2, rng.rand(400)], delimiter=",",
               header="a,b,c", comments="")
    # 2 couplings: the animation train draws has 50 frames instead of the 4-coupling default's 80
    assert main(["train", "--data", str(path), "--out", str(tmp_path / "run"), "--steps", "20", "--quiet",
                 "--set", "model.hidden=8,8", "--set", "model.n_couplings=2", "--set", "train.eval_every=10",
                 "--set", "train.time_budget=0"]) == 0
    assert main(["report", str(tmp_path / "run"), "-o", str(tmp_path / "r.html"), "--quiet"]) == 0
    text = (tmp_path / "r.html").read_text()
    assert text.index('alt="every pair of coordinates') < text.index("<h2>Training curves")
    assert "flow vs full-covariance Gaussian" in text
    assert "<td>data.path</td>" in text
    assert "<td>data.n_train</td>" not in text and "<td>model.n_scales</td>" not in text
    assert 'alt="training data (left) beside samples (right), coordinates 1 and 2 of 3"' in text
