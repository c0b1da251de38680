"""Unpickling a torch file that may be damaged or crafted: ``weights_only`` loading (tensors and plain
containers, no code), the zip's CRC-32s and the Python callables a crafted file names (listed with
``pickletools``, never run); each failure is one line. What a checkpoint must hold is
``realnvp.checkpoint``'s to check."""

from __future__ import annotations

import _compat_pickle
import pickle
import pickletools
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from realnvp.errors import UserError

try:  # the callables torch's weights_only loader accepts (tensor rebuilders, containers): a private API
    from torch._weights_only_unpickler import _get_allowed_globals
except ImportError:  # pragma: no cover (another torch): then every callable a file names is reported
    _get_allowed_globals = dict


def code_named_in(path: Path) -> str | None:
    """The first Python callable (``os.system``, ``builtins.eval``...) the pickle of a torch checkpoint
    names beyond what ``weights_only`` loading accepts, or None. The opcodes are only listed
    (``pickletools``), never executed, so the name is found whichever way the file is crafted.

    Example:
        >>> code_named_in(run_dir / "best.pt") is None  # tensors and plain containers only
        True
    """
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith("data.pkl")]
            payload = archive.read(names[0]) if names else b""
    except (OSError, zipfile.BadZipFile):
        return None
    allowed, strings = set(_get_allowed_globals()), []
    try:
        for opcode, arg, _ in pickletools.genops(payload):
            if opcode.name in ("GLOBAL", "INST", "STACK_GLOBAL"):
                module, name = str(arg).split(" ", 1) if opcode.name != "STACK_GLOBAL" else (["", ""] + strings)[-2:]
                # Protocol 2 writes Python 2 names (__builtin__.eval): say the Python 3 one (builtins.eval).
                py3 = (_compat_pickle.IMPORT_MAPPING.get(module, module), name)
                called = ".".join(_compat_pickle.NAME_MAPPING.get((module, name), py3))
            elif opcode.name.startswith("EXT"):
                called = f"extension code {arg}"
            else:
                strings += [arg] if isinstance(arg, str) else []
                continue
            if called not in allowed and not re.fullmatch(r"torch\.\w*Storage", called):
                return called
    except Exception:  # noqa: BLE001 (a torn or garbled stream: what was listed so far was checked)
        pass
    return None


def load_untrusted(path: Path) -> Any:
    """What the torch file ``path`` holds, loaded with ``weights_only=True`` (tensors and plain
    containers only: a crafted file cannot run code); a missing, truncated or tampered file is a
    ``UserError``.

    Example:
        >>> sorted(load_untrusted(run_dir / "best.pt"))[:3]
        ['batch_rng', 'best_val_nll', 'config']
        >>> (tmp / "torn.pt").write_bytes((run_dir / "best.pt").read_bytes()[:100])  # a cut-off copy
        100
        >>> load_untrusted(tmp / "torn.pt")
        Traceback (most recent call last):
        ...
        realnvp.errors.UserError: corrupt or truncated checkpoint .../torn.pt: File is not a zip file
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    try:
        # torch.load does not check the zip's CRC-32s: a flipped byte would load as a wrong weight.
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
        if damaged is not None:
            raise UserError(f"corrupt checkpoint {path}: {damaged} fails its CRC-32 check (the file was altered)")
        with warnings.catch_warnings():  # torch warns about pickle protocols it was not written with
            warnings.simplefilter("ignore", UserWarning)
            state = torch.load(path, map_location="cpu", weights_only=True)
    except UserError:
        raise
    except pickle.UnpicklingError as exc:
        called = code_named_in(path)
        if called:  # the file names a Python callable: refuse it, run nothing
            raise UserError(f"refusing to load {path}: it asks to run code ({called}); "
                            f"only tensors are loaded") from None
        reason = re.search(r"WeightsUnpickler error: \s*([^\n]+)", str(exc))
        raise UserError(f"corrupt or unsafe checkpoint {path}: "
                        f"{reason.group(1)[:200] if reason else 'not a plain tensor file'}") from None
    except Exception as exc:  # any other failure to parse an untrusted file means it is damaged
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"corrupt or truncated checkpoint {path}: {first[:200]}") from None
    return state
