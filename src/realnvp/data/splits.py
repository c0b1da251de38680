"""Train / validation / test splits for a data configuration, and held-out files (``data.test_path``,
``realnvp evaluate RUN --data FILE``) read the way the training data was."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from realnvp.config import DataConfig
from realnvp.data.image_files import read_pixel_file, to_nchw
from realnvp.data.images import IMAGE_DATASETS, check_levels, load_images, read_image_folder
from realnvp.data.labels import image_contexts, image_labels, n_classes_of, split_columns
from realnvp.data.rotated import CONTEXT_TOYS, make_context_toy
from realnvp.data.tables import TableSource, read_source
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
    # Conditional models: each row's context, aligned with the rows: class labels (int64 [N]) of images,
    # an image .npz's context arrays (float32 [N, D]) or the table's data.context_columns ([N, k]); None without.
    train_c: np.ndarray | None = None
    val_c: np.ndarray | None = None
    test_c: np.ndarray | None = None
    n_classes: int = 0  # images with labels: the number of classes
    names: tuple[str, ...] = ()  # tables: the modelled columns' names (a CSV header's, else x0, x1, ...)


def load_splits(cfg: DataConfig, labels: bool = False, source: TableSource | None = None) -> Splits:
    """Toy sets draw train and test independently (seeds ``seed`` and ``seed + 1``, as in the moons
    protocol); files are split by a seeded permutation. Validation comes out of the training split.
    With ``test_path`` that file (or image folder) is the test split: a vector file then trains on
    every row, an image set on its usual training split. A table already read (``source``) is not
    read again. Contexts (``train_c``, ...): an image set's class labels with ``labels=True``; a
    table's ``data.context_columns``, split off its rows.

    Example:
        >>> splits = load_splits(DataConfig(name="moons", n_train=1000, n_test=500))
        >>> splits.train.shape, splits.val.shape, splits.test.shape  # 10% of train held out
        ((900, 2), (100, 2), (500, 2))
        >>> np.array_equal(splits.train, load_splits(DataConfig(name="moons", n_train=1000, n_test=500)).train)
        True
    """
    n_levels, names = 0, ()
    if cfg.name in IMAGE_DATASETS:
        images = load_images(cfg)
        train, test, n_levels = images.train, images.test, images.n_levels
        if cfg.test_path:
            test = read_held_out(cfg.test_path, tuple(train.shape[1:]), n_levels, cfg.image_size)
    elif cfg.name in TOY_DENSITIES:
        train = make_toy(cfg.name, cfg.n_train, cfg.seed, cfg.noise)
        test = make_toy(cfg.name, cfg.n_test, cfg.seed + 1, cfg.noise)
    elif cfg.name in CONTEXT_TOYS:
        train = make_context_toy(cfg.name, cfg.n_train, cfg.seed, cfg.noise)
        test = make_context_toy(cfg.name, cfg.n_test, cfg.seed + 1, cfg.noise)
    elif cfg.name == "file":
        source = source or read_source(cfg)
        train, test, names = source.pool.astype(np.float32), source.test.astype(np.float32), source.names
    else:
        raise UserError(f"unknown dataset {cfg.name!r}; known: {', '.join([*TOY_DENSITIES, *CONTEXT_TOYS])}, "
                        f"file, {', '.join(IMAGE_DATASETS)}")
    (train, train_c), (test, test_c) = _contexts(cfg, train, test, n_levels, labels)
    n_val = int(round(cfg.val_fraction * len(train)))
    order = np.random.RandomState(cfg.seed + 2).permutation(len(train))
    splits = Splits(train=train[order[n_val:]], val=train[order[:n_val]], test=test, n_levels=n_levels,
                    names=tuple(n for j, n in enumerate(names) if j not in cfg.context_columns))
    if train_c is not None:
        splits.train_c, splits.val_c, splits.test_c = train_c[order[n_val:]], train_c[order[:n_val]], test_c
        splits.n_classes = n_classes_of(train_c, test_c) if n_levels and train_c.ndim == 1 else 0
    return splits


def _contexts(cfg: DataConfig, train: np.ndarray, test: np.ndarray, n_levels: int,
              labels: bool) -> tuple[tuple[np.ndarray, np.ndarray | None], tuple[np.ndarray, np.ndarray | None]]:
    """``((train, train context), (test, test context))``: an image .npz's context arrays (always: an
    image set with them is conditional on them), its class labels (``labels``), a table's
    ``data.context_columns`` split off, or no context."""
    if n_levels and cfg.context_columns:
        raise UserError("data.context_columns is for tables of vectors; an image set's context is its class "
                        "labels (--set model.conditional=true)")
    if cfg.context_columns:
        where = cfg.path or cfg.name
        return split_columns(train, cfg.context_columns, where), split_columns(test, cfg.context_columns, where)
    contexts = image_contexts(cfg) if n_levels else None
    if not (labels and n_levels) and contexts is None:
        return (train, None), (test, None)
    if cfg.test_path:
        raise UserError("a conditional image run takes its test contexts from the dataset; data.test_path "
                        "(images without them) cannot be its test split")
    train_c, test_c = contexts or image_labels(cfg)
    what = "class labels" if contexts is None else "context rows"
    for name, x, y in (("training", train, train_c), ("test", test, test_c)):
        if len(x) != len(y):
            raise UserError(f"{cfg.path or cfg.name}: {len(x)} {name} images but {len(y)} {what}")
    return (train, train_c), (test, test_c)


def read_held_out(path: str | Path, shape: tuple[int, ...], n_levels: int = 0, image_size: int = 0) -> np.ndarray:
    """The user's examples in ``path`` (``data.test_path``, ``evaluate --data``, ``score``) checked
    against the run's example ``shape``: vectors (``n_levels`` 0) from .npy/.npz/.csv with the run's
    columns; images from a folder (resized to ``image_size`` when set), or an .npy or .npz (``x_test``,
    ``x`` or its one array) of integer pixels ``0 .. n_levels - 1`` laid out ``[N, H, W]``, ``[N, C, H,
    W]`` or ``[N, H, W, C]``. Anything else: one-line ``UserError``.

    Example:
        >>> np.save(tmp / "test.npy", np.zeros((5, 3), np.float32))
        >>> read_held_out(tmp / "test.npy", (3,)).shape
        (5, 3)
        >>> read_held_out(tmp / "test.npy", (4,))
        Traceback (most recent call last):
        ...
        realnvp.errors.UserError: .../test.npy: the run was trained on 4 columns, the file has 3
    """
    path = Path(path)
    if not n_levels:
        return read_vectors(path, expected_dim=shape[0])
    if path.is_dir():
        images = read_image_folder(path, image_size)
    elif not path.is_file():
        raise UserError(f"data file not found: {path}")
    elif path.suffix.lower() in (".npy", ".npz"):
        images = to_nchw(read_pixel_file(path), str(path), shape)
    else:
        raise UserError(f"{path}: an image run takes a folder of images or an .npy/.npz of integer pixels")
    if tuple(images.shape[1:]) != tuple(shape):
        raise UserError(f"{path}: the run takes images of shape {tuple(shape)} [C, H, W], "
                        f"got {tuple(images.shape[1:])}")
    return check_levels(images, n_levels, str(path))
