"""What a conditional run learns from its data before the model is built: whether there is a context
and how big it is (``model.conditional``, ``model.n_context``), written into the run's config so
every later ``load`` rebuilds the same model."""

from __future__ import annotations

from realnvp.config import Config
from realnvp.data import Splits
from realnvp.errors import UserError


def settle_context(cfg: Config, splits: Splits) -> None:
    """Set ``cfg.model.conditional`` and ``cfg.model.n_context`` from ``splits``: the number of
    classes of a labelled image set (a larger ``model.n_context`` given by the user is kept, for
    classes missing from the data) or of ``data.context_columns``. A conditional model without a
    context, or a class count below the labels', is a ``UserError``.

    Example:
        >>> from realnvp.config import load_config
        >>> from realnvp.data import load_splits
        >>> cfg = load_config("digits", ["model.conditional=true"])
        >>> settle_context(cfg, load_splits(cfg.data, labels=True))
        >>> cfg.model.conditional, cfg.model.n_context
        (True, 10)
    """
    m = cfg.model
    if splits.train_c is None:
        if m.conditional:
            raise UserError("model.conditional needs a context: class labels of an image set (digits, mnist, "
                            "cifar10, an .npz with y_train/y_test, class sub-folders) or data.context_columns "
                            "of a table")
        return
    if splits.n_levels:
        if m.n_context and m.n_context < splits.n_classes:
            raise UserError(f"model.n_context is {m.n_context}, but the data has class labels up to "
                            f"{splits.n_classes - 1}")
        m.conditional, m.n_context = True, max(m.n_context, splits.n_classes)
        return
    k = splits.train_c.shape[1]
    if m.n_context not in (0, k):
        raise UserError(f"model.n_context is {m.n_context}, but data.context_columns names {k} columns")
    m.conditional, m.n_context = True, k
