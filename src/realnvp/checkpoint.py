"""Checkpoints: written atomically, loaded without executing code, rebuilt into a ``Flow``."""

from __future__ import annotations

import json
import os
import pickle
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from realnvp.config import Config
from realnvp.errors import UserError
from realnvp.flow import Flow

CHECKPOINT = "checkpoint.pt"  # the latest state, for --resume
BEST = "best.pt"  # the weights with the best validation NLL, used by evaluate/sample/load
CONFIG = "config.json"


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
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; results should be as readable as any file written
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


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


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """``torch.save`` to memory, then an atomic write.

    Example:
        >>> save_checkpoint(tmp / "state.pt", {"model": {"w": torch.ones(2)}, "config": {}, "step": 3})
        >>> load_checkpoint(tmp / "state.pt")["model"]["w"].tolist()
        [1.0, 1.0]
    """
    import io

    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load with ``weights_only=True`` (tensors and plain containers only: a crafted file cannot run
    code); a missing, truncated or tampered file is a ``UserError``.

    Example:
        >>> load_checkpoint(run_dir / "best.pt")["step"]
        60
        >>> (tmp / "torn.pt").write_bytes((run_dir / "best.pt").read_bytes()[:100])  # a cut-off copy
        100
        >>> load_checkpoint(tmp / "torn.pt")
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
        state = torch.load(path, map_location="cpu", weights_only=True)
    except UserError:
        raise
    except pickle.UnpicklingError as exc:
        called = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
        if called:  # the file names a Python callable: refuse it, run nothing
            raise UserError(f"refusing to load {path}: it asks to run code ({called.group(1)}); "
                            f"only tensors are loaded") from None
        reason = re.search(r"WeightsUnpickler error: ([^\n]+)", str(exc))
        raise UserError(f"corrupt or unsafe checkpoint {path}: "
                        f"{reason.group(1)[:200] if reason else 'not a plain tensor file'}") from None
    except Exception as exc:  # any other failure to parse an untrusted file means it is damaged
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"corrupt or truncated checkpoint {path}: {first[:200]}") from None
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise UserError(f"{path} is not a realnvp checkpoint (no model/config entries)")
    return state


def write_config(run_dir: Path, cfg: Config) -> None:
    """``run_dir/config.json``, atomically: the settings a run was trained with, readable by anyone.

    Example:
        >>> cfg = Config.from_dict({"train": {"steps": 100}})
        >>> write_config(tmp, cfg)
        >>> Config.from_dict(json.loads((tmp / "config.json").read_text())) == cfg
        True
    """
    atomic_write_bytes(run_dir / CONFIG, (json.dumps(cfg.to_dict(), indent=2) + "\n").encode())


def build_flow(cfg: Config, event_shape: tuple[int, ...], loc: torch.Tensor | None = None,
               scale: torch.Tensor | None = None) -> Flow:
    """The model a config describes (weights freshly initialised).

    Example:
        >>> flow = build_flow(Config.from_dict({"model": {"n_couplings": 2, "hidden": [16]}}), (2,))
        >>> flow.n_params()  # 2 couplings x (MLP 1 -> 16 -> 2: 32 + 34 weights, 1 tanh scale)
        134
    """
    from realnvp.models import build_model

    return build_model(cfg.model, event_shape, loc, scale)


def flow_from_state(state: dict[str, Any], path: Path) -> tuple[Flow, Config]:
    """Rebuild the flow a checkpoint holds and load its weights; a mismatch is a ``UserError``.

    Example:
        >>> state = load_checkpoint(run_dir / "best.pt")
        >>> flow, cfg = flow_from_state(state, run_dir / "best.pt")
        >>> cfg.data.name, flow.event_shape, flow.n_params() == state["n_params"]
        ('moons', (2,), True)
        >>> state["config"]["model"]["hidden"] = [32, 32]  # weights no longer fit the config
        >>> flow_from_state(state, run_dir / "best.pt")
        Traceback (most recent call last):
        ...
        realnvp.errors.UserError: .../best.pt does not match its own config: size mismatch for ...
    """
    cfg = Config.from_dict(state["config"], origin=str(path))
    event_shape = tuple(int(d) for d in state["event_shape"])
    flow = build_flow(cfg, event_shape)
    try:
        flow.load_state_dict(state["model"])
    except RuntimeError as exc:  # torch's first line is a header; the next names the offending tensor
        detail = [line.strip() for line in str(exc).splitlines() if line.strip()][1:2] or [str(exc)]
        raise UserError(f"{path} does not match its own config: {detail[0][:300]}") from None
    return flow, cfg


def load(run_dir: str | os.PathLike, which: str = "best") -> Flow:
    """The trained flow of a run directory, in eval mode, ready to call.

    ``which`` is "best" (best validation NLL, the default) or "last" (the latest checkpoint).

    Example:
        >>> import realnvp
        >>> flow = realnvp.load(run_dir)  # e.g. realnvp.load("runs/moons")
        >>> flow.log_prob(torch.zeros(1, 2)).shape, flow.sample(10).shape, flow.training
        (torch.Size([1]), torch.Size([10, 2]), False)
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"run directory not found: {run_dir}")
    path = run_dir / (BEST if which == "best" else CHECKPOINT)
    if which == "best" and not path.exists():
        path = run_dir / CHECKPOINT
    flow, _ = flow_from_state(load_checkpoint(path), path)
    return flow.eval()
