"""Model builders: configurations of bijectors into a ``Flow``."""

from __future__ import annotations

import torch

from realnvp.config import ModelConfig
from realnvp.data.columns import ColumnType
from realnvp.errors import UserError
from realnvp.flow import Flow
from realnvp.models.image import build_image_flow, latent_scale_map
from realnvp.models.table import with_table_layers
from realnvp.models.vector import build_vector_flow

__all__ = ["build_image_flow", "build_model", "build_vector_flow", "latent_scale_map", "with_table_layers"]

# A builder's argument -> the ``[model]`` setting it is (config.ModelConfig): build_model passes them, and
# realnvp.save_run reads them back from a flow's recipe.
VECTOR_SETTINGS = {"n_couplings": "n_couplings", "hidden": "hidden", "mask": "mask", "batch_norm": "batch_norm",
                   "bn_momentum": "bn_momentum", "scale_init": "scale_init", "linear": "linear",
                   "coupling": "coupling", "bins": "spline_bins", "bound": "spline_bound", "base": "base",
                   "base_components": "base_components"}
IMAGE_SETTINGS = {"n_scales": "n_scales", "feature_maps": "feature_maps", "n_blocks": "n_blocks",
                  "norm": "conditioner_norm", "scale_couplings": "scale_couplings",
                  "final_couplings": "final_couplings", "batch_norm": "batch_norm", "bn_momentum": "bn_momentum",
                  "logit": "logit", "logit_alpha": "logit_alpha", "checkpoint": "checkpoint",
                  "scale_init": "scale_init", "embed": "context_embed", "linear": "linear",
                  "squeezed": "squeezed_checkerboard", "base": "base", "base_components": "base_components"}


def _builder_args(cfg: ModelConfig, settings: dict[str, str]) -> dict:
    """The builder's keyword arguments that ``settings`` maps from ``cfg``."""
    return {arg: getattr(cfg, setting) for arg, setting in settings.items()}


def build_model(cfg: ModelConfig, event_shape: tuple[int, ...], loc: torch.Tensor | None = None,
                scale: torch.Tensor | None = None, columns: tuple[ColumnType, ...] = ()) -> Flow:
    """The ``Flow`` a model config describes, for examples of ``event_shape``; a table's ``columns``
    (data/columns.py) add a first ``ColumnTransform`` (log, logit) and mark the discrete columns. An
    image model with ``context_dim`` is conditional on that many real values through the built-in MLP
    embedding (``ContextEmbedding``), so a run rebuilds from its config alone.

    Example:
        >>> from realnvp.config import ModelConfig
        >>> flow = build_model(ModelConfig(n_couplings=2, hidden=(16,)), (3,))
        >>> flow.event_shape, flow.log_prob(torch.zeros(4, 3)).shape
        ((3,), torch.Size([4]))
        >>> build_model(ModelConfig(kind="vector"), (1, 8, 8))
        Traceback (most recent call last):
        ...
        realnvp.errors.UserError: the vector model needs flat examples, got shape (1, 8, 8)
        >>> build_model(ModelConfig(hidden=(16,), conditional=True, n_context=1), (2,)).context_size
        1
    """
    if cfg.conditional and cfg.n_context < 1:
        raise UserError("model.conditional needs model.n_context: the number of classes (images) or context "
                        "columns (vectors; data.context_columns); training reads it from the data")
    n_context = cfg.n_context if cfg.conditional else 0
    if cfg.context_dim and cfg.kind != "image":
        raise UserError("model.context_dim is for image models; a table's context is data.context_columns")
    if cfg.kind == "vector":
        if len(event_shape) != 1:
            raise UserError(f"the vector model needs flat examples, got shape {event_shape}")
        dim = event_shape[0]
        if loc is None:  # rebuilt from a checkpoint: the real values come with the state dict
            loc, scale = torch.zeros(dim), torch.eye(dim) if cfg.whiten else torch.ones(dim)
        try:
            flow = build_vector_flow(dim, loc=loc, scale=scale, context_size=n_context,
                                     **_builder_args(cfg, VECTOR_SETTINGS))
        except ValueError as exc:
            raise UserError(f"model: {exc}") from None
        return with_table_layers(flow, columns, cfg.defensive_df)
    if cfg.kind == "image":
        if cfg.coupling != "affine":
            raise UserError(f"model.coupling = {cfg.coupling!r} is for vector models; image models are affine")
        try:
            return build_image_flow(event_shape, n_classes=0 if cfg.context_dim else n_context,
                                    context_dim=cfg.context_dim, embedding="mlp" if cfg.context_dim else None,
                                    **_builder_args(cfg, IMAGE_SETTINGS))
        except ValueError as exc:
            raise UserError(f"model: {exc}") from None
    raise UserError(f"unknown model kind {cfg.kind!r}; expected 'vector' or 'image'")

