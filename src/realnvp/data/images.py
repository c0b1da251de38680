"""Image datasets by name, read from their own file formats into integer arrays ``[N, C, H, W]``.

``digits`` (scikit-learn's 8x8, 17 levels, bundled), ``mnist`` and ``fashion-mnist`` (IDX files),
``cifar10`` (the python pickle batches), ``celeba`` (aligned JPEGs, cropped and resized as in the
paper), ``folder`` (any folder of images), an ``.npz`` with ``x_train`` / ``x_test`` for any of
them, or an ``.npy`` (or an ``.npz``'s ``x``) of images split like a folder; arrays may be ``[N, H, W]``,
``[N, C, H, W]`` or ``[N, H, W, C]``. ``data.path`` names the dataset's root folder (default
``$REALNVP_DATA`` or ``./data``); ``data.download`` fetches the first three with torchvision. Every
problem with the files is a one-line ``UserError`` that names the file.
"""

from __future__ import annotations

import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

from realnvp.atomic import atomic_write_bytes
from realnvp.config import DataConfig
from realnvp.data.image_files import (
    check_levels,
    check_pixel_claims,
    first_line,
    load_checked,
    open_image,
    read_cifar_batch,
    read_idx,
    read_image_folder,
    read_pixel_file,
    to_nchw,
)
from realnvp.errors import UserError

__all__ = ["IMAGE_DATASETS", "ImageSet", "check_levels", "data_root", "load_images", "n_levels_of", "read_cifar_batch",
           "read_idx", "read_image_folder", "read_image_npz", "split_seeded", "to_nchw"]

IMAGE_DATASETS = ("digits", "mnist", "fashion-mnist", "cifar10", "celeba", "folder")
SHAPES = {"digits": (1, 8, 8), "mnist": (1, 28, 28), "fashion-mnist": (1, 28, 28), "cifar10": (3, 32, 32)}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
CELEBA_CROP = (15, 40, 163, 188)  # the paper's ~central 148x148 crop of the 178x218 aligned faces


@dataclass
class ImageSet:
    """Integer images of one dataset and their number of levels.

    Example:
        >>> ImageSet(np.zeros((2, 1, 8, 8), np.uint8), np.zeros((1, 1, 8, 8), np.uint8), 17).n_levels
        17
    """

    train: np.ndarray  # uint8 [N, C, H, W], values 0 .. n_levels - 1
    test: np.ndarray
    n_levels: int


def n_levels_of(name: str) -> int:
    """Pixel levels of a named dataset: 17 for digits (values 0..16), 256 for 8-bit images.

    Example:
        >>> n_levels_of("digits"), n_levels_of("cifar10")
        (17, 256)
    """
    return 17 if name == "digits" else 256


def data_root(cfg: DataConfig) -> Path:
    """Where a named dataset's files live: ``data.path``, else ``$REALNVP_DATA``, else ``./data``.

    Example:
        >>> data_root(DataConfig(name="mnist", path="/datasets")).as_posix()
        '/datasets'
    """
    return Path(cfg.path or os.environ.get("REALNVP_DATA", "data"))


def load_images(cfg: DataConfig) -> ImageSet:
    """The train and test images of ``cfg.name`` (see the module docstring for where they come from).

    Example:
        >>> images = load_images(DataConfig(name="digits"))
        >>> images.train.shape, images.test.shape, images.n_levels
        ((1437, 1, 8, 8), (360, 1, 8, 8), 17)
    """
    if cfg.name not in IMAGE_DATASETS:
        raise UserError(f"unknown image dataset {cfg.name!r}; known: {', '.join(IMAGE_DATASETS)}")
    levels = n_levels_of(cfg.name)
    if cfg.path.lower().endswith(".npz") and not _unsplit_npz(Path(cfg.path)):
        expected = SHAPES.get(cfg.name) or ((3, cfg.image_size, cfg.image_size) if cfg.image_size else None)
        return read_image_npz(Path(cfg.path), levels, expected)
    if cfg.path.lower().endswith((".npy", ".npz")):  # one array of images (an .npz's x): split like a folder
        images = check_levels(to_nchw(read_pixel_file(Path(cfg.path)), cfg.path), levels, cfg.path)
        return ImageSet(*split_seeded(images, cfg), levels)
    if cfg.name == "digits":
        images = load_digits().data.reshape(-1, 1, 8, 8).astype(np.uint8)
        return ImageSet(*split_seeded(images, cfg), levels)
    root = data_root(cfg)
    if cfg.name in ("mnist", "fashion-mnist"):
        return ImageSet(*_read_mnist(root, cfg.name, cfg.download), levels)
    if cfg.name == "cifar10":
        return ImageSet(*_read_cifar10(root, cfg.download), levels)
    if cfg.name == "celeba":
        return ImageSet(*_read_celeba(root, cfg.image_size or 64, cfg.download), levels)
    return ImageSet(*split_seeded(read_image_folder(root, cfg.image_size), cfg), levels)


def _unsplit_npz(path: Path) -> bool:
    """Whether ``path`` is an .npz of images ``x`` (with their ``y`` or ``context``) but no ``x_train``:
    split like a folder, with the same seeded permutation for the images and their contexts."""
    try:
        with load_checked(path) as archive:
            return "x" in archive and "x_train" not in archive
    except (OSError, ValueError, zipfile.BadZipFile, EOFError):
        return False  # read_image_npz says what is wrong with the file


def split_seeded(images: np.ndarray, cfg: DataConfig) -> tuple[np.ndarray, np.ndarray]:
    """Datasets without an official test set: a seeded permutation, the first ``1 - test_fraction``
    for training (for digits with seed 0 exactly the benchmark protocol's 1437 / 360 split). Their
    class labels are split by the same call, so images and labels stay in step.

    Example:
        >>> train, test = split_seeded(np.arange(10), DataConfig(name="digits", seed=0, test_fraction=0.2))
        >>> len(train), len(test), sorted(train.tolist() + test.tolist()) == list(range(10))
        (8, 2, True)
    """
    order = np.random.RandomState(cfg.seed).permutation(len(images))
    n_train = int((1.0 - cfg.test_fraction) * len(images))
    if n_train < 1 or n_train >= len(images):
        raise UserError(f"{len(images)} images are too few to split with test_fraction {cfg.test_fraction}")
    return images[order[:n_train]], images[order[n_train:]]


def read_image_npz(path: Path, n_levels: int, expected: tuple[int, ...] | None = None) -> ImageSet:
    """``x_train`` and ``x_test`` from an .npz (as in ``mnist10k.npz``), checked for shape and levels.

    Example:
        >>> np.savez(tmp / "m.npz", x_train=np.zeros((5, 28, 28), np.uint8), x_test=np.zeros((2, 28, 28), np.uint8))
        >>> read_image_npz(tmp / "m.npz", 256, (1, 28, 28)).train.shape
        (5, 1, 28, 28)
    """
    if not path.is_file():
        raise UserError(f"data file not found: {path}")
    try:
        claims = check_pixel_claims(path)
        with np.load(path, allow_pickle=False) as archive:
            missing = [k for k in ("x_train", "x_test") if k not in claims]  # absent, or not an .npy member
            if missing:
                raise UserError(f"{path}: an image .npz needs arrays x_train and x_test; missing {', '.join(missing)} "
                                f"(found {', '.join(archive.keys()) or 'none'})")
            arrays = [archive["x_train"], archive["x_test"]]
    except UserError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, MemoryError) as exc:
        raise UserError(f"cannot read {path}: {first_line(exc)}") from None
    train, test = (check_levels(to_nchw(a, f"{path}:{k}", expected), n_levels, f"{path}:{k}")
                   for a, k in zip(arrays, ("x_train", "x_test")))
    for name, array in (("x_train", train), ("x_test", test)):
        if expected is not None and array.shape[1:] != tuple(expected):
            raise UserError(f"{path}:{name}: this dataset has images of shape {tuple(expected)}, "
                            f"the file has {array.shape[1:]}")
    if train.shape[1:] != test.shape[1:]:
        raise UserError(f"{path}: x_train images are {train.shape[1:]}, x_test images {test.shape[1:]}")
    return ImageSet(train, test, n_levels)


# --- MNIST and Fashion-MNIST: IDX files -------------------------------------------------------------

def _find(folder_options: list[Path], name: str) -> Path | None:
    for folder in folder_options:
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def _read_mnist(root: Path, name: str, download: bool) -> tuple[np.ndarray, np.ndarray]:
    sub = "MNIST" if name == "mnist" else "FashionMNIST"
    folders = [root / sub / "raw", root]
    files = [_find(folders, f"{p}-images-idx3-ubyte") for p in ("train", "t10k")]
    if None in files and download:
        _download(name, root)
        files = [_find(folders, f"{p}-images-idx3-ubyte") for p in ("train", "t10k")]
    if None in files:
        raise UserError(f"{name} not found in {root}: run with --set data.download=true (needs internet and "
                        f"torchvision), or put train-images-idx3-ubyte.gz and t10k-images-idx3-ubyte.gz in "
                        f"{root / sub / 'raw'}, or pass --data FILE.npz holding x_train and x_test (a folder of your "
                        f"own images: the 'images' preset or --set data.name=folder)")
    arrays = []
    for path in files:
        images = read_idx(path)
        if images.shape[1:] != (28, 28):
            raise UserError(f"{path}: expected 28x28 images, got shape {images.shape}")
        arrays.append(images[:, None])
    return arrays[0], arrays[1]


# --- CIFAR-10: python pickle batches ---------------------------------------------------------------

def _read_cifar10(root: Path, download: bool) -> tuple[np.ndarray, np.ndarray]:
    folder = root / "cifar-10-batches-py" if (root / "cifar-10-batches-py").is_dir() or download else root
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    if download and not all((folder / n).is_file() for n in names):
        _download("cifar10", root)
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise UserError(f"cifar10 not found in {root}: run with --set data.download=true (needs internet and "
                        f"torchvision), or unpack cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/"
                        f"cifar.html into {root} (missing {', '.join(missing)})")
    train = np.concatenate([read_cifar_batch(folder / n) for n in names[:5]])
    return train, read_cifar_batch(folder / "test_batch")


# --- CelebA and folders of images ------------------------------------------------------------------

def _read_celeba(root: Path, size: int, download: bool) -> tuple[np.ndarray, np.ndarray]:
    """Aligned CelebA: partition 0 trains (validation is carved from it), partition 2 tests. The
    decoded, cropped and resized arrays are cached as ``celeba_{size}.npz`` beside the partition file."""
    folder = root / "celeba" if (root / "celeba").is_dir() or download else root
    partition = folder / "list_eval_partition.txt"
    if download and not partition.is_file():
        _download("celeba", root)
    if not partition.is_file() or not (folder / "img_align_celeba").is_dir():
        raise UserError(f"celeba not found in {root}: put img_align_celeba/ (unzipped) and "
                        f"list_eval_partition.txt from https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html "
                        f"into {root / 'celeba'}, or try --set data.download=true (torchvision, Google Drive)")
    cache = folder / f"celeba_{size}.npz"
    if cache.is_file():
        ready = read_image_npz(cache, 256, (3, size, size))
        return ready.train, ready.test
    split: dict[str, list[str]] = {"0": [], "2": []}
    for number, line in enumerate(partition.read_text().splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
            raise UserError(f"{partition}:{number}: expected 'IMAGE_ID PARTITION', got {line!r}")
        split.get(fields[1], []).append(fields[0])
    arrays = []
    for part in ("0", "2"):
        if not split[part]:
            raise UserError(f"{partition}: no images in partition {part}")
        imgs = [open_image(folder / "img_align_celeba" / name, size, CELEBA_CROP).convert("RGB")
                for name in split[part]]
        arrays.append(np.stack([np.asarray(img).transpose(2, 0, 1) for img in imgs]))
    buffer = io.BytesIO()
    np.savez(buffer, x_train=arrays[0], x_test=arrays[1])
    try:
        atomic_write_bytes(cache, buffer.getvalue())
    except OSError:
        pass  # a read-only dataset folder only costs the decoding next time
    return arrays[0], arrays[1]


def _download(name: str, root: Path) -> None:
    """Fetch a dataset with torchvision into ``root`` (its standard layout)."""
    try:
        from torchvision import datasets
    except ImportError:
        raise UserError("downloading needs torchvision: pip install 'realnvp[vision]'") from None
    try:
        root.mkdir(parents=True, exist_ok=True)
        if name == "mnist":
            datasets.MNIST(str(root), train=True, download=True)
        elif name == "fashion-mnist":
            datasets.FashionMNIST(str(root), train=True, download=True)
        elif name == "cifar10":
            datasets.CIFAR10(str(root), train=True, download=True)
        else:
            datasets.CelebA(str(root), split="all", target_type=[], download=True)
    except Exception as exc:  # noqa: BLE001 - network, disk and checksum failures all end the same way
        raise UserError(f"downloading {name} into {root} failed: {first_line(exc)}") from None
