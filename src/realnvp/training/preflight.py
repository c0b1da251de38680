"""Checks made before a training touches its run directory: the model fits the data's shape, and its
training state fits in memory and its checkpoints on the disk (estimated from the settings, without
building anything, so a typo such as 100x the width is refused in a moment, not after minutes)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch

from realnvp.config import Config, ModelConfig
from realnvp.errors import UserError
from realnvp.models import latent_scale_map

# Training holds, per parameter: the weight, its gradient, Adam's two moments, the non-finite guard's
# copy of all but the gradient (training/guard.py) and a checkpoint being serialised (weights and
# moments, then one copy of those bytes for the atomic write): 4 * (1 + 1 + 2 + 3 + 3 + 3) bytes.
TRAINING_BYTES_PER_PARAM = 52
CHECKPOINT_BYTES_PER_PARAM = 12  # float32 weights and Adam's two moments
CHECKPOINT_FILES = 4  # best.pt, checkpoint.pt, checkpoint.prev.pt and the temporary file of a write


def _mlp_params(n_in: int, n_out: int, hidden: tuple[int, ...]) -> int:
    widths = [n_in, *hidden, n_out]
    return sum(a * b + b for a, b in zip(widths[:-1], widths[1:]))


def _resnet_params(c_in: int, c_out: int, width: int, n_blocks: int) -> int:
    """``nets.ResNet``: weight-normed 3x3 convolutions (weight, bias and gain) with two norms a block."""
    conv_in = 9 * c_in * width + 2 * width
    block = 2 * (9 * width * width + 2 * width) + 4 * width
    return conv_in + n_blocks * block + 2 * width + 9 * width * c_out + c_out


def estimate_params(cfg: ModelConfig, event_shape: tuple[int, ...]) -> int:
    """About how many parameters ``build_model(cfg, event_shape)`` has, from the settings alone.

    Example:
        >>> from realnvp.models import build_model
        >>> cfg = ModelConfig(n_couplings=4, hidden=(64, 64))
        >>> estimate_params(cfg, (2,)), round(estimate_params(cfg, (2,)) / build_model(cfg, (2,)).n_params(), 2)
        (17672, 1.0)
    """
    if cfg.kind == "vector":
        dim = event_shape[0]
        n_pass = (dim + 1) // 2  # the larger half of the mask: an upper estimate
        norms = 2 * dim * (cfg.n_couplings - 1) if cfg.batch_norm else 0
        return cfg.n_couplings * _mlp_params(n_pass, 2 * n_pass, cfg.hidden) + norms
    c, total = event_shape[0], 0
    for scale in range(cfg.n_scales):
        width = cfg.feature_maps * 2**scale
        if scale == cfg.n_scales - 1:
            total += cfg.final_couplings * _resnet_params(c, 2 * c, width, cfg.n_blocks)
        else:  # checkerboard couplings, then channel-wise ones on the squeezed 4c channels
            total += cfg.scale_couplings * (_resnet_params(c, 2 * c, width, cfg.n_blocks)
                                            + _resnet_params(2 * c, 4 * c, width, cfg.n_blocks))
            c *= 2
    return total


def _memory_bytes(device: str) -> tuple[int, str]:
    """The memory training will use: the GPU's or this machine's, and how to name it."""
    if device in ("auto", "cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_properties(0).total_memory, "the GPU has"
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "this machine has"


def _gb(n_bytes: float) -> str:
    return f"{n_bytes / 1e9:.3g} GB"


def check_fits(cfg: Config, event_shape: tuple[int, ...], run_dir: str | os.PathLike) -> None:
    """Refuse, with one line and the estimate, a model that does not fit the data's shape, whose
    training state exceeds the memory or whose checkpoints exceed the disk's free space.

    Example:
        >>> cfg = Config()
        >>> check_fits(cfg, (2,), tmp)  # the defaults fit
        >>> cfg.model.n_couplings, cfg.model.hidden = 1000, (16384, 16384)
        >>> check_fits(cfg, (2,), tmp)
        Traceback (most recent call last):
        ...
        realnvp.errors.UserError: model.n_couplings=1000, model.hidden=(16384, 16384) make about 2.69e+11 ...
    """
    m = cfg.model
    if m.kind == "vector" and (len(event_shape) != 1 or event_shape[0] < 2):
        raise UserError(f"the vector model needs at least 2 columns (a coupling transforms some columns given "
                        f"the others); the data has examples of shape {event_shape}")
    if m.kind == "image":
        try:
            latent_scale_map(event_shape, m.n_scales)
        except ValueError as exc:
            raise UserError(f"model: {exc}") from None
    n_params = estimate_params(m, event_shape)
    sizes = (f"model.n_couplings={m.n_couplings}, model.hidden={m.hidden}" if m.kind == "vector" else
             f"model.n_scales={m.n_scales}, model.feature_maps={m.feature_maps}, model.n_blocks={m.n_blocks}")
    need, (have, who) = n_params * TRAINING_BYTES_PER_PARAM, _memory_bytes(cfg.train.device)
    if need > have:
        raise UserError(f"{sizes} make about {n_params:.3g} parameters: about {_gb(need)} to train "
                        f"({TRAINING_BYTES_PER_PARAM} bytes each: weights, gradients, Adam's moments, the guard's "
                        f"copy, a checkpoint being written); {who} {_gb(have)}")
    folder = next(p for p in [Path(run_dir), *Path(run_dir).absolute().parents] if p.exists())
    disk, free = n_params * CHECKPOINT_BYTES_PER_PARAM * CHECKPOINT_FILES, shutil.disk_usage(folder).free
    if disk > free:
        raise UserError(f"{sizes} make about {n_params:.3g} parameters: the checkpoints need about {_gb(disk)} "
                        f"and {folder} has {_gb(free)} free")
