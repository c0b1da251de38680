"""A table's layers around a vector flow: its columns' transforms and lattice, and the defensive share."""

from __future__ import annotations

import torch

from realnvp.bijectors.columns import ColumnTransform
from realnvp.data.columns import ColumnType
from realnvp.distributions import StudentT
from realnvp.flow import Flow


def with_table_layers(flow: Flow, columns: tuple[ColumnType, ...], defensive_df: float = 0.0) -> Flow:
    """``flow`` with a table's column types (their transforms first in the chain, their lattice marked)
    and, for ``defensive_df > 0``, a defensive Student-t share (its location and scale come from the
    training rows or a checkpoint); both recorded in ``flow.recipe`` so a saved flow is rebuilt alike.

    Example:
        >>> from realnvp.models.vector import build_vector_flow
        >>> flow = with_table_layers(build_vector_flow(2, hidden=(4,)), (ColumnType("log"), ColumnType("integer", 1.0)))
        >>> type(flow.chain.layers[0]).__name__, flow.lattice.tolist(), flow.recipe["columns"]
        ('ColumnTransform', [0.0, 1.0], ['log', 'integer'])
    """
    dim = flow.event_size
    if any(t.transform != "none" for t in columns):
        flow.chain.layers.insert(0, ColumnTransform(tuple(t.transform for t in columns)))
    if any(t.discrete for t in columns):
        flow.set_lattice(torch.tensor([t.step for t in columns]))
    if defensive_df > 0:
        flow.set_defensive(StudentT(torch.zeros(dim), torch.eye(dim), defensive_df))
    flow.recipe = {**flow.recipe, "columns": [str(t) for t in columns], "defensive_df": float(defensive_df)}
    return flow
