"""Range checks for a resolved config: a setting of the right type but an impossible value (a
negative learning rate, a validation share of 1.5, NaN) is a one-line ``UserError`` before anything
is read or written, instead of a torch error halfway through a run."""

from __future__ import annotations

from realnvp.config import Config
from realnvp.errors import UserError

POSITIVE = ("train.steps", "train.batch_size", "train.lr", "train.eval_every", "train.max_bad_steps",
            "model.n_couplings", "model.scale_init")
NON_NEGATIVE = ("train.warmup_steps", "train.weight_decay", "train.scale_l2", "train.grad_clip",
                "train.patience", "train.time_budget")
CHOICES = {"train.lr_schedule": ("constant", "cosine"), "train.device": ("auto", "cpu", "cuda"),
           "train.precision": ("fp32", "bf16")}


def _get(cfg: Config, dotted: str) -> object:
    section, _, key = dotted.partition(".")
    return getattr(getattr(cfg, section), key)


def check_settings(cfg: Config) -> None:
    """Raise ``UserError`` naming the first setting whose value is out of range.

    Example:
        >>> cfg = Config()
        >>> cfg.train.lr = -1.0
        >>> check_settings(cfg)
        Traceback (most recent call last):
        ...
        realnvp.errors.UserError: train.lr must be > 0, got -1.0
    """
    for name in POSITIVE:
        value = _get(cfg, name)
        if not value > 0:  # written this way so NaN fails too
            raise UserError(f"{name} must be > 0, got {value}")
    for name in NON_NEGATIVE:
        value = _get(cfg, name)
        if not value >= 0:
            raise UserError(f"{name} must be >= 0, got {value}")
    for name, choices in CHOICES.items():
        if _get(cfg, name) not in choices:
            raise UserError(f"{name} must be one of {', '.join(choices)}, got {_get(cfg, name)!r}")
    if not 0 <= cfg.data.val_fraction < 1:
        raise UserError(f"data.val_fraction must be in [0, 1), got {cfg.data.val_fraction}")
    if not 0 < cfg.data.test_fraction < 1:
        raise UserError(f"data.test_fraction must be in (0, 1), got {cfg.data.test_fraction}")
    if cfg.model.kind == "vector" and not all(h > 0 for h in cfg.model.hidden):
        raise UserError(f"model.hidden widths must be positive, got {cfg.model.hidden}")
