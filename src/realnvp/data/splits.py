"""Train / validation / test splits for a data configuration."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from realnvp.config import DataConfig
from realnvp.data.images import IMAGE_DATASETS, load_images
from realnvp.data.toy import TOY_DENSITIES, make_toy
from realnvp.data.vectors import read_vectors
from realnvp.errors import UserError


@dataclass
class Splits:
    """Train, validation and test arrays of one dataset (``[N, D]`` vectors or ``[N, C, H, W]`` pixels).

    Example:
        >>> splits = load_splits(DataConfig(name="digits"))  # 8x8 digits, 17 grey levels
        >>> splits.train.shape[1:], splits.train.dtype, splits.n_levels
        ((1, 8, 8), dtype('uint8'), 17)
    """

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    n_levels: int = 0  # images: pixels are integers 0 .. n_levels - 1 (dequantized per batch); 0 for vectors


def load_splits(cfg: DataConfig) -> Splits:
    """Toy sets draw train and test independently (seeds ``seed`` and ``seed + 1``, as in the moons
    protocol); files are split by a seeded permutation. Validation comes out of the training split.

    Example:
        >>> splits = load_splits(DataConfig(name="moons", n_train=1000, n_test=500))
        >>> splits.train.shape, splits.val.shape, splits.test.shape  # 10% of train held out
        ((900, 2), (100, 2), (500, 2))
        >>> np.array_equal(splits.train, load_splits(DataConfig(name="moons", n_train=1000, n_test=500)).train)
        True
    """
    n_levels = 0
    if cfg.name in IMAGE_DATASETS:
        images = load_images(cfg)
        train, test, n_levels = images.train, images.test, images.n_levels
    elif cfg.name in TOY_DENSITIES:
        train = make_toy(cfg.name, cfg.n_train, cfg.seed, cfg.noise)
        test = make_toy(cfg.name, cfg.n_test, cfg.seed + 1, cfg.noise)
    elif cfg.name == "file":
        if not cfg.path:
            raise UserError("data.name is 'file' but no data.path was given (use --data FILE)")
        table = read_vectors(cfg.path)
        if len(table) < 10:
            raise UserError(f"{cfg.path}: {len(table)} examples are too few to split (need at least 10)")
        order = np.random.RandomState(cfg.seed).permutation(len(table))
        n_test = max(1, int(round(cfg.test_fraction * len(table))))
        test, train = table[order[:n_test]], table[order[n_test:]]
    else:
        raise UserError(f"unknown dataset {cfg.name!r}; known: {', '.join(TOY_DENSITIES)}, file, "
                        f"{', '.join(IMAGE_DATASETS)}")
    n_val = int(round(cfg.val_fraction * len(train)))
    order = np.random.RandomState(cfg.seed + 2).permutation(len(train))
    return Splits(train=train[order[n_val:]], val=train[order[:n_val]], test=test, n_levels=n_levels)
