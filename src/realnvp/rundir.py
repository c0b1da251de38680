"""A run directory: the one place that knows its file names, reads its config, metrics and evaluation,
writes atomically, loads checkpoints without executing code and picks the best or the last weights."""

from __future__ import annotations

import _compat_pickle
import io
import json
import os
import pickle
import pickletools
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from realnvp.config import Config, check_settings
from realnvp.errors import UserError
from realnvp.flow import Flow
from realnvp.models import build_model

CONFIG = "config.json"  # the resolved settings the run was trained with
CHECKPOINT = "checkpoint.pt"  # the latest state, for --resume
PREVIOUS = "checkpoint.prev.pt"  # the checkpoint before the latest: the fallback if the latest is damaged
BEST = "best.pt"  # the weights with the best validation NLL, used by evaluate/sample/load
METRICS = "metrics.jsonl"  # one JSON record per evaluation
EVALUATION = "evaluation.json"  # the final metrics of the best weights
REPORT = "report.html"
TENSORBOARD = "tensorboard"  # optional TensorBoard event files
RUN_FILES = (CONFIG, CHECKPOINT, PREVIOUS, BEST, METRICS)  # any of them means the folder holds a run


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


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """``torch.save`` to memory, then an atomic write.

    Example:
        >>> save_checkpoint(tmp / "state.pt", {"model": {"w": torch.ones(2)}, "config": {}, "step": 3})
        >>> load_checkpoint(tmp / "state.pt")["model"]["w"].tolist()
        [1.0, 1.0]
    """
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
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise UserError(f"{path} is not a realnvp checkpoint (no model/config entries)")
    if not isinstance(state["config"], dict) or not isinstance(state["model"], dict):
        wrong = "config" if not isinstance(state["config"], dict) else "model"
        raise UserError(f"{path} is not a realnvp checkpoint (its {wrong} is a {type(state[wrong]).__name__}, "
                        f"not a table)")
    return state


def _check_entries(state: dict[str, Any], path: Path) -> None:
    """What the readers of a trained run use besides the weights: the example shape and the counters."""
    shape = state.get("event_shape")
    if not (isinstance(shape, (list, tuple)) and 0 < len(shape) <= 3
            and all(isinstance(d, int) and 0 < d <= 2**16 for d in shape)):
        raise UserError(f"{path} is not a complete realnvp checkpoint (event_shape is {str(shape)[:40]}, "
                        f"expected a list of 1 to 3 sizes)")
    for key in ("step", "elapsed_s", "best_val_nll"):
        if not isinstance(state.get(key), (int, float)):
            raise UserError(f"{path} is not a complete realnvp checkpoint (no number {key})")


def _allowed_globals() -> set[str]:
    """The callables torch's ``weights_only`` loader accepts (tensor rebuilders, containers)."""
    try:
        from torch._weights_only_unpickler import _get_allowed_globals  # noqa: PLC0415 (a private API)
    except ImportError:  # pragma: no cover (another torch): every named callable is reported
        return set()
    return set(_get_allowed_globals())


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
    allowed, strings = _allowed_globals(), []
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


def flow_from_state(state: dict[str, Any], path: Path) -> tuple[Flow, Config]:
    """Rebuild the flow a checkpoint holds and load its weights; a mismatch is a ``UserError``.

    Example:
        >>> state = load_checkpoint(run_dir / "best.pt")
        >>> flow, cfg = flow_from_state(state, run_dir / "best.pt")
        >>> cfg.data.name, flow.event_shape, flow.n_params() == state["n_params"]
        ('moons', (2,), True)
        >>> state["config"]["model"]["hidden"] = [2 * h for h in cfg.model.hidden]  # weights no longer fit
        >>> flow_from_state(state, run_dir / "best.pt")
        Traceback (most recent call last):
        ...
        realnvp.errors.UserError: .../best.pt does not match its own config: size mismatch for ...
    """
    _check_entries(state, path)
    cfg = Config.from_dict(state["config"], origin=str(path))
    try:
        check_settings(cfg)
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None
    flow = build_model(cfg.model, tuple(state["event_shape"]))
    try:
        flow.load_state_dict(state["model"])
    except (RuntimeError, TypeError, AttributeError) as exc:  # torch's first line is a header; the next names
        detail = [line.strip() for line in str(exc).splitlines() if line.strip()][1:2] or [str(exc)]  # the tensor
        raise UserError(f"{path} does not match its own config: {detail[0][:300]}") from None
    bad = {name: int((~torch.isfinite(t)).sum()) for name, t in flow.state_dict().items() if t.is_floating_point()}
    if any(bad.values()):
        first = next(name for name, n in bad.items() if n)
        raise UserError(f"{path} holds {sum(bad.values())} non-finite weights (NaN/Inf), first in {first}: "
                        f"the run diverged or the file was altered")
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
    return RunDir(run_dir).load_flow(which)[0]


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None when the file is missing, torn or not an object (a run
    killed mid-write must not break the listing or the report).

    Example:
        >>> (tmp / "torn.json").write_text('{"steps": 3')
        11
        >>> read_json(tmp / "torn.json") is None, read_json(run_dir / "config.json")["data"]["name"]
        (True, 'moons')
    """
    try:
        value = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None


def append_metrics(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line and fsync it, so it is on disk before the checkpoint that follows it.

    Example:
        >>> append_metrics(tmp / "log.jsonl", {"step": 10, "val_nll": 0.4})
        >>> (tmp / "log.jsonl").read_text()
        '{"step": 10, "val_nll": 0.4}\\n'
    """
    try:
        with Path(path).open("a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:  # a torn last line is skipped by the readers and trimmed by --resume
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None


class RunDir:
    """One run directory and everything known about its files; every other module asks it.

    Example:
        >>> run = RunDir(run_dir)
        >>> run.holds_run(), run.config().data.name, [r["step"] for r in run.metrics()][-1]
        (True, 'moons', 60)
        >>> run.weights_path().name, RunDir(tmp / "new").holds_run()
        ('best.pt', False)
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def holds_run(self) -> bool:
        """Whether any file of a run is here (so a fresh run would overwrite it)."""
        return any((self.path / name).exists() for name in RUN_FILES)

    def require(self) -> RunDir:
        """This run directory, or a ``UserError`` when it does not exist."""
        if not self.path.is_dir():
            raise UserError(f"run directory not found: {self.path}")
        return self

    def config_dict(self) -> dict[str, Any]:
        """The raw ``config.json``; missing, torn or not an object is a ``UserError``."""
        raw = read_json(self.path / CONFIG)
        if raw is None:
            raise UserError(f"{self.path / CONFIG} is missing or unreadable (not a JSON object); "
                            f"is {self.path} a run directory?")
        return raw

    def config(self) -> Config:
        """The settings the run was trained with, as a ``Config``."""
        return Config.from_dict(self.config_dict(), origin=str(self.path / CONFIG))

    def write_config(self, cfg: Config) -> None:
        atomic_write_bytes(self.path / CONFIG, (json.dumps(cfg.to_dict(), indent=2) + "\n").encode())

    def metrics(self) -> list[dict[str, Any]]:
        """The records of ``metrics.jsonl`` (one per evaluation); torn lines (a run killed while
        writing) are skipped."""
        path = self.path / METRICS
        if not path.is_file():
            return []
        records = []
        for line in path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict):
                records.append(record)
        return records

    def append_metrics(self, record: dict[str, Any]) -> None:
        append_metrics(self.path / METRICS, record)

    def evaluation(self) -> dict[str, Any] | None:
        """``evaluation.json`` (the final metrics), or None while the run has not finished."""
        return read_json(self.path / EVALUATION)

    def write_evaluation(self, metrics: dict[str, Any]) -> None:
        atomic_write_bytes(self.path / EVALUATION, (json.dumps(metrics, indent=2) + "\n").encode())

    def weights_path(self, which: str = "best") -> Path:
        """``best.pt`` (falling back to the latest checkpoint before the first evaluation) or, with
        ``which="last"``, ``checkpoint.pt``."""
        if which not in ("best", "last"):
            raise UserError(f"which weights: expected 'best' or 'last', got {which!r}")
        best = self.path / BEST
        return best if which == "best" and best.exists() else self.path / CHECKPOINT

    def load_state(self, which: str = "best") -> tuple[dict[str, Any], Path]:
        """The checkpoint ``which`` names and its path."""
        path = self.require().weights_path(which)
        return load_checkpoint(path), path

    def load_flow(self, which: str = "best") -> tuple[Flow, Config, dict[str, Any]]:
        """``(flow in eval mode, its config, the checkpoint state)`` of the weights ``which`` names."""
        state, path = self.load_state(which)
        flow, cfg = flow_from_state(state, path)
        return flow.eval(), cfg, state
