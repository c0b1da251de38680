"""What training tells a person and the logs: ``Progress`` (a live bar on a terminal, one plain line
per evaluation in a log file) and optional TensorBoard logging (``--set train.tensorboard=true``):
each metrics record training writes to ``metrics.jsonl`` also goes to ``RUN_DIR/tensorboard`` as
scalars. TensorBoard is an optional extra (``pip install 'realnvp[tensorboard]'``), imported only
when asked for."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, TextIO

from tqdm.auto import tqdm

from realnvp.errors import UserError
from realnvp.rundir import TENSORBOARD

PLAIN_EVERY = 15.0  # seconds: in a log file, a progress line at least this often between evaluations


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
    return TensorBoardLogger(Path(run_dir) / TENSORBOARD) if enabled else MetricsLogger()


class Progress:
    """Training progress for a person, on ``stream`` (stderr): a live tqdm bar when it is a terminal;
    otherwise (a log file, a pipe) one plain line per evaluation, and between evaluations one every
    ``PLAIN_EVERY`` seconds (the step, the speed and the latest running train NLL), no carriage returns.
    Shows the latest running train NLL and the best validation NLL, or bits/dim (``*_bpd`` fields) for
    images.

    Example:
        >>> import io
        >>> out = io.StringIO()  # not a terminal: plain lines
        >>> progress = Progress(total=100, initial=0, enabled=True, stream=out)
        >>> progress.evaluation({"step": 50, "train_nll": 1.25, "lr": 0.001, "elapsed_s": 3.5, "val_nll": 1.5}, 1.5)
        >>> progress.close(); print(out.getvalue(), end="")
        step 50/100: train NLL 1.2500, val NLL 1.5000 (best 1.5000), lr 0.001, 3.5 s
    """

    def __init__(self, total: int, initial: int, enabled: bool, stream: TextIO | None = None,
                 every: float | None = None) -> None:
        self.stream = stream or sys.stderr
        self.total, self.enabled, self.step = total, enabled, initial
        self.live = enabled and self.stream.isatty()
        self.every = PLAIN_EVERY if every is None else every
        self.started = self.last_line = time.monotonic()
        self.initial = initial
        self.bar = tqdm(total=total, initial=initial, disable=not self.live, file=self.stream, unit="step",
                        dynamic_ncols=True, mininterval=1.0)
        self.shown: dict[str, str] = {}
        self.running_step = -1  # the step of the latest running record shown
        self.since_evaluation = ""  # the latest running train NLL since the last evaluation, for plain lines

    def advance(self) -> None:
        """One more step done; in a log file, a plain line when ``every`` seconds passed since the last."""
        self.bar.update(1)
        self.step += 1
        now = time.monotonic()
        if self.enabled and not self.live and now - self.last_line >= self.every:
            self.last_line = now
            rate = (self.step - self.initial) / max(now - self.started, 1e-9)
            print(f"step {self.step}/{self.total}: {rate:.3g} steps/s{self.since_evaluation}", file=self.stream,
                  flush=True)

    def rewind(self, step: int) -> None:
        """Training went back to ``step`` (a rejected non-finite step rolled back)."""
        self.bar.n = self.step = step
        self.bar.refresh()

    def running(self, record: dict[str, Any]) -> None:
        """A running train-NLL record: shown on the bar at once."""
        self.running_step = record["step"]
        self._show(record, "train", _number(record, "train"))
        unit = "bits/dim" if "train_bpd" in record else "NLL"
        self.since_evaluation = f", running train {unit} {_number(record, 'train')}"

    def evaluation(self, record: dict[str, Any], best_val: float | None) -> None:
        """An evaluation record: on the bar, or as one plain line. ``best_val`` is the best validation
        value so far in the record's unit (None without a validation split)."""
        self.since_evaluation = ""
        if record["step"] != self.running_step:  # else the bar keeps the running value of this step
            self._show(record, "train", _number(record, "train"))
        if best_val is not None:
            self._show(record, "val", f"{best_val:.4f}")
        if self.enabled and not self.live:
            unit = "bits/dim" if "train_bpd" in record else "NLL"
            val = (f"val {unit} {_number(record, 'val')} (best {best_val:.4f})" if best_val is not None
                   else "no validation split")
            print(f"step {record['step']}/{self.total}: train {unit} {_number(record, 'train')}, {val}, "
                  f"lr {record['lr']:.3g}, {record['elapsed_s']:.1f} s", file=self.stream, flush=True)
            self.last_line = time.monotonic()

    def _show(self, record: dict[str, Any], which: str, text: str) -> None:
        self.shown[f"{which}_bpd" if "train_bpd" in record else f"{which}_nll"] = text
        self.bar.set_postfix_str(", ".join(f"{name}={value}" for name, value in self.shown.items()))

    def close(self) -> None:
        """End the bar's line, so that whatever is printed next starts on a line of its own."""
        self.bar.close()


def _number(record: dict[str, Any], which: str) -> str:
    """``train``/``val`` of a record as text, in bits/dim when the record has them."""
    value = record.get(f"{which}_bpd", record.get(f"{which}_nll"))
    return "-" if value is None else f"{value:.4f}"
