"""The user's own vectors from .npy, .npz or .csv files, validated with one-line errors."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from realnvp.errors import UserError

SUFFIXES = (".npy", ".npz", ".csv")


def read_vectors(path: str | Path, expected_dim: int | None = None) -> np.ndarray:
    """A finite float32 ``[N, D]`` array from a file; ``expected_dim`` checks D against a trained run.

    An .npz must hold exactly one array or one named ``x``; a .csv may have one header row.

    Example:
        >>> (tmp / "v.csv").write_text("a,b\\n1,2\\n3,4\\n")
        12
        >>> read_vectors(tmp / "v.csv", expected_dim=2)
        array([[1., 2.],
               [3., 4.]], dtype=float32)
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"data file not found: {path}")
    if path.is_dir():
        raise UserError(f"expected a data file, got a directory: {path}")
    if path.suffix.lower() not in SUFFIXES:
        raise UserError(f"unsupported data file {path.name!r}: expected one of {', '.join(SUFFIXES)}")
    try:
        array = _read(path)
    except UserError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise UserError(f"cannot read {path}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise UserError(f"{path}: expected a 2-D table [examples, features], got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise UserError(f"{path}: expected real numbers, got dtype {array.dtype}")
    if len(array) == 0:
        raise UserError(f"{path}: the file holds no examples")
    array = array.astype(np.float32)
    bad = ~np.isfinite(array)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise UserError(f"{path}: {int(bad.sum())} non-finite values (NaN/Inf), first at row {row}, column {col}")
    if expected_dim is not None and array.shape[1] != expected_dim:
        raise UserError(f"{path}: the run was trained on {expected_dim} columns, the file has {array.shape[1]}")
    return array


def _read(path: Path) -> np.ndarray:
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return np.load(path, allow_pickle=False)
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            names = list(archive.keys())
            if "x" in names:
                return archive["x"]
            if len(names) != 1:
                raise UserError(f"{path}: an .npz must hold one array or one named 'x'; found {names or 'none'}")
            return archive[names[0]]
    with path.open() as f:
        first = f.readline()
    skip = 1 if first and any(c.isalpha() and c not in "eEnN" for c in first) else 0
    return np.loadtxt(path, delimiter=",", skiprows=skip, ndmin=2)
