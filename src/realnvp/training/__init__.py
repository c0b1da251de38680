"""Training: the loop (``loop``), the non-finite guard, crash-safe resume, DDP and metric logs."""

from realnvp.training.loop import TrainResult, make_optimizer, train

__all__ = ["TrainResult", "make_optimizer", "train"]
