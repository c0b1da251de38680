"""Scoring the user's data with a trained run: the exact log-likelihood of every example (nats) and,
for image runs, bits per dimension, written as a CSV or returned as arrays."""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

import numpy as np
import torch

from realnvp.errors import UserError
from realnvp.flow import Flow

LOG_LIKELIHOOD = "log_likelihood_nats"
BITS_PER_DIM = "bits_per_dim"


@torch.inference_mode()
def score_array(flow: Flow, x: np.ndarray | torch.Tensor, batch_size: int = 4096) -> np.ndarray:
    """``log p(x)`` of every example in nats (float64 ``[N]``), the flow in eval mode, in batches.

    Example:
        >>> from realnvp.models import build_vector_flow
        >>> flow = build_vector_flow(dim=2, n_couplings=2, hidden=(8,))  # untrained: N(0, I)
        >>> score_array(flow, np.zeros((3, 2), dtype=np.float32)).round(4).tolist()
        [-1.8379, -1.8379, -1.8379]
    """
    x = torch.as_tensor(x)
    if tuple(x.shape[1:]) != flow.event_shape:
        raise UserError(f"the run scores examples of shape {flow.event_shape}, got {tuple(x.shape[1:])}")
    flow.eval()
    ref = next(flow.parameters())
    out = [flow.log_prob(x[i : i + batch_size].to(ref.device, ref.dtype)).double().cpu()
           for i in range(0, len(x), batch_size)]
    return torch.cat(out).numpy() if out else np.zeros(0)


def bits_per_dim(log_likelihood: np.ndarray, event_size: int) -> np.ndarray:
    """``-log p(x) / (D ln 2)``: nats per example to bits per dimension (the likelihood must be of
    the data in its discrete units, e.g. pixel values 0..255 dequantized, for the usual meaning).

    Example:
        >>> bits_per_dim(np.array([-8 * math.log(2)]), 8).tolist()
        [1.0]
    """
    return -np.asarray(log_likelihood) / (event_size * math.log(2))


def read_input(path: str | Path, flow: Flow) -> np.ndarray:
    """The examples in ``path`` as the run expects them: a .npy/.npz/.csv table for vector runs, an
    image file or folder for image runs; a shape mismatch is a one-line ``UserError``."""
    path = Path(path)
    if len(flow.event_shape) == 1:
        from realnvp.data import read_vectors

        return read_vectors(path, expected_dim=flow.event_size)
    if path.suffix.lower() == ".npy":
        try:
            array = np.load(path, allow_pickle=False).astype(np.float32)
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot read {path}: {str(exc).splitlines()[0]}") from None
        if tuple(array.shape[1:]) != flow.event_shape:
            raise UserError(f"{path}: the run takes images of shape {flow.event_shape}, the file has "
                            f"{tuple(array.shape[1:])}")
        return array
    try:
        from realnvp.data.images import read_image_folder
    except ImportError:
        raise UserError("scoring image folders needs the image data module (realnvp.data.images)") from None
    return read_image_folder(path, flow.event_shape)


def score(run: str | os.PathLike | Flow, data: str | os.PathLike | np.ndarray) -> dict[str, np.ndarray]:
    """Per-example scores of ``data`` (a file, an image folder or an array) under a run (a run
    directory or a loaded ``Flow``): ``log_likelihood_nats``, plus ``bits_per_dim`` for image runs.

    Example:
        >>> scores = score(run_dir, np.array([[0.5, 0.25], [9.0, 9.0]], dtype=np.float32))
        >>> bool(scores["log_likelihood_nats"][0] > scores["log_likelihood_nats"][1])  # far point: unlikely
        True
    """
    from realnvp.checkpoint import load

    flow = run if isinstance(run, Flow) else load(run)
    x = np.asarray(data, dtype=np.float32) if isinstance(data, np.ndarray) else read_input(data, flow)
    if x.ndim == 1 and len(flow.event_shape) == 1:
        x = x[None]
    if len(x) == 0:
        raise UserError("no examples to score")
    if not np.isfinite(x).all():
        raise UserError(f"{int((~np.isfinite(x)).sum())} non-finite values (NaN/Inf) in the data to score")
    log_likelihood = score_array(flow, x)
    columns = {LOG_LIKELIHOOD: log_likelihood}
    if len(flow.event_shape) == 3:
        columns[BITS_PER_DIM] = bits_per_dim(log_likelihood, flow.event_size)
    return columns


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
