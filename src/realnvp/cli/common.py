"""What several commands share: checking an output path before any work is done, printing a metric."""

from __future__ import annotations

import os
from pathlib import Path

from realnvp.errors import UserError

NAME_MAX, PATH_MAX = 255, 4096  # bytes in a name, in a path (with its final NUL) where os.pathconf does not say
# An output file needs room beside its name: its atomic write's temporary copy ".NAME.12345678.tmp" (14 bytes
# more) and, with several --temperature values, "NAME_t0.000123457.EXT" (13 more).
OUTPUT_NAME_ROOM = 27


def _pathconf(path: Path, name: str, default: int) -> int:
    """``os.pathconf`` of the nearest folder of ``path`` that exists, ``default`` where it does not say."""
    folder = path.parent
    while not os.path.isdir(folder) and folder != folder.parent:  # os.path.isdir: False, never raises
        folder = folder.parent
    try:
        return os.pathconf(folder, name)
    except (OSError, ValueError, AttributeError):
        return default


def check_name_lengths(path: Path, prefix: str = "cannot write", room: int = OUTPUT_NAME_ROOM) -> None:
    """A ``UserError`` when a name in ``path``, or the whole path, is longer than its file system takes
    (``room`` bytes kept free for the last name), checked before anything touches the path: ``Path.is_dir``
    raises on it (OSError 36).

    Example:
        >>> check_name_lengths(tmp / ("a" * 300 + ".png"))
        Traceback (most recent call last):
        ...
        realnvp.errors.UserError: cannot write .../aaaaaaaaaaaaaaaaaaaa...aaaa.png: its name is 304 bytes long; this ...
    """
    most, parts = _pathconf(path, "PC_NAME_MAX", NAME_MAX), path.parts
    for i, part in enumerate(parts):
        size, allowed = len(os.fsencode(part)), most - (room if i == len(parts) - 1 else 0)
        if size > allowed:
            shown = Path(*parts[:i], part[:20] + "..." + part[-8:], *parts[i + 1:])
            spare = f" ({allowed} for an output, which needs room for a temporary copy)" if allowed < most else ""
            raise UserError(f"{prefix} {shown}: {'its' if i == len(parts) - 1 else 'a folder'} name is {size} bytes "
                            f"long; this file system takes at most {most}{spare}")
    longest, size = _pathconf(path, "PC_PATH_MAX", PATH_MAX) - 1, len(os.fsencode(str(path)))
    if size + room > longest:
        raise UserError(f"{prefix} {str(path)[:40]}...{str(path)[-20:]}: the path is {size} bytes long; this file "
                        f"system takes at most {longest}{f' ({longest - room} for an output)' if room else ''}")


def check_output(path: Path, suffixes: tuple[str, ...]) -> None:
    """A ``UserError`` unless ``path`` ends in one of ``suffixes`` and can be written.

    Example:
        >>> check_output(tmp / "samples.png", (".png", ".npy"))
        >>> check_output(tmp / "samples.jpg", (".png", ".npy"))
        Traceback (most recent call last):
        ...
        realnvp.errors.UserError: output 'samples.jpg' must end in .png or .npy
    """
    check_name_lengths(path)  # first: a name too long for the file system makes every other check raise
    if path.is_dir():  # then: "-o ." or "-o runs/" names a folder, whatever its suffix
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
