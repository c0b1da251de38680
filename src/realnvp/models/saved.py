"""A flow saved to one file (``Flow.save``) read back: the builder's recorded arguments rebuild the
same layers, then the weights are loaded; the file is read with ``weights_only`` (no code runs). An
image flow built with the user's own context embedding network saves that network's weights but not
its code: loading it takes the same (untrained) module again, ``realnvp.load(path, embedding=net)``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from realnvp.data.columns import ColumnType
from realnvp.errors import UserError
from realnvp.flow import SAVED_FORMAT, Flow
from realnvp.models.image import USER_EMBEDDING, build_image_flow
from realnvp.models.table import with_table_layers
from realnvp.models.vector import build_vector_flow
from realnvp.safeload import load_untrusted


def rebuild(recipe: dict[str, Any], embedding: nn.Module | None = None) -> Flow:
    """A fresh flow with the layers ``recipe`` (a builder's record, ``Flow.recipe``) describes; an image
    flow made with the user's context ``embedding`` network needs that module again (``UserError`` without).

    Example:
        >>> flow = build_vector_flow(dim=2, n_couplings=2, hidden=(4,), loc=torch.zeros(2), scale=torch.eye(2))
        >>> [type(layer).__name__ for layer in rebuild(flow.recipe).chain.layers][:2]
        ['Whiten', 'AffineCoupling']
    """
    args = dict(recipe["args"])
    if recipe["builder"] == "image":
        args["embedding"] = _user_embedding(args.get("embedding"), embedding)
        flow = build_image_flow(tuple(args.pop("event_shape")), **args)
    elif recipe["builder"] == "vector":
        first, dim = args.pop("first"), args["dim"]
        loc = None if first == "none" else torch.zeros(dim)
        scale = torch.eye(dim) if first == "whiten" else None if first == "none" else torch.ones(dim)
        flow = build_vector_flow(**{**args, "hidden": tuple(args["hidden"])}, loc=loc, scale=scale)
    else:
        raise ValueError(f"unknown builder {recipe['builder']!r}")
    if embedding is not None and recipe["builder"] != "image":
        raise UserError("embedding= is for image flows saved with a context embedding network of your own; "
                        "this flow has none")
    if "columns" in recipe:
        columns = tuple(ColumnType.parse(text) for text in recipe["columns"])
        flow = with_table_layers(flow, columns, recipe.get("defensive_df", 0.0))
    return flow


def _user_embedding(recorded: str | None, given: nn.Module | None) -> nn.Module | str | None:
    """The embedding argument that rebuilds a saved image flow: the recorded one (None, "mlp"), or
    ``given`` where the recipe names the user's own network; a missing or surplus module is a ``UserError``."""
    if recorded == USER_EMBEDDING:
        if given is None:
            raise UserError("this flow conditions on its context through your own embedding network, whose code "
                            "a saved file cannot hold: pass the same module, realnvp.load(path, embedding=net)")
        return given
    if given is not None:
        raise UserError(f"this flow was saved with {'no' if recorded is None else 'the built-in'} context "
                        f"embedding network: load it without embedding=")
    return recorded


def read_flow(path: str | Path, embedding: nn.Module | None = None) -> Flow:
    """The flow a ``Flow.save`` file holds, in eval mode; anything else is a one-line ``UserError``.
    ``embedding``: the user's context embedding module of a flow built with one (its weights come
    from the file).

    Example:
        >>> build_vector_flow(dim=2, n_couplings=2, hidden=(4,)).save(tmp / "f.pt")
        >>> read_flow(tmp / "f.pt").event_shape
        (2,)
    """
    saved = load_untrusted(Path(path))
    if not isinstance(saved, dict) or saved.get("format") != SAVED_FORMAT:
        raise UserError(f"{path} is not a flow saved by Flow.save (nor a run directory)")
    try:
        flow = rebuild(saved["recipe"], embedding)
        flow.load_state_dict(saved["state"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise UserError(f"{path}: the saved flow does not rebuild: {str(exc).splitlines()[0][:200]}") from None
    return flow.eval()
