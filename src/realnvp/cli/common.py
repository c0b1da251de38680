"""What several commands share: checking an output path before any work is done, printing a metric."""

from __future__ import annotations

import os
from pathlib import Path

from realnvp.errors import UserError


def check_output(path: Path, suffixes: tuple[str, ...]) -> None:
    """A ``UserError`` unless ``path`` ends in one of ``suffixes`` and can be written.

    Example:
        >>> check_output(tmp / "samples.png", (".png", ".npy"))
        >>> check_output(tmp / "samples.jpg", (".png", ".npy"))
        Traceback (most recent call last):
        ...
        realnvp.errors.UserError: output 'samples.jpg' must end in .png or .npy
    """
    if path.is_dir():  # first: "-o ." or "-o runs/" names a folder, whatever its suffix
        raise UserError(f"cannot write {path}: it is a directory")
    if path.suffix.lower() not in suffixes:
        allowed = f"{', '.join(suffixes[:-1])} or {suffixes[-1]}" if len(suffixes) > 1 else suffixes[0]
        raise UserError(f"output {path.name!r} must end in {allowed}")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UserError(f"cannot write {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UserError(f"cannot write {path}: permission denied")


def format_value(value: object) -> str:
    """A metric as a person reads it: floats to 6 significant digits (the JSON keeps every digit).

    Example:
        >>> format_value(2.0635955788257356), format_value(1.5e-07), format_value(60), format_value("moons")
        ('2.0636', '1.5e-07', '60', 'moons')
    """
    return f"{value:.6g}" if isinstance(value, float) else str(value)
