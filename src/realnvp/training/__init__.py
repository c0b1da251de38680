"""Training: one step (``step``), the loop around it (``loop``), the non-finite guard, crash-safe
resume, DDP and metric logs."""

from realnvp.training.loop import TrainResult, train
from realnvp.training.step import make_optimizer, train_step

__all__ = ["TrainResult", "make_optimizer", "train", "train_step"]
