"""The one place a training run's settings are decided: preset, then ``--set`` overrides and flags,
then what the data implies (a table's column types, sizing, the batch cap, a conditional run's
context), checked once. The data is read here, once, and handed down with the settings."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from realnvp.autoconfig import autosize, capped_batch
from realnvp.config import Config, check_settings, load_config
from realnvp.data import IMAGE_DATASETS, Splits, load_splits
from realnvp.data.columns import describe, format_types
from realnvp.data.tables import read_source
from realnvp.errors import UserError
from realnvp.evaluation.baselines import collinear_columns


@dataclass
class Resolved:
    """A run's final settings, the data they were resolved against (read once) and the lines that
    say what was chosen for the user.

    Example:
        >>> run = resolve("moons", ["data.n_train=2000"])
        >>> run.cfg.data.name, run.splits.train.shape, run.notes
        ('moons', (1800, 2), [])
    """

    cfg: Config
    splits: Splits
    notes: list[str] = field(default_factory=list)


def resolve(preset: str, overrides: list[str], data_path: str = "", sized: bool = True) -> Resolved:
    """The settings of ``preset`` with ``overrides`` (``section.key=value``) and ``data_path`` (``--data``:
    an image preset's dataset, else a table: ``data.name = "file"``), completed from the data:
    for a table, each column's type (``data.column_types`` made explicit) and, when ``sized``, the
    ``vector`` preset's defaults for its rows and columns (``realnvp.autoconfig``); for every run the
    batch capped at the training rows and the context of a conditional run.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> np.save(tmp / "t.npy", np.c_[rng.normal(size=150), rng.lognormal(size=150), rng.poisson(4, 150)])
        >>> run = resolve("vector", ["train.steps=50"], data_path=str(tmp / "t.npy"))
        >>> run.cfg.data.column_types, run.cfg.train.steps, run.splits.train.shape
        ('real,log,integer', 50, (96, 3))
        >>> run.notes[0]
        'columns: x0 real, x1 log, x2 integer'
    """
    cfg = load_config(preset, overrides)
    if data_path:
        cfg.data.name = cfg.data.name if cfg.data.name in IMAGE_DATASETS else "file"
        cfg.data.path = data_path
    explicit = {item.partition("=")[0].strip() for item in overrides}
    return complete(cfg, explicit if sized else None)


def complete(cfg: Config, sized_except: set[str] | None = None) -> Resolved:
    """``cfg`` completed from its data (read here, once): a table's column types, the ``vector``
    defaults for its size unless ``sized_except`` is None (else every setting but those), the batch
    capped at the training rows, a conditional run's context; then checked. ``train()`` calls it on a
    config it is given without data.

    Example:
        >>> from realnvp.config import load_config
        >>> complete(load_config("moons", ["data.n_train=100", "train.batch_size=500"])).notes
        ['train.batch_size 500 is more than the 90 training rows: using 90']
    """
    check_settings(cfg)  # before any arithmetic with the values (a NaN fraction, a zero size)
    notes: list[str] = []
    source = None
    if cfg.data.name == "file" and cfg.model.kind == "vector":
        source = read_source(cfg.data)
        types = source.types(cfg.data)
        cfg.data.column_types = format_types(types)
        if source.dropped_rows:
            notes.append(f"dropped {source.dropped_rows} rows with missing cells (data.missing = drop)")
        if source.dropped_columns:
            notes.append(f"dropped constant column(s) {', '.join(source.dropped_columns)}: the NLL covers the "
                         f"other {len(types)} columns (data.constant = drop)")
        cfg.data.column_names = tuple(n for j, n in enumerate(source.names) if j not in cfg.data.context_columns)
        notes.append(describe(types, cfg.data.column_names))
        notes += _collinear_note(source.pool, source.names)
        if sized_except is not None:
            cfg, line = autosize(cfg, sized_except, len(source.pool), len(types))
            notes.append(line)
    splits = load_splits(cfg.data, labels=cfg.model.conditional, source=source)
    cfg.train.batch_size, line = capped_batch(cfg.train.batch_size, len(splits.train))
    notes += [line] if line else []
    _settle_context(cfg, splits)
    check_settings(cfg)
    return Resolved(cfg, splits, notes)


def _settle_context(cfg: Config, splits: Splits) -> None:
    """Set ``cfg.model.conditional`` and ``cfg.model.n_context`` from ``splits``: the number of
    classes of a labelled image set (a larger ``model.n_context`` given by the user is kept, for
    classes missing from the data) or of ``data.context_columns``. A conditional model without a
    context, or a class count below the labels', is a ``UserError``. An image set's real context
    arrays (``[N, D]``) set ``model.context_dim`` to ``D``.

    Example:
        >>> from realnvp.config import load_config
        >>> from realnvp.data import load_splits
        >>> cfg = load_config("digits", ["model.conditional=true"])
        >>> _settle_context(cfg, load_splits(cfg.data, labels=True))
        >>> cfg.model.conditional, cfg.model.n_context
        (True, 10)
    """
    m = cfg.model
    if splits.train_c is None:
        if m.conditional or m.context_dim:
            raise UserError("model.conditional needs a context: class labels of an image set (digits, mnist, "
                            "cifar10, an .npz with y_train/y_test, class sub-folders) or data.context_columns "
                            "of a table")
        return
    if splits.n_levels and splits.train_c.ndim == 2:  # an image .npz's context arrays: D real values per image
        m.conditional, m.n_context, m.context_dim = True, splits.train_c.shape[1], splits.train_c.shape[1]
        return
    if splits.n_levels:
        if m.n_context and m.n_context < splits.n_classes:
            raise UserError(f"model.n_context is {m.n_context}, but the data has class labels up to "
                            f"{splits.n_classes - 1}")
        m.conditional, m.n_context = True, max(m.n_context, splits.n_classes)
        return
    k = splits.train_c.shape[1]
    if m.n_context not in (0, k):
        raise UserError(f"model.n_context is {m.n_context}, but data.context_columns names {k} columns")
    m.conditional, m.n_context = True, k


COLLINEAR_CHECK_COLUMNS = 1000  # wider tables skip the check (it factors the correlation column by column)


def _collinear_note(pool: np.ndarray, names: tuple[str, ...]) -> list[str]:
    """A line naming the columns that earlier ones (almost) determine, whose density is degenerate: the
    Gaussian start then rests on a small ridge along them (evaluation/baselines.py)."""
    if pool.shape[1] > COLLINEAR_CHECK_COLUMNS or len(pool) <= pool.shape[1]:
        return []
    found = collinear_columns(pool)
    if not found:
        return []
    shown = ", ".join(repr(names[j]) for j in found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
    return [f"column(s) {shown} are (almost) linear combinations of earlier columns: the density along them is "
            f"degenerate and the likelihood rests on a small ridge; consider dropping them"]
