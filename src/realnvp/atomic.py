"""Writing a file so that a crash at any moment leaves either the old file or the new one, never a
torn one: the one primitive every run-directory write and every output file uses."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from realnvp.errors import UserError


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same directory, fsync, then rename over ``path``: a crash at
    any moment leaves either the old file or the new one, never a torn one.

    Example:
        >>> atomic_write_bytes(tmp / "notes.txt", b"first")
        >>> atomic_write_bytes(tmp / "notes.txt", b"second")
        >>> (tmp / "notes.txt").read_bytes(), sorted(p.name for p in tmp.glob("*notes*"))  # no temporary left
        (b'second', ['notes.txt'])
    """
    path = Path(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; results should be as readable as any file written
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):  # a full disk, a read-only folder: one line, the old file intact
            raise UserError(f"cannot write {path}: {exc.strerror or exc} (any earlier version of it is intact)"
                            ) from None
        raise


def fsync_dir(directory: Path) -> None:
    """Make a rename inside ``directory`` durable (the directory entry itself is flushed).

    Example:
        >>> fsync_dir(tmp)
    """
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
