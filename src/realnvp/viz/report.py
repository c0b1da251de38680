"""``realnvp report``: one self-contained HTML page per run (pictures as base64 data URIs, inline CSS,
no scripts, no network), so a run can be looked at, mailed or archived as a single file."""

from __future__ import annotations

import base64
import html
import io
import math
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from realnvp.data import load_splits
from realnvp.errors import UserError
from realnvp.evaluation.metrics import evaluate_run
from realnvp.rundir import CONFIG, REPORT, RunDir, atomic_write_bytes, load
from realnvp.viz.animate import animate
from realnvp.viz.images import _zoom_for, animate_images, grid
from realnvp.viz.plots import _pyplot, data_and_samples, log_density

TEMPERATURES = (0.5, 0.75, 1.0)  # the image grids' temperatures (the paper samples below 1, too)
CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.2em; border-bottom: 1px solid #ddd; padding-bottom: .2em; }
table { border-collapse: collapse; margin: .5em 0 1em; font-size: .92em; }
td, th { border: 1px solid #ddd; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { display: inline-block; margin: .5em 1em .5em 0; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #eee; } figcaption { font-size: .88em; color: #555; }
.note { color: #666; font-size: .9em; } .headline { font-size: 1.1em; }
summary { cursor: pointer; font-weight: 600; margin: 1em 0 .3em; }
"""


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


def data_uri(data: bytes, mime: str) -> str:
    """``data:`` URI of ``data``: the page carries its pictures itself.

    Example:
        >>> data_uri(b"GIF89a", "image/gif")
        'data:image/gif;base64,R0lGODlh'
    """
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _figure(data: bytes, caption: str, mime: str = "image/png") -> str:
    esc = html.escape(caption)
    return f'<figure><img src="{data_uri(data, mime)}" alt="{esc}"><figcaption>{esc}</figcaption></figure>'


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if (value == 0 or 1e-3 <= abs(value) < 1e5 or not math.isfinite(value)) \
            else f"{value:.3e}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_format(v) for v in value)
    return str(value)


def html_table(rows: list[tuple[Any, ...]], header: tuple[str, ...]) -> str:
    """An HTML table, every cell escaped; numbers right-aligned.

    Example:
        >>> html_table([("steps", 3000)], ("name", "value"))
        '<table><tr><th>name</th><th>value</th></tr><tr><td>steps</td><td class="num">3000</td></tr></table>'
    """
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(
            f'<td class="num">{html.escape(_format(c))}</td>' if isinstance(c, (int, float))
            and not isinstance(c, bool) else f"<td>{html.escape(_format(c))}</td>" for c in row) + "</tr>"
        for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _png(draw: Callable[[Any], None]) -> bytes:
    """Bytes of the PNG that ``draw(path_or_buffer)`` saves with matplotlib."""
    buffer = io.BytesIO()
    draw(buffer)
    return buffer.getvalue()


def curves_png(records: list[dict[str, Any]]) -> bytes:
    """Train and validation NLL against the step, and the learning rate beneath, as PNG bytes.

    Example:
        >>> curves_png(RunDir(run_dir).metrics())[:4]
        b'\\x89PNG'
    """
    plt = _pyplot()
    fig, (ax, ax_lr) = plt.subplots(2, 1, figsize=(7, 5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    steps = [r["step"] for r in records]
    ax.plot(steps, [r["train_nll"] for r in records], "o-", ms=3, label="train (mean since last eval)")
    val = [(r["step"], r["val_nll"]) for r in records if r.get("val_nll") is not None]
    if val:
        ax.plot(*zip(*val, strict=True), "s-", ms=3, label="validation")
    ax.set_ylabel("NLL [nats/example]")
    ax.legend()
    ax.grid(alpha=0.3)
    ax_lr.plot(steps, [r.get("lr", float("nan")) for r in records], color="gray")
    ax_lr.set_ylabel("learning rate")
    ax_lr.set_xlabel("step")
    ax_lr.grid(alpha=0.3)
    fig.tight_layout()
    data = _png(lambda f: fig.savefig(f, format="png", dpi=100))
    plt.close(fig)
    return data


def _vector_pictures(flow: Any, data: np.ndarray, name: str, existing: dict[str, bytes]) -> list[str]:
    """Samples beside data, the log-density heatmap (2-D) and the layer-by-layer animation: the run's
    own pictures when training wrote them, drawn afresh otherwise."""
    figures = []
    if "samples.png" not in existing:
        torch.manual_seed(0)
        samples = flow.sample(min(2000, len(data))).numpy()
        existing["samples.png"] = _png(lambda f: data_and_samples(data[: len(samples)], samples, f,
                                                                  title=f"{name}: data vs Real NVP samples"))
    shown = "" if flow.event_size == 2 else f", first two of {flow.event_size} coordinates"
    figures.append(_figure(existing.pop("samples.png"), f"training data (left) beside samples (right){shown}"))
    if flow.event_size == 2:
        if "density.png" not in existing:
            existing["density.png"] = _png(lambda f: log_density(flow, data, f, title=f"{name}: model log-density"))
        figures.append(_figure(existing.pop("density.png"), "model log-density log p(x) in nats"))
    if "animation.gif" not in existing:
        with tempfile.TemporaryDirectory() as tmp:
            gif = Path(tmp) / "animation.gif"
            animate(flow, gif, n=600, frames_per_layer=4, data=data)  # lighter than training's
            existing["animation.gif"] = gif.read_bytes()
    figures.append(_figure(existing.pop("animation.gif"), "base samples bent through each layer in turn",
                           "image/gif"))
    return figures


def _grid_png(images: np.ndarray, height: int, ncol: int = 8) -> bytes:
    """Images ``[N, C, H, W]`` in ``[0, 1]`` as one PNG grid (``realnvp.viz.images.grid``)."""
    buffer = io.BytesIO()
    Image.fromarray(grid(images, ncol=ncol, zoom=_zoom_for(height))).save(buffer, format="PNG")
    return buffer.getvalue()


@torch.no_grad()
def _image_pictures(flow: Any, data: np.ndarray, n_levels: int, existing: dict[str, bytes]) -> list[str]:
    """Training images beside samples, sample grids at several temperatures, what each scale encodes
    and the layer-by-layer animation (the run's own when training drew them)."""
    height = flow.event_shape[1]
    shown = (data[:64].astype(np.float32) + 0.5) / n_levels  # pixel-level centres, on the samples' scale
    figures = [_figure(_grid_png(shown, height), "training images")]
    for temperature in TEMPERATURES:
        torch.manual_seed(0)
        samples = flow.sample(64, temperature=temperature).clamp(0, 1).cpu().numpy()
        figures.append(_figure(_grid_png(samples, height), f"samples at temperature {temperature:g}"))
    for name in [n for n in existing if n.startswith("samples")]:  # the same grids, drawn by training
        existing.pop(name)
    if "scales.png" in existing:
        figures.append(_figure(existing.pop("scales.png"), "what each scale encodes: each row an image, then "
                               "the image with one scale's latents resampled (coarse to fine: see the docs)"))
    if "animation.gif" not in existing:
        with tempfile.TemporaryDirectory() as tmp:
            gif = Path(tmp) / "animation.gif"
            animate_images(flow, gif)
            existing["animation.gif"] = gif.read_bytes()
    figures.append(_figure(existing.pop("animation.gif"), "base samples turned into images layer by layer",
                           "image/gif"))
    return figures


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
    splits = load_splits(cfg.data)
    data = splits.train
    existing = {p.name: p.read_bytes() for p in sorted(run_dir.iterdir())
                if p.suffix.lower() in (".png", ".gif") and p.is_file()}

    name = html.escape(run_dir.resolve().name)
    parts = [f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>realnvp report: {name}"
             f"</title><style>{CSS}</style></head><body>", f"<h1>Real NVP run <code>{name}</code></h1>",
             f"<p class='note'>data: {html.escape(str(metrics.get('data', cfg.data.name)))}, "
             f"example shape {tuple(flow.event_shape)}, {flow.n_params():,} parameters</p>",
             f"<p class='headline'>{html.escape(_headline(metrics))}</p>",
             "<h2>Metrics</h2>", html_table(list(metrics.items()), ("metric", "value")),
             f"<p class='note'>{NLL_NOTE_IMAGES if len(flow.event_shape) == 3 else NLL_NOTE}</p>",
             "<details><summary>Configuration (every setting, to reproduce the run)</summary>",
             html_table([(f"{section}.{key}", value) for section, values in cfg.to_dict().items()
                         for key, value in values.items()], ("setting", "value")), "</details>",
             "<h2>Training curves</h2>"]
    records = run.metrics()
    parts.append(_figure(curves_png(records), "NLL per evaluation") if records
                 else "<p class='note'>no metrics.jsonl records</p>")
    parts.append("<h2>Samples</h2>")
    if len(flow.event_shape) == 1:
        parts += _vector_pictures(flow, data, cfg.data.name, existing)
    else:
        parts += _image_pictures(flow, data, splits.n_levels, existing)
    if existing:  # per-scale pictures and anything else training drew
        parts.append("<h2>More pictures from the run</h2>")
        parts += [_figure(blob, f"{file}", "image/gif" if file.endswith(".gif") else "image/png")
                  for file, blob in existing.items()]
    parts.append("</body></html>\n")
    try:
        atomic_write_bytes(out, "\n".join(parts).encode())
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror or exc}") from None
    return out
