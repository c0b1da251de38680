"""A flow saved to one file (``Flow.save``) read back: the builder's recorded arguments rebuild the
same layers, then the weights are loaded; the file is read with ``weights_only`` (no code runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from realnvp.data.columns import ColumnType
from realnvp.errors import UserError
from realnvp.flow import SAVED_FORMAT, Flow
from realnvp.models.image import build_image_flow
from realnvp.models.table import with_table_layers
from realnvp.models.vector import build_vector_flow
from realnvp.safeload import load_untrusted


def rebuild(recipe: dict[str, Any]) -> Flow:
    """A fresh flow with the layers ``recipe`` (a builder's record, ``Flow.recipe``) describes.

    Example:
        >>> flow = build_vector_flow(dim=2, n_couplings=2, hidden=(4,), loc=torch.zeros(2), scale=torch.eye(2))
        >>> [type(layer).__name__ for layer in rebuild(flow.recipe).chain.layers][:2]
        ['Whiten', 'AffineCoupling']
    """
    args = dict(recipe["args"])
    if recipe["builder"] == "image":
        flow = build_image_flow(tuple(args.pop("event_shape")), **args)
    elif recipe["builder"] == "vector":
        first, dim = args.pop("first"), args["dim"]
        loc = None if first == "none" else torch.zeros(dim)
        scale = torch.eye(dim) if first == "whiten" else None if first == "none" else torch.ones(dim)
        flow = build_vector_flow(**{**args, "hidden": tuple(args["hidden"])}, loc=loc, scale=scale)
    else:
        raise ValueError(f"unknown builder {recipe['builder']!r}")
    if "columns" in recipe:
        columns = tuple(ColumnType.parse(text) for text in recipe["columns"])
        flow = with_table_layers(flow, columns, recipe.get("defensive_df", 0.0))
    return flow


def read_flow(path: str | Path) -> Flow:
    """The flow a ``Flow.save`` file holds, in eval mode; anything else is a one-line ``UserError``.

    Example:
        >>> build_vector_flow(dim=2, n_couplings=2, hidden=(4,)).save(tmp / "f.pt")
        >>> read_flow(tmp / "f.pt").event_shape
        (2,)
    """
    saved = load_untrusted(Path(path))
    if not isinstance(saved, dict) or saved.get("format") != SAVED_FORMAT:
        raise UserError(f"{path} is not a flow saved by Flow.save (nor a run directory)")
    try:
        flow = rebuild(saved["recipe"])
        flow.load_state_dict(saved["state"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise UserError(f"{path}: the saved flow does not rebuild: {str(exc).splitlines()[0][:200]}") from None
    return flow.eval()
