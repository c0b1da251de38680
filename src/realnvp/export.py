"""``realnvp.save_run``: a run directory made from a flow built and trained in Python, so that every
command (``evaluate``, ``sample``, ``score``, ``report``, ``animate``) works on it as on a trained run:
the rows it was fitted to and its test rows are saved beside ``config.json`` and ``best.pt``."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from realnvp.atomic import atomic_write_bytes
from realnvp.checkpoint import Checkpoint
from realnvp.config import Config
from realnvp.errors import UserError
from realnvp.flow import Flow
from realnvp.models import VECTOR_SETTINGS
from realnvp.rundir import BEST, CHECKPOINT, RunDir


def model_settings(recipe: dict[str, Any]) -> dict[str, Any]:
    """The ``[model]`` settings that rebuild the flow a builder recorded in ``recipe``.

    Example:
        >>> from realnvp.models import build_vector_flow
        >>> flow = build_vector_flow(dim=3, hidden=(8,), loc=torch.zeros(3), scale=torch.eye(3))
        >>> settings = model_settings(flow.recipe)
        >>> settings["kind"], settings["hidden"], settings["whiten"]
        ('vector', [8], True)
    """
    args = recipe["args"]
    if args["first"] == "none" or args["mask_seed"] != 0:
        raise UserError("save_run: this flow has no first standardising layer or another mask seed than the CLI "
                        "builds; build it with a loc and scale (or realnvp.from_data) to make a run of it")
    return {"kind": "vector", **{setting: args[arg] for arg, setting in VECTOR_SETTINGS.items()},
            "whiten": args["first"] == "whiten", "conditional": args["context_size"] > 0,
            "n_context": args["context_size"], "defensive_df": recipe.get("defensive_df", 0.0)}


def save_run(flow: Flow, run_dir: str | Path, rows: np.ndarray | torch.Tensor, test_rows: np.ndarray | None = None,
             names: tuple[str, ...] = ()) -> Path:
    """A run directory for ``flow`` (a vector flow from ``build_vector_flow`` or ``realnvp.from_data``) fitted
    to ``rows``; ``test_rows`` (else a seeded 20 % of ``rows``) are what ``evaluate`` scores. Refused when
    ``run_dir`` already holds a run.

    Example:
        >>> import realnvp
        >>> rows = np.random.default_rng(0).normal(size=(300, 2))
        >>> run = save_run(realnvp.from_data(rows, hidden=(8,)), tmp / "mine", rows)
        >>> sorted(p.name for p in run.iterdir())
        ['best.pt', 'checkpoint.pt', 'config.json', 'rows.npy']
    """
    if flow.recipe is None or len(flow.event_shape) != 1 or flow.context_size:
        raise UserError("save_run takes an unconditional vector flow made by a realnvp builder")
    run = RunDir(run_dir)
    if run.holds_run():
        raise UserError(f"{run.path} already holds a run; pick another folder")
    run.path.mkdir(parents=True, exist_ok=True)
    data = {"name": "file", "path": str(_save_rows(run.path / "rows.npy", rows)),
            "column_types": ",".join(flow.recipe.get("columns") or ["real"] * flow.event_size),
            "column_names": list(names)}
    if test_rows is not None:
        data["test_path"] = str(_save_rows(run.path / "test_rows.npy", test_rows))
    cfg = Config.from_dict({"data": data, "model": model_settings(flow.recipe), "train": {"steps": 0}}, "save_run")
    ckpt = Checkpoint(config=cfg, event_shape=flow.event_shape, model=flow.state_dict(), optimizer={},
                      batch_rng=torch.Generator().get_state(), torch_rng=torch.get_rng_state(), step=0,
                      elapsed_s=0.0, best_val_nll=math.inf, stale=0, n_params=flow.n_params())
    run.write_config(cfg)
    ckpt.write(run.path / BEST)
    ckpt.write(run.path / CHECKPOINT)
    return run.path


def _save_rows(path: Path, rows: np.ndarray | torch.Tensor) -> Path:
    array = np.asarray(rows.detach().cpu() if isinstance(rows, torch.Tensor) else rows, dtype=np.float64)
    buffer = io.BytesIO()
    np.save(buffer, array)
    atomic_write_bytes(path, buffer.getvalue())
    return path.resolve()
