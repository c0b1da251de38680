"""Pixels from files: array layouts (``[N, H, W]``, ``[N, C, H, W]``, ``[N, H, W, C]``), folders of
images in any mode Pillow opens (RGBA, palette, 16-bit, CMYK, ... converted with a one-line notice),
single-array files, IDX and CIFAR-10 batches. Everything comes out as uint8 ``[N, C, H, W]``, C-contiguous,
and every problem is a one-line ``UserError`` that names the file."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
import warnings
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image as PIL
from PIL import UnidentifiedImageError

from realnvp.data.vectors import Claim, array_claims, limit
from realnvp.errors import UserError

# One image's width x height, read from its header before it is decoded (docs/bad-input.md); Pillow's own
# check (a DecompressionBombError traceback past 179 million pixels) is replaced by this one.
MAX_IMAGE_PIXELS = 100_000_000  # REALNVP_MAX_IMAGE_PIXELS raises it
CHANNELS = (1, 3, 4)  # grey, RGB, RGBA: the channel counts an array's layout is read from
GREY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N")


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (at most 200 characters), or its type's name.

    Example:
        >>> first_line(ValueError("bad header\\nmore detail"))
        'bad header'
    """
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


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
        hint = " (16-bit pixels? scale them to 0..255 first, e.g. values // 256)" if high > 255 >= n_levels - 1 else ""
        raise UserError(f"{origin}: pixel values must lie in 0..{n_levels - 1} for this {n_levels}-level "
                        f"dataset, found {low!r}..{high!r}{hint}")
    return np.ascontiguousarray(array, dtype=np.uint8)


def to_nchw(array: np.ndarray, origin: str, expected: tuple[int, ...] | None = None) -> np.ndarray:
    """Images ``[N, H, W]``, ``[N, C, H, W]`` or ``[N, H, W, C]`` (C = 1, 3 or 4) as a C-contiguous
    ``[N, C, H, W]``. The layout is channels-last when the last axis is 1, 3 or 4 and the second is not,
    or when only that reading gives the ``expected`` ``(C, H, W)`` of a trained run.

    Example:
        >>> to_nchw(np.zeros((5, 32, 32, 3), np.uint8), "x").shape  # NHWC, as most libraries store photos
        (5, 3, 32, 32)
        >>> to_nchw(np.zeros((5, 3, 32, 32), np.uint8), "x").shape, to_nchw(np.zeros((5, 8, 8)), "x").shape
        ((5, 3, 32, 32), (5, 1, 8, 8))
    """
    if array.ndim == 3:
        return np.ascontiguousarray(array[:, None])
    if array.ndim == 4:
        first, last = array.shape[1], array.shape[3]
        channels_last = last in CHANNELS and first not in CHANNELS
        if expected is not None and tuple(expected) in (array.shape[1:], (last, *array.shape[1:3])):
            channels_last = tuple(array.shape[1:]) != tuple(expected)
        if channels_last:
            return np.ascontiguousarray(array.transpose(0, 3, 1, 2))
        if first in CHANNELS:
            return np.ascontiguousarray(array)
    raise UserError(f"{origin}: expected images [N, H, W], [N, C, H, W] or [N, H, W, C] with C = 1, 3 or 4, "
                    f"got shape {tuple(array.shape)}")


def read_pixel_file(path: Path) -> np.ndarray:
    """The pixel array of an .npy, or of an .npz's ``x_test``, ``x`` or only array (any layout).

    Example:
        >>> np.save(tmp / "p.npy", np.zeros((2, 4, 4, 3), np.uint8))
        >>> read_pixel_file(tmp / "p.npy").shape
        (2, 4, 4, 3)
    """
    if not path.is_file():
        raise UserError(f"data file not found: {path}")
    try:
        claims = check_pixel_claims(path)
        if path.suffix.lower() == ".npy":
            return np.load(path, allow_pickle=False)
        with np.load(path, allow_pickle=False) as archive:
            names = list(archive.keys())
            name = next((k for k in ("x_test", "x") if k in names), names[0] if len(names) == 1 else None)
            if name is None:
                raise UserError(f"{path}: expected an array x_test (or x, or a single array); found {names or 'none'}")
            if name not in claims:  # np.load hands other members over as bytes
                raise UserError(f"{path}: member {name!r} is not an array (an .npz holds .npy files)")
            return archive[name]
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, MemoryError) as exc:
        raise UserError(f"cannot read {path}: {first_line(exc)}") from None


def physical_memory() -> int:
    """This machine's memory in bytes (0 where the system does not say).

    Example:
        >>> physical_memory() > 2**20
        True
    """
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0


def check_pixel_claims(path: Path) -> dict[str, Claim]:
    """Refuse an .npy or .npz of images whose headers claim more bytes than the file holds
    (``array_claims``) or than this machine's memory, before numpy allocates them; returns the claims.

    Example:
        >>> np.savez(tmp / "i.npz", x_train=np.zeros((2, 8, 8), np.uint8), x_test=np.zeros((1, 8, 8), np.uint8))
        >>> check_pixel_claims(tmp / "i.npz")["x_train"].shape
        (2, 8, 8)
    """
    claims = array_claims(path)
    for claim in claims.values():
        claim.check_held()
    total = sum(claim.nbytes for claim in claims.values())
    memory = physical_memory()
    if memory and total > memory:
        raise UserError(f"{path}: its arrays hold {total:,} bytes, more than this machine's memory ({memory:,} bytes)")
    return claims


def load_checked(path: Path) -> np.lib.npyio.NpzFile | np.ndarray:
    """``np.load`` of an .npy or .npz without pickles, once ``check_pixel_claims`` has refused headers
    that claim more than the file or the memory holds (numpy would try to allocate them first).

    Example:
        >>> np.save(tmp / "c.npy", np.zeros((3, 2)))
        >>> load_checked(tmp / "c.npy").shape
        (3, 2)
    """
    check_pixel_claims(path)
    return np.load(path, allow_pickle=False)


# --- folders of images ------------------------------------------------------------------------------

def open_image(path: Path, size: int = 0, crop: tuple[int, int, int, int] | None = None) -> PIL.Image:
    """One image file, decoded (optionally cropped to ``crop`` and box-resized to ``size x size``).
    Its ``info["bits"]`` is 16 when the file stores 16 bits per channel (Pillow decodes 16-bit RGB(A)
    to 8 bits on its own, so this is the only place that can tell).

    Example:
        >>> from PIL import Image
        >>> Image.new("RGB", (6, 4)).save(tmp / "a.png")
        >>> image = open_image(tmp / "a.png", size=2)
        >>> image.size, image.mode, image.info["bits"]
        ((2, 2), 'RGB', 8)
    """
    most, pillows = limit("REALNVP_MAX_IMAGE_PIXELS", MAX_IMAGE_PIXELS), PIL.MAX_IMAGE_PIXELS
    try:
        PIL.MAX_IMAGE_PIXELS = None  # Pillow's own check would be a traceback; ours reads the header below
        with PIL.open(path) as img:  # reads the header only
            if img.width * img.height > most:
                raise UserError(f"{path}: an image of {img.width}x{img.height} = {img.width * img.height:,} pixels is "
                                f"more than the {most:,} realnvp decodes; shrink it, or set REALNVP_MAX_IMAGE_PIXELS "
                                f"to allow more")
            raw = "".join(str(getattr(tile, "args", tile[-1] if isinstance(tile, tuple) else "")) for tile in img.tile)
            bits = 16 if ";16" in raw or img.mode.startswith("I;16") else 8
            img.load()
            if crop is not None:
                img = img.crop(crop)
            if size:
                img = img.resize((size, size), PIL.Resampling.BOX)
            img = img.copy()
    except UnidentifiedImageError:
        raise UserError(f"{path}: not an image file (remove it from the folder)") from None
    except (OSError, ValueError, MemoryError) as exc:
        raise UserError(f"cannot read image {path}: {first_line(exc)}") from None
    finally:
        PIL.MAX_IMAGE_PIXELS = pillows
    img.info["bits"] = bits
    return img


def image_pixels(img: PIL.Image, grey: bool, path: Path) -> tuple[np.ndarray, str | None]:
    """An opened image as uint8 ``[C, H, W]`` (C = 1 when ``grey``, else 3) and, when that changed it,
    what was done (for the notice): 16-bit values become ``value // 256``, alpha is dropped, palette,
    CMYK and other modes become RGB (or grey).

    Example:
        >>> from PIL import Image
        >>> pixels, change = image_pixels(Image.new("RGBA", (3, 2), (10, 20, 30, 40)), False, Path("x.png"))
        >>> pixels.shape, pixels[:, 0, 0].tolist(), change
        ((3, 2, 3), [10, 20, 30], 'RGBA (alpha dropped)')
    """
    mode = img.mode
    if mode == "F":
        raise UserError(f"{path}: floating-point image (mode F); save integer pixels (8 or 16 bits)")
    if mode.startswith("I"):  # 16-bit grey (I;16*) or 32-bit integers, which Pillow's convert("L") would clip
        values = np.asarray(img).astype(np.int64)
        if values.min() < 0 or values.max() > 65535:
            raise UserError(f"{path}: {mode} pixels beyond 16 bits ({values.min()}..{values.max()})")
        array = (values >> 8).astype(np.uint8)
        array = array[None] if grey else np.repeat(array[None], 3, axis=0)
        return array, "16-bit grey (scaled to 8 bits: value // 256)"
    array = np.asarray(img.convert("L" if grey else "RGB"))
    array = array[None] if grey else array.transpose(2, 0, 1)
    changes = [f"16-bit {mode} (scaled to 8 bits: value // 256)"] if img.info.get("bits") == 16 else []
    if mode in ("RGBA", "LA", "La", "RGBa", "PA") or (mode == "P" and "transparency" in img.info):
        changes.append(f"{mode} (alpha dropped)")
    elif mode == "P":
        changes.append("palette")
    elif mode not in ("L", "1", "RGB"):
        changes.append(mode)
    elif mode in ("L", "1") and not grey:
        changes.append("grey (repeated into RGB)")
    return np.ascontiguousarray(array), (", ".join(changes) or None)


_FOLDER_CACHE: dict[tuple, np.ndarray] = {}  # train, evaluate and pictures read the same folder in one process


def _image_paths(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise UserError(f"image folder not found: {folder}")
    try:
        paths = sorted(p for p in folder.rglob("*") if p.is_file() and not any(
            part.startswith(".") for part in p.relative_to(folder).parts))
    except OSError as exc:
        raise UserError(f"cannot list {folder}: {exc.strerror or exc}") from None
    if not paths:
        raise UserError(f"image folder {folder} is empty")
    return paths


def read_image_folder(folder: Path, size: int = 0) -> np.ndarray:
    """Every image under ``folder`` (recursively, hidden files skipped) as uint8 ``[N, C, H, W]``:
    grey when every image is, RGB otherwise; all must share one size unless ``size`` resizes them to
    ``size x size``. RGBA, palette, 16-bit and other modes are converted, with one warning that says
    how many and how (16-bit: ``value // 256``, never clipped).

    Example:
        >>> from PIL import Image
        >>> (tmp / "pics").mkdir()
        >>> for i in range(3):
        ...     Image.new("L", (6, 4)).save(tmp / "pics" / f"{i}.png")
        >>> read_image_folder(tmp / "pics").shape
        (3, 1, 4, 6)
    """
    paths = _image_paths(folder)
    key = (str(folder.resolve()), size, tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in paths))
    if key in _FOLDER_CACHE:
        return _FOLDER_CACHE[key]
    images = [open_image(p, size) for p in paths]
    grey = all(img.mode in GREY_MODES for img in images)
    arrays, changes = [], Counter()
    for path, img in zip(paths, images):
        array, change = image_pixels(img, grey, path)
        if arrays and array.shape != arrays[0].shape:
            raise UserError(f"{path}: image of size {array.shape[2]}x{array.shape[1]}, but {paths[0].name} is "
                            f"{arrays[0].shape[2]}x{arrays[0].shape[1]}; use --set data.image_size=N to resize all")
        arrays.append(array)
        changes[change] += change is not None
    done = [f"{n} {what}" for what, n in changes.items() if n]
    if done:
        warnings.warn(f"{folder}: converted to {'8-bit grey' if grey else '8-bit RGB'}: {'; '.join(done)}",
                      stacklevel=2)
    _FOLDER_CACHE.clear()  # one folder kept: a big one is read again rather than held twice
    _FOLDER_CACHE[key] = np.stack(arrays)
    return _FOLDER_CACHE[key]


# --- MNIST's IDX files and CIFAR-10's python batches -----------------------------------------------

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
        raise UserError(f"cannot read {path}: {first_line(exc)}") from None
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
        raise UserError(f"{path}: not a CIFAR-10 python batch ({first_line(exc)})") from None
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise UserError(f"{path}: expected data of shape [N, 3072], got {data.shape}")
    return check_levels(data, 256, str(path)).reshape(-1, 3, 32, 32)
