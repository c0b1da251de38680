"""The user's own tables from .npy, .npz or .csv files, read once into a ``Table`` (values, column
names, rows dropped for missing cells), sizes checked before anything is read in full, every problem
a one-line ``UserError`` naming the file, line and column."""

from __future__ import annotations

import csv
import io
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from realnvp.errors import UserError

SUFFIXES = (".npy", ".npz", ".csv")
MISSING_POLICIES = ("refuse", "drop")
# Cells read as missing (R's NA, pandas' empty cell and NaN, SQL's NULL, the UCI tables' "?").
MISSING_MARKERS = frozenset({"", "na", "n/a", "nan", "null", "none", "?"})
# Tables larger than this many cells (float64: 8 bytes each) are refused before they are read.
MAX_CELLS = 200_000_000
MAX_COLUMNS = 10_000


@dataclass(frozen=True)
class Table:
    """A numeric table read from one file: float64 ``values [N, D]``, the header's column ``names``
    (``x0, x1, ...`` without one) and how many rows ``dropped`` had a missing cell.

    Example:
        >>> (tmp / "t.csv").write_text("a,b\\n1,2\\nNA,4\\n5,6\\n")
        17
        >>> table = read_table(tmp / "t.csv", missing="drop")
        >>> table.values.tolist(), table.names, table.dropped
        ([[1.0, 2.0], [5.0, 6.0]], ('a', 'b'), 1)
    """

    values: np.ndarray
    names: tuple[str, ...]
    path: str
    dropped: int = 0
    has_header: bool = False

    @property
    def shape(self) -> tuple[int, int]:
        return self.values.shape


def read_vectors(path: str | Path, expected_dim: int | None = None) -> np.ndarray:
    """A finite float32 ``[N, D]`` array from a file; ``expected_dim`` checks D against a trained run.

    Example:
        >>> (tmp / "v.csv").write_text("a,b\\n1,2\\n3,4\\n")
        12
        >>> read_vectors(tmp / "v.csv", expected_dim=2)
        array([[1., 2.],
               [3., 4.]], dtype=float32)
    """
    table = read_table(path)
    if expected_dim is not None and table.shape[1] != expected_dim:
        raise UserError(f"{path}: the run was trained on {expected_dim} columns, the file has {table.shape[1]}")
    return table.values.astype(np.float32)


def read_table(path: str | Path, missing: str = "refuse") -> Table:
    """The table in ``path``; rows with a missing cell are refused (naming the file's line and the
    column) or, with ``missing="drop"``, dropped and counted. An .npz must hold one array or one
    named ``x``; a .csv may have one header row (a UTF-8 byte-order mark is ignored).

    Example:
        >>> _ = (tmp / "m.csv").write_text("a,b\\n1,2\\n3,\\n")
        >>> read_table(tmp / "m.csv")
        Traceback (most recent call last):
        ...
        realnvp.errors.UserError: .../m.csv: 1 rows have missing cells, first at line 3, column 'b'; ...
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
            if path.suffix.lower() == ".csv":
                return _checked_table(*_read_csv(path, missing), path, missing)
            return _checked_table(_read_array(path), None, path, missing)
    except UserError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, csv.Error) as exc:
        raise UserError(f"cannot read {path}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None


def _checked_table(array: np.ndarray, names: list[str] | None, path: Path, missing: str) -> Table:
    """``array`` as a ``Table``: 2-D, real, non-empty, finite; NaN cells are missing (``missing``)."""
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
    array = np.asarray(array, dtype=np.float64)
    header = names is not None
    names = names or [f"x{j}" for j in range(array.shape[1])]
    gaps = np.isnan(array)
    dropped = 0
    if gaps.any():
        if missing != "drop":
            row, col = np.argwhere(gaps)[0]
            where = f"line {row + 1 + header}" if path.suffix.lower() == ".csv" else f"row {row}"
            raise UserError(f"{path}: {int(gaps.any(1).sum())} rows have missing cells, first at {where}, column "
                            f"{names[col]!r}; fill them, or --set data.missing=drop to drop those rows")
        keep = ~gaps.any(1)
        dropped, array = int((~keep).sum()), array[keep]
        if not len(array):
            raise UserError(f"{path}: every row has a missing cell; nothing is left to train on")
    _check_finite(array, path, names)
    return Table(array, tuple(names), str(path), dropped, header)


def _check_finite(array: np.ndarray, path: Path, names: list[str]) -> None:
    """Inf, or values too large for float32 (the model's precision), are a ``UserError`` naming the
    first one; checked before any cast, which would turn a large value into Inf with a warning."""
    bad = ~np.isfinite(array)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise UserError(f"{path}: {int(bad.sum())} infinite values, first at row {row}, column {names[col]!r}")
    huge = np.abs(array) > np.finfo(np.float32).max
    if huge.any():
        row, col = np.argwhere(huge)[0]
        raise UserError(f"{path}: {int(huge.sum())} values beyond float32's range (±3.4e38), first at row {row}, "
                        f"column {names[col]!r} ({float(array[row, col]):.3g}); rescale the data")


def _check_size(rows: int, columns: int, path: Path) -> None:
    """Refuse a table too large to hold before any of it is read (``MAX_CELLS``, ``MAX_COLUMNS``)."""
    if columns > MAX_COLUMNS:
        raise UserError(f"{path}: {columns} columns; realnvp models at most {MAX_COLUMNS} (a full-covariance "
                        f"first layer is quadratic in them)")
    if rows * columns > MAX_CELLS:
        raise UserError(f"{path}: {rows} x {columns} = {rows * columns:,} cells is more than the {MAX_CELLS:,} "
                        f"realnvp reads; subsample the rows")


def _read_array(path: Path) -> np.ndarray:
    """An .npy's array (its header's shape checked first) or an .npz's one array (or its ``x``)."""
    if path.suffix.lower() == ".npy":
        with path.open("rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                np.lib.format.read_array_header_2_0
            shape = read_header(f)[0]
        if len(shape) in (1, 2):
            _check_size(int(shape[0]), int(shape[1]) if len(shape) == 2 else 1, path)
        return np.load(path, allow_pickle=False)
    with np.load(path, allow_pickle=False) as archive:
        names = list(archive.keys())
        if "x" in names:
            return archive["x"]
        if len(names) != 1:
            raise UserError(f"{path}: an .npz must hold one array or one named 'x'; found {names or 'none'}")
        return archive[names[0]]


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return field.strip().lower() in MISSING_MARKERS
    return True


def _read_csv(path: Path, missing: str) -> tuple[np.ndarray, list[str] | None]:
    """A CSV's numbers (missing cells as NaN) and its header's names (None without a header: a first
    line whose fields are all numbers or missing markers is data)."""
    with path.open(encoding="utf-8-sig", newline="") as f:  # utf-8-sig: a byte-order mark is not data
        first = next(csv.reader([f.readline()]), [])
        _check_size(max(1, path.stat().st_size // max(1, 2 * len(first))), len(first), path)
        has_header = bool(first) and not all(_is_number(field) for field in first)
        if not has_header:
            f.seek(0)
        text = f.read()
    names = [name.strip() or f"x{j}" for j, name in enumerate(first)] if has_header else None
    try:  # the fast path: numpy's parser; quoted, missing or text cells take the careful one below
        return np.loadtxt(io.StringIO(text), delimiter=",", ndmin=2, dtype=np.float64), names
    except ValueError:
        pass
    rows: list[list[float]] = []
    width = len(first)
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1 + has_header):
        if not row:
            continue
        if len(row) != width:
            raise UserError(f"{path}: line {number} has {len(row)} fields, the first line has {width}")
        rows.append([_cell(field, path, number, names, j) for j, field in enumerate(row)])
    return np.array(rows, dtype=np.float64).reshape(len(rows), width), names


def _cell(field: str, path: Path, line: int, names: list[str] | None, column: int) -> float:
    """One CSV cell as a float: NaN for a missing marker; text is a ``UserError`` naming its place."""
    try:
        return float(field)
    except ValueError:
        if field.strip().lower() in MISSING_MARKERS:
            return float("nan")
        name = repr(names[column]) if names else f"{column + 1} (counting from 1)"
        raise UserError(f"{path}: line {line}, column {name} holds {field.strip()[:40]!r}, not a number; "
                        f"realnvp models numeric columns only (remove or encode that column)") from None
