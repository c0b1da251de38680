"""The pictures of a run, in one registry: for each kind of run (``kind_of``) the pictures it gets, each
a name, its file in the run directory (named in ``realnvp.rundir``) and the function that draws it.
``realnvp train`` writes them (``write_pictures``); ``realnvp report`` embeds the run's own files and
draws through the same registry the ones the run lacks (``picture_bytes``)."""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from realnvp.config import Config, DataConfig
from realnvp.data import Splits, load_splits
from realnvp.data.source import data_source
from realnvp.flow import Flow
from realnvp.rundir import (
    ANIMATION,
    CLASSES,
    CONTEXTS,
    CORNER,
    DENSITY,
    SAMPLES,
    SAMPLES_COLD,
    SCALES,
    RunDir,
    TrainedRun,
)
from realnvp.viz.animate import animate
from realnvp.viz.conditional import class_temperature_grid, context_densities
from realnvp.viz.images import animate_images, grid, sample_grid, save_png, scales_picture
from realnvp.viz.plots import corner, data_and_samples, log_density


def column_names(cfg: DataConfig, dim: int) -> list[str] | None:
    """A table run's column names as training recorded them (a CSV header's), else None (``x0, x1, ...``
    in the pictures).

    Example:
        >>> column_names(DataConfig(name="file", path="t.csv", column_names=("age", "income")), 2)
        ['age', 'income']
        >>> column_names(DataConfig(name="moons"), 2) is None
        True
    """
    return list(cfg.column_names) if len(cfg.column_names) == dim else None


@dataclass
class Scene:
    """What a run's pictures are drawn from: the flow, the run's splits, how pictures name the data and
    its columns, the model's number of scales (images) and how many samples vector pictures draw.

    Example:
        >>> trained = RunDir(run_dir).trained()
        >>> scene = Scene.of(trained.flow, trained.cfg, n=500)
        >>> scene.label, scene.splits.train.shape, scene.samples.shape
        ('moons', (1800, 2), (500, 2))
    """

    flow: Flow
    splits: Splits
    label: str
    names: list[str] | None
    n_scales: int = 0
    n: int = 4000

    @classmethod
    def of(cls, flow: Flow, cfg: Config, n: int = 4000, splits: Splits | None = None) -> Scene:
        """The scene of a run's flow and config, its splits read as training read them (or ``splits``,
        when the caller has read them: ``realnvp train`` reads its data once)."""
        splits = splits or load_splits(cfg.data, labels=cfg.model.conditional)
        return cls(flow, splits, data_source(cfg.data, short=True),
                   column_names(cfg.data, flow.event_size), cfg.model.n_scales, n)

    @functools.cached_property
    def samples(self) -> np.ndarray:
        """``min(n, rows)`` vector samples drawn once with seed 0 (a conditional flow's given the first
        training rows' contexts), beside those rows in every picture that shows samples."""
        torch.manual_seed(0)
        rows = min(self.n, len(self.splits.train))
        context = torch.from_numpy(self.splits.train_c[:rows]) if self.flow.conditional else None
        return self.flow.eval().sample(rows, context=context).cpu().numpy()


def _samples(scene: Scene, path: Path) -> None:
    what = "samples drawn with the same rows' contexts" if scene.flow.conditional else "Real NVP samples"
    data_and_samples(scene.splits.train[: len(scene.samples)], scene.samples, path, names=scene.names,
                     title=f"{scene.label}: data vs {what}")


def _density(scene: Scene, path: Path) -> None:
    log_density(scene.flow, scene.splits.train, path, title=f"{scene.label}: model log-density log p(x)",
                names=scene.names)


def _corner(scene: Scene, path: Path) -> None:
    corner(scene.splits.train[: len(scene.samples)], scene.samples, path, title=scene.label, names=scene.names)


def _contexts(scene: Scene, path: Path) -> None:
    train, train_c = scene.splits.train, scene.splits.train_c
    values = np.quantile(train_c[:, 0], [0.1, 0.37, 0.63, 0.9])
    context_densities(scene.flow, train, train_c, path, values, names=scene.names,
                      title=f"{scene.label}: log p(x | c) at four contexts")


def _animation(scene: Scene, path: Path) -> None:
    animate(scene.flow, path, n=1500, data=scene.splits.train)


def _animation_given_contexts(scene: Scene, path: Path) -> None:
    animate(scene.flow, path, n=600, frames_per_layer=4, data=scene.splits.train,
            context=scene.splits.train_c[:600])


def _image_animation(scene: Scene, path: Path) -> None:
    animate_images(scene.flow, path)


def _sample_grid(temperature: float, scene: Scene, path: Path) -> None:
    sample_grid(scene.flow, path, temperature=temperature, name=scene.label)


def _scales(scene: Scene, path: Path) -> None:
    v = torch.from_numpy(scene.splits.train[:8])
    y = (v.float() + torch.rand(v.shape, generator=torch.Generator().manual_seed(0))) / scene.splits.n_levels
    scales_picture(scene.flow, y, scene.n_scales, path)


def _context_grid(scene: Scene, path: Path) -> None:
    """An image run conditioned on a context vector: samples given the first 64 training rows' contexts."""
    torch.manual_seed(0)
    context = torch.from_numpy(scene.splits.train_c[:64])
    samples = scene.flow.eval().sample(len(context), context=context).clamp(0, 1).cpu().numpy()
    save_png(grid(samples, zoom=max(1, 64 // samples.shape[2])), path)


def _classes(scene: Scene, path: Path) -> None:
    class_temperature_grid(scene.flow, path, title=f"{scene.label}: one row per class, samples by temperature")


@dataclass(frozen=True)
class Picture:
    """One picture of a run: its name, its file in the run directory and the function that draws it
    there; ``by_train``: whether ``realnvp train`` writes it (else only a report draws it).

    Example:
        >>> [(picture.name, picture.file) for picture in REGISTRY["vectors-2d"]]
        [('samples', 'samples.png'), ('density', 'density.png'), ('animation', 'animation.gif')]
    """

    name: str
    file: str
    draw: Callable[[Scene, Path], None]
    by_train: bool = True


_SAMPLES = Picture("samples", SAMPLES, _samples)
REGISTRY: dict[str, tuple[Picture, ...]] = {  # the pictures of each kind of run, in the order train draws them
    "vectors-2d": (_SAMPLES, Picture("density", DENSITY, _density), Picture("animation", ANIMATION, _animation)),
    "vectors": (_SAMPLES, Picture("corner", CORNER, _corner), Picture("animation", ANIMATION, _animation)),
    "images": (Picture("samples", SAMPLES, functools.partial(_sample_grid, 1.0)),
               Picture("samples_cold", SAMPLES_COLD, functools.partial(_sample_grid, 0.7)),
               Picture("scales", SCALES, _scales), Picture("animation", ANIMATION, _image_animation)),
    "classes": (Picture("classes", CLASSES, _classes), Picture("animation", ANIMATION, _image_animation, False)),
    "image-contexts": (Picture("samples", SAMPLES, _context_grid),),
    "contexts-2d": (_SAMPLES, Picture("contexts", CONTEXTS, _contexts),
                    Picture("animation", ANIMATION, _animation_given_contexts, False)),
    "contexts": (_SAMPLES, Picture("corner", CORNER, _corner),
                 Picture("animation", ANIMATION, _animation_given_contexts, False)),
}


def kind_of(flow: Flow) -> str:
    """Which ``REGISTRY`` entry a flow's run gets: class-conditional images, other conditional runs (2-D
    with one context column apart), images, or vectors (2-D apart).

    Example:
        >>> from realnvp.models import build_vector_flow
        >>> kind_of(build_vector_flow(dim=2, hidden=(8,))), kind_of(build_vector_flow(dim=3, hidden=(8,)))
        ('vectors-2d', 'vectors')
    """
    if flow.n_classes:
        return "classes"
    if flow.conditional and len(flow.event_shape) == 3:
        return "image-contexts"
    if flow.conditional:
        return "contexts-2d" if flow.event_size == 2 and flow.context_size == 1 else "contexts"
    if len(flow.event_shape) == 3:
        return "images"
    return "vectors-2d" if flow.event_size == 2 else "vectors"


def write_pictures(run_dir: str | Path, n: int = 4000, trained: TrainedRun | None = None,
                   splits: Splits | None = None) -> list[Path]:
    """Draw the pictures ``realnvp train`` writes for the run's kind (``REGISTRY``) into the run
    directory: samples.png (data beside samples), density.png (2-D only), corner.png (more than 2
    columns) and animation.gif for a vector run; sample grids, scales.png and the animation for an image
    run. ``trained``: the run's flow when the caller has it (``train``'s result), else read from best.pt;
    ``splits``: its data, when the caller has read it.

    Example:
        >>> import shutil
        >>> run = shutil.copytree(run_dir, tmp / "moons")  # a copy: the pictures are written into the run
        >>> [path.name for path in write_pictures(run, n=200)]
        ['samples.png', 'density.png', 'animation.gif']
    """
    run = RunDir(run_dir)
    flow, cfg = (trained.flow, trained.cfg) if trained else run.load_flow()[:2]
    scene = Scene.of(flow, cfg, n, splits)
    written = []
    for picture in REGISTRY[kind_of(flow)]:
        if picture.by_train:
            picture.draw(scene, run / picture.file)
            written.append(run / picture.file)
    return written


def picture_bytes(run_dir: str | Path, scene: Scene) -> dict[str, bytes]:
    """Every picture of the run's kind by name, as its file's bytes: the run's own file where training
    wrote it, else drawn afresh (into a temporary folder: the run is left as it is).

    Example:
        >>> trained = RunDir(run_dir).trained()
        >>> sorted(picture_bytes(run_dir, Scene.of(trained.flow, trained.cfg)))
        ['animation', 'density', 'samples']
    """
    run, found = RunDir(run_dir), {}
    with tempfile.TemporaryDirectory() as tmp:
        for picture in REGISTRY[kind_of(scene.flow)]:
            path = run / picture.file
            if not path.is_file():
                path = Path(tmp) / picture.file
                picture.draw(scene, path)
            found[picture.name] = path.read_bytes()
    return found
