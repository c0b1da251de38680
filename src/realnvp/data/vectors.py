"""The user's own tables from .npy, .npz or .csv files, read once into a ``Table`` (values, column
names, rows dropped for missing cells), sizes checked before anything is read in full, every problem
a one-line ``UserError`` naming the file, line and column."""

from __future__ import annotations

import csv
import io
import math
import os
import stat
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NamedTuple

import numpy as np

from realnvp.errors import UserError

SUFFIXES = (".npy", ".npz", ".csv")
MISSING_POLICIES = ("refuse", "drop")
# Cells read as missing (R's NA, pandas' empty cell and NaN, SQL's NULL, the UCI tables' "?").
MISSING_MARKERS = frozenset({"", "na", "n/a", "nan", "null", "none", "?"})
# Limits on what is read, each checked before the read it bounds (docs/bad-input.md lists them all); the
# environment variable named beside a limit raises it (there is no config where score and evaluate read).
MAX_FILE_MB = 1024  # REALNVP_MAX_FILE_MB: a table file's size on disk (os.stat, nothing read)
MAX_CELLS = 200_000_000  # REALNVP_MAX_CELLS: cells of a table (float64: 8 bytes each), from a header or estimate
MAX_COLUMNS = 10_000  # fixed: a full-covariance first layer is quadratic in the columns
MAX_LINE_CHARS = 10_000_000  # fixed: a CSV's first line (10,000 columns of 1,000 characters)


def limit(variable: str, default: int) -> int:
    """``default``, or the positive whole number the environment variable ``variable`` holds.

    Example:
        >>> limit("REALNVP_NO_SUCH_LIMIT", 5)
        5
    """
    raw = os.environ.get(variable, "").strip()
    if not raw:
        return default
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        value = 0
    if value <= 0:
        raise UserError(f"{variable} must be a positive whole number, got {raw!r}")
    return value


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
    if not os.path.exists(path):  # os.path: a name too long for the file system is not found, not a traceback
        raise UserError(f"data file not found: {path}")
    if path.is_dir():
        raise UserError(f"expected a data file, got a directory: {path}")
    if not path.is_file():  # a fifo or a device: reading it would wait for a writer, or never end
        raise UserError(f"expected a regular data file, got {_file_kind(path)}: {path}")
    if path.suffix.lower() not in SUFFIXES:
        raise UserError(f"unsupported data file {path.name!r}: expected one of {', '.join(SUFFIXES)}")
    check_file_size(path)
    try:
        with warnings.catch_warnings():  # numpy's own warnings (an empty file) would be a second line
            warnings.simplefilter("ignore")
            if path.suffix.lower() == ".csv":
                return _checked_table(*_read_csv(path, missing), path, missing)
            return _checked_table(_read_array(path), None, path, missing)
    except UserError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, csv.Error, MemoryError) as exc:
        raise UserError(f"cannot read {path}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None


def _file_kind(path: Path) -> str:
    """What a path that is neither a folder nor a regular file is, in words."""
    mode = path.stat().st_mode
    return ("a named pipe (fifo)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file")


def check_file_size(path: Path) -> None:
    """Refuse a table file larger than ``MAX_FILE_MB`` from its size on disk, before a byte is read (a
    sparse 2 GB file would otherwise be read whole first).

    Example:
        >>> with (tmp / "big.csv").open("wb") as f:
        ...     _ = f.truncate(1025 * 2**20)
        >>> check_file_size(tmp / "big.csv")
        Traceback (most recent call last):
        ...
        realnvp.errors.UserError: .../big.csv: 1,025 MB is more than the 1,024 MB realnvp reads from a table file; ...
    """
    most = limit("REALNVP_MAX_FILE_MB", MAX_FILE_MB)
    size = path.stat().st_size
    if size > most * 2**20:
        raise UserError(f"{path}: {math.ceil(size / 2**20):,} MB is more than the {most:,} MB realnvp reads from a "
                        f"table file; subsample the rows, or set REALNVP_MAX_FILE_MB to allow more")


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
    most = limit("REALNVP_MAX_CELLS", MAX_CELLS)
    if rows * columns > most:
        raise UserError(f"{path}: {rows} x {columns} = {rows * columns:,} cells is more than the {most:,} "
                        f"realnvp reads; subsample the rows, or set REALNVP_MAX_CELLS to allow more")


class Claim(NamedTuple):
    """What an .npy header (a file's, or an .npz member's) claims: ``shape`` and ``dtype``, with the
    bytes of data that follow it (``held``) and where it is (``origin``, for messages).

    Example:
        >>> Claim((3, 2), np.dtype(np.float64), 40, "t.npy").check_held()
        Traceback (most recent call last):
        ...
        realnvp.errors.UserError: t.npy: corrupt or truncated: its header claims shape (3, 2) of float64 (48 bytes), ...
    """

    shape: tuple[int, ...]
    dtype: np.dtype
    held: int
    origin: str

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    def check_held(self) -> None:
        """Refuse a claim larger than the data after it: numpy would allocate the claim before reading."""
        if self.nbytes > self.held:
            raise UserError(f"{self.origin}: corrupt or truncated: its header claims shape {self.shape} of "
                            f"{self.dtype} ({self.nbytes:,} bytes), the file holds {max(self.held, 0):,} bytes of data")


def _claim(f: BinaryIO, available: int, origin: str) -> Claim:
    """The claim of the .npy header at ``f``, followed by ``available`` bytes in all."""
    start = f.tell()
    version = np.lib.format.read_magic(f)
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, _, dtype = read_header(f)
    return Claim(tuple(int(n) for n in shape), dtype, available - (f.tell() - start), origin)


def array_claims(path: Path) -> dict[str, Claim]:
    """Each array's ``Claim`` from the header of an .npy (key ``""``) or of an .npz's .npy members (keys
    as ``np.load`` names them); nothing else is read.

    Example:
        >>> np.savez(tmp / "c.npz", x=np.zeros((4, 2), np.float32))
        >>> claim = array_claims(tmp / "c.npz")["x"]
        >>> claim.shape, claim.dtype, claim.nbytes, claim.held
        ((4, 2), dtype('float32'), 32, 32)
    """
    if path.suffix.lower() == ".npy":
        with path.open("rb") as f:
            return {"": _claim(f, path.stat().st_size, str(path))}
    claims = {}
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if info.filename.endswith(".npy"):
                name = info.filename[:-4]
                with archive.open(info) as f:
                    claims[name] = _claim(f, info.file_size, f"{path}:{name}")
    return claims


def _check_claim(claim: Claim, path: Path) -> None:
    """Refuse a table by its header, before numpy allocates it: not 1-D or 2-D, too large, or truncated."""
    if len(claim.shape) not in (1, 2):
        raise UserError(f"{path}: expected a 2-D table [examples, features], got shape {claim.shape}")
    _check_size(claim.shape[0], claim.shape[1] if len(claim.shape) == 2 else 1, path)
    claim.check_held()


def _read_array(path: Path) -> np.ndarray:
    """An .npy's array or an .npz's one array (or its ``x``), its header checked first."""
    claims = array_claims(path)
    if path.suffix.lower() == ".npy":
        _check_claim(claims[""], path)
        return np.load(path, allow_pickle=False)
    with np.load(path, allow_pickle=False) as archive:
        names = list(archive.keys())
        if "x" not in names and len(names) != 1:
            raise UserError(f"{path}: an .npz must hold one array or one named 'x'; found {names or 'none'}")
        name = "x" if "x" in names else names[0]
        if name not in claims:  # np.load hands other members over as bytes
            raise UserError(f"{path}: member {name!r} is not an array (an .npz holds .npy files)")
        _check_claim(claims[name], path)
        return archive[name]


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
        line = f.readline(MAX_LINE_CHARS + 1)
        _check_text(line, 1, path)
        if len(line) > MAX_LINE_CHARS:
            raise UserError(f"{path}: the first line is longer than {MAX_LINE_CHARS:,} characters; a CSV has one "
                            f"row per line")
        first = next(csv.reader([line]), [])
        _check_size(max(1, path.stat().st_size // max(1, 2 * len(first))), len(first), path)
        has_header = bool(first) and not all(_is_number(field) for field in first)
        if not has_header:
            f.seek(0)
        text = f.read()
    _check_text(text, 1 + has_header, path)
    names = [name.strip() or f"x{j}" for j, name in enumerate(first)] if has_header else None
    try:  # the fast path: numpy's parser; quoted, missing or text cells take the careful one below
        # comments=None: '#' inside a cell ('1.#IND') is text, not the start of a comment that hides the rest
        return np.loadtxt(io.StringIO(text), delimiter=",", ndmin=2, dtype=np.float64, comments=None), names
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


def _check_text(text: str, first_line: int, path: Path) -> None:
    """Refuse CSV text holding a NUL character (a binary or sparse file), naming its line."""
    at = text.find("\x00")
    if at >= 0:
        raise UserError(f"{path}: line {first_line + text.count(chr(10), 0, at)} holds a NUL byte: not CSV text "
                        f"(a binary or sparse file?)")


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
