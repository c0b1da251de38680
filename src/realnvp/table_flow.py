"""``realnvp.from_data``: a vector flow sized and started from a table as ``realnvp train --data`` does
it (column types, the vector defaults for its rows and columns, whitening with the Gaussian of the
rows, the defensive Student-t share), for a training loop of one's own. The module is not named after
the function, so importing it cannot shadow ``realnvp.from_data``."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from realnvp.autoconfig import vector_defaults
from realnvp.config import Config
from realnvp.data.columns import dequantized, resolve_types, to_real_line
from realnvp.flow import Flow
from realnvp.models import build_model
from realnvp.training.prepared import first_layer_fit


def from_data(x: torch.Tensor | np.ndarray, names: tuple[str, ...] = (), column_types: str = "auto",
              **model: Any) -> Flow:
    """A vector flow for the rows ``x`` ``[N, D]``, untrained: the Gaussian of ``x`` (through each
    column's detected transform) mixed with the defensive Student-t, with the model settings the CLI
    would choose for N rows and D columns; ``model`` keys (``hidden=(64, 64)``, ``coupling="affine"``,
    any ``model.*`` setting) override them, ``column_types`` as ``data.column_types``.

    Example:
        >>> rows = np.random.default_rng(0).lognormal(size=(2000, 3))
        >>> flow = from_data(rows, n_couplings=2)
        >>> flow.recipe["columns"], flow.recipe["args"]["n_couplings"], flow.recipe["args"]["coupling"]
        (['log', 'log', 'log'], 2, 'spline')
        >>> from realnvp.evaluation.baselines import gaussian_nll
        >>> untrained = -flow.log_prob(torch.from_numpy(rows).float(), defensive=False).mean().item()
        >>> exact = gaussian_nll(np.log(rows), np.log(rows)) + np.log(rows).sum(1).mean()  # log-normal ML fit
        >>> bool(abs(untrained - exact) < 1e-3)
        True
    """
    rows = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float64)
    names = tuple(names) or tuple(f"x{j}" for j in range(rows.shape[1]))
    types = resolve_types(column_types, rows, names)
    chosen = {key.partition(".")[2]: value for key, value in vector_defaults(*rows.shape).items()
              if key.startswith("model.")}
    cfg = Config.from_dict({"model": {**chosen, **model}}, "from_data")
    seen = to_real_line(dequantized(rows, types, 0), types)
    loc, scale = first_layer_fit(seen, whiten=cfg.model.whiten)
    flow = build_model(cfg.model, (rows.shape[1],), loc, scale, types)
    if flow.defensive is not None:
        spread = first_layer_fit(dequantized(rows, types, 1), whiten=True)
        flow.defensive.loc.copy_(spread[0])
        flow.defensive.chol.copy_(spread[1])
        flow.defensive_weight.fill_(1e-3)
    return flow
