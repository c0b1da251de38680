"""Optional TensorBoard logging (``--set train.tensorboard=true``): each metrics record training
writes to ``metrics.jsonl`` also goes to ``RUN_DIR/tensorboard`` as scalars. TensorBoard is an
optional extra (``pip install 'realnvp[tensorboard]'``), imported only when asked for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from realnvp.errors import UserError

TENSORBOARD_DIR = "tensorboard"


class MetricsLogger:
    """Receives every metrics record; this base class ignores them (TensorBoard off).

    Example:
        >>> log = MetricsLogger()
        >>> log({"step": 10, "train_nll": 1.5}); log.close()
    """

    def __call__(self, record: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


class TensorBoardLogger(MetricsLogger):
    """Writes each numeric field of a record as a scalar at the record's ``step``.

    Example (skipped where the tensorboard extra is not installed; tests/test_runs.py runs it):
        >>> log = TensorBoardLogger(tmp / "tb")  # doctest: +SKIP
        >>> log({"step": 10, "train_nll": 1.5}); log.close()  # doctest: +SKIP
    """

    def __init__(self, log_dir: str | Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise UserError("train.tensorboard=true needs TensorBoard: pip install 'realnvp[tensorboard]'") from None
        self.writer = SummaryWriter(log_dir=str(log_dir))

    def __call__(self, record: dict[str, Any]) -> None:
        for key, value in record.items():
            if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(key, value, record["step"])
        self.writer.flush()  # so a live `tensorboard --logdir runs` sees each evaluation at once

    def close(self) -> None:
        self.writer.close()


def metrics_logger(enabled: bool, run_dir: str | Path) -> MetricsLogger:
    """A ``TensorBoardLogger`` writing to ``run_dir/tensorboard`` when ``enabled``, else a no-op one.

    Example:
        >>> type(metrics_logger(False, "runs/x")).__name__
        'MetricsLogger'
    """
    return TensorBoardLogger(Path(run_dir) / TENSORBOARD_DIR) if enabled else MetricsLogger()
