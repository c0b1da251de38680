"""The pictures ``realnvp train`` writes into a run directory once training ends."""

from __future__ import annotations

from pathlib import Path

import torch

from realnvp.data import load_splits
from realnvp.rundir import RunDir
from realnvp.viz.animate import animate
from realnvp.viz.images import write_image_pictures
from realnvp.viz.plots import data_and_samples, log_density


def write_pictures(run_dir: str | Path, n: int = 4000) -> list[Path]:
    """samples.png (data beside samples), density.png (2-D only) and animation.gif for a vector run;
    an image run gets its sample grids and animation instead.

    Example:
        >>> import shutil
        >>> run = shutil.copytree(run_dir, tmp / "moons")  # a copy: the pictures are written into the run
        >>> [path.name for path in write_pictures(run, n=200)]
        ['samples.png', 'density.png', 'animation.gif']
    """
    run = RunDir(run_dir)
    flow, cfg, _ = run.load_flow()
    splits = load_splits(cfg.data)
    if splits.n_levels:
        return write_image_pictures(run.path, flow, splits.train, splits.n_levels, cfg.model.n_scales)
    data = splits.train
    torch.manual_seed(0)
    samples = flow.sample(min(n, len(data))).numpy()
    written = [run / "samples.png"]
    data_and_samples(data[: len(samples)], samples, written[0], title=f"{cfg.data.name}: data vs Real NVP samples")
    if flow.event_size == 2:
        written.append(run / "density.png")
        log_density(flow, data, written[-1], title=f"{cfg.data.name}: model log-density")
    written.append(run / "animation.gif")
    animate(flow, written[-1], n=1500, data=data)
    return written
