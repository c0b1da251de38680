"""A table run's files, read once (``read_source``) and handed down: the test split, the constant
columns a run refuses or drops, and each column's type (data/columns.py). Configuration, training,
evaluation and pictures all take the same ``TableSource`` instead of opening the file again."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from realnvp.config import DataConfig
from realnvp.data.columns import ColumnType, constant_columns, resolve_types
from realnvp.data.vectors import Table, read_table
from realnvp.errors import UserError

MIN_ROWS = 10  # fewer rows cannot be split into training, validation and test


@dataclass(frozen=True)
class TableSource:
    """The rows a table run learns from (``pool``: training and validation) and is tested on
    (``test``), with the column ``names``; the constant columns are already dropped when
    ``data.constant = "drop"`` (their names in ``dropped_columns``).

    Example:
        >>> np.save(tmp / "t.npy", np.c_[np.arange(20.0), np.ones(20), np.arange(20.0) ** 2])
        >>> source = read_source(DataConfig(name="file", path=str(tmp / "t.npy"), constant="drop"))
        >>> source.pool.shape, source.test.shape, source.names, source.dropped_columns
        ((16, 2), (4, 2), ('x0', 'x2'), ('x1',))
    """

    pool: np.ndarray
    test: np.ndarray
    names: tuple[str, ...]
    dropped_columns: tuple[str, ...] = ()
    dropped_rows: int = 0

    def types(self, cfg: DataConfig) -> tuple[ColumnType, ...]:
        """Each modelled column's type from ``data.column_types`` (detected on the pool for ``auto``)."""
        keep = [j for j in range(len(self.names)) if j not in cfg.context_columns]
        return resolve_types(cfg.column_types, self.pool[:, keep], tuple(self.names[j] for j in keep))


def read_source(cfg: DataConfig) -> TableSource:
    """Read ``data.path`` (and ``data.test_path``) once: missing cells per ``data.missing``, the test
    split (the held-out file, else a seeded ``data.test_fraction`` of the rows), constant columns per
    ``data.constant``.

    Example:
        >>> np.save(tmp / "few.npy", np.zeros((5, 2)))
        >>> read_source(DataConfig(name="file", path=str(tmp / "few.npy")))
        Traceback (most recent call last):
        ...
        realnvp.errors.UserError: .../few.npy: 5 rows are too few to split into training, validation and test ...
    """
    if not cfg.path:
        raise UserError("data.name is 'file' but no data.path was given (use --data FILE)")
    table = read_table(cfg.path, cfg.missing)
    if cfg.test_path:
        held_out = read_table(cfg.test_path, cfg.missing)
        if held_out.shape[1] != table.shape[1]:
            raise UserError(f"{cfg.test_path}: the run was trained on {table.shape[1]} columns, the file has "
                            f"{held_out.shape[1]}")
        pool, test = table.values, held_out.values
    else:
        if len(table.values) < MIN_ROWS:
            raise UserError(f"{cfg.path}: {len(table.values)} rows are too few to split into training, validation "
                            f"and test (need at least {MIN_ROWS})")
        order = np.random.RandomState(cfg.seed).permutation(len(table.values))
        n_test = max(1, int(round(cfg.test_fraction * len(table.values))))
        pool, test = table.values[order[n_test:]], table.values[order[:n_test]]
    return _without_constants(pool, test, table, cfg)


def _without_constants(pool: np.ndarray, test: np.ndarray, table: Table, cfg: DataConfig) -> TableSource:
    """The source with its constant columns refused (``data.constant = "refuse"``) or dropped."""
    constant = [j for j in constant_columns(pool) if j not in cfg.context_columns]
    names = [table.names[j] for j in constant]
    if constant and cfg.constant != "drop":
        raise UserError(f"{table.path}: column{'s' * (len(names) > 1)} {', '.join(map(repr, names[:5]))} "
                        f"{'are' if len(names) > 1 else 'is'} constant (no density exists along "
                        f"{'them' if len(names) > 1 else 'it'}); remove {'them' if len(names) > 1 else 'it'}, or "
                        f"--set data.constant=drop to model the other columns")
    if cfg.context_columns and constant:
        raise UserError("data.constant=drop cannot renumber data.context_columns; remove the constant columns first")
    keep = [j for j in range(pool.shape[1]) if j not in constant]
    return TableSource(pool[:, keep], test[:, keep], tuple(table.names[j] for j in keep), tuple(names), table.dropped)
