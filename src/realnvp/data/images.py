"""Image datasets by name, read from their own file formats into integer arrays ``[N, C, H, W]``.

``digits`` (scikit-learn's 8x8, 17 levels, bundled), ``mnist`` and ``fashion-mnist`` (IDX files),
``cifar10`` (the python pickle batches), ``celeba`` (aligned JPEGs, cropped and resized as in the
paper), ``folder`` (any folder of images), or an ``.npz`` with ``x_train`` / ``x_test`` for any of
them. ``data.path`` names the dataset's root folder (default ``$REALNVP_DATA`` or ``./data``);
``data.download`` fetches the first three with torchvision. Every problem with the files is a
one-line ``UserError`` that names the file.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from realnvp.config import DataConfig
from realnvp.errors import UserError

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
    if cfg.path.lower().endswith(".npz"):
        expected = SHAPES.get(cfg.name) or ((3, cfg.image_size, cfg.image_size) if cfg.image_size else None)
        return read_image_npz(Path(cfg.path), levels, expected)
    if cfg.name == "digits":
        from sklearn.datasets import load_digits

        images = load_digits().data.reshape(-1, 1, 8, 8).astype(np.uint8)
        return ImageSet(*_split(images, cfg), levels)
    root = data_root(cfg)
    if cfg.name in ("mnist", "fashion-mnist"):
        return ImageSet(*_read_mnist(root, cfg.name, cfg.download), levels)
    if cfg.name == "cifar10":
        return ImageSet(*_read_cifar10(root, cfg.download), levels)
    if cfg.name == "celeba":
        return ImageSet(*_read_celeba(root, cfg.image_size or 64, cfg.download), levels)
    return ImageSet(*_split(read_image_folder(root, cfg.image_size), cfg), levels)


def _split(images: np.ndarray, cfg: DataConfig) -> tuple[np.ndarray, np.ndarray]:
    """Datasets without an official test set: a seeded permutation, the first ``1 - test_fraction``
    for training (for digits with seed 0 exactly the benchmark protocol's 1437 / 360 split)."""
    order = np.random.RandomState(cfg.seed).permutation(len(images))
    n_train = int((1.0 - cfg.test_fraction) * len(images))
    if n_train < 1 or n_train >= len(images):
        raise UserError(f"{len(images)} images are too few to split with test_fraction {cfg.test_fraction}")
    return images[order[:n_train]], images[order[n_train:]]


def check_levels(array: np.ndarray, n_levels: int, origin: str) -> np.ndarray:
    """``array`` as uint8 after checking that every value is an integer in ``0 .. n_levels - 1``.

    Example:
        >>> check_levels(np.array([0.0, 16.0]), 17, "x").tolist()
        [0, 16]
        >>> check_levels(np.array([17]), 17, "x")
        Traceback (most recent call last):
        realnvp.errors.UserError: x: pixel values must lie in 0..16 for this 17-level dataset, found 17..17
    """
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise UserError(f"{origin}: expected pixel values, got dtype {array.dtype}")
    if array.size == 0:
        raise UserError(f"{origin}: holds no images")
    if np.issubdtype(array.dtype, np.floating) and not np.array_equal(array, np.round(array)):
        raise UserError(f"{origin}: pixel values must be integers 0..{n_levels - 1}, got fractions "
                        f"(e.g. {array[array != np.round(array)].flat[0].item()!r}); pass the raw integer pixels")
    low, high = array.min().item(), array.max().item()
    if low < 0 or high > n_levels - 1:
        raise UserError(f"{origin}: pixel values must lie in 0..{n_levels - 1} for this {n_levels}-level "
                        f"dataset, found {low!r}..{high!r}")
    return array.astype(np.uint8)


def _as_nchw(array: np.ndarray, origin: str) -> np.ndarray:
    if array.ndim == 3:
        array = array[:, None]
    if array.ndim != 4 or array.shape[1] not in (1, 3):
        raise UserError(f"{origin}: expected images [N, H, W] or [N, C, H, W] with C = 1 or 3, "
                        f"got shape {array.shape}")
    return array


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
        with np.load(path, allow_pickle=False) as archive:
            missing = [k for k in ("x_train", "x_test") if k not in archive]
            if missing:
                raise UserError(f"{path}: an image .npz needs arrays x_train and x_test; missing {', '.join(missing)} "
                                f"(found {', '.join(archive.keys()) or 'none'})")
            arrays = [archive["x_train"], archive["x_test"]]
    except UserError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise UserError(f"cannot read {path}: {_first_line(exc)}") from None
    train, test = (check_levels(_as_nchw(a, f"{path}:{k}"), n_levels, f"{path}:{k}")
                   for a, k in zip(arrays, ("x_train", "x_test")))
    for name, array in (("x_train", train), ("x_test", test)):
        if expected is not None and array.shape[1:] != tuple(expected):
            raise UserError(f"{path}:{name}: this dataset has images of shape {tuple(expected)}, "
                            f"the file has {array.shape[1:]}")
    if train.shape[1:] != test.shape[1:]:
        raise UserError(f"{path}: x_train images are {train.shape[1:]}, x_test images {test.shape[1:]}")
    return ImageSet(train, test, n_levels)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


# --- MNIST and Fashion-MNIST: IDX files -------------------------------------------------------------

def read_idx(path: Path) -> np.ndarray:
    """An IDX file (the MNIST format: magic ``0 0 8 ndim``, big-endian sizes, then unsigned bytes),
    plain or gzipped.

    Example:
        >>> _ = (tmp / "x-idx1-ubyte").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9]))
        >>> read_idx(tmp / "x-idx1-ubyte").tolist()
        [7, 8, 9]
    """
    try:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")) as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise UserError(f"cannot read {path}: {_first_line(exc)}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise UserError(f"{path}: not an IDX file of unsigned bytes (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise UserError(f"{path}: corrupt IDX header")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    if len(raw) - header != int(np.prod(dims)):
        raise UserError(f"{path}: corrupt or truncated IDX file: header says {dims}, "
                        f"found {len(raw) - header} bytes of data")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


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

class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only: a crafted file cannot run code."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}  # bytes in protocol-2 pickles

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def read_cifar_batch(path: Path) -> np.ndarray:
    """The images ``[N, 3, 32, 32]`` of one CIFAR-10 python batch (a pickled dict with ``data``).

    Example:
        >>> _ = (tmp / "batch").write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8)}, protocol=2))
        >>> read_cifar_batch(tmp / "batch").shape
        (2, 3, 32, 32)
    """
    try:
        with path.open("rb") as f:
            batch = _ArrayUnpickler(f, encoding="bytes").load()
        data = np.asarray(batch[b"data"] if b"data" in batch else batch["data"])
    except (OSError, EOFError, pickle.UnpicklingError, KeyError, TypeError, ValueError, AttributeError,
            IndexError) as exc:
        raise UserError(f"{path}: not a CIFAR-10 python batch ({_first_line(exc)})") from None
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise UserError(f"{path}: expected data of shape [N, 3072], got {data.shape}")
    return check_levels(data, 256, str(path)).reshape(-1, 3, 32, 32)


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

def _open_image(path: Path, size: int, crop: tuple[int, int, int, int] | None = None):  # noqa: ANN202
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            if crop is not None:
                img = img.crop(crop)
            if size:
                img = img.resize((size, size), Image.Resampling.BOX)
            return img.copy()
    except UnidentifiedImageError:
        raise UserError(f"{path}: not an image file (remove it from the folder)") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read image {path}: {_first_line(exc)}") from None


def read_image_folder(folder: Path, size: int = 0) -> np.ndarray:
    """Every image under ``folder`` (recursively, hidden files skipped) as uint8 ``[N, C, H, W]``:
    grayscale when every image is, RGB otherwise; all must share one size unless ``size`` resizes
    them to ``size x size``.

    Example:
        >>> from PIL import Image
        >>> (tmp / "pics").mkdir()
        >>> for i in range(3):
        ...     Image.new("L", (6, 4)).save(tmp / "pics" / f"{i}.png")
        >>> read_image_folder(tmp / "pics").shape
        (3, 1, 4, 6)
    """
    if not folder.is_dir():
        raise UserError(f"image folder not found: {folder}")
    try:
        paths = sorted(p for p in folder.rglob("*") if p.is_file() and not any(
            part.startswith(".") for part in p.relative_to(folder).parts))
    except OSError as exc:
        raise UserError(f"cannot list {folder}: {exc.strerror or exc}") from None
    if not paths:
        raise UserError(f"image folder {folder} is empty")
    images = [_open_image(p, size) for p in paths]
    gray = all(img.mode in ("L", "1") for img in images)
    arrays = []
    for path, img in zip(paths, images):
        array = np.asarray(img.convert("L" if gray else "RGB"))
        array = array[None] if gray else array.transpose(2, 0, 1)
        if arrays and array.shape != arrays[0].shape:
            raise UserError(f"{path}: image of size {array.shape[2]}x{array.shape[1]}, but {paths[0].name} is "
                            f"{arrays[0].shape[2]}x{arrays[0].shape[1]}; use --set data.image_size=N to resize all")
        arrays.append(array)
    return np.stack(arrays)


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
        imgs = [_open_image(folder / "img_align_celeba" / name, size, CELEBA_CROP).convert("RGB")
                for name in split[part]]
        arrays.append(np.stack([np.asarray(img).transpose(2, 0, 1) for img in imgs]))
    buffer = io.BytesIO()
    np.savez(buffer, x_train=arrays[0], x_test=arrays[1])
    try:
        from realnvp.rundir import atomic_write_bytes

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
        raise UserError(f"downloading {name} into {root} failed: {_first_line(exc)}") from None
