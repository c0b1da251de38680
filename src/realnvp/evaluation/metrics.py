"""Metrics users compare: mean NLL in nats (data units), bits/dim of images, invertibility error,
parameter counts."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from realnvp.data import Splits, load_splits
from realnvp.data.source import data_source
from realnvp.errors import UserError
from realnvp.evaluation.baselines import gaussian_log_prob, gaussian_nll, shrinkage_fit
from realnvp.flow import Flow
from realnvp.rundir import RunDir, TrainedRun

BASELINE = "baseline_gaussian_test_nll_nats"  # the full-covariance Gaussian's test NLL beside the flow's (vectors)


def _chunk(flow: Flow, batch_size: int | None) -> int:
    """Evaluation batch size: up to 8192 examples, fewer for big images (about 2^20 values a chunk)."""
    return batch_size or min(8192, max(1, 2**20 // flow.event_size))


@torch.inference_mode()
def log_prob_in_chunks(flow: Flow, x: torch.Tensor | np.ndarray, batch_size: int | None = None,
                       context: torch.Tensor | np.ndarray | None = None) -> torch.Tensor:
    """``log p(x)`` of every example in nats, float64 ``[N]`` on the CPU, with the flow in eval mode and
    ``batch_size`` examples at a time (default: about 2^20 numbers a chunk). The one loop behind every
    NLL, bits/dim and score; inputs are moved to the flow's device and dtype. A conditional flow
    takes each example's ``context`` (``log p(x | c)``).

    Example:
        >>> from realnvp.models import build_vector_flow
        >>> flow = build_vector_flow(dim=2, n_couplings=2, hidden=(8,))  # untrained: N(0, I)
        >>> log_prob_in_chunks(flow, np.zeros((3, 2)), batch_size=2)
        tensor([-1.8379, -1.8379, -1.8379], dtype=torch.float64)
    """
    flow.eval()
    x = torch.as_tensor(x)
    c = None if context is None else torch.as_tensor(context)
    step = _chunk(flow, batch_size)
    out = [flow.log_prob(x[i : i + step], None if c is None else c[i : i + step]).double().cpu()
           for i in range(0, len(x), step)]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)


def seeded_dequantizations(images: torch.Tensor | np.ndarray, n_levels: int, draws: int,
                         seed: int = 1) -> Iterator[torch.Tensor]:
    """The test-time dequantizations ``y_k = (v + u_k) / n_levels`` (float64) of integer ``images``: ``u_k``
    is the k-th ``images``-shaped draw of ``numpy.random.RandomState(seed).rand``. ``evaluate``'s
    bits/dim and ``score``'s per-image scores both use it, so they agree on the same images.

    Example:
        >>> [round(float(y[0, 0]), 6) for y in seeded_dequantizations(np.array([[3]]), 4, draws=2, seed=1)]
        [0.854256, 0.930081]
    """
    rng = np.random.RandomState(seed)
    v = torch.as_tensor(images).double()
    for _ in range(draws):
        yield (v + torch.from_numpy(rng.rand(*v.shape))) / n_levels


def mean_nll(flow: Flow, x: torch.Tensor, batch_size: int | None = None,
             context: torch.Tensor | np.ndarray | None = None) -> float:
    """Mean negative log-likelihood per example in nats, in eval mode, over large batches (given each
    example's ``context`` for a conditional flow).

    Example:
        >>> from realnvp.models import build_vector_flow
        >>> flow = build_vector_flow(dim=2, n_couplings=2, hidden=(8,))  # untrained: N(0, I)
        >>> round(mean_nll(flow, torch.zeros(10, 2)), 4)  # log(2 pi) at the mode of a 2-D standard normal
        1.8379
    """
    return -log_prob_in_chunks(flow, x, batch_size, context).sum().item() / max(len(x), 1)


TABLE_DRAWS = 10  # dequantization draws averaged per row of a table with discrete columns (evaluate, score)


def dequantized_rows(flow: Flow, x: torch.Tensor | np.ndarray, seed: int) -> torch.Tensor:
    """``x`` with each discrete column spread across its lattice cell by seeded uniform noise (a copy
    of ``x`` for a flow without discrete columns).

    Example:
        >>> from realnvp.models import build_vector_flow
        >>> flow = build_vector_flow(dim=2, n_couplings=2, hidden=(8,))
        >>> flow.set_lattice([1.0, 0.0])
        >>> y = dequantized_rows(flow, torch.tensor([[3.0, 0.5]]), seed=0)
        >>> 3.0 <= y[0, 0].item() < 4.0, y[0, 1].item()
        (True, 0.5)
    """
    x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x, dtype=torch.float64)
    if not flow.discrete:
        return x.clone()
    noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return x + flow.lattice.double().cpu() * noise


def row_log_likelihood(flow: Flow, x: torch.Tensor | np.ndarray, draws: int = TABLE_DRAWS, seed: int = 1,
                       context: torch.Tensor | np.ndarray | None = None) -> torch.Tensor:
    """Each row's log-likelihood in nats (float64 ``[N]``): the density for continuous tables, the
    dequantized bound averaged over ``draws`` seeded draws where the flow has discrete columns.

    Example:
        >>> from realnvp.models import build_vector_flow
        >>> flow = build_vector_flow(dim=2, n_couplings=2, hidden=(8,))  # N(0, I)
        >>> flow.set_lattice([1.0, 1.0])
        >>> log_p = row_log_likelihood(flow, torch.zeros(1, 2), draws=2000)
        >>> round(log_p.item(), 1)  # E log N(u) over the unit square [0, 1)^2: -log(2 pi) - 1/3
        -2.2
    """
    if not flow.discrete:
        return log_prob_in_chunks(flow, x, context=context)
    total = sum(log_prob_in_chunks(flow, dequantized_rows(flow, x, seed + k), context=context) for k in range(draws))
    return total / draws


@torch.inference_mode()
def inverse_max_abs_error(flow: Flow, x: torch.Tensor, batch_size: int | None = None,
                          context: torch.Tensor | None = None, scale: torch.Tensor | float = 1.0) -> float:
    """``max |x - inverse(forward(x))| / scale`` over ``x``: how exactly the flow inverts in practice
    (``scale``: each column's spread, for the error relative to the data's own size).

    Example:
        >>> from realnvp import load
        >>> inverse_max_abs_error(load(run_dir), torch.randn(1000, 2)) < 1e-4
        True
    """
    flow.eval()
    worst = 0.0
    batch_size = _chunk(flow, batch_size)
    for i in range(0, len(x), batch_size):
        chunk, c = x[i : i + batch_size], None if context is None else context[i : i + batch_size]
        error = ((flow.inverse(flow(chunk, c)[0], c) - chunk).abs() / scale).max().item()
        worst = max(worst, error) if math.isfinite(error) else math.inf  # max() would drop a NaN
    return worst


def bits_per_dim(nll_nats: float, n_dims: int, n_levels: int) -> float:
    """Bits per dimension of discrete data from the NLL (nats per example) of its dequantized
    version ``y = (v + u) / n_levels``: ``(NLL(y) + D ln n_levels) / (D ln 2)``. The ``D ln n_levels``
    term is the log-det of the ``1 / n_levels`` scaling; every other preprocessing Jacobian (the
    logit) is inside the flow's ``log_prob``. The one function every printed bits/dim comes from.

    Example:
        >>> bits_per_dim(0.0, 64, 256)  # uniform density on the unit cube: 8 bits for 8-bit data
        8.0
    """
    return (nll_nats + n_dims * math.log(n_levels)) / (n_dims * math.log(2.0))


def dequantized_nll(flow: Flow, images: torch.Tensor, n_levels: int, draws: int = 10,
                    seed: int = 1, labels: torch.Tensor | np.ndarray | None = None) -> tuple[float, float]:
    """``(mean NLL, K-sample bound)`` in nats per image of integer ``images`` ``[N, C, H, W]``.

    The mean averages ``-log p(y)`` over ``draws`` dequantizations ``y = (v + u) / n_levels``
    (``seeded_dequantizations``: noise from ``numpy.random.RandomState(seed)``, one ``[N, C, H, W]``
    draw after another). The bound is the importance-weighted ``-log mean_k p(y_k)`` per image,
    tighter than the mean, still an upper bound on the discrete NLL (up to ``D ln n_levels``).
    A class-conditional flow takes each image's ``labels``.

    Example:
        >>> from realnvp.models import build_image_flow
        >>> flow = build_image_flow((1, 4, 4), feature_maps=4, n_blocks=1)
        >>> mean, bound = dequantized_nll(flow, torch.zeros(3, 1, 4, 4, dtype=torch.uint8), 256, draws=4)
        >>> bound <= mean
        True
    """
    if tuple(images.shape[1:]) != flow.event_shape:
        raise UserError(f"the run models images of shape {flow.event_shape}, got images of shape "
                        f"{tuple(images.shape[1:])}")
    if draws < 1:
        raise UserError(f"the number of dequantization draws must be at least 1, got {draws}")
    log_p = torch.stack([log_prob_in_chunks(flow, y, context=labels)
                         for y in seeded_dequantizations(images, n_levels, draws, seed)])
    iw = torch.logsumexp(log_p, dim=0) - math.log(draws)
    return -log_p.mean().item(), -iw.mean().item()


def _image_metrics(flow: Flow, splits: Any, draws: int, train_limit: int = 1000) -> dict[str, Any]:
    """Bits/dim (test: ``draws`` dequantizations and their importance-weighted bound; train: the first
    ``train_limit`` images, one draw) and the inverse error on 100 dequantized test images. Only the
    test images see every draw: with 600 test images and 10 draws, the train estimate (1000 images:
    a standard error of a few hundredths of a bit/dim) and the inverse check add a fifth to the work,
    where 10000 train images and 1000 inversions once doubled it."""
    test, train = torch.from_numpy(splits.test), torch.from_numpy(splits.train[:train_limit])
    d, levels = flow.event_size, splits.n_levels
    test_c, train_c = (None, None) if splits.test_c is None else (splits.test_c, splits.train_c[:train_limit])
    test_nll, test_iw = dequantized_nll(flow, test, levels, draws, labels=test_c)
    train_nll, _ = dequantized_nll(flow, train, levels, 1, labels=train_c)
    y = next(seeded_dequantizations(test[:100], levels, 1)).to(flow.device, flow.dtype)
    return {
        "bits_per_dim": bits_per_dim(test_nll, d, levels),
        "bits_per_dim_iw": bits_per_dim(test_iw, d, levels),
        "train_bits_per_dim": bits_per_dim(train_nll, d, levels),
        "test_draws": draws,
        "n_levels": levels,
        "test_nll_nats": test_nll,
        "train_nll_nats": train_nll,
        "test_nll_nats_per_dim": test_nll / d,
        "inverse_max_abs_error": inverse_max_abs_error(flow, y, context=None if test_c is None else test_c[: len(y)]),
    }


def _conditional_on(cfg: Any, splits: Splits) -> str:
    """What a conditional run's NLLs are given: class labels, an image set's context values or columns."""
    if cfg.model.context_dim:
        return f"context ({cfg.model.context_dim} values)"
    return "class label" if splits.n_levels else f"columns {list(cfg.data.context_columns)}"


def evaluate_run(run_dir: str | Path, trained: TrainedRun | None = None,
                 splits: Splits | None = None) -> dict[str, Any]:
    """The metrics of a run's best weights on its own train and test splits, with the counters of its
    training. ``trained``: the run's flow and counters when the caller has them (``train``'s result,
    moved to the CPU), else read from the run's checkpoints; ``splits``: its data, when the caller has
    read it (``realnvp train`` reads the data once).

    Example:
        >>> metrics = evaluate_run(run_dir)
        >>> metrics["data"], metrics["dim"], metrics["steps"], metrics["n_train"], metrics["n_test"]
        ('moons', 2, 60, 1800, 1000)
        >>> sorted(key for key in metrics if "nll" in key), metrics["inverse_max_abs_error"] < 1e-4
        (['baseline_gaussian_test_nll_nats', 'baseline_shrinkage_test_nll_nats', 'test_nll_nats',
          'test_nll_nats_per_dim', 'train_nll_nats', 'val_nll_nats'], True)
    """
    run = RunDir(run_dir)
    trained = trained or run.trained()
    flow, cfg = trained.flow, trained.cfg
    splits = splits or load_splits(cfg.data, labels=cfg.model.conditional)
    if splits.n_levels:
        metrics = _image_metrics(flow, splits, cfg.data.test_draws)
    else:
        metrics = _table_metrics(flow, splits)
    return {
        "run": str(run.path),
        "data": data_source(cfg.data),
        "dim": flow.event_size,
        **metrics,
        # Conditional runs: every NLL above is log p(x | context); say which context it was given.
        **({"conditional_on": _conditional_on(cfg, splits), "n_context": cfg.model.n_context}
           if cfg.model.conditional else {}),
        "val_nll_nats": trained.best_val_nll if math.isfinite(trained.best_val_nll) else None,
        "n_params": flow.n_params(),
        "steps": trained.step,
        "best_step": trained.best_step,
        "train_seconds": round(float(trained.elapsed_s), 2),
        "n_train": len(splits.train),
        "n_test": len(splits.test),
    }


def table_nlls(flow: Flow, pool: np.ndarray, test: np.ndarray, test_c: np.ndarray | None = None) -> dict[str, float]:
    """A vector flow's mean test NLL (discrete columns: the dequantized bound, ``row_log_likelihood``)
    beside the ML and the shrinkage Gaussians of the ``pool`` rows (what a whitened flow starts from),
    all scored on the same ``test`` rows, dequantized alike.

    Example:
        >>> from realnvp.models import build_vector_flow
        >>> flow = build_vector_flow(dim=2, n_couplings=2, hidden=(8,))  # N(0, I)
        >>> rows = np.random.default_rng(0).normal(size=(20_000, 2))
        >>> nlls = table_nlls(flow, rows, rows[:5000])
        >>> abs(nlls["test_nll_nats"] - nlls[BASELINE]) < 0.03  # the flow is the data's own Gaussian
        True
    """
    draws = [(dequantized_rows(flow, pool, 100 + k).numpy(), dequantized_rows(flow, test, 1 + k).numpy())
             for k in range(TABLE_DRAWS if flow.discrete else 1)]
    return {"test_nll_nats": -row_log_likelihood(flow, test, context=test_c).mean().item(),
            BASELINE: float(np.mean([gaussian_nll(fit, rows) for fit, rows in draws])),
            # Ledoit-Wolf: where rows are few per column, the start of the flow
            "baseline_shrinkage_test_nll_nats": float(np.mean([-gaussian_log_prob(rows, *shrinkage_fit(fit)).mean()
                                                               for fit, rows in draws]))}


def _table_metrics(flow: Flow, splits: Splits) -> dict[str, Any]:
    """A vector run's test and train NLLs beside the Gaussians (``table_nlls``) and its inverse error."""
    nlls = table_nlls(flow, np.concatenate([splits.train, splits.val]), splits.test, splits.test_c)
    test_c = None if splits.test_c is None else torch.from_numpy(splits.test_c)
    rows = dequantized_rows(flow, splits.test, 1).float()
    spread = torch.from_numpy(np.concatenate([splits.train, splits.val]).std(0)).float().clamp_min(1e-30)
    return {**nlls,
            "train_nll_nats": -row_log_likelihood(flow, splits.train, context=splits.train_c).mean().item(),
            "test_nll_nats_per_dim": nlls["test_nll_nats"] / flow.event_size,
            "inverse_max_abs_error": inverse_max_abs_error(flow, rows, context=test_c),
            # in each column's standard deviations: above 1e-3, samples do not follow the scored density
            "inverse_max_rel_error": inverse_max_abs_error(flow, rows, context=test_c, scale=spread),
            **({"discrete_columns": f"dequantized: the NLLs bound the discrete probability ({TABLE_DRAWS} draws)"}
               if flow.discrete else {})}
