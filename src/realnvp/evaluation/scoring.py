"""Scoring the user's data with a trained run: the exact log-likelihood of every example (nats) and,
for image runs, bits per dimension, written as a CSV or returned as arrays."""

from __future__ import annotations

import io
import math
import os
import warnings

import numpy as np
import torch

from realnvp.data.image_files import check_levels, to_nchw
from realnvp.data.splits import read_held_out
from realnvp.errors import UserError
from realnvp.evaluation.conditional import read_with_context
from realnvp.evaluation.metrics import bits_per_dim, log_prob_in_chunks, row_log_likelihood, seeded_dequantizations
from realnvp.flow import Flow
from realnvp.rundir import RunDir

LOG_LIKELIHOOD = "log_likelihood_nats"
LOG_LIKELIHOOD_DISCRETE = "log_likelihood_discrete_nats"
BITS_PER_DIM = "bits_per_dim"


class Scores(dict):
    """Score columns by name. An image run's discrete log-likelihood was once called
    ``log_likelihood_nats``, which now means only a continuous density (vectors; ``evaluate``'s test
    NLL); the old key still reads the renamed column, with a ``DeprecationWarning``.

    Example:
        >>> import warnings
        >>> scores = Scores({LOG_LIKELIHOOD_DISCRETE: np.array([-9.5])})
        >>> with warnings.catch_warnings(record=True):
        ...     scores["log_likelihood_nats"].tolist()
        [-9.5]
    """

    def __missing__(self, key: str) -> np.ndarray:
        if key == LOG_LIKELIHOOD and LOG_LIKELIHOOD_DISCRETE in self:
            warnings.warn(f"image scores' {LOG_LIKELIHOOD!r} is now {LOG_LIKELIHOOD_DISCRETE!r} (a discrete "
                          f"log-likelihood, not a density)", DeprecationWarning, stacklevel=2)
            return self[LOG_LIKELIHOOD_DISCRETE]
        raise KeyError(key)


def score_array(flow: Flow, x: np.ndarray | torch.Tensor, batch_size: int | None = None,
                context: np.ndarray | torch.Tensor | None = None) -> np.ndarray:
    """``log p(x)`` of every example in nats (float64 ``[N]``), the flow in eval mode, in batches: the
    continuous density at ``x``, or for a table with discrete columns the bound on their probability
    ``evaluate`` reports (``row_log_likelihood``); ``log p(x | context)`` for a conditional flow.

    Example:
        >>> from realnvp.models import build_vector_flow
        >>> flow = build_vector_flow(dim=2, n_couplings=2, hidden=(8,))  # untrained: N(0, I)
        >>> score_array(flow, np.zeros((3, 2), dtype=np.float32)).round(4).tolist()
        [-1.8379, -1.8379, -1.8379]
    """
    x = torch.as_tensor(x)
    if tuple(x.shape[1:]) != flow.event_shape:
        raise UserError(f"the run scores examples of shape {flow.event_shape}, got {tuple(x.shape[1:])}")
    if flow.discrete:
        return row_log_likelihood(flow, x, context=context).numpy()
    return log_prob_in_chunks(flow, x, batch_size, context).numpy()


def score_images(flow: Flow, images: np.ndarray, n_levels: int, draws: int = 10, seed: int = 1,
                 labels: np.ndarray | None = None) -> Scores:
    """Discrete images ``v`` (integers ``0 .. n_levels - 1``): ``log P(v) >= E_u log p((v + u) / L) - D
    ln L`` per image (``log_likelihood_discrete_nats``), averaged over ``draws`` dequantizations, and its
    bits/dim. The noise is ``evaluate``'s (``seeded_dequantizations``), so on the test images the mean
    bits/dim is ``evaluate``'s ``bits_per_dim``. A class-conditional flow scores ``log P(v | labels)``.

    Example:
        >>> from realnvp.bijectors import Chain, Standardize
        >>> flow = Flow(Chain([Standardize(torch.zeros(1, 2, 2), torch.ones(1, 2, 2))]), (1, 2, 2))
        >>> out = score_images(flow, np.zeros((3, 1, 2, 2), np.uint8), n_levels=2)  # 1-bit 2x2 images
        >>> out["bits_per_dim"].shape, bool(np.allclose(out["bits_per_dim"], -out["log_likelihood_discrete_nats"]
        ...                                             / (4 * math.log(2))))
        ((3,), True)
    """
    v = np.ascontiguousarray(images)
    draws_log_p = [log_prob_in_chunks(flow, y, context=labels)
                   for y in seeded_dequantizations(v, n_levels, draws, seed)]
    log_p = torch.stack(draws_log_p).mean(0).numpy()
    return Scores({LOG_LIKELIHOOD_DISCRETE: log_p - flow.event_size * math.log(n_levels),
                   BITS_PER_DIM: bits_per_dim(-log_p, flow.event_size, n_levels)})


def _flow_levels_draws(run: str | os.PathLike | Flow, n_levels: int | None, draws: int | None
                       ) -> tuple[Flow, int, int, tuple[int, ...]]:
    """The flow, its pixel levels (0 for vectors), test draws and context columns: from the run's
    checkpoint and config (the draws ``evaluate`` uses), or for a bare ``Flow`` from the arguments (10
    draws by default; a conditional table's context in its last columns)."""
    if isinstance(run, Flow):
        width = run.event_size + run.context_size
        return run, n_levels or 0, draws or 10, tuple(range(run.event_size, width))
    flow, cfg, ckpt = RunDir(run).load_flow()
    if n_levels is None:
        n_levels = ckpt.n_levels if len(flow.event_shape) == 3 else 0
    return flow, n_levels, draws or cfg.data.test_draws, tuple(cfg.data.context_columns)


def score(run: str | os.PathLike | Flow, data: str | os.PathLike | np.ndarray, n_levels: int | None = None,
          draws: int | None = None, context: np.ndarray | None = None) -> Scores:
    """Per-example scores of ``data`` (a file, an image folder or an array) under a run (a run
    directory, or a loaded ``Flow`` with ``n_levels`` for image flows). Vector runs:
    ``log_likelihood_nats``, the log-density ``log p(x)``. Image runs: ``log_likelihood_discrete_nats``
    (the discrete images' log-likelihood bound) and ``bits_per_dim``, averaged over ``draws``
    dequantizations (default: the run's ``data.test_draws``, as ``evaluate``). A conditional run
    scores ``log p(x | context)``: the context comes from the file (the training table's context
    columns; labelled images, ``evaluation.conditional``) or, for an array, from ``context``.

    Example:
        >>> scores = score(run_dir, np.array([[0.5, 0.25], [9.0, 9.0]], dtype=np.float32))
        >>> bool(scores["log_likelihood_nats"][0] > scores["log_likelihood_nats"][1])  # far point: unlikely
        True
    """
    flow, n_levels, draws, columns = _flow_levels_draws(run, n_levels, draws)
    if len(flow.event_shape) == 3 and not n_levels:
        raise UserError("scoring images needs their number of pixel levels: pass n_levels (256 for 8-bit)")
    if flow.conditional and context is None and isinstance(data, np.ndarray):
        raise UserError("the run is conditional: pass each example's context with the array (context=)")
    if flow.conditional and context is None:
        x, context = read_with_context(data, flow, n_levels, columns)
    elif isinstance(data, np.ndarray):
        x = data[None] if data.ndim == len(flow.event_shape) else data
        if n_levels:
            x = check_levels(to_nchw(x, "the images to score", flow.event_shape), n_levels, "the images to score")
    else:
        x = read_held_out(data, flow.event_shape, n_levels)
    if len(x) == 0:
        raise UserError("no examples to score")
    if n_levels:
        if tuple(x.shape[1:]) != flow.event_shape:
            raise UserError(f"the run takes images of shape {flow.event_shape}, got {tuple(x.shape[1:])}")
        return score_images(flow, x, n_levels, draws, labels=_checked_context(flow, context, len(x)))
    x = np.asarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise UserError(f"{int((~np.isfinite(x)).sum())} non-finite values (NaN/Inf) in the data to score")
    return Scores({LOG_LIKELIHOOD: score_array(flow, x, context=_checked_context(flow, context, len(x)))})


def _checked_context(flow: Flow, context: np.ndarray | None, n: int) -> torch.Tensor | None:
    """The contexts of ``n`` examples to score, or a one-line ``UserError`` naming what is wrong."""
    try:
        return flow.as_context(context, n)
    except ValueError as exc:
        raise UserError(f"context: {exc}") from None


def to_csv(columns: dict[str, np.ndarray]) -> str:
    """The scores as CSV text: a ``row`` index (0-based, input order) then one column per score.

    Example:
        >>> print(to_csv({"log_likelihood_nats": np.array([-1.5, -2.25])}), end="")
        row,log_likelihood_nats
        0,-1.5
        1,-2.25
    """
    buffer = io.StringIO()
    names = list(columns)
    buffer.write(",".join(["row", *names]) + "\n")
    for i, values in enumerate(zip(*columns.values(), strict=True)):
        buffer.write(",".join([str(i), *(repr(float(v)) for v in values)]) + "\n")
    return buffer.getvalue()


def summary(columns: dict[str, np.ndarray]) -> dict[str, float | int]:
    """Count, mean, min and max of each score: the line ``realnvp score`` prints.

    Example:
        >>> stats = summary({"log_likelihood_nats": np.array([-1.0, -3.0])})
        >>> stats["n"], stats["log_likelihood_nats_mean"], stats["log_likelihood_nats_min"]
        (2, -2.0, -3.0)
    """
    out: dict[str, float | int] = {"n": len(next(iter(columns.values())))}
    for name, values in columns.items():
        out |= {f"{name}_mean": float(np.mean(values)), f"{name}_min": float(np.min(values)),
                f"{name}_max": float(np.max(values))}
    return out
