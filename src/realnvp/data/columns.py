"""What each column of a table is, so the flow models it as what it is: continuous (``real``), positive
(``log``: the flow sees ``log x``), inside (0, 1) (``logit``), or discrete on a lattice of step ``h``
(``integer``, ``count`` for non-negative counts seen through a log), dequantized in training as
images are (``x + h u``, ``u ~ U(0, 1)``) so the likelihood is a bound on the discrete one. Detected
from the data, said in one line, overridden by ``data.column_types``."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from realnvp.config import Config
from realnvp.errors import UserError

KINDS = ("real", "log", "logit", "integer", "count")
DISCRETE = ("integer", "count")
# Lattice steps tried for a discrete column: whole numbers, then 1 to 3 decimals.
STEPS = (1.0, 0.1, 0.01, 0.001)
# A transform (log, logit) is chosen only when it lowers the column's 1-D Gaussian NLL by this many nats.
MARGIN = 0.02
# A column whose spread is below this share of its size holds no information at float32 precision.
NEAR_CONSTANT = 1e-6


@dataclass(frozen=True)
class ColumnType:
    """One column's treatment: ``kind`` (one of ``KINDS``) and, for discrete kinds, its lattice ``step``.

    Example:
        >>> ColumnType.parse("integer@0.1"), str(ColumnType("count", 1.0))
        (ColumnType(kind='integer', step=0.1), 'count')
    """

    kind: str = "real"
    step: float = 0.0

    @property
    def discrete(self) -> bool:
        return self.kind in DISCRETE

    @property
    def transform(self) -> str:
        """The bijection the flow applies to this column first: ``log``, ``logit`` or ``none``."""
        return "log" if self.kind in ("log", "count") else "logit" if self.kind == "logit" else "none"

    def __str__(self) -> str:
        return self.kind if not self.discrete or self.step == 1.0 else f"{self.kind}@{self.step:g}"

    @classmethod
    def parse(cls, text: str) -> ColumnType:
        kind, _, step = text.strip().partition("@")
        if kind not in KINDS:
            raise UserError(f"data.column_types: unknown column type {text.strip()!r}; expected one of "
                            f"{', '.join(KINDS)} (integer and count take @STEP, e.g. integer@0.1)")
        try:
            value = float(step) if step else (1.0 if kind in DISCRETE else 0.0)
        except ValueError:
            value = -1.0
        if (kind in DISCRETE) != (value > 0) or not math.isfinite(value):
            raise UserError(f"data.column_types: {text.strip()!r}: only integer and count take a step > 0")
        return cls(kind, value)


def constant_columns(values: np.ndarray) -> list[int]:
    """The columns whose spread is zero or below ``NEAR_CONSTANT`` of their magnitude (float32 cannot
    tell their values apart), by index.

    Example:
        >>> constant_columns(np.array([[1.0, 5.0, 1e30], [2.0, 5.0, 1e30 + 1.0]]))
        [1, 2]
    """
    spread = values.max(0) - values.min(0)
    return [j for j in range(values.shape[1]) if spread[j] <= NEAR_CONSTANT * np.abs(values[:, j]).max()]


def _lattice_step(column: np.ndarray) -> float:
    """The coarsest step of ``STEPS`` every value is a whole multiple of (the values at least one step
    apart, the step well above float32's resolution at their size), 0.0 for a continuous column."""
    spread, size = float(column.max() - column.min()), float(np.abs(column).max())
    for step in STEPS:
        # At least one step apart, and a step float32 resolves (2**-23 relative) with room to spare: values
        # around 1e20 are whole numbers in floating point without being counts.
        if spread < step or size * 2.0**-23 > step / 16:
            continue
        ratio = column / step
        if np.all(np.abs(ratio - np.round(ratio)) <= 1e-6 * np.maximum(1.0, np.abs(ratio))):
            return step
    return 0.0


def _gaussian_nll(t: np.ndarray, log_jacobian: np.ndarray) -> float:
    """Mean NLL of a column under the 1-D ML Gaussian of its transform ``t`` (Jacobian counted)."""
    var = float(t.var())
    return math.inf if not var > 0 else 0.5 * math.log(2 * math.pi * math.e * var) - float(log_jacobian.mean())


def detect_type(column: np.ndarray, seed: int = 0) -> ColumnType:
    """A column's type from its values: discrete when on a lattice (``_lattice_step``), then ``log``
    (positive) or ``logit`` (inside (0, 1)) when that lowers its 1-D Gaussian NLL by ``MARGIN``.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> str(detect_type(rng.lognormal(size=500))), str(detect_type(rng.normal(size=500)))
        ('log', 'real')
        >>> counts, rounded = rng.poisson(3.0, size=500).astype(float), np.round(rng.normal(size=500), 1)
        >>> str(detect_type(counts)), str(detect_type(rounded))
        ('integer', 'integer@0.1')
    """
    step = _lattice_step(column)
    x = column + step * np.random.default_rng(seed).random(len(column))  # dequantized: a density exists
    zeros = np.zeros_like(x)
    scores = {"integer" if step else "real": _gaussian_nll(x, zeros)}
    if x.min() > 0:
        scores["count" if step else "log"] = _gaussian_nll(np.log(x), -np.log(x))
    if not step and x.min() > 0 and x.max() < 1:
        scores["logit"] = _gaussian_nll(np.log(x) - np.log1p(-x), -np.log(x) - np.log1p(-x))
    base = next(iter(scores))
    best = min(scores, key=scores.get)
    kind = best if scores[best] < scores[base] - MARGIN else base
    return ColumnType(kind, step)


def resolve_types(spec: str, values: np.ndarray, names: tuple[str, ...]) -> tuple[ColumnType, ...]:
    """Each column's type: detected (``spec="auto"``), or given: one type per column
    (``real,log,integer``), or ``NAME=TYPE`` items over the detected ones (``price=real``).

    Example:
        >>> x = np.array([[1.0, 0.5], [2.0, 1.5], [3.0, 2.25]])
        >>> [str(t) for t in resolve_types("a=real", x, ("a", "b"))]  # b: multiples of 0.01
        ['real', 'integer@0.01']
    """
    spec = spec.strip()
    items = [item.strip() for item in spec.split(",") if item.strip()]
    if spec != "auto" and items and all("=" not in item for item in items):
        if len(items) != len(names):
            raise UserError(f"data.column_types names {len(items)} types for a table of {len(names)} columns")
        types = tuple(ColumnType.parse(item) for item in items)
    else:
        types = tuple(detect_type(values[:, j]) for j in range(values.shape[1]))
        given = dict(item.split("=", 1) for item in items if item != "auto")
        unknown = sorted(set(given) - set(names))
        if unknown:
            raise UserError(f"data.column_types: no column named {unknown[0]!r}; the columns are {', '.join(names)}")
        types = tuple(ColumnType.parse(given[n]) if n in given else t for n, t in zip(names, types))
    for name, t, column in zip(names, types, values.T):
        _check_fits(t, name, column)
    return types if spec != "auto" or _joint_nll(values, types) <= _joint_nll(values, _plain(types)) else _plain(types)


def _plain(types: tuple[ColumnType, ...]) -> tuple[ColumnType, ...]:
    """``types`` without their transforms (discrete columns stay discrete)."""
    return tuple(ColumnType("integer", t.step) if t.discrete else ColumnType() for t in types)


def _joint_nll(values: np.ndarray, types: tuple[ColumnType, ...], seed: int = 0) -> float:
    """Mean NLL of ``values`` under the full-covariance ML Gaussian of their transforms (Jacobians
    counted): detected transforms are kept only where they do not make the flow's starting Gaussian
    worse, so per-column choices cannot cost the joint fit."""
    x = dequantized(values, types, seed)
    t = to_real_line(x, types)
    log_jacobian = sum(-np.log(x[:, j]) if c.transform == "log" else -np.log(x[:, j]) - np.log1p(-x[:, j])
                       for j, c in enumerate(types) if c.transform != "none")
    t = (t - t.mean(0)) / t.std(0)
    sign, log_det = np.linalg.slogdet(np.atleast_2d(np.cov(t.T, bias=True)))
    if sign <= 0:
        return math.inf
    scale = float(np.log(to_real_line(x, types).std(0)).sum())
    return 0.5 * (log_det + t.shape[1] * math.log(2 * math.pi * math.e)) + scale - float(np.mean(log_jacobian))


def _check_fits(t: ColumnType, name: str, column: np.ndarray) -> None:
    """A ``UserError`` when the column's values are outside the type's support (``log`` of a value <= 0)."""
    low, high = float(column.min()), float(column.max())
    if t.kind == "log" and low <= 0 or t.kind == "count" and low < 0:
        raise UserError(f"column {name!r} is typed {t} but holds {low:g}; {t.kind} needs values "
                        f"{'> 0' if t.kind == 'log' else '>= 0'}")
    if t.kind == "logit" and not (low > 0 and high < 1):
        raise UserError(f"column {name!r} is typed logit but spans {low:g}..{high:g}; logit needs values in (0, 1)")
    if t.discrete and _lattice_step(column / t.step) != 1.0:
        raise UserError(f"column {name!r} is typed {t} but holds values that are not multiples of {t.step:g}")


def describe(types: tuple[ColumnType, ...], names: tuple[str, ...]) -> str:
    """One line naming each column's treatment.

    Example:
        >>> describe((ColumnType("integer", 1.0), ColumnType("log")), ("age", "income"))
        'columns: age integer, income log'
    """
    return "columns: " + ", ".join(f"{n} {t}" for n, t in zip(names, types))


def format_types(types: tuple[ColumnType, ...]) -> str:
    """The explicit ``data.column_types`` value a resolved run records.

    Example:
        >>> format_types((ColumnType("real"), ColumnType("count", 0.1)))
        'real,count@0.1'
    """
    return ",".join(str(t) for t in types)


def parse_types(spec: str, dim: int) -> tuple[ColumnType, ...]:
    """The column types a resolved config records (``format_types``); ``auto`` (never resolved: a run
    built in Python) is all ``real``.

    Example:
        >>> parse_types("real,count@0.1", 2) == (ColumnType("real"), ColumnType("count", 0.1))
        True
    """
    if spec.strip() == "auto":
        return (ColumnType(),) * dim
    types = tuple(ColumnType.parse(item) for item in spec.split(","))
    if len(types) != dim:
        raise UserError(f"data.column_types names {len(types)} types for {dim} columns")
    return types


def dequantized(x: np.ndarray, types: tuple[ColumnType, ...], seed: int) -> np.ndarray:
    """``x`` with uniform noise across each discrete column's lattice cell (``x + step u``), seeded.

    Example:
        >>> y = dequantized(np.array([[3.0, 0.5]]), (ColumnType("integer", 1.0), ColumnType()), seed=0)
        >>> bool(3.0 <= y[0, 0] < 4.0), float(y[0, 1])
        (True, 0.5)
    """
    steps = np.array([t.step for t in types])
    return x + steps * np.random.default_rng(seed).random(x.shape) if steps.any() else x


def to_real_line(x: np.ndarray, types: tuple[ColumnType, ...]) -> np.ndarray:
    """``x`` through each column's transform (``log``, ``logit``), as the flow's ``ColumnTransform``.

    Example:
        >>> to_real_line(np.array([[1.0, 0.5, -2.0]]), (ColumnType("log"), ColumnType("logit"), ColumnType())).tolist()
        [[0.0, 0.0, -2.0]]
    """
    out = np.array(x, dtype=np.float64)
    for j, t in enumerate(types):
        if t.transform == "log":
            out[:, j] = np.log(out[:, j])
        elif t.transform == "logit":
            out[:, j] = np.log(out[:, j]) - np.log1p(-out[:, j])
    return out


def column_types(cfg: Config, event_shape: tuple[int, ...]) -> tuple[ColumnType, ...]:
    """The column types a resolved table run records (``data.column_types``); none for other data.

    Example:
        >>> column_types(Config(), (2,))  # the moons preset's data is no table
        ()
    """
    if cfg.data.name != "file" or cfg.model.kind != "vector":
        return ()
    return parse_types(cfg.data.column_types, event_shape[0])
