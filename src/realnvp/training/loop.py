"""Maximum-likelihood training: one flat loop, validation-based early stopping, resumable runs."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from realnvp.bijectors import dequantize, random_hflip
from realnvp.config import Config, check_settings
from realnvp.data import load_splits
from realnvp.errors import UserError
from realnvp.evaluation.metrics import mean_nll
from realnvp.flow import Flow
from realnvp.models import build_model
from realnvp.rundir import BEST, RunDir, load_checkpoint, save_checkpoint
from realnvp.training.distributed import DistInfo, local_slice, mean_over_ranks
from realnvp.training.distributed import setup as setup_distributed
from realnvp.training.guard import NonFiniteGuard
from realnvp.training.logs import metrics_logger
from realnvp.training.resume import check_compatible, load_latest, restore, save_latest, tidy


@dataclass
class TrainResult:
    """What ``train`` hands back: the flow, where and why training stopped, and this process's rank.

    Example:
        >>> from realnvp.config import load_config
        >>> cfg = load_config("moons", ["train.steps=20", "model.hidden=8", "data.n_train=500"])
        >>> result = train(cfg, tmp / "result", progress=False, log=lambda *args: None)
        >>> result.step, result.stop_reason, result.dist.is_main, result.flow.training
        (20, 'reached 20 steps', True, False)
    """

    flow: Flow  # the best-validation weights (or the last ones when there is no validation split)
    step: int
    stop_reason: str
    best_val_nll: float
    dist: DistInfo  # which rank this process was; only rank 0 should write pictures and metrics


def resolve_device(name: str) -> torch.device:
    """``train.device`` as a ``torch.device``: "auto" picks CUDA when present; asking for a missing GPU
    or an unknown device is a ``UserError``.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
        >>> resolve_device("tpu")
        Traceback (most recent call last):
        ...
        realnvp.errors.UserError: unknown device 'tpu'; expected auto, cpu or cuda
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but no CUDA GPU is available (use --device cpu)")
    if name not in ("cpu", "cuda"):
        raise UserError(f"unknown device {name!r}; expected auto, cpu or cuda")
    return torch.device(name)


def lr_factor(step: int, cfg: Config) -> float:
    """Linear warm-up, then constant or cosine decay to zero at ``train.steps``.

    Example:
        >>> cfg = Config.from_dict({"train": {"steps": 1000, "warmup_steps": 100, "lr_schedule": "cosine"}})
        >>> [round(lr_factor(step, cfg), 3) for step in (0, 99, 500, 1000)]
        [0.01, 0.976, 0.5, 0.0]
    """
    t = cfg.train
    warm = min(1.0, (step + 1) / t.warmup_steps) if t.warmup_steps > 0 else 1.0
    if t.lr_schedule == "cosine":
        return warm * 0.5 * (1.0 + math.cos(math.pi * min(step, t.steps) / t.steps))
    if t.lr_schedule == "constant":
        return warm
    raise UserError(f"train.lr_schedule: expected 'constant' or 'cosine', got {t.lr_schedule!r}")


def fetch_batch(train_x: torch.Tensor, size: int, generator: torch.Generator, n_levels: int,
                flip: bool) -> torch.Tensor:
    """A random training batch; images (``n_levels > 0``) are dequantized to ``(v + u) / n_levels``
    and, with ``flip``, mirrored at random. All randomness comes from ``generator`` (saved for resume).

    Example:
        >>> v = torch.randint(0, 17, (100, 1, 8, 8))
        >>> y = fetch_batch(v, 32, torch.Generator().manual_seed(0), n_levels=17, flip=True)
        >>> y.shape, bool(0 <= y.min() and y.max() < 1)
        (torch.Size([32, 1, 8, 8]), True)
    """
    x = train_x[torch.randint(len(train_x), (size,), generator=generator, device=train_x.device)]
    if not n_levels:
        return x
    y = dequantize(x, n_levels, generator)
    return random_hflip(y, generator) if flip else y


def make_optimizer(flow: Flow, cfg: Config) -> torch.optim.Optimizer:
    """The optimizer ``train`` uses: Adam with ``train.lr`` and ``train.weight_decay``, as the fused
    kernel that updates every parameter in one pass (measured ~4 ms/step less on moons). Public so
    benchmarks and custom loops step exactly as ``realnvp train`` does.

    Example:
        >>> from realnvp.config import load_config
        >>> from realnvp.models import build_model
        >>> cfg = load_config("moons-tutorial", ["model.hidden=8"])
        >>> optimizer = make_optimizer(build_model(cfg.model, (2,)), cfg)
        >>> type(optimizer).__name__, optimizer.defaults["lr"], optimizer.defaults["fused"]
        ('Adam', 0.001, True)
    """
    return torch.optim.Adam(flow.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay, fused=True)


def train(cfg: Config, run_dir: str | Path, resume: bool = False, progress: bool = True,
          log: Any = print) -> TrainResult:
    """Train the flow ``cfg`` describes, writing checkpoints and ``metrics.jsonl`` into ``run_dir``.

    Example:
        >>> from realnvp.config import load_config
        >>> cfg = load_config("moons", ["train.steps=20", "model.hidden=8", "data.n_train=500"])
        >>> train(cfg, tmp / "moons", progress=False, log=lambda *args: None).step
        20
        >>> sorted(path.name for path in (tmp / "moons").iterdir())
        ['best.pt', 'checkpoint.pt', 'config.json', 'metrics.jsonl']
        >>> cfg.train.steps = 30  # more steps: resume=True (--resume) continues from checkpoint.pt
        >>> train(cfg, tmp / "moons", resume=True, progress=False, log=lambda *args: None).step
        30
    """
    run_dir = Path(run_dir)
    run = RunDir(run_dir)
    t = cfg.train
    check_settings(cfg)
    device = resolve_device(t.device)
    info = setup_distributed(device)
    if info.enabled and device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
    splits = load_splits(cfg.data)
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"--out {run_dir} exists and is not a directory")
    if not resume and run.holds_run():
        raise UserError(f"{run_dir} already holds a run; use --resume to continue it or pick another --out")
    if resume and not run.holds_run():
        raise UserError(f"nothing to resume: {run_dir} holds no run (train without --resume to start one)")

    torch.manual_seed(t.seed)
    levels = splits.n_levels
    train_x = torch.from_numpy(splits.train).to(device)
    val_x = torch.from_numpy(splits.val)
    if levels:  # one fixed dequantization of the validation images, so val NLLs are comparable
        val_x = dequantize(val_x, levels, torch.Generator().manual_seed(cfg.data.seed + 3))
        loc = scale = None
    else:
        loc, scale = train_x.mean(0).cpu(), train_x.std(0).cpu().clamp_min(1e-6)
    val_x = val_x.to(device)
    event_shape = tuple(train_x.shape[1:])
    latest = load_latest(run_dir, log) if resume else None  # read and checked before anything is written
    if latest:
        check_compatible(latest[0], cfg, event_shape, latest[1])
    if info.enabled:
        torch.distributed.barrier()  # every rank has checked the run directory before rank 0 writes into it
    try:
        if info.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            run.write_config(cfg)
            tidy(run_dir, int(latest[0]["step"]) if latest else 0)
    except OSError as exc:
        raise UserError(f"cannot write to run directory {run_dir}: {exc.strerror}") from None
    flow = build_model(cfg.model, event_shape, loc, scale).to(device)
    optimizer = make_optimizer(flow, cfg)
    batches = torch.Generator(device=device).manual_seed(t.seed)
    step, elapsed, best_val, stale = 0, 0.0, math.inf, 0

    if latest:
        state, path = latest
        restore(state, flow, optimizer, batches, path)
        step, elapsed, best_val, stale = state["step"], state["elapsed_s"], state["best_val_nll"], state["stale"]
        log(f"resumed {run_dir} at step {step} from {path.name}")
    elif resume:
        log(f"no checkpoint yet in {run_dir}: starting from step 0")
    # Rejects non-finite steps: rolls back to the last checkpointed state with half the learning rate.
    guard = NonFiniteGuard(flow, optimizer, t.max_bad_steps, log, latest[0].get("lr_scale", 1.0) if latest else 1.0)
    guard.mark_good(step)

    # Convolutions on a GPU run fastest with channels-last tensors (NHWC); the maths is unchanged.
    memory_format = torch.channels_last if device.type == "cuda" and len(event_shape) == 3 else torch.preserve_format
    flow.to(memory_format=memory_format)
    # DDP hooks ``forward``, so training calls the model and adds the base density itself.
    model = torch.nn.parallel.DistributedDataParallel(flow, broadcast_buffers=False) if info.enabled else flow
    model = CompiledOrEager(model, log) if t.compile else model

    def batch_nll(x: torch.Tensor) -> torch.Tensor:
        # bf16 autocast reaches only the s/t networks' matmuls and convolutions: the couplings cast s and t
        # back to float32, and batch-norm statistics, log-dets and the loss are computed in float32.
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=t.precision == "bf16"):
            z, log_det = model(local_slice(x, info).contiguous(memory_format=memory_format))
        return -(flow.base_log_prob(z.float()) + log_det.float()).mean()

    def snapshot() -> dict[str, Any]:
        return {"config": cfg.to_dict(), "event_shape": list(event_shape), "model": flow.state_dict(),
                "optimizer": optimizer.state_dict(), "batch_rng": batches.get_state(),
                "torch_rng": torch.get_rng_state(), "step": step, "elapsed_s": elapsed,
                "best_val_nll": best_val, "stale": stale, "n_params": flow.n_params(), "n_levels": levels,
                "lr_scale": guard.lr_scale}

    def evaluate_and_save(train_nll: float) -> None:
        nonlocal best_val, stale
        record = {"step": step, "train_nll": train_nll, "lr": optimizer.param_groups[0]["lr"],
                  "elapsed_s": round(elapsed, 3)}
        improved = True
        if len(val_x):
            val_nll = mean_nll(flow, val_x)
            flow.train()
            record["val_nll"] = val_nll
            improved = val_nll < best_val
            best_val, stale = (val_nll, 0) if improved else (best_val, stale + 1)
        if info.is_main:
            # Metrics first, checkpoint last: a crash in between is undone by --resume, which trims
            # the log back to the checkpoint's step.
            run.append_metrics(record)
            metrics_log(record)
            state = snapshot()
            if improved:
                save_checkpoint(run_dir / BEST, state)
            save_latest(run_dir, state)

    metrics_log = metrics_logger(t.tensorboard and info.is_main, run_dir)  # TensorBoard, when asked for
    bar = tqdm(total=t.steps, initial=step, disable=not progress or not info.is_main, unit="step",
               dynamic_ncols=True, mininterval=1.0)
    flow.train()
    stop_reason = f"reached {t.steps} steps"
    running, count = torch.zeros((), device=device), 0
    start = time.perf_counter() - elapsed
    out_of_time = _budget_used(elapsed, t.time_budget, info)
    while step < t.steps:
        if out_of_time:
            stop_reason = f"time budget of {t.time_budget:g} s used"
            break
        for group in optimizer.param_groups:
            group["lr"] = t.lr * lr_factor(step, cfg) * guard.lr_scale
        batch = fetch_batch(train_x, t.batch_size, batches, levels, cfg.data.flip)
        nll = batch_nll(batch)
        loss = nll + t.scale_l2 * flow.scale_penalty() if t.scale_l2 > 0 else nll
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if not guard.check(loss):
            step = bar.n = guard.reject(batch, step)
            running.zero_()
            count = 0
            continue
        if t.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(flow.parameters(), t.grad_clip)
        optimizer.step()
        running += nll.detach()
        count += 1
        step += 1
        elapsed = time.perf_counter() - start
        out_of_time = _budget_used(elapsed, t.time_budget, info)
        if step % t.eval_every == 0 or step == t.steps or out_of_time:
            train_nll = mean_over_ranks(running / count).item()
            running.zero_()
            count = 0
            if not guard.state_is_finite():  # never checkpoint a non-finite state
                step = bar.n = guard.reject(batch, step - 1)
                continue
            evaluate_and_save(train_nll)
            guard.mark_good(step)
            bar.set_postfix(train_nll=f"{train_nll:.3f}", val_nll=f"{best_val:.3f}")
            if t.patience > 0 and stale >= t.patience:
                stop_reason = (f"early stopping: no validation improvement in {stale} evaluations "
                               f"({stale * t.eval_every} steps); best val NLL {best_val:.4f}")
                break
        bar.update(1)
    bar.close()
    metrics_log.close()
    log(f"stopped at step {step}: {stop_reason}")
    if info.enabled:
        torch.distributed.barrier()  # rank 0's last checkpoint is on disk before anyone reads it
    best = load_checkpoint(run_dir / BEST)
    flow.load_state_dict(best["model"])
    return TrainResult(flow.eval(), step, stop_reason, best_val, info)


class CompiledOrEager:
    """``torch.compile(model)``, falling back to the eager model, with one line saying why, when the
    first call fails to compile (e.g. no C compiler for Inductor on this CPU). Later errors propagate.

    Example:
        >>> model = CompiledOrEager(torch.nn.Linear(2, 1), log=print)
        >>> model(torch.zeros(3, 2)).shape
        torch.Size([3, 1])
    """

    def __init__(self, model: torch.nn.Module, log: Any) -> None:
        self.model, self.compiled, self.log = model, torch.compile(model), log
        self.working: bool | None = None  # unknown until the first call

    def __call__(self, *args: Any) -> Any:
        if self.working is False:
            return self.model(*args)
        try:
            out = self.compiled(*args)
        except Exception as exc:  # noqa: BLE001 (compiler failures come as many exception types)
            if self.working:
                raise
            reason = (str(exc).strip().splitlines() or [""])[0][:200]
            self.log(f"torch.compile failed ({type(exc).__name__}: {reason}); training without it")
            self.working = False
            return self.model(*args)
        self.working = True
        return out


def _budget_used(elapsed: float, budget: float, info: DistInfo) -> bool:
    """Whether the time budget is spent; under DDP rank 0's clock decides for everyone, so all ranks
    stop at the same step."""
    if budget <= 0:
        return False
    on_gpu = info.enabled and torch.distributed.get_backend() == "nccl"
    used = torch.tensor(float(elapsed >= budget), device=f"cuda:{info.local_rank}" if on_gpu else "cpu")
    if info.enabled:
        torch.distributed.broadcast(used, src=0)
    return bool(used.item())

