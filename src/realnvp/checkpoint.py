"""The checkpoint format, owned here: ``Checkpoint`` is everything a checkpoint file holds (the config,
the example shape, the weights, the optimizer, both random streams and the training counters), with a
version; ``Checkpoint.read`` and ``Checkpoint.write`` are the one way a file becomes one and back.
Files are unpickled with ``weights_only=True`` (``realnvp.safeload``) and written atomically."""

from __future__ import annotations

import io
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any

import torch

from realnvp.atomic import atomic_write_bytes
from realnvp.config import Config, check_settings
from realnvp.data.columns import column_types
from realnvp.errors import UserError
from realnvp.flow import Flow
from realnvp.models import build_model
from realnvp.safeload import load_untrusted

# The layout below. Files written before the version entry existed have the same layout: version 1.
VERSION = 1
# What each stored number, table or tensor must be (``event_shape``, ``config`` and ``model`` are
# checked on their own): the types accepted and the words an error says.
_KINDS: dict[str, tuple[tuple[type, ...], str]] = {
    "optimizer": ((dict,), "a table"),
    "batch_rng": ((torch.Tensor,), "a tensor"),
    "torch_rng": ((torch.Tensor,), "a tensor"),
    "step": ((int,), "a whole number"),
    "elapsed_s": ((int, float), "a number"),
    "best_val_nll": ((int, float), "a number"),
    "stale": ((int,), "a whole number"),
    "n_params": ((int,), "a whole number"),
    "n_levels": ((int,), "a whole number"),
    "lr_scale": ((int, float), "a number"),
}


@dataclass
class Checkpoint:
    """What ``checkpoint.pt``, ``checkpoint.prev.pt`` and ``best.pt`` hold: enough to rebuild the flow
    (``config``, ``event_shape``, ``model``) and to continue training bit for bit (the optimizer, both
    random streams, the counters); stored as the plain table ``to_dict`` gives.

    Example:
        >>> ckpt = Checkpoint.read(run_dir / "best.pt")
        >>> ckpt.version, ckpt.config.data.name, ckpt.event_shape, ckpt.step, ckpt.n_levels
        (1, 'moons', (2,), 60, 0)
        >>> ckpt.write(tmp / "copy.pt")
        >>> Checkpoint.read(tmp / "copy.pt").model.keys() == ckpt.model.keys()
        True
    """

    config: Config
    event_shape: tuple[int, ...]
    model: dict[str, torch.Tensor]  # the flow's state_dict: weights and buffers
    optimizer: dict[str, Any]  # the optimizer's state_dict
    batch_rng: torch.Tensor  # the batch stream's generator state (resume draws the same batches)
    torch_rng: torch.Tensor  # torch's global generator state
    step: int
    elapsed_s: float  # training time so far (the time budget's clock)
    best_val_nll: float  # the best validation NLL so far (inf without a validation split)
    stale: int  # evaluations since the best (early stopping's count)
    n_params: int
    n_levels: int = 0  # pixel levels of an image run, 0 for vectors (absent from the first files)
    lr_scale: float = 1.0  # the non-finite guard's learning-rate factor (absent from the first files)
    version: int = VERSION

    def to_dict(self) -> dict[str, Any]:
        """The plain table stored in the file: tensors, numbers and containers only, so that it loads
        with ``weights_only=True``; the config as its table of settings.

        Example:
            >>> table = Checkpoint.read(run_dir / "best.pt").to_dict()
            >>> table["version"], table["event_shape"], sorted(table["config"])
            (1, [2], ['data', 'model', 'train'])
        """
        table = {f.name: getattr(self, f.name) for f in fields(self)}
        return {**table, "config": self.config.to_dict(), "event_shape": list(self.event_shape)}

    @classmethod
    def from_dict(cls, table: Any, source: str | Path = "checkpoint") -> Checkpoint:
        """The checkpoint a loaded table holds, every entry checked; anything missing, of the wrong
        kind or from a newer realnvp is a one-line ``UserError`` naming ``source``. A table without a
        version is version 1 (it was written before the entry existed).

        Example:
            >>> table = Checkpoint.read(run_dir / "best.pt").to_dict()
            >>> Checkpoint.from_dict({k: v for k, v in table.items() if k != "version"}).version
            1
            >>> Checkpoint.from_dict({**table, "stale": "3"}, "best.pt")
            Traceback (most recent call last):
            ...
            realnvp.errors.UserError: best.pt is not a complete realnvp checkpoint (stale is a str, not a whole number)
        """
        _check_tables(table, source)
        version = table.get("version", 1)
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise UserError(f"{source} is not a realnvp checkpoint (its version is {str(version)[:40]})")
        if version > VERSION:
            raise UserError(f"{source} was written by a newer realnvp (checkpoint version {version}; this one "
                            f"reads up to {VERSION}): upgrade realnvp to read it")
        shape = _event_shape(table.get("event_shape"), source)
        optional = {f.name for f in fields(cls) if f.default is not MISSING}
        missing = [key for key in _KINDS if key not in table and key not in optional]
        if missing:
            raise UserError(f"{source} is not a complete realnvp checkpoint (no {', '.join(missing)})")
        for key, (types, words) in _KINDS.items():
            value = table.get(key, 0)
            if not isinstance(value, types) or isinstance(value, bool):
                raise UserError(f"{source} is not a complete realnvp checkpoint ({key} is a "
                                f"{type(value).__name__}, not {words})")
        entries = {key: table[key] for key in _KINDS if key in table}
        return cls(config=_config(table["config"], source), event_shape=shape, model=table["model"],
                   version=version, **entries)

    @classmethod
    def read(cls, path: str | Path) -> Checkpoint:
        """The checkpoint in the file ``path``: unpickled without running code (``safeload``), then
        checked (``from_dict``); a missing, damaged, crafted or foreign file is a one-line ``UserError``.

        Example:
            >>> Checkpoint.read(run_dir / "best.pt").step
            60
            >>> torch.save({"weights": torch.zeros(3)}, tmp / "foreign.pt")
            >>> Checkpoint.read(tmp / "foreign.pt")
            Traceback (most recent call last):
            ...
            realnvp.errors.UserError: .../foreign.pt is not a realnvp checkpoint (no model/config entries)
        """
        return cls.from_dict(load_untrusted(Path(path)), path)

    def write(self, path: str | Path) -> None:
        """``torch.save`` of ``to_dict`` to memory, then one atomic write: a crash at any moment leaves
        the old file or the new one, never a torn one.

        Example:
            >>> ckpt = Checkpoint.read(run_dir / "checkpoint.pt")
            >>> ckpt.step = 61
            >>> ckpt.write(tmp / "next.pt")
            >>> Checkpoint.read(tmp / "next.pt").step
            61
        """
        buffer = io.BytesIO()
        torch.save(self.to_dict(), buffer)
        atomic_write_bytes(Path(path), buffer.getvalue())

    def non_finite(self) -> dict[str, int]:
        """The number of NaN or infinite values in each floating-point weight or buffer that has any.

        Example:
            >>> ckpt = Checkpoint.read(run_dir / "best.pt")
            >>> ckpt.non_finite()
            {}
            >>> next(iter(ckpt.model.values())).fill_(float("nan")).numel() in ckpt.non_finite().values()
            True
        """
        counts = {name: int((~torch.isfinite(t)).sum()) for name, t in self.model.items() if t.is_floating_point()}
        return {name: n for name, n in counts.items() if n}

    def build_flow(self, source: str | Path = "checkpoint") -> Flow:
        """The flow this checkpoint holds, rebuilt from its config and loaded with its weights (in train
        mode, on the CPU); weights that do not fit the config, or are not finite, are a ``UserError``.

        Example:
            >>> ckpt = Checkpoint.read(run_dir / "best.pt")
            >>> ckpt.build_flow().n_params() == ckpt.n_params
            True
            >>> ckpt.config.model.hidden = tuple(2 * h for h in ckpt.config.model.hidden)  # weights no longer fit
            >>> ckpt.build_flow(run_dir / "best.pt")
            Traceback (most recent call last):
            ...
            realnvp.errors.UserError: .../best.pt does not match its own config: size mismatch for ...
        """
        flow = build_model(self.config.model, self.event_shape, columns=column_types(self.config, self.event_shape))
        try:
            flow.load_state_dict(self.model)
        except (RuntimeError, TypeError, AttributeError) as exc:  # torch's first line is a header; the next names
            detail = [line.strip() for line in str(exc).splitlines() if line.strip()][1:2] or [str(exc)]  # the tensor
            raise UserError(f"{source} does not match its own config: {detail[0][:300]}") from None
        bad = self.non_finite()
        if bad:
            raise UserError(f"{source} holds {sum(bad.values())} non-finite weights (NaN/Inf), first in "
                            f"{next(iter(bad))}: the run diverged or the file was altered")
        return flow


def _check_tables(table: Any, source: str | Path) -> None:
    """A table with ``model`` and ``config`` tables, else the ``UserError`` of a foreign file."""
    if not isinstance(table, dict) or "model" not in table or "config" not in table:
        raise UserError(f"{source} is not a realnvp checkpoint (no model/config entries)")
    for key in ("config", "model"):
        if not isinstance(table[key], dict):
            raise UserError(f"{source} is not a realnvp checkpoint (its {key} is a {type(table[key]).__name__}, "
                            f"not a table)")
    odd = next((name for name, value in table["model"].items() if not isinstance(value, torch.Tensor)), None)
    if odd is not None:
        raise UserError(f"{source} is not a realnvp checkpoint (its model entry {str(odd)[:80]} is not a tensor)")


def _event_shape(shape: Any, source: str | Path) -> tuple[int, ...]:
    """The example shape: 1 to 3 positive sizes (vectors ``[D]``, images ``[C, H, W]``)."""
    if not (isinstance(shape, (list, tuple)) and 0 < len(shape) <= 3
            and all(isinstance(d, int) and not isinstance(d, bool) and 0 < d <= 2**16 for d in shape)):
        raise UserError(f"{source} is not a complete realnvp checkpoint (event_shape is {str(shape)[:40]}, "
                        f"expected a list of 1 to 3 sizes)")
    return tuple(shape)


def _config(table: dict[str, Any], source: str | Path) -> Config:
    """The stored settings as a ``Config``, each in its range (``check_settings``)."""
    cfg = Config.from_dict(table, origin=str(source))
    try:
        check_settings(cfg)
    except UserError as exc:
        raise UserError(f"{source}: {exc}") from None
    return cfg
