"""Pictures of a trained vector flow: data beside samples (seed 000, fig. 4) and the log-density."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from realnvp.flow import Flow


def _pyplot():  # noqa: ANN202 - matplotlib is imported only when a picture is drawn
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


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


def data_and_samples(data: np.ndarray, samples: np.ndarray, path: str | Path, title: str = "") -> None:
    """Training data (blue) beside flow samples (red), first two coordinates, same axes.

    Example:
        >>> points = np.random.RandomState(0).randn(100, 2)
        >>> data_and_samples(points, points + 1, tmp / "samples.png", title="data vs samples")
        >>> (tmp / "samples.png").read_bytes()[:4]
        b'\\x89PNG'
    """
    plt = _pyplot()
    xlim, ylim = plot_limits(data)
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.4), sharex=True, sharey=True)
    for ax, pts, color, name in ((axes[0], data, "tab:blue", "data"), (axes[1], samples, "tab:red", "samples")):
        ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.5, color=color, linewidths=0)
        ax.set_title(f"{name} (n={len(pts)})")
        ax.set_xlim(*xlim)
        ax.set_ylim(*ylim)
        ax.set_aspect("equal", adjustable="box")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


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
    pts = torch.from_numpy(np.stack([gx.ravel(), gy.ravel()], 1).astype(np.float32))
    flow.eval()
    ref = next(flow.parameters())
    log_p = torch.cat([flow.log_prob(c.to(ref.device)).cpu() for c in pts.split(16384)])
    return xs, ys, log_p.numpy().reshape(resolution, resolution)


def log_density(flow: Flow, data: np.ndarray, path: str | Path, title: str = "") -> None:
    """Heatmap of ``log p(x)`` of a 2-D flow over the data's range.

    Example:
        >>> from realnvp.models import build_vector_flow
        >>> log_density(build_vector_flow(dim=2, hidden=(8,)), np.random.RandomState(0).randn(100, 2),
        ...             tmp / "density.png")
        >>> (tmp / "density.png").stat().st_size > 0
        True
    """
    plt = _pyplot()
    xlim, ylim = plot_limits(data)
    xs, ys, log_p = density_grid(flow, xlim, ylim)
    floor = np.percentile(log_p, 5)
    fig, ax = plt.subplots(figsize=(5, 4.4))
    mesh = ax.pcolormesh(xs, ys, np.maximum(log_p, floor), shading="auto", cmap="magma")
    fig.colorbar(mesh, ax=ax, label="log p(x) [nats]")
    ax.set_aspect("equal", adjustable="box")
    ax.set_title(title or "model log-density")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
