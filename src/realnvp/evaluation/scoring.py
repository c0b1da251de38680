"""Scoring the user's data with a trained run: the exact log-likelihood of every example (nats) and,
for image runs, bits per dimension, written as a CSV or returned as arrays."""

from __future__ import annotations

import io
import itertools
import math
import os
from pathlib import Path

import numpy as np
import torch

from realnvp.bijectors import dequantize
from realnvp.data import read_vectors
from realnvp.data.images import IMAGE_DATASETS, check_levels, n_levels_of, read_image_folder
from realnvp.errors import UserError
from realnvp.evaluation.metrics import bits_per_dim
from realnvp.flow import Flow
from realnvp.rundir import RunDir, load

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
    ref = next(itertools.chain(flow.parameters(), flow.buffers()), torch.zeros(()))
    out = [flow.log_prob(x[i : i + batch_size].to(ref.device, ref.dtype)).double().cpu()
           for i in range(0, len(x), batch_size)]
    return torch.cat(out).numpy() if out else np.zeros(0)


def read_input(path: str | Path, flow: Flow, n_levels: int = 0) -> np.ndarray:
    """The examples in ``path`` as the run expects them: a .npy/.npz/.csv table for vector runs; for
    image runs (``n_levels`` pixel levels) a folder of images or an .npy ``[N, H, W]`` / ``[N, C, H,
    W]`` of integer pixels. A shape or value mismatch is a one-line ``UserError``.

    Example:
        >>> from realnvp import load
        >>> (tmp / "points.csv").write_text("x,y\\n0.5,0.25\\n1.0,0.0\\n")
        21
        >>> read_input(tmp / "points.csv", load(run_dir)).shape
        (2, 2)
    """
    path = Path(path)
    if not n_levels:
        return read_vectors(path, expected_dim=flow.event_size)
    if path.is_dir():
        images = read_image_folder(path)
    elif path.suffix.lower() == ".npy" and path.is_file():
        try:
            images = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot read {path}: {str(exc).splitlines()[0]}") from None
        images = images[:, None] if images.ndim == 3 else images
    else:
        raise UserError(f"{path}: an image run scores a folder of images or an .npy of integer pixels")
    if tuple(images.shape[1:]) != flow.event_shape:
        raise UserError(f"{path}: the run takes images of shape {flow.event_shape} [C, H, W], got "
                        f"{tuple(images.shape[1:])}")
    return check_levels(images, n_levels, str(path))


def score_images(flow: Flow, images: np.ndarray, n_levels: int, draws: int = 10, seed: int = 1
                 ) -> dict[str, np.ndarray]:
    """Discrete images ``v`` (integers ``0 .. n_levels - 1``): ``log P(v) ~ E_u log p((v + u) / L) - D
    ln L`` per image, averaged over ``draws`` dequantizations (seeded), and its bits/dim, the same
    quantity ``evaluate`` averages over the test set.

    Example:
        >>> from realnvp.bijectors import Chain, Standardize
        >>> flow = Flow(Chain([Standardize(torch.zeros(1, 2, 2), torch.ones(1, 2, 2))]), (1, 2, 2))
        >>> out = score_images(flow, np.zeros((3, 1, 2, 2), np.uint8), n_levels=2)  # 1-bit 2x2 images
        >>> out["bits_per_dim"].shape, bool(np.allclose(out["bits_per_dim"], -out["log_likelihood_nats"]
        ...                                             / (4 * math.log(2))))
        ((3,), True)
    """
    generator = torch.Generator().manual_seed(seed)
    v = torch.from_numpy(np.ascontiguousarray(images))
    log_p = np.mean([score_array(flow, dequantize(v, n_levels, generator)) for _ in range(draws)], axis=0)
    return {LOG_LIKELIHOOD: log_p - flow.event_size * math.log(n_levels),
            BITS_PER_DIM: bits_per_dim(-log_p, flow.event_size, n_levels)}


def _run_levels(run: str | os.PathLike) -> int:
    """Pixel levels of a run's data (0 for vector runs), as its config names them."""
    name = RunDir(run).config().data.name
    return n_levels_of(name) if name in IMAGE_DATASETS else 0


def score(run: str | os.PathLike | Flow, data: str | os.PathLike | np.ndarray, n_levels: int | None = None,
          draws: int = 10) -> dict[str, np.ndarray]:
    """Per-example scores of ``data`` (a file, an image folder or an array) under a run (a run
    directory, or a loaded ``Flow`` with ``n_levels`` for image flows): ``log_likelihood_nats``, plus
    ``bits_per_dim`` for image runs (averaged over ``draws`` dequantizations).

    Example:
        >>> scores = score(run_dir, np.array([[0.5, 0.25], [9.0, 9.0]], dtype=np.float32))
        >>> bool(scores["log_likelihood_nats"][0] > scores["log_likelihood_nats"][1])  # far point: unlikely
        True
    """
    flow = run if isinstance(run, Flow) else load(run)
    if n_levels is None:
        n_levels = 0 if isinstance(run, Flow) else _run_levels(run) if len(flow.event_shape) == 3 else 0
    if len(flow.event_shape) == 3 and not n_levels:
        raise UserError("scoring images needs their number of pixel levels: pass n_levels (256 for 8-bit)")
    if isinstance(data, np.ndarray):
        x = data[None] if data.ndim == len(flow.event_shape) else data
        if n_levels:
            x = check_levels(x, n_levels, "the images to score")
    else:
        x = read_input(data, flow, n_levels)
    if len(x) == 0:
        raise UserError("no examples to score")
    if n_levels:
        if tuple(x.shape[1:]) != flow.event_shape:
            raise UserError(f"the run takes images of shape {flow.event_shape}, got {tuple(x.shape[1:])}")
        return score_images(flow, x, n_levels, draws)
    x = np.asarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise UserError(f"{int((~np.isfinite(x)).sum())} non-finite values (NaN/Inf) in the data to score")
    return {LOG_LIKELIHOOD: score_array(flow, x)}


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
