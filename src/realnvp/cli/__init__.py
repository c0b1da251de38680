"""The ``realnvp`` command: ``main`` parses the command line (``parser.py``, no torch) and hands it to
the module of that command (``train.py``, ``sample.py``, ...). Bad input ends in one line, exit 2."""

from __future__ import annotations

import importlib
import os
import sys
import warnings
from collections.abc import MutableMapping

from realnvp.cli.parser import build_parser
from realnvp.errors import UserError

__all__ = ["build_parser", "main", "set_openmp_spin"]


def set_openmp_spin(environ: MutableMapping[str, str] = os.environ) -> None:
    """Before torch loads libgomp: under ``OMP_WAIT_POLICY=PASSIVE``, spin tens of microseconds before
    sleeping (``GOMP_SPINCOUNT=3000``) while the load leaves a core free; a user's own value wins.
    Measured: benchmarks/PROFILE.md, section 3 (waking sleeping OpenMP threads).

    Example:
        >>> env = {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "0"}
        >>> set_openmp_spin(env); env["GOMP_SPINCOUNT"]  # the user's own value wins
        '0'
        >>> env = {"OMP_WAIT_POLICY": "ACTIVE"}
        >>> set_openmp_spin(env); env  # threads that never sleep need no spin
        {'OMP_WAIT_POLICY': 'ACTIVE'}
    """
    if (environ.get("OMP_WAIT_POLICY", "").strip().lower() == "passive" and hasattr(os, "getloadavg")
            and os.getloadavg()[0] < (os.cpu_count() or 1)):
        environ.setdefault("GOMP_SPINCOUNT", "3000")


def one_line(text: object) -> str:
    r"""``text`` as one printable line: line breaks escaped (a file name may hold them) and characters that
    are not UTF-8 (a lone surrogate from an undecodable file name) as backslash escapes.

    Example:
        >>> one_line("data file not found: a\nb.csv\udcff")
        'data file not found: a\\nb.csv\\udcff'
    """
    text = str(text).replace("\r", "\\r").replace("\n", "\\n")
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _show_warning(message: Warning | str, category: type[Warning], *args: object, **kwargs: object) -> None:
    print(f"realnvp: warning: {one_line(message)}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` and return the exit code: 0 done, 2 bad input (one line on
    stderr, no traceback), 130 interrupted.

    Example:
        >>> import contextlib
        >>> main(["sample", str(run_dir), "-n", "10", "-o", str(tmp / "s.npy"), "--quiet"])
        0
        >>> with contextlib.redirect_stderr(sys.stdout):
        ...     main(["sample", str(run_dir), "-o", str(tmp / "s.jpg")])
        realnvp: error: output 's.jpg' must end in .png, .npy or .csv
        2
    """
    set_openmp_spin()  # the process starts here (the realnvp command, python -m realnvp, torchrun)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning  # one line, no source excerpt
            args = build_parser().parse_args(argv)
            # Each command's module is imported only when it runs, so --help and completion stay fast.
            importlib.import_module(f"realnvp.cli.{args.command}").run(args)
    except UserError as exc:
        print(f"realnvp: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("realnvp: interrupted; the last checkpoint is intact (use --resume)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
