"""The user's own vectors from .npy, .npz or .csv files, validated with one-line errors."""

from __future__ import annotations

import warnings
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
        with warnings.catch_warnings():  # numpy's own warnings (an empty file) would be a second line
            warnings.simplefilter("ignore")
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
    if array.shape[1] == 0:
        raise UserError(f"{path}: the table has no columns (shape {array.shape})")
    _check_finite(array, path)
    array = array.astype(np.float32)
    if expected_dim is not None and array.shape[1] != expected_dim:
        raise UserError(f"{path}: the run was trained on {expected_dim} columns, the file has {array.shape[1]}")
    return array


def _check_finite(array: np.ndarray, path: Path) -> None:
    """NaN/Inf, or values too large for float32 (the model's precision), are a ``UserError`` naming
    the first one; checked before the cast, which would turn a large value into Inf with a warning."""
    bad = ~np.isfinite(array)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise UserError(f"{path}: {int(bad.sum())} non-finite values (NaN/Inf), first at row {row}, column {col}")
    huge = np.abs(array) > np.finfo(np.float32).max
    if huge.any():
        row, col = np.argwhere(huge)[0]
        raise UserError(f"{path}: {int(huge.sum())} values beyond float32's range (±3.4e38), first at row {row}, "
                        f"column {col} ({float(array[row, col]):.3g}); rescale the data")


def _is_header(line: str) -> bool:
    """Whether a CSV's first line names its columns: some field is not a number (``e,n`` is a header,
    ``1e3,nan`` is data)."""
    for field in line.strip().split(","):
        try:
            float(field)
        except ValueError:
            return True
    return False


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
    with path.open(encoding="utf-8") as f:
        first = f.readline()
    skip = 1 if first.strip() and _is_header(first) else 0
    return np.loadtxt(path, delimiter=",", skiprows=skip, ndmin=2)
