"""One training per run directory: an exclusive ``fcntl.flock`` on ``RUN_DIR/.lock``, held for the
run's whole life. The kernel drops a flock when its holder exits in any way (SIGKILL and power loss
included), so a lock file left by a killed run is free: the next run takes it over and says whose it
was (the file records the holder's process id, host and start time)."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from realnvp.errors import UserError

LOCK = ".lock"  # hidden, so listings of a run directory show its results only


def _holder(record: str) -> str:
    """``process 123 on host, since 2024-05-01 12:00:00`` from a lock file's JSON (or its raw text)."""
    try:
        info = json.loads(record)
        return f"process {info['pid']} on {info['host']}, since {info['since']}"
    except (ValueError, TypeError, KeyError, RecursionError):
        return f"an unknown process ({record.strip()[:60]!r})"


class RunLock:
    """An exclusive lock on ``directory`` (which must exist); ``with RunLock(d):`` or
    ``acquire``/``release``. A second holder is refused at once with a ``UserError`` naming the
    first; a lock left by a killed process is taken over with one line to ``log``.

    Example:
        >>> with RunLock(tmp) as held:
        ...     RunLock(tmp).acquire()  # a second training into the same folder
        Traceback (most recent call last):
        ...
        realnvp.errors.UserError: ... is in use by another training (process ... on ..., since ...); wait ...
        >>> sorted(p.name for p in tmp.iterdir())  # released: the lock file is gone
        []
    """

    _held: dict[str, RunLock] = {}  # the locks this process holds, by directory (flocks are per process)

    def __init__(self, directory: str | os.PathLike, log: Callable[..., Any] = print) -> None:
        self.directory, self.log = Path(directory), log
        self.path = self.directory / LOCK
        self.fd: int | None = None
        self.created_dir = False  # set by whoever made the directory for this run (``RunDir.lock``)
        self.found: frozenset[str] = frozenset()  # the names the directory held when it was locked

    @classmethod
    def held_on(cls, directory: str | os.PathLike) -> RunLock | None:
        """The lock this process holds on ``directory``, if any.

        Example:
            >>> with RunLock(tmp) as held:
            ...     RunLock.held_on(tmp) is held
            True
            >>> RunLock.held_on(tmp) is None
            True
        """
        return cls._held.get(os.path.realpath(directory))

    def acquire(self) -> RunLock:
        """Take the lock or raise ``UserError``; returns ``self``."""
        for _ in range(10):  # the holder may remove the file between our open and our flock: open again
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                raise UserError(f"cannot lock {self.directory}: {exc.strerror or exc}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                holder = _holder(os.pread(fd, 4096, 0).decode(errors="replace"))
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise UserError(f"{self.directory} is in use by another training ({holder}); wait for it to "
                                    f"end or pick another --out") from None
                raise UserError(f"cannot lock {self.directory}: {exc.strerror or exc}") from None
            if self._is_current(fd):
                self._claim(fd)
                return self
            os.close(fd)
        raise UserError(f"cannot lock {self.directory}: its lock file keeps being replaced")

    def _is_current(self, fd: int) -> bool:
        """Whether ``fd`` is still the file at ``self.path`` (a releasing holder unlinks it)."""
        try:
            return os.fstat(fd).st_ino == os.stat(self.path).st_ino
        except FileNotFoundError:
            return False

    def _claim(self, fd: int) -> None:
        previous = os.pread(fd, 4096, 0).decode(errors="replace")
        if previous.strip():  # written by a holder that never released: it was killed
            self.log(f"taking over the lock of {self.directory}: its holder ({_holder(previous)}) ended without "
                     f"releasing it (killed?)")
        record = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        os.fsync(fd)
        self.fd = fd
        self.found = frozenset(p.name for p in self.directory.iterdir()) - {LOCK}
        RunLock._held[os.path.realpath(self.directory)] = self

    def release(self) -> None:
        """Remove the lock file, then let go (in this order, so no one can lock a file on its way out)."""
        if self.fd is None:
            return
        RunLock._held.pop(os.path.realpath(self.directory), None)
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()
