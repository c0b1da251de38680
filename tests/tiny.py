"""The tests' one set of tiny training settings (``TINY``, for moons; ``TINY_DIGITS`` for the 8x8
digits), the trainings tests/conftest.py shares, and the untrained model's NLL that every test of
learning compares against (an untrained flow already scores about 2.8 nats on moons: the couplings
start as the identity, so it is the Gaussian fit of the standardised data)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from realnvp.cli import main
from realnvp.config import Config
from realnvp.data import load_splits
from realnvp.models import build_model

# A constant learning rate without warm-up, so that a run stopped at any step and resumed follows the
# uninterrupted run's trajectory exactly; hidden=8 and 2 couplings are what docs/bad-input.md's
# messages quote.
TINY = ["model.n_couplings=2", "model.hidden=8", "train.eval_every=20", "train.time_budget=0",
        "train.lr_schedule=constant", "train.warmup_steps=0", "data.n_train=2000", "data.n_test=1000"]
TINY_STEPS = 60
TINY_DIGITS = ["model.feature_maps=8", "model.n_blocks=1", "model.scale_couplings=2", "model.final_couplings=2",
               "train.eval_every=20", "train.time_budget=0", "train.lr=3e-3", "data.test_draws=2"]
TINY_DIGITS_STEPS = 40


def cli_settings(settings: list[str]) -> list[str]:
    """``["a=1", "b=2"]`` as the command line's ``["--set", "a=1", "--set", "b=2"]``."""
    return [arg for setting in settings for arg in ("--set", setting)]


def train_tiny(out: Path, *extra: str, steps: int = TINY_STEPS, pictures: bool = False) -> Path:
    """Train the ``TINY`` moons flow for ``steps`` steps into ``out`` through the CLI (about a second
    without pictures); ``extra`` are more command-line arguments."""
    argv = ["train", "moons", "--out", str(out), "--steps", str(steps), "--quiet", *cli_settings(TINY), *extra]
    assert main([*argv, *([] if pictures else ["--no-pictures"])]) == 0
    return out


def train_tiny_digits(out: Path, *extra: str, steps: int = TINY_DIGITS_STEPS) -> Path:
    """Train the ``TINY_DIGITS`` image flow through the CLI, pictures included (a few seconds)."""
    argv = ["train", "digits", "--out", str(out), "--steps", str(steps), "--quiet", *cli_settings(TINY_DIGITS), *extra]
    assert main(argv) == 0
    return out


def untrained_nll(run: Path, split: str = "test") -> float:
    """Mean NLL in nats, on ``split`` of a vector run's own data, of its model as training starts it
    (same settings, same seed, standardised by the training split as ``train`` does)."""
    cfg = Config.from_dict(json.loads((Path(run) / "config.json").read_text()))
    splits = load_splits(cfg.data)
    train_x = torch.from_numpy(splits.train)
    torch.manual_seed(cfg.train.seed)
    flow = build_model(cfg.model, tuple(train_x.shape[1:]), train_x.mean(0), train_x.std(0).clamp_min(1e-6))
    with torch.no_grad():
        return -flow.eval().log_prob(torch.from_numpy(getattr(splits, split))).double().mean().item()


@contextmanager
def counting_optimizer_steps() -> Iterator[list[int]]:
    """Counts every optimizer step taken inside the block (any optimizer, through torch's global
    step hook): ``with counting_optimizer_steps() as steps: ...; steps[0]``. A resumed run that
    silently restarted from step 0 takes more steps than it should."""
    count = [0]

    def hook(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        count[0] += 1

    handle = register_optimizer_step_post_hook(hook)
    try:
        yield count
    finally:
        handle.remove()


def same_records(a: Path, b: Path) -> None:
    """Two runs' metrics.jsonl hold the same records (every field but the wall-clock ``elapsed_s``)."""
    def records(run: Path) -> list[dict[str, Any]]:
        lines = (Path(run) / "metrics.jsonl").read_text().splitlines()
        return [{k: v for k, v in json.loads(line).items() if k != "elapsed_s"} for line in lines]

    assert records(a) == records(b)


def same_weights(a: Path, b: Path, name: str = "checkpoint.pt") -> None:
    """Two runs' checkpoints hold bit-identical weights (and buffers) and the same step."""
    sa, sb = (torch.load(Path(run) / name, weights_only=True) for run in (a, b))
    assert sa["step"] == sb["step"]
    assert sa["model"].keys() == sb["model"].keys()
    for key, value in sa["model"].items():
        assert torch.equal(value, sb["model"][key]), key
