"""Pictures of conditional runs: for images a class-by-temperature grid (one row per class); for
vectors samples drawn with the data's own contexts beside the data, and for 2-D data with one context
value the log-density at several context values side by side."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from realnvp.flow import Flow
from realnvp.viz.images import grid, labelled, save_png
from realnvp.viz.plots import _pyplot, _save, axis_names, corner, data_and_samples, density_floor, plot_limits

TEMPERATURES = (0.5, 0.7, 0.85, 1.0)


@torch.no_grad()
def class_grid(flow: Flow, classes: list[int], per_class: int, temperature: float = 1.0, seed: int = 0) -> np.ndarray:
    """``per_class`` samples of each class in ``classes`` (values in ``[0, 1]``, ``[len * per_class, C, H,
    W]``, class after class): what ``realnvp sample`` draws without ``--class``.

    Example:
        >>> from realnvp.models import build_image_flow
        >>> flow = build_image_flow((1, 4, 4), feature_maps=4, n_blocks=1, n_classes=3).eval()
        >>> class_grid(flow, [0, 2], per_class=3).shape
        (6, 1, 4, 4)
    """
    torch.manual_seed(seed)
    labels = torch.tensor(classes).repeat_interleave(per_class)
    return flow.eval().sample(len(labels), temperature=temperature, context=labels).clamp(0, 1).cpu().numpy()


def class_temperature_grid(flow: Flow, path: str | Path, per_cell: int = 4, title: str = "",
                           temperatures: tuple[float, ...] = TEMPERATURES, seed: int = 0) -> None:
    """One row per class, ``per_cell`` samples at each temperature side by side (headers name the
    temperatures), as a PNG: how each class looks and how its variety grows with the temperature.

    Example:
        >>> from realnvp.models import build_image_flow
        >>> flow = build_image_flow((1, 4, 4), feature_maps=4, n_blocks=1, n_classes=3)
        >>> class_temperature_grid(flow, tmp / "classes.png", per_cell=2)
        >>> (tmp / "classes.png").stat().st_size > 0
        True
    """
    classes = list(range(flow.n_classes))
    blocks = [class_grid(flow, classes, per_cell, t, seed) for t in temperatures]  # [class * per_cell, C, H, W]
    shape = blocks[0].shape[1:]
    rows = np.stack([b.reshape(len(classes), per_cell, *shape) for b in blocks], 1)  # [class, T, per_cell, ...]
    picture = grid(rows.reshape(-1, *shape), ncol=per_cell * len(temperatures), zoom=max(1, 64 // shape[1]))
    headers = [f"T = {t:g}" for t in temperatures]
    save_png(labelled(picture, title or f"one row per class 0..{len(classes) - 1}", headers, class_labels(classes)),
             path, title)


def class_labels(classes: list[int]) -> list[str]:
    """The row labels of a grid with one row per class.

    Example:
        >>> class_labels([0, 3])
        ['class 0', 'class 3']
    """
    return [f"class {k}" for k in classes]


def nearest_rows(contexts: np.ndarray, context: np.ndarray, n: int) -> np.ndarray:
    """Indices of the ``n`` rows of ``contexts`` ``[N, k]`` nearest to ``context`` ``[k]`` (each column
    in units of its spread): the training rows to show beside samples drawn at that context.

    Example:
        >>> nearest_rows(np.array([[0.0], [5.0], [1.0]]), np.array([0.2]), 2).tolist()
        [0, 2]
    """
    spread = contexts.std(0) + 1e-12
    distance = (((contexts - context) / spread) ** 2).sum(1)
    return np.argsort(distance, kind="stable")[:n]


def rows_given(contexts: np.ndarray, context: np.ndarray, n: int) -> tuple[np.ndarray, bool]:
    """The training rows to show beside samples drawn at ``context``: those whose context equals it
    (at most ``n``), or where none does, the nearest tenth of the rows (at least 20, at most ``n``);
    and whether they match exactly.

    Example:
        >>> contexts = np.array([[1.0], [3.0], [3.0], [2.0]])
        >>> [(rows.tolist(), exact) for rows, exact in (rows_given(contexts, np.array([3.0]), 10),
        ...                                             rows_given(contexts, np.array([2.9]), 2))]
        [([1, 2], True), ([1, 2], False)]
    """
    same = np.flatnonzero(np.all(np.isclose(contexts, context, rtol=1e-6, atol=1e-9), axis=1))
    if len(same):
        return same[:n], True
    return nearest_rows(contexts, context, min(n, max(20, len(contexts) // 10))), False


def context_densities(flow: Flow, data: np.ndarray, contexts: np.ndarray, path: str | Path, values: np.ndarray,
                      title: str = "", names: list[str] | None = None) -> None:
    """For a 2-D flow with one context value: ``log p(x | c)`` on a grid for each of ``values``, side by
    side on one colour scale, with the training points whose context is nearest each value on top.

    Example:
        >>> from realnvp.models import build_vector_flow
        >>> rng = np.random.RandomState(0)
        >>> flow = build_vector_flow(dim=2, hidden=(8,), context_size=1)
        >>> context_densities(flow, rng.randn(100, 2), rng.rand(100, 1), tmp / "c.png", np.array([0.2, 0.8]))
        >>> (tmp / "c.png").stat().st_size > 0
        True
    """
    plt = _pyplot()
    names = axis_names(2, names)
    (x0, x1), (y0, y1) = plot_limits(data)
    xs, ys = np.linspace(x0, x1, 150), np.linspace(y0, y1, 150)
    points = torch.from_numpy(np.stack([a.ravel() for a in np.meshgrid(xs, ys)], 1).astype(np.float32))
    flow.eval()
    with torch.inference_mode():
        maps = [flow.log_prob(points, context=[float(v)]).cpu().numpy().reshape(150, 150) for v in values]
        near = [nearest_rows(contexts, np.array([v]), max(50, len(data) // (4 * len(values)))) for v in values]
        floor = min(density_floor(flow.log_prob(torch.from_numpy(data[i]), context=torch.from_numpy(contexts[i]))
                                  .cpu().numpy()) for i in near)
    top = max(float(np.max(m[np.isfinite(m)])) for m in maps)
    fig, axes = plt.subplots(1, len(values), figsize=(3.4 * len(values) + 0.6, 3.8), layout="constrained",
                             squeeze=False)
    for ax, value, log_p, rows in zip(axes[0], values, maps, near):
        mesh = ax.pcolormesh(xs, ys, np.clip(log_p, floor, top), shading="auto", cmap="magma", vmin=floor, vmax=top)
        ax.scatter(data[rows, 0], data[rows, 1], s=2, c="cyan", alpha=0.5)
        ax.set_title(f"c = {value:.3g}")
        ax.set_aspect("equal", adjustable="box")
        ax.set_xlabel(names[0])
    axes[0][0].set_ylabel(names[1])
    fig.colorbar(mesh, ax=axes[0].tolist(), shrink=0.9, extend="min").set_label("log p(x | c) [nats]")
    fig.suptitle(title or "model log-density given the context (dots: training rows with the nearest context)")
    _save(fig, path)


def write_conditional_pictures(run_dir: Path, flow: Flow, train: np.ndarray, train_c: np.ndarray, label: str,
                               n: int = 4000, names: list[str] | None = None) -> list[Path]:
    """What ``realnvp train`` draws for a conditional run: ``classes.png`` (images), or ``samples.png``
    (samples drawn with the training rows' own contexts, beside those rows) and ``contexts.png`` (2-D
    data with one context value) or ``corner.png``.

    Example:
        >>> from realnvp.models import build_vector_flow
        >>> rng = np.random.RandomState(0)
        >>> flow = build_vector_flow(dim=2, hidden=(8,), context_size=1)
        >>> [p.name for p in write_conditional_pictures(tmp, flow, rng.randn(300, 2), rng.rand(300, 1), "toy")]
        ['samples.png', 'contexts.png']
    """
    if flow.n_classes:
        class_temperature_grid(flow, run_dir / "classes.png",
                               title=f"{label}: one row per class, samples by temperature")
        return [run_dir / "classes.png"]
    torch.manual_seed(0)
    rows = np.arange(min(n, len(train)))
    samples = flow.eval().sample(len(rows), context=torch.from_numpy(train_c[rows])).cpu().numpy()
    written = [run_dir / "samples.png"]
    data_and_samples(train[rows], samples, written[0], names=names,
                     title=f"{label}: data vs samples drawn with the same rows' contexts")
    if flow.event_size == 2 and flow.context_size == 1:
        written.append(run_dir / "contexts.png")
        values = np.quantile(train_c[:, 0], [0.1, 0.37, 0.63, 0.9])
        context_densities(flow, train, train_c, written[-1], values, title=f"{label}: log p(x | c) at four contexts",
                          names=names)
    else:
        written.append(run_dir / "corner.png")
        corner(train[rows], samples, written[-1], title=label, names=names)
    return written
