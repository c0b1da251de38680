"""``realnvp report``: the page renders in a real headless browser (Debian's chromium) with every
picture decoded, nothing fetched from the network and nothing in the console; its tables hold the run."""

from __future__ import annotations

import base64
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from headless import need_chromium, render
from tiny import train_tiny

from realnvp.cli import main


@pytest.fixture
def browser() -> str:
    return need_chromium()


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny run with an extra picture (as the image model's per-scale pictures), and its report
    written by the CLI to the default place."""
    run = train_tiny(tmp_path_factory.mktemp("report") / "moons")
    from PIL import Image

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
    assert "model.hidden</td><td>16, 16</td>" in text
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
    drawn = dict(zip(["curves", "samples.png", "density.png", "animation.gif"], sources[:4], strict=True))
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
