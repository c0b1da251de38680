"""The pictures ``realnvp train`` writes into a run directory once training ends."""

from __future__ import annotations

from pathlib import Path

import torch

from realnvp.config import DataConfig
from realnvp.data import load_splits
from realnvp.rundir import RunDir
from realnvp.viz.animate import animate
from realnvp.viz.conditional import write_conditional_pictures
from realnvp.viz.images import write_image_pictures
from realnvp.viz.plots import corner, data_and_samples, log_density


def data_label(cfg: DataConfig) -> str:
    """How pictures name the data: the preset's dataset, or a user file's or folder's name (not ``file``).

    Example:
        >>> data_label(DataConfig(name="moons")), data_label(DataConfig(name="file", path="/x/my.csv"))
        ('moons', 'my.csv')
    """
    named_by_file = cfg.name in ("file", "folder") or Path(cfg.path).suffix.lower() in (".npz", ".npy")
    return Path(cfg.path).name if cfg.path and named_by_file else cfg.name


def column_names(cfg: DataConfig, dim: int) -> list[str] | None:
    """A CSV file's header row as the columns' names (when it names exactly ``dim`` columns), else None.

    Example:
        >>> _ = (tmp / "t.csv").write_text("age,income\\n1,2\\n3,4\\n")
        >>> column_names(DataConfig(name="file", path=str(tmp / "t.csv")), 2)
        ['age', 'income']
        >>> column_names(DataConfig(name="moons"), 2) is None
        True
    """
    if cfg.name != "file" or not cfg.path.lower().endswith(".csv"):
        return None
    try:
        with open(cfg.path) as f:
            first = f.readline()
    except OSError:
        return None
    names = [name.strip().strip('"') for name in first.split(",")]
    has_header = any(c.isalpha() and c not in "eEnN" for c in first)  # as data.vectors reads the file
    return names if has_header and len(names) == dim and all(names) else None


def write_pictures(run_dir: str | Path, n: int = 4000) -> list[Path]:
    """samples.png (data beside samples), density.png (2-D only), corner.png (more than 2 columns)
    and animation.gif for a vector run; an image run gets its sample grids and animation instead.

    Example:
        >>> import shutil
        >>> run = shutil.copytree(run_dir, tmp / "moons")  # a copy: the pictures are written into the run
        >>> [path.name for path in write_pictures(run, n=200)]
        ['samples.png', 'density.png', 'animation.gif']
    """
    run = RunDir(run_dir)
    flow, cfg, _ = run.load_flow()
    splits = load_splits(cfg.data, labels=cfg.model.conditional)
    if flow.conditional:  # pictures given contexts (viz/conditional.py)
        return write_conditional_pictures(run.path, flow, splits.train, splits.train_c, data_label(cfg.data),
                                          n, column_names(cfg.data, flow.event_size))
    if splits.n_levels:
        return write_image_pictures(run.path, flow, splits.train, splits.n_levels, cfg.model.n_scales,
                                    name=data_label(cfg.data))
    data, label = splits.train, data_label(cfg.data)
    names = column_names(cfg.data, flow.event_size)
    torch.manual_seed(0)
    samples = flow.sample(min(n, len(data))).numpy()
    written = [run / "samples.png"]
    data_and_samples(data[: len(samples)], samples, written[0], title=f"{label}: data vs Real NVP samples",
                     names=names)
    if flow.event_size == 2:
        written.append(run / "density.png")
        log_density(flow, data, written[-1], title=f"{label}: model log-density log p(x)", names=names)
    else:
        written.append(run / "corner.png")
        corner(data[: len(samples)], samples, written[-1], title=label, names=names)
    written.append(run / "animation.gif")
    animate(flow, written[-1], n=1500, data=data)
    return written
