"""Contexts for conditional flows: the class labels of image datasets, in the order ``load_images``
reads the images (digits' targets, MNIST's label IDX files, CIFAR-10's batch labels, an .npz's
``y_train`` / ``y_test``, a folder's class sub-folders), and the context columns of a vector table.
Every problem is a one-line ``UserError`` naming the file."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.datasets import load_digits

from realnvp.config import DataConfig
from realnvp.data.image_files import _ArrayUnpickler, _image_paths, first_line, load_checked, read_idx
from realnvp.data.images import data_root, split_seeded
from realnvp.errors import UserError

MAX_CLASSES = 10000


def _checked(labels: np.ndarray, origin: str) -> np.ndarray:
    """Labels as int64 ``[N]``: integers ``0 .. MAX_CLASSES - 1``, else a ``UserError``."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or not (np.issubdtype(labels.dtype, np.integer) or np.issubdtype(labels.dtype, np.floating)):
        raise UserError(f"{origin}: class labels must be a 1-D array of integers, got {labels.dtype} "
                        f"of shape {labels.shape}")
    if np.issubdtype(labels.dtype, np.floating) and not (np.isfinite(labels).all() and
                                                         np.array_equal(labels, np.round(labels))):
        raise UserError(f"{origin}: class labels must be whole numbers 0, 1, 2, ...")
    if len(labels) and (labels.min() < 0 or labels.max() >= MAX_CLASSES):
        raise UserError(f"{origin}: class labels must lie in 0..{MAX_CLASSES - 1}, found "
                        f"{labels.min()!r}..{labels.max()!r}")
    return labels.astype(np.int64)


def _npz_labels(path: Path, cfg: DataConfig) -> tuple[np.ndarray, np.ndarray]:
    try:
        with load_checked(path) as archive:
            if "x_train" not in archive and "x" in archive and "y" in archive:  # split with the images
                return split_seeded(_checked(archive["y"], f"{path}:y"), cfg)
            missing = [k for k in ("y_train", "y_test") if k not in archive]
            if missing:
                raise UserError(f"{path}: a conditional model needs class labels y_train and y_test in the .npz "
                                f"beside x_train and x_test; missing {', '.join(missing)}")
            return _checked(archive["y_train"], f"{path}:y_train"), _checked(archive["y_test"], f"{path}:y_test")
    except UserError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise UserError(f"cannot read {path}: {first_line(exc)}") from None


def _mnist_labels(root: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    folders = [root / ("MNIST" if name == "mnist" else "FashionMNIST") / "raw", root]
    out = []
    for part in ("train", "t10k"):
        stem = f"{part}-labels-idx1-ubyte"
        found = [p for f in folders for p in (f / stem, f / f"{stem}.gz") if p.is_file()]
        if not found:
            raise UserError(f"{name} labels not found: put {stem}.gz beside the images in {folders[0]} "
                            f"(or pass --data FILE.npz with x_train, y_train, x_test, y_test)")
        out.append(_checked(read_idx(found[0]), str(found[0])))
    return out[0], out[1]


def read_cifar_labels(path: Path) -> np.ndarray:
    """The class labels (0..9) of one CIFAR-10 python batch, as int64 ``[N]``.

    Example:
        >>> _ = (tmp / "batch").write_bytes(pickle.dumps({b"labels": [3, 1]}, protocol=2))
        >>> read_cifar_labels(tmp / "batch").tolist()
        [3, 1]
    """
    try:
        with path.open("rb") as f:
            batch = _ArrayUnpickler(f, encoding="bytes").load()
        labels = batch[b"labels"] if b"labels" in batch else batch["labels"]
    except (OSError, EOFError, pickle.UnpicklingError, KeyError, TypeError, ValueError, AttributeError,
            IndexError) as exc:
        raise UserError(f"{path}: no labels in this CIFAR-10 python batch ({first_line(exc)})") from None
    return _checked(np.asarray(labels), str(path))


def _cifar_labels(root: Path) -> tuple[np.ndarray, np.ndarray]:
    folder = root / "cifar-10-batches-py" if (root / "cifar-10-batches-py").is_dir() else root
    train = np.concatenate([read_cifar_labels(folder / f"data_batch_{i}") for i in range(1, 6)])
    return train, read_cifar_labels(folder / "test_batch")


def folder_classes(folder: Path) -> tuple[np.ndarray, list[str]]:
    """One label per image of ``folder`` in ``read_image_folder``'s order, from the sub-folder it is
    in (classes numbered in sorted name order), and the class names.

    Example:
        >>> from PIL import Image
        >>> for name in ("cat/1.png", "cat/2.png", "dog/1.png"):
        ...     (tmp / "pets" / name).parent.mkdir(parents=True, exist_ok=True)
        ...     Image.new("L", (4, 4)).save(tmp / "pets" / name)
        >>> labels, names = folder_classes(tmp / "pets")
        >>> labels.tolist(), names
        ([0, 0, 1], ['cat', 'dog'])
    """
    parts = [p.relative_to(folder).parts for p in _image_paths(folder)]
    loose = [Path(*p) for p in parts if len(p) < 2]
    if loose:
        raise UserError(f"{folder}: a conditional model needs one sub-folder per class, but {loose[0]} is not in "
                        f"a sub-folder")
    names = sorted({p[0] for p in parts})
    index = {name: i for i, name in enumerate(names)}
    return np.array([index[p[0]] for p in parts], np.int64), names


def image_labels(cfg: DataConfig) -> tuple[np.ndarray, np.ndarray]:
    """``(train_labels, test_labels)`` of the image dataset ``cfg`` names, each in the order
    ``load_images`` gives its images (int64 ``[N]``).

    Example:
        >>> train, test = image_labels(DataConfig(name="digits"))
        >>> train.shape, test.shape, sorted(set(train.tolist())) == list(range(10))
        ((1437,), (360,), True)
    """
    path = Path(cfg.path)
    if cfg.path.lower().endswith(".npz"):
        return _npz_labels(path, cfg)
    if cfg.path.lower().endswith(".npy"):
        raise UserError(f"{cfg.path}: an .npy holds no class labels; a conditional model needs an .npz with "
                        f"x_train, y_train, x_test and y_test")
    if cfg.name == "digits":
        return split_seeded(_checked(load_digits().target, "digits"), cfg)
    root = data_root(cfg)
    if cfg.name in ("mnist", "fashion-mnist"):
        return _mnist_labels(root, cfg.name)
    if cfg.name == "cifar10":
        return _cifar_labels(root)
    if cfg.name == "folder":
        return split_seeded(folder_classes(root)[0], cfg)
    raise UserError(f"{cfg.name} has no class labels here: a conditional image model needs digits, mnist, "
                    f"fashion-mnist, cifar10, a folder with one sub-folder per class, or an .npz with y_train/y_test")


def split_columns(table: np.ndarray, columns: tuple[int, ...], origin: str) -> tuple[np.ndarray, np.ndarray]:
    """``(x, context)``: the table's other columns (modelled) and its ``columns`` (the context), in order.

    Example:
        >>> x, c = split_columns(np.arange(8.0).reshape(2, 4), (0, 3), "t.csv")
        >>> x.tolist(), c.tolist()
        ([[1.0, 2.0], [5.0, 6.0]], [[0.0, 3.0], [4.0, 7.0]])
    """
    width = table.shape[1]
    bad = [c for c in columns if not 0 <= c < width]
    if bad:
        raise UserError(f"{origin}: data.context_columns names column {bad[0]}, but the table has columns "
                        f"0..{width - 1}")
    if len(set(columns)) != len(columns):
        raise UserError(f"{origin}: data.context_columns names a column twice: {list(columns)}")
    rest = [c for c in range(width) if c not in columns]
    if len(rest) < 2:
        raise UserError(f"{origin}: data.context_columns leaves {len(rest)} column to model; a flow needs at least 2")
    return np.ascontiguousarray(table[:, rest]), np.ascontiguousarray(table[:, list(columns)])


def n_classes_of(*labels: np.ndarray) -> int:
    """The number of classes labels ``0 .. n - 1`` imply: the largest label plus one.

    Example:
        >>> n_classes_of(np.array([0, 3]), np.array([9]))
        10
    """
    return int(max((int(y.max()) for y in labels if len(y)), default=-1)) + 1



def checked_contexts(values: np.ndarray, origin: str, width: int | None = None) -> np.ndarray:
    """Real context rows as float32 ``[N, D]`` (``D`` = ``width`` when given; a 1-D array is one row of
    ``width`` values, else one value per row): numbers, at least one row, finite; else a ``UserError``.

    Example:
        >>> checked_contexts(np.zeros((4, 3)), "c.npy", 3).shape, checked_contexts(np.ones(3), "c.npy", 3).shape
        ((4, 3), (1, 3))
        >>> checked_contexts(np.zeros((4, 2)), "c.npy", 3)
        Traceback (most recent call last):
        ...
        realnvp.errors.UserError: c.npy: the run takes contexts of 3 values per row, the file has 2
    """
    values = np.asarray(values)
    if not (np.issubdtype(values.dtype, np.integer) or np.issubdtype(values.dtype, np.floating)) or values.ndim > 2:
        raise UserError(f"{origin}: contexts must be numbers in rows, [N, D]; got {values.dtype} of shape "
                        f"{values.shape}")
    if values.ndim < 2:
        values = values.reshape(1, -1) if width and width > 1 and values.size == width else values.reshape(-1, 1)
    if width is not None and values.shape[1] != width:
        raise UserError(f"{origin}: the run takes contexts of {width} values per row, the file has {values.shape[1]}")
    if not len(values):
        raise UserError(f"{origin}: no rows of context values")
    bad = np.flatnonzero(~np.isfinite(values).all(1))
    if len(bad):
        raise UserError(f"{origin}: context values must be finite numbers; row {bad[0]} holds NaN or Inf")
    return values.astype(np.float32)


def image_contexts(cfg: DataConfig) -> tuple[np.ndarray, np.ndarray] | None:
    """``(train contexts, test contexts)`` of an image .npz holding ``context_train`` and ``context_test``
    beside ``x_train`` / ``x_test`` (or ``context`` beside ``x``, split with the images), float32 ``[N, D]``
    in the images' order; None for any other dataset or an .npz without them.

    Example:
        >>> np.savez(tmp / "c.npz", x_train=np.zeros((3, 4, 4)), x_test=np.zeros((1, 4, 4)),
        ...          context_train=np.zeros((3, 2)), context_test=np.ones((1, 2)))
        >>> [c.shape for c in image_contexts(DataConfig(name="folder", path=str(tmp / "c.npz")))]
        [(3, 2), (1, 2)]
    """
    path = Path(cfg.path)
    if not cfg.path.lower().endswith(".npz") or not path.is_file():
        return None
    try:
        with load_checked(path) as archive:
            keys = set(archive.keys())
            if not keys & {"context", "context_train", "context_test"}:
                return None
            if "x_train" not in keys and "context" in keys:
                return split_seeded(checked_contexts(archive["context"], f"{path}:context"), cfg)
            if not {"context_train", "context_test"} <= keys:
                raise UserError(f"{path}: a context-conditional image set needs context_train and context_test "
                                f"beside x_train and x_test (or context beside x)")
            train, test = (checked_contexts(archive[k], f"{path}:{k}") for k in ("context_train", "context_test"))
    except UserError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise UserError(f"cannot read {path}: {first_line(exc)}") from None
    if train.shape[1] != test.shape[1]:
        raise UserError(f"{path}: context_train has {train.shape[1]} values per row, context_test {test.shape[1]}")
    return train, test


def read_context_file(path: Path, width: int) -> np.ndarray:
    """The context rows in ``path`` (.npy, .npz with ``context`` or one array, or .csv), checked by
    ``checked_contexts`` for ``width`` values per row: ``realnvp sample --context-file``.

    Example:
        >>> np.save(tmp / "ctx.npy", np.zeros((5, 10)))
        >>> read_context_file(tmp / "ctx.npy", 10).shape
        (5, 10)
    """
    if not path.is_file():
        raise UserError(f"context file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            values = load_checked(path)
        elif suffix == ".npz":
            with load_checked(path) as archive:
                names = list(archive.keys())
                name = "context" if "context" in names else names[0] if len(names) == 1 else None
                if name is None:
                    raise UserError(f"{path}: expected an array named context (or a single array); found {names}")
                values = archive[name]
        elif suffix in (".csv", ".txt"):
            values = np.loadtxt(path, delimiter=",", ndmin=2, dtype=np.float64)
        else:
            raise UserError(f"{path}: a context file is an .npy, .npz or .csv of rows of {width} values")
    except UserError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise UserError(f"cannot read {path}: {first_line(exc)}") from None
    return checked_contexts(values, str(path), width)


def context_file_rows(flow: Any, path: str | Path) -> np.ndarray:
    """``realnvp sample --context-file``: the rows of ``path`` for ``flow``, an image flow conditioned on a
    context vector (anything else is a ``UserError``), checked by ``read_context_file``.

    Example:
        >>> from realnvp.models import build_image_flow
        >>> flow = build_image_flow((1, 4, 4), feature_maps=4, n_blocks=1, context_dim=3)
        >>> np.save(tmp / "rows.npy", np.zeros((2, 3)))
        >>> context_file_rows(flow, tmp / "rows.npy").shape
        (2, 3)
    """
    if not (flow.context_size and len(flow.event_shape) == 3):
        raise UserError("--context-file is for image runs conditioned on a context vector (trained on an .npz "
                        "with context_train and context_test); this run takes --class or --context")
    return read_context_file(Path(path), flow.context_size)
