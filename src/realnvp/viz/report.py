"""``realnvp report``: one self-contained HTML page per run (pictures as base64 data URIs, inline CSS,
no scripts, no network), so a run can be looked at, mailed or archived as a single file. Laid out for
reading: the headline number and figure first, then the curves, samples beside data, the metrics and
the settings that apply to the run."""

from __future__ import annotations

import html
import io
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from realnvp.atomic import atomic_write_bytes
from realnvp.config import Config
from realnvp.data.source import data_source
from realnvp.errors import UserError
from realnvp.evaluation.metrics import BASELINE, evaluate_run
from realnvp.rundir import CONFIG, REPORT, RunDir, load
from realnvp.viz.curves import curves_png, nll_unit
from realnvp.viz.html import CSS, figure, html_table, row
from realnvp.viz.images import _zoom_for, grid, labelled, scale_headers
from realnvp.viz.pictures import REGISTRY, Scene, kind_of, picture_bytes

TEMPERATURES = (0.5, 0.75)  # the image grids' lower temperatures, beside temperature 1 (the paper samples below 1)
# Settings that only one kind of run reads (config.py); the report's table leaves the others out.
IMAGE_ONLY = {"data.flip", "data.download", "data.image_size", "data.test_draws", "model.n_scales",
              "model.feature_maps", "model.n_blocks", "model.conditioner_norm", "model.scale_couplings",
              "model.final_couplings", "model.logit", "model.logit_alpha", "model.checkpoint",
              "model.squeezed_checkerboard"}
VECTOR_ONLY = {"model.n_couplings", "model.hidden", "model.mask", "model.whiten"}
TOY_ONLY = {"data.n_train", "data.n_test", "data.noise"}
FILE_ONLY = {"data.path", "data.test_path", "data.test_fraction"}

NLL_NOTE = ("NLL: mean negative log-likelihood per example in nats, in the data's own units (lower is "
            "better); val_nll_nats is the best validation NLL, whose weights (best.pt) every tool uses.")
NLL_NOTE_IMAGES = ("bits_per_dim: test NLL of the discrete pixels in bits per pixel and channel, averaged over "
                   "test_draws dequantizations (bits_per_dim_iw: their importance-weighted bound); NLL in nats is "
                   "of the dequantized pixels scaled to [0, 1]. Lower is better; see docs/bits-per-dim.md.")


def _headline(metrics: dict[str, Any]) -> str:
    """The one line a reader wants first: the test score, the steps, why training stopped.

    Example:
        >>> _headline({"test_nll_nats": 1.25, "steps": 3000, "stop_reason": "reached 3000 steps"})
        'test NLL 1.2500 nats/example after 3000 steps (reached 3000 steps)'
    """
    score = (f"test {metrics['bits_per_dim']:.4f} bits/dim" if metrics.get("bits_per_dim") is not None
             else f"test NLL {metrics['test_nll_nats']:.4f} nats/example")
    reason = f" ({metrics['stop_reason']})" if metrics.get("stop_reason") else ""
    return f"{score} after {metrics.get('steps', '?')} steps{reason}"


def baseline_line(metrics: dict[str, Any]) -> str:
    """HTML: the flow's test NLL beside the full-covariance Gaussian's, saying plainly which is better
    (a flow that loses to it has learned nothing beyond the data's mean and covariance); "" when
    ``evaluation.json`` has no baseline.

    Example:
        >>> print(baseline_line({"test_nll_nats": 2.5, "baseline_gaussian_test_nll_nats": 2.0}))
        <p class="headline worse">flow vs full-covariance Gaussian: 2.5000 vs 2.0000 nats/example: the flow
        is WORSE than the Gaussian by 0.5000 nats/example</p>
    """
    gauss, flow = metrics.get(BASELINE), metrics.get("test_nll_nats")
    if not isinstance(gauss, (int, float)) or not isinstance(flow, (int, float)):
        return ""
    unit, convert = nll_unit(metrics.get("dim", 0), metrics.get("n_levels", 0))  # images: bits/dim
    gauss, flow = convert(gauss), convert(flow)
    gap = gauss - flow
    verdict = (f"the flow is better by {gap:.4f} {unit}" if gap > 0 else
               f"the flow is WORSE than the Gaussian by {-gap:.4f} {unit}")
    text = f"flow vs full-covariance Gaussian: {flow:.4f} vs {gauss:.4f} {unit}: {verdict}"
    return f'<p class="headline {"better" if gap > 0 else "worse"}">{html.escape(text)}</p>'


def relevant_settings(cfg: Config) -> list[tuple[str, Any]]:
    """``(section.key, value)`` of every setting the run's kind reads: no image settings for a vector
    run, no toy-set sizes for a file or image run, no empty paths (``config.json`` keeps them all).

    Example:
        >>> keys = [key for key, _ in relevant_settings(Config())]  # the default: moons, a vector model
        >>> "model.hidden" in keys, "model.n_scales" in keys, "data.path" in keys
        (True, False, False)
    """
    if cfg.model.kind == "image":
        skip = VECTOR_ONLY | TOY_ONLY
    else:
        skip = IMAGE_ONLY | (TOY_ONLY if cfg.data.name == "file" else FILE_ONLY)
    if not cfg.model.batch_norm:
        skip = skip | {"model.bn_momentum"}
    return [(f"{section}.{key}", value) for section, values in cfg.to_dict().items()
            for key, value in values.items()
            if f"{section}.{key}" not in skip and not (key.endswith("path") and value == "")]


def _vector_pictures(shown: dict[str, bytes], dim: int) -> tuple[str, str]:
    """``(headline, samples)`` HTML for a vector run: the log-density (2-D) or corner plot first, then
    samples beside data and the layer-by-layer animation."""
    if "density" in shown:
        headline = figure(shown["density"], "model log-density log p(x) in nats, clipped a few nats below the "
                          "data's lowest log-densities (the floor is in the colour bar)")
    else:
        headline = figure(shown["corner"], "every pair of coordinates: data below the diagonal, samples above, "
                          "histograms on it" + (f" (first 6 of {dim})" if dim > 6 else ""))
    which = "" if dim == 2 else f", coordinates 1 and 2 of {dim}"
    samples = row(figure(shown["samples"], f"training data (left) beside samples (right){which}", width=740),
                  figure(shown["animation"], "base samples bent through each layer in turn", "image/gif", width=400))
    return headline, samples


def _grid_png(images: np.ndarray, height: int, title: str, ncol: int = 8) -> bytes:
    """Images ``[N, C, H, W]`` in ``[0, 1]`` as one titled PNG grid (``realnvp.viz.images``)."""
    buffer = io.BytesIO()
    Image.fromarray(labelled(grid(images, ncol=ncol, zoom=_zoom_for(height)), title)).save(buffer, format="PNG")
    return buffer.getvalue()


@torch.no_grad()
def _image_pictures(scene: Scene, shown: dict[str, bytes]) -> tuple[str, str]:
    """``(headline, samples)`` HTML for an image run: training images beside the samples at temperature 1
    first; then lower temperatures in a row (drawn here), what each scale encodes and the animation."""
    flow, height = scene.flow, scene.flow.event_shape[1]
    shown_images = (scene.splits.train[:64].astype(np.float32) + 0.5) / scene.splits.n_levels  # level centres
    lower = []
    for temperature in TEMPERATURES:
        torch.manual_seed(0)
        samples = flow.sample(64, temperature=temperature).clamp(0, 1).cpu().numpy()
        lower.append(figure(_grid_png(samples, height, f"Real NVP samples, temperature {temperature:g}"),
                            f"samples at temperature {temperature:g}"))
    headline = row(figure(_grid_png(shown_images, height, "training images"), "training images"),
                   figure(shown["samples"], "samples at temperature 1"))
    columns = ", ".join(scale_headers(scene.n_scales)[1:])
    scales = figure(shown["scales"], "what each scale encodes: each row a training image, then the image with "
                    f"one scale's latents resampled, columns {columns} (scale 1 is factored out first, at full "
                    "resolution)", width=520)
    return headline, "\n".join([
        "<h3>Lower temperatures (samples drawn from N(0, T&sup2; I) in the latent space)</h3>", row(*lower),
        row(scales, figure(shown["animation"], "base samples turned into images layer by layer", "image/gif"))])


def _conditional_pictures(shown: dict[str, bytes]) -> tuple[str, str]:
    """``(headline, samples)`` HTML for a conditional run: the class-by-temperature grid (images) or the
    density at four contexts (2-D) or corner plot, and samples drawn with the data's own contexts."""
    if "classes" in shown:
        return (figure(shown["classes"], "samples of each class (one row per class) at four temperatures"),
                figure(shown["animation"], "base samples turned into images layer by layer, one class after "
                       "another", "image/gif"))
    if "contexts" not in shown and "corner" not in shown:  # images given a context vector
        return figure(shown["samples"], "samples given the first training rows' contexts, one per row"), ""
    headline = (figure(shown["contexts"], "model log-density log p(x | c) at four contexts") if "contexts" in shown
                else figure(shown["corner"], "every pair of coordinates: data and samples"))
    return headline, row(figure(shown["samples"], "training rows beside samples drawn with the same rows' "
                                "contexts", width=740), figure(shown["animation"], "base samples bent through each "
                                                               "layer (given training contexts)", "image/gif", 400))


def _page(name: str, cfg: Config, scene: Scene, metrics: dict[str, Any], shown: dict[str, bytes],
          others: dict[str, bytes], records: list[dict[str, Any]]) -> str:
    """The whole page: headline number and figure, curves, samples, metrics, settings, other pictures
    (``shown``: the run's registered pictures by name; ``others``: any other picture file in the run)."""
    flow, n_levels = scene.flow, scene.splits.n_levels
    if flow.conditional:
        headline, samples = _conditional_pictures(shown)
    elif len(flow.event_shape) == 1:
        headline, samples = _vector_pictures(shown, flow.event_size)
    else:
        headline, samples = _image_pictures(scene, shown)
    unit, _ = nll_unit(flow.event_size, n_levels)
    curves = (figure(curves_png(records, flow.event_size, n_levels),
                     f"NLL in {unit} against the training step (train, validation) and the learning rate")
              if records else "<p class='note'>no metrics.jsonl records</p>")
    parts = [f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>realnvp report: {name}"
             f"</title><style>{CSS}</style></head><body>", f"<h1>Real NVP run <code>{name}</code></h1>",
             f"<p class='note'>data: {html.escape(str(metrics.get('data', data_source(cfg.data))))}, "
             f"example shape {tuple(flow.event_shape)}, {flow.n_params():,} parameters</p>",
             f"<p class='headline'>{html.escape(_headline(metrics))}</p>", baseline_line(metrics), headline,
             "<h2>Training curves</h2>", curves, "<h2>Samples</h2>", samples,
             "<h2>Metrics</h2>", html_table(list(metrics.items()), ("metric", "value")),
             f"<p class='note'>{NLL_NOTE_IMAGES if len(flow.event_shape) == 3 else NLL_NOTE}</p>",
             f"<details><summary>Configuration (the settings a {cfg.model.kind} run reads; config.json holds "
             "every one)</summary>", html_table(relevant_settings(cfg), ("setting", "value")), "</details>"]
    if others:  # per-scale pictures and anything else in the run
        parts.append("<h2>More pictures from the run</h2>")
        parts.append(row(*[figure(blob, file, "image/gif" if file.endswith(".gif") else "image/png")
                           for file, blob in others.items()]))
    parts.append("</body></html>\n")
    return "\n".join(part for part in parts if part)


def build_report(run_dir: str | Path, output: str | Path | None = None) -> Path:
    """Write the run's report (default ``RUN_DIR/report.html``) and return its path.

    Example:
        >>> path = build_report(run_dir, tmp / "moons.html")  # run_dir: a trained run, e.g. runs/moons
        >>> path.read_text().startswith("<!DOCTYPE html>")
        True
    """
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG).is_file():
        raise UserError(f"{run_dir} is not a run directory (no {CONFIG}); train one with `realnvp train`")
    out = Path(output) if output is not None else run_dir / REPORT
    if out.suffix.lower() not in (".html", ".htm"):
        raise UserError(f"report output {out.name!r} must end in .html")
    if not out.parent.is_dir():
        raise UserError(f"cannot write {out}: directory {out.parent} does not exist")
    run = RunDir(run_dir)
    cfg = run.config()
    flow = load(run_dir)
    metrics = run.evaluation() or evaluate_run(run_dir)  # missing or torn: recompute
    scene = Scene.of(flow, cfg)
    registered = {picture.file for picture in REGISTRY[kind_of(flow)]}
    others = {p.name: p.read_bytes() for p in sorted(run_dir.iterdir())
              if p.suffix.lower() in (".png", ".gif") and p.is_file() and p.name not in registered}
    page = _page(html.escape(run_dir.resolve().name), cfg, scene, metrics, picture_bytes(run_dir, scene), others,
                 run.metrics())
    try:
        atomic_write_bytes(out, page.encode())
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror or exc}") from None
    return out
