"""The examples a training run works on, prepared once: training rows on the device, validation rows
(images dequantized once so validation NLLs are comparable) and the standardisation or whitening the
first layer of a vector model applies."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from realnvp.bijectors import dequantize
from realnvp.config import Config
from realnvp.data import Splits
from realnvp.data.columns import ColumnType, dequantized, parse_types, to_real_line
from realnvp.errors import UserError
from realnvp.evaluation.baselines import choose_gaussian, gaussian_fit, shrinkage_fit
from realnvp.evaluation.metrics import bits_per_dim


@dataclass
class TrainingData:
    """The training examples on the training device, the validation examples (images dequantized once,
    so validation NLLs are comparable) and, for vectors, the standardisation the model's first layer
    applies.

    Example:
        >>> from realnvp.resolve import resolve
        >>> run = resolve("moons", ["data.n_train=500"])
        >>> data = TrainingData.load(run.cfg, torch.device("cpu"), run.splits)
        >>> data.event_shape, data.n_levels, len(data.train_x) + len(data.val_x)
        ((2,), 0, 500)
    """

    train_x: torch.Tensor
    val_x: torch.Tensor
    n_levels: int  # pixel levels for images, 0 for vectors
    loc: torch.Tensor | None
    scale: torch.Tensor | None
    train_c: torch.Tensor | None = None  # conditional runs: each row's context (class label or context columns)
    val_c: torch.Tensor | None = None
    lattice: torch.Tensor | None = None  # tables: each column's lattice step (0: continuous), dequantized per batch
    spread: tuple[torch.Tensor, torch.Tensor] | None = None  # tables: the rows' mean and covariance Cholesky factor
    start: str = ""  # whitened vector flows: the Gaussian the untrained flow is, "ml" or "shrinkage"

    @property
    def event_shape(self) -> tuple[int, ...]:
        return tuple(self.train_x.shape[1:])

    def vector_rows(self, seed: int) -> torch.Tensor:
        """The training rows of a vector data set (what ``train.cv_folds`` splits into folds), discrete
        columns dequantized once with noise from ``seed``."""
        if self.n_levels or self.train_c is not None:
            raise UserError("train.cv_folds works on unconditional vector data only; set it to 0")
        if self.lattice is None:
            return self.train_x
        noise = torch.rand(self.train_x.shape, generator=torch.Generator().manual_seed(seed))
        return self.train_x + self.lattice * noise.to(self.train_x.device)

    def with_bits_per_dim(self, record: dict[str, Any]) -> dict[str, Any]:
        """Images: ``record`` plus its NLLs in bits/dim (``train_bpd``, ``val_bpd``), the unit people read."""
        if self.n_levels:
            dims = math.prod(self.event_shape)
            record.update({f"{which}_bpd": bits_per_dim(record[f"{which}_nll"], dims, self.n_levels)
                           for which in ("train", "val") if f"{which}_nll" in record})
        return record

    @classmethod
    def load(cls, cfg: Config, device: torch.device, splits: Splits) -> TrainingData:
        """The resolved run's ``splits`` (``realnvp.resolve``) made ready for training on ``device``."""
        train_x, val_x = torch.from_numpy(splits.train).to(device), torch.from_numpy(splits.val)
        loc = scale = lattice = spread = None
        start = ""
        if splits.n_levels:
            val_x = dequantize(val_x, splits.n_levels, torch.Generator().manual_seed(cfg.data.seed + 3))
        else:
            types = parse_types(cfg.data.column_types, splits.train.shape[1]) if cfg.data.name == "file" else ()
            if any(t.discrete for t in types):  # validation rows dequantized once, so their NLLs compare
                val_x = torch.from_numpy(dequantized(splits.val, types, cfg.data.seed + 3).astype(np.float32))
                lattice = torch.tensor([t.step for t in types], dtype=torch.float32, device=device)
            seen = starting_rows(splits, types, cfg.data.seed)
            start = starting_gaussian(*seen) if cfg.model.whiten else ""
            loc, scale = first_layer_fit(*seen, whiten=cfg.model.whiten, start=start)
            # A defensive mixture's Student-t spreads like every non-test row, in the data's own units.
            pool = dequantized(np.concatenate([splits.train, splits.val]), types, cfg.data.seed + 7)
            spread = first_layer_fit(pool, whiten=True) if cfg.model.defensive_df > 0 else None
        contexts = [None if c is None else torch.from_numpy(c).to(device) for c in (splits.train_c, splits.val_c)]
        return cls(train_x, val_x.to(device), splits.n_levels, loc, scale, *contexts, lattice=lattice,
                   spread=None if splits.n_levels else spread, start=start)


def starting_rows(splits: Splits, types: tuple[ColumnType, ...], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The training and validation rows a vector model's first layer is fitted to, as that layer sees
    them: discrete columns dequantized (seeded), through the column transforms.

    Example:
        >>> from realnvp.data import Splits
        >>> from realnvp.data.columns import ColumnType
        >>> rows = np.array([[1.0], [np.e]])
        >>> train, val = starting_rows(Splits(rows, rows[:0], rows), (ColumnType("log"),), seed=0)
        >>> train.round(4).tolist(), val.shape
        ([[0.0], [1.0]], (0, 1))
    """
    def seen(rows: np.ndarray, offset: int) -> np.ndarray:
        return to_real_line(dequantized(rows, types, seed + offset), types) if types else np.asarray(rows)
    return seen(splits.train, 4), seen(splits.val, 6)


def starting_gaussian(rows: np.ndarray, val: np.ndarray | None) -> str:
    """Which Gaussian a whitened vector flow starts from, ``"ml"`` or ``"shrinkage"`` (Ledoit-Wolf): the
    better on the ``val`` rows when there are at least twice as many as columns (fewer compare the two
    too noisily), else shrinkage where the training ``rows`` are fewer than twice the columns.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> starting_gaussian(rng.normal(size=(5000, 3)), rng.normal(size=(500, 3)))
        'ml'
        >>> starting_gaussian(rng.normal(size=(60, 40)), None)
        'shrinkage'
    """
    enough = val is not None and len(val) >= 2 * rows.shape[1]
    return choose_gaussian(rows, val if enough else None).name


def first_layer_fit(rows: np.ndarray, val: np.ndarray | None = None, whiten: bool = True,
                    start: str = "") -> tuple[torch.Tensor, torch.Tensor]:
    """``(loc, scale)`` of a vector model's fixed first layer: when it whitens (models/vector.py,
    ``Whiten``), the mean and covariance Cholesky factor of the Gaussian ``choose_gaussian`` prefers on
    the ``val`` rows (maximum likelihood, or Ledoit-Wolf shrinkage where rows are few per column), refit
    on every non-test row so the untrained flow IS that Gaussian; else the training rows' mean and
    per-column std. ``start`` ("ml" or "shrinkage"): that choice, already made. Fitted in float64,
    returned as CPU float32.

    Example:
        >>> loc, scale = first_layer_fit(np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 8.0]]), whiten=False)
        >>> loc.tolist(), scale.shape
        ([2.0, 4.0], torch.Size([2]))
        >>> first_layer_fit(np.eye(3), whiten=True)[1].shape
        torch.Size([3, 3])
    """
    if whiten:
        pool = rows if val is None or not len(val) else np.concatenate([rows, val])
        loc, chol = (shrinkage_fit if (start or starting_gaussian(rows, val)) == "shrinkage" else gaussian_fit)(pool)
        return torch.from_numpy(loc).float(), torch.from_numpy(chol).float()
    wide = torch.from_numpy(np.asarray(rows, dtype=np.float64))
    return wide.mean(0).float(), wide.std(0).clamp_min(1e-6).float()
