"""Which data a run was on, said one way everywhere: ``evaluation.json``'s ``"data"``, ``realnvp
runs``' column, the report's note and the pictures' titles."""

from __future__ import annotations

from pathlib import Path

from realnvp.config import DataConfig


def data_source(cfg: DataConfig, short: bool = False) -> str:
    """The user's file or folder by its path (an .npz or .npy of any dataset too), a named dataset by
    its name (its root folder is where it lives, not what it is); ``short``: a path by its last part,
    as pictures title it.

    Example:
        >>> data_source(DataConfig(name="moons")), data_source(DataConfig(name="file", path="/x/my.csv"))
        ('moons', '/x/my.csv')
        >>> data_source(DataConfig(name="file", path="/x/my.csv"), short=True)
        'my.csv'
        >>> data_source(DataConfig(name="mnist", path="/datasets")), data_source(DataConfig(name="mnist", path="m.npz"))
        ('mnist', 'm.npz')
    """
    named_by_file = cfg.name in ("file", "folder") or Path(cfg.path).suffix.lower() in (".npz", ".npy")
    if not (cfg.path and named_by_file):
        return cfg.name
    return Path(cfg.path).name if short else cfg.path
