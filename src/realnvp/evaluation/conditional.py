"""The user's held-out examples with their contexts, for conditional runs (``score``, ``evaluate
--data``): a table laid out like the training table (its ``data.context_columns`` are the context), or
labelled images (an .npz with ``x``/``y`` or ``x_test``/``y_test``, or a folder of class sub-folders), or
images with context rows (an .npz with ``x``/``context`` or ``x_test``/``context_test``)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from realnvp.data import read_vectors
from realnvp.data.image_files import check_levels, first_line, load_checked, read_image_folder, to_nchw
from realnvp.data.labels import checked_contexts, folder_classes, split_columns
from realnvp.errors import UserError
from realnvp.flow import Flow


def _labelled_npz(path: Path, key: str = "y") -> tuple[np.ndarray, np.ndarray]:
    """An .npz's images and their ``key`` array (labels ``y``, or ``context``): ``x`` and ``key``, or
    ``x_test`` and ``key_test``."""
    try:
        with load_checked(path) as archive:
            for x_key, y_key in (("x", key), ("x_test", f"{key}_test")):
                if x_key in archive and y_key in archive:
                    return archive[x_key], archive[y_key]
            found = ", ".join(archive.keys()) or "none"
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise UserError(f"cannot read {path}: {first_line(exc)}") from None
    what = "labels" if key == "y" else "contexts"
    raise UserError(f"{path}: a {'class' if key == 'y' else 'context'}-conditional run scores an .npz with images "
                    f"and {what}, x and {key} (or x_test and {key}_test); found {found}")


def _images_with_contexts(path: Path, flow: Flow, n_levels: int) -> tuple[np.ndarray, np.ndarray]:
    """An image run conditioned on real context values: an .npz's images and their context rows."""
    if path.suffix.lower() != ".npz" or not path.is_file():
        raise UserError(f"{path}: a context-conditional image run scores an .npz with x and context (images and "
                        f"their context rows)")
    images, contexts = _labelled_npz(path, "context")
    images = to_nchw(images, str(path), flow.event_shape)
    if tuple(images.shape[1:]) != flow.event_shape:
        raise UserError(f"{path}: the run takes images of shape {flow.event_shape} [C, H, W], got "
                        f"{tuple(images.shape[1:])}")
    contexts = checked_contexts(contexts, f"{path}:context", flow.context_size)
    if len(contexts) != len(images):
        raise UserError(f"{path}: {len(images)} images but {len(contexts)} context rows")
    return check_levels(images, n_levels, str(path)), contexts


def _labelled_images(path: Path, flow: Flow, n_levels: int) -> tuple[np.ndarray, np.ndarray]:
    if path.is_dir():
        images, labels = read_image_folder(path), folder_classes(path)[0]
    elif path.suffix.lower() == ".npz" and path.is_file():
        images, labels = _labelled_npz(path)
        images = to_nchw(images, str(path), flow.event_shape)
    else:
        raise UserError(f"{path}: a class-conditional run scores a folder with one sub-folder per class or an .npz "
                        f"with x and y (images and their class labels)")
    if tuple(images.shape[1:]) != flow.event_shape:
        raise UserError(f"{path}: the run takes images of shape {flow.event_shape} [C, H, W], got "
                        f"{tuple(images.shape[1:])}")
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != len(images):
        raise UserError(f"{path}: {len(images)} images but {len(labels)} class labels")
    try:
        labels = flow.as_context(labels, len(labels)).cpu().numpy()
    except ValueError as exc:
        raise UserError(f"{path}: {exc}") from None
    return check_levels(images, n_levels, str(path)), labels


def read_with_context(path: str | Path, flow: Flow, n_levels: int = 0,
                      context_columns: tuple[int, ...] = ()) -> tuple[np.ndarray, np.ndarray]:
    """``(examples, contexts)`` of ``path`` for the conditional ``flow``: a vector run reads a table
    with the training table's columns and splits off its ``context_columns``; an image run (``n_levels``
    pixel levels) reads labelled images. Anything else is a one-line ``UserError``.

    Example:
        >>> from realnvp.models import build_vector_flow
        >>> _ = (tmp / "rows.csv").write_text("x,y,angle\\n0.5,0.25,1.0\\n1.0,0.0,2.0\\n")
        >>> x, c = read_with_context(tmp / "rows.csv", build_vector_flow(2, context_size=1), 0, (2,))
        >>> x.tolist(), c.tolist()
        ([[0.5, 0.25], [1.0, 0.0]], [[1.0], [2.0]])
    """
    path = Path(path)
    if n_levels and flow.context_size:
        return _images_with_contexts(path, flow, n_levels)
    if n_levels:
        return _labelled_images(path, flow, n_levels)
    if len(context_columns) != flow.context_size:
        raise UserError(f"the run takes {flow.context_size} context columns, {len(context_columns)} were named")
    table = read_vectors(path, expected_dim=flow.event_size + flow.context_size)
    return split_columns(table, tuple(context_columns), str(path))
