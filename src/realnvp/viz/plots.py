"""Pictures of a trained vector flow: data beside samples (the toy figure of docs/tutorial.md), the 2-D log-density and
a corner plot (every pair of coordinates) for more than two columns. Each ``*_figure`` function
returns the matplotlib figure (what the tests inspect); the plain-named one saves it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from realnvp.flow import Flow

FLOOR_MARGIN = 2.0  # nats below the data's 1st percentile of log p(x) where the heatmap's colours stop
CORNER_DIMS = 6  # a corner plot shows at most this many leading coordinates


def _pyplot():  # noqa: ANN202 - matplotlib is imported only when a picture is drawn
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | Path) -> None:
    """Save ``fig`` (a path or a binary buffer, as PNG, its title also in the PNG's metadata) and free it."""
    title = fig.get_suptitle() or next((ax.get_title() for ax in fig.axes if ax.get_title()), "")
    fig.savefig(path, dpi=110, format="png", metadata={"Title": title.replace("\n", "; ")} if title else None)
    _pyplot().close(fig)


def axis_names(dim: int, names: list[str] | None = None) -> list[str]:
    """The coordinates' names: the data's column names when it has them (a CSV header), else x0, x1, ...

    Example:
        >>> axis_names(3), axis_names(2, ["age", "income"])
        (['x0', 'x1', 'x2'], ['age', 'income'])
    """
    return list(names) if names is not None and len(names) == dim else [f"x{i}" for i in range(dim)]


def plot_limits(points: np.ndarray, pad: float = 0.1) -> tuple[tuple[float, float], tuple[float, float]]:
    """``(xlim, ylim)`` spanning the central 99% of the first two coordinates, widened by ``pad``.

    Example:
        >>> plot_limits(np.array([[0.0, 0.0], [1.0, 2.0]]), pad=0.0)
        ((0.005, 0.995), (0.01, 1.99))
    """
    lo, hi = np.percentile(points[:, :2], 0.5, axis=0), np.percentile(points[:, :2], 99.5, axis=0)
    span = hi - lo
    lo, hi = lo - pad * span, hi + pad * span
    return (float(lo[0]), float(hi[0])), (float(lo[1]), float(hi[1]))


def samples_figure(data: np.ndarray, samples: np.ndarray, title: str = "",
                   names: list[str] | None = None, data_label: str = "data") -> Any:
    """The figure ``data_and_samples`` saves: two panels on the same axes, labelled with the columns shown
    (the left one ``data_label``: which rows it shows).

    Example:
        >>> points = np.random.RandomState(0).randn(10, 3)
        >>> fig = samples_figure(points, points + 1, title="blobs")
        >>> fig.axes[0].get_xlabel(), fig.get_suptitle()
        ('x0', 'blobs: columns x0, x1 of 3')
    """
    plt = _pyplot()
    names = axis_names(data.shape[1], names)
    xlim, ylim = plot_limits(data)
    aspect = (xlim[1] - xlim[0]) / max(ylim[1] - ylim[0], 1e-9)  # the height follows the data's shape
    fig, axes = plt.subplots(1, 2, figsize=(9, float(np.clip(4.0 / aspect, 2.2, 4.6)) + 1.3), sharex=True,
                             sharey=True, layout="constrained")
    for ax, pts, color, name in ((axes[0], data, "tab:blue", data_label), (axes[1], samples, "tab:red", "samples")):
        ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.5, color=color, linewidths=0)
        ax.set_title(f"{name} (n={len(pts)})")
        ax.set_xlim(*xlim)
        ax.set_ylim(*ylim)
        ax.set_aspect("equal", adjustable="box")
        ax.set_xlabel(names[0])
        ax.grid(alpha=0.2)
    axes[0].set_ylabel(names[1])
    shown = f"columns {names[0]}, {names[1]} of {data.shape[1]}" if data.shape[1] > 2 else ""
    heading = ": ".join(part for part in (title, shown) if part)
    if heading:
        fig.suptitle(heading)
    return fig


def data_and_samples(data: np.ndarray, samples: np.ndarray, path: str | Path, title: str = "",
                     names: list[str] | None = None, data_label: str = "data") -> None:
    """Training data (blue) beside flow samples (red), first two coordinates, same axes.

    Example:
        >>> points = np.random.RandomState(0).randn(100, 2)
        >>> data_and_samples(points, points + 1, tmp / "samples.png", title="data vs samples")
        >>> (tmp / "samples.png").read_bytes()[:4]
        b'\\x89PNG'
    """
    _save(samples_figure(data, samples, title, names, data_label), path)


@torch.inference_mode()
def density_grid(flow: Flow, xlim: tuple[float, float], ylim: tuple[float, float],
                 resolution: int = 200) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(xs, ys, log_p)`` of a 2-D flow on a regular grid (``log_p[i, j]`` at ``(xs[j], ys[i])``).

    Example:
        >>> from realnvp.models import build_vector_flow
        >>> xs, ys, log_p = density_grid(build_vector_flow(dim=2, hidden=(8,)), (-1, 1), (-2, 2), resolution=5)
        >>> log_p.shape, float(ys[-1])
        ((5, 5), 2.0)
    """
    xs = np.linspace(*xlim, resolution)
    ys = np.linspace(*ylim, resolution)
    gx, gy = np.meshgrid(xs, ys)
    return xs, ys, _log_prob(flow, np.stack([gx.ravel(), gy.ravel()], 1)).reshape(resolution, resolution)


@torch.inference_mode()
def _log_prob(flow: Flow, points: np.ndarray) -> np.ndarray:
    """``log p`` of ``points`` ``[N, D]`` under ``flow``, in chunks, on the flow's device."""
    flow.eval()
    ref = next(flow.parameters())
    pts = torch.from_numpy(np.asarray(points, dtype=np.float32))
    return torch.cat([flow.log_prob(c.to(ref.device)).cpu() for c in pts.split(16384)]).numpy()


def density_floor(data_log_p: np.ndarray, margin: float = FLOOR_MARGIN) -> float:
    """Where the heatmap's colour scale starts: ``margin`` nats below the data's 1st percentile of
    ``log p(x)``, so the colours are spent on the region the data occupies (issue 14: a floor at the
    grid's own minimum left the moons invisible).

    Example:
        >>> round(density_floor(np.linspace(-3.0, 0.5, 101)), 3)  # 1st percentile -2.965, minus 2 nats
        -4.965
    """
    finite = data_log_p[np.isfinite(data_log_p)]
    return float(np.percentile(finite, 1) - margin) if finite.size else -10.0


def density_figure(flow: Flow, data: np.ndarray, title: str = "", names: list[str] | None = None) -> Any:
    """The figure ``log_density`` saves: ``log p(x)`` clipped below at ``density_floor`` (the floor is
    stated in the colour bar's label), equal aspect, labelled axes.

    Example:
        >>> from realnvp.models import build_vector_flow
        >>> fig = density_figure(build_vector_flow(dim=2, hidden=(8,)), np.random.RandomState(0).randn(50, 2))
        >>> fig.axes[0].get_xlabel(), fig.axes[0].get_title()
        ('x0', 'model log-density log p(x)')
    """
    plt = _pyplot()
    names = axis_names(2, names)
    xlim, ylim = plot_limits(data)
    xs, ys, log_p = density_grid(flow, xlim, ylim)
    floor = density_floor(_log_prob(flow, data[:5000]))
    top = max(float(np.nanmax(np.where(np.isfinite(log_p), log_p, -np.inf))), floor + 1.0)
    aspect = (xlim[1] - xlim[0]) / max(ylim[1] - ylim[0], 1e-9)  # the figure follows the data's shape
    fig, ax = plt.subplots(figsize=(float(np.clip(4.2 * aspect, 3.5, 9.0)) + 1.6, 4.9), layout="constrained")
    mesh = ax.pcolormesh(xs, ys, np.clip(log_p, floor, top), shading="auto", cmap="magma", vmin=floor, vmax=top)
    bar = fig.colorbar(mesh, cax=ax.inset_axes([1.03, 0.0, 0.035, 1.0]), extend="min")  # as tall as the map
    bar.set_label(f"log p(x) [nats]\nfloor {floor:.2f}: the data's 1st percentile - {FLOOR_MARGIN:g}", fontsize=9)
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    ax.set_title(title or "model log-density log p(x)")
    return fig


def log_density(flow: Flow, data: np.ndarray, path: str | Path, title: str = "",
                names: list[str] | None = None) -> None:
    """Heatmap of ``log p(x)`` of a 2-D flow over the data's range, colours spent on the data's range.

    Example:
        >>> from realnvp.models import build_vector_flow
        >>> log_density(build_vector_flow(dim=2, hidden=(8,)), np.random.RandomState(0).randn(100, 2),
        ...             tmp / "density.png")
        >>> (tmp / "density.png").stat().st_size > 0
        True
    """
    _save(density_figure(flow, data, title, names), path)


def _limits(columns: np.ndarray) -> np.ndarray:
    """``[D, 2]`` plot limits per column: its central 99%, widened by a tenth."""
    lo, hi = np.percentile(columns, 0.5, axis=0), np.percentile(columns, 99.5, axis=0)
    pad = 0.1 * np.maximum(hi - lo, 1e-6)
    return np.stack([lo - pad, hi + pad], 1)


def _corner_panel(ax: Any, i: int, j: int, data: np.ndarray, samples: np.ndarray, limits: np.ndarray,
                  names: list[str]) -> None:
    """Panel ``(i, j)`` of the corner plot: histograms on the diagonal, data below, samples above."""
    d = len(names)
    ax.tick_params(labelsize=6)
    ax.set_xlabel(names[j] if i == d - 1 else "", fontsize=8)
    ax.set_ylabel(names[i] if j == 0 and i > 0 else "", fontsize=8)
    if i == j:
        bins = np.linspace(*limits[i], 40)  # densities over all rows: those outside the limits count too
        ax.hist(data[:, i], bins=bins, weights=np.full(len(data), 1 / (len(data) * (bins[1] - bins[0]))),
                color="tab:blue", alpha=0.5)
        ax.hist(samples[:, i], bins=bins, weights=np.full(len(samples), 1 / (len(samples) * (bins[1] - bins[0]))),
                histtype="step", color="tab:red")
        ax.set_xlim(*limits[i])
        ax.set_yticks([])
    elif i > j:  # data: x = column j, y = column i, as the row and column labels say
        ax.scatter(data[:, j], data[:, i], s=1.5, alpha=0.35, color="tab:blue", linewidths=0)
        ax.set_xlim(*limits[j])
        ax.set_ylim(*limits[i])
    else:  # samples, on the same axes as the mirror panel (j, i), so the two compare at a glance
        ax.scatter(samples[:, i], samples[:, j], s=1.5, alpha=0.35, color="tab:red", linewidths=0)
        ax.set_xlim(*limits[i])
        ax.set_ylim(*limits[j])
        ax.text(0.03, 0.97, f"{names[i]} vs {names[j]}", transform=ax.transAxes, fontsize=6, va="top",
                color="tab:red")


def corner_figure(data: np.ndarray, samples: np.ndarray, title: str = "", names: list[str] | None = None,
                  max_dims: int = CORNER_DIMS) -> Any:
    """Every pair of the first ``max_dims`` coordinates: data below the diagonal (blue), samples
    above it (red; panel ``(i, j)`` shows the same axes as its mirror ``(j, i)``), both marginals'
    histograms on the diagonal.

    Example:
        >>> rng = np.random.RandomState(0)
        >>> fig = corner_figure(rng.randn(200, 8), rng.randn(200, 8), title="mine", max_dims=3)
        >>> len(fig.axes), fig.get_suptitle().splitlines()[0]
        (9, 'mine: data vs samples, first 3 of 8 columns')
    """
    plt = _pyplot()
    d = min(data.shape[1], max_dims)
    names = axis_names(data.shape[1], names)[:d]
    limits = _limits(data[:, :d])  # the data's range: a stray sample must not shrink the data
    fig, axes = plt.subplots(d, d, figsize=(1.9 * d + 0.6, 1.9 * d + 0.9), squeeze=False)
    for i in range(d):
        for j in range(d):
            _corner_panel(axes[i, j], i, j, data, samples, limits, names)
    shown = f"first {d} of {data.shape[1]} columns" if d < data.shape[1] else f"all {d} columns"
    head = f"{title}: data vs samples, {shown}" if title else f"data vs samples, {shown}"
    fig.suptitle(f"{head}\nbelow the diagonal: data (blue, n={len(data)}); above: samples (red, "
                 f"n={len(samples)}); diagonal: histograms", fontsize=9)
    fig.tight_layout()
    return fig


def corner(data: np.ndarray, samples: np.ndarray, path: str | Path, title: str = "",
           names: list[str] | None = None, max_dims: int = CORNER_DIMS) -> None:
    """Save the corner plot (``corner_figure``) of data vs samples for more than two columns.

    Example:
        >>> rng = np.random.RandomState(0)
        >>> corner(rng.randn(100, 3), rng.randn(100, 3), tmp / "corner.png")
        >>> (tmp / "corner.png").read_bytes()[:4]
        b'\\x89PNG'
    """
    _save(corner_figure(data, samples, title, names, max_dims), path)
