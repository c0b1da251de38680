"""Maximum-likelihood training: ``train_step`` is one optimisation step, ``train`` the loop around it
(validation-based early stopping, a time budget, crash-safe resume, DDP under ``torchrun``)."""

from __future__ import annotations

import math
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from realnvp.checkpoint import Checkpoint
from realnvp.config import Config
from realnvp.data import Splits
from realnvp.data.columns import column_types
from realnvp.distributions import best_weight
from realnvp.errors import UserError
from realnvp.evaluation.metrics import log_prob_in_chunks
from realnvp.flow import Flow
from realnvp.models import build_model
from realnvp.resolve import complete
from realnvp.rundir import BEST, RunDir, TrainedRun, training_scope
from realnvp.training import distributed
from realnvp.training.crossval import settle_steps
from realnvp.training.distributed import DistInfo, data_parallel, join, local_slice, mean_over_ranks, rank0_clock
from realnvp.training.guard import NonFiniteGuard
from realnvp.training.logs import MetricsLogger, Progress, metrics_logger
from realnvp.training.preflight import check_fits
from realnvp.training.prepared import TrainingData
from realnvp.training.resume import check_compatible, load_latest, restore, save_latest, tidy
from realnvp.training.step import (
    CompiledOrEager,
    fetch_batch_and_context,
    lr_factor,
    make_optimizer,
    set_schedule,
    train_step,
)


@dataclass
class TrainResult(TrainedRun):
    """What ``train`` hands back: the flow with the best-validation weights (``best.pt``'s; the last
    evaluated ones when there is no validation split) on the training device, its config, where and why
    training stopped, and this process's rank. It is a ``TrainedRun``: evaluation and pictures take it.

    Example:
        >>> from realnvp.config import load_config
        >>> cfg = load_config("moons", ["train.steps=20", "model.hidden=8", "data.n_train=500"])
        >>> result = train(cfg, tmp / "result", progress=False, log=lambda *args: None)
        >>> result.step, result.best_step, result.stop_reason, result.dist.is_main, result.flow.training
        (20, 20, 'reached 20 steps', True, False)
    """

    stop_reason: str
    dist: DistInfo  # which rank this process was; only rank 0 should write pictures and metrics
    started_from: str = ""  # whitened vector flows: "ml" or "shrinkage", the Gaussian it started as


GAUSSIAN_NAMES = {"ml": "the maximum-likelihood Gaussian", "shrinkage": "the Ledoit-Wolf shrinkage Gaussian"}

@training_scope  # releases the run directory's lock, and cleans up a start that failed, however train ends
@distributed.ranks_watched  # torchrun: a rank that dies or hangs ends the others in one line, no traceback
def train(cfg: Config, run_dir: str | Path, resume: bool = False, progress: bool = True,
          log: Any = print, notes: tuple[str, ...] = (), splits: Splits | None = None) -> TrainResult:
    """Train the flow ``cfg`` describes, writing checkpoints and ``metrics.jsonl`` into ``run_dir``:
    ``train_step`` on random batches, an evaluation and checkpoint every ``train.eval_every`` steps,
    until ``train.steps``, the time budget or early stopping. ``notes`` go to ``log`` once the data and
    the run directory have passed their checks (bad input is refused in one line, without them).

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
    if splits is None:  # a config given in Python: completed from its data here, as the CLI does
        resolved = complete(cfg)
        cfg, splits, notes = resolved.cfg, resolved.splits, (*resolved.notes, *notes)
    t = cfg.train
    device, info = join(t.device)
    data = TrainingData.load(cfg, device, splits)
    run = RunDir(run_dir)
    latest = _open_run(cfg, run, resume, data.event_shape, info, log)
    start = [f"the untrained flow is {GAUSSIAN_NAMES[data.start]} of the non-test rows"] if data.start else []
    for note in (*notes, *start) if info.is_main else ():
        log(note)
    if t.cv_folds:  # small tables: the number of steps from K-fold cross-validation on every training row
        cfg = settle_steps(cfg, data.vector_rows(cfg.data.seed + 5), log if info.is_main else (lambda line: None),
                           column_types(cfg, data.event_shape))
        if info.is_main:  # config.json records the chosen number of steps
            run.write_config(cfg)
    job = _start(cfg, run, data, device, info, latest, log)
    distributed.report_progress(lambda: (job.step, job.guard.good_step))  # named if another rank dies
    t = cfg.train
    display = Progress(t.steps, job.step, progress and info.is_main)
    log_every = t.log_every or max(1, t.steps // 50)
    stop_reason = f"reached {t.steps} steps" + (f" (chosen by {t.cv_folds}-fold cross-validation)"
                                                 if t.cv_folds else "")
    start = time.perf_counter() - job.elapsed
    out_of_time = job.out_of_time()
    # display closed first, before any message, so that none is printed on the bar's line
    with closing(job.metrics_log), closing(display):
        while job.step < t.steps:
            if out_of_time:
                stop_reason = f"time budget of {t.time_budget:g} s used"
                break
            job.set_lr()
            batch, context = job.next_batch()
            nll = train_step(job.flow, job.optimizer, job.local(batch), cfg, job.model, job.guard,
                             None if context is None else local_slice(context, info))
            if nll is None:  # non-finite: rolled back to the last good state
                _roll_back(job, display, batch, job.step, context)
                continue
            job.count(nll, time.perf_counter() - start)
            out_of_time = job.out_of_time()
            if job.step % log_every == 0:
                display.running(job.running_record())
            if job.step % t.eval_every == 0 or job.step == t.steps or out_of_time:
                if not job.guard.state_is_finite():  # never checkpoint a non-finite state
                    _roll_back(job, display, batch, job.step - 1, context)
                    continue
                display.evaluation(_evaluate_and_save(job), job.best_shown())
                if t.patience > 0 and job.stale >= t.patience:
                    stop_reason = _early_stopping(job)
                    break
            display.advance()
    log(f"stopped at step {job.step}: {stop_reason}")
    return _finish(job, stop_reason)


@dataclass
class _Job:
    """One training run in progress: the model and optimizer, and the counters a checkpoint holds."""

    cfg: Config
    run: RunDir
    info: DistInfo
    data: TrainingData
    flow: Flow
    model: Any  # what runs the forward: the flow, wrapped by DDP and/or torch.compile
    optimizer: torch.optim.Optimizer
    batches: torch.Generator  # the batch stream (saved in checkpoints, so resume draws the same batches)
    guard: NonFiniteGuard
    memory_format: torch.memory_format
    metrics_log: MetricsLogger  # TensorBoard, when asked for
    step: int = 0
    elapsed: float = 0.0
    best_val: float = math.inf
    stale: int = 0  # evaluations since the best validation NLL
    since_eval: _RunningMean = field(default_factory=lambda: _RunningMean())
    since_log: _RunningMean = field(default_factory=lambda: _RunningMean())
    # Running records not yet written: they go to metrics.jsonl with the next checkpoint, so a rollback
    # or --resume never leaves records of steps that were undone.
    pending: list[dict[str, Any]] = field(default_factory=list)

    def count(self, nll: torch.Tensor, elapsed: float) -> None:
        """A step done with batch NLL ``nll``."""
        self.since_eval.add(nll)
        self.since_log.add(nll)
        self.step += 1
        # Under DDP the clock that ends the budget and shapes cosine_time is rank 0's, on every rank.
        self.elapsed = rank0_clock(elapsed, self.info) if self.cfg.train.time_budget > 0 else elapsed

    def running_record(self) -> dict[str, Any]:
        """The mean train NLL since the last running record or evaluation, queued for metrics.jsonl."""
        record = self.data.with_bits_per_dim({"step": self.step, "train_nll": self.since_log.take(),
                                              "lr": self.optimizer.param_groups[0]["lr"],
                                              "elapsed_s": round(self.elapsed, 3)})
        self.pending.append(record)
        return record

    def best_shown(self) -> float | None:
        """The best validation NLL in the unit people read (bits/dim for images); None without validation."""
        if not len(self.data.val_x):
            return None
        return self.data.with_bits_per_dim({"val_nll": self.best_val}).get("val_bpd", self.best_val)

    def set_lr(self) -> None:
        set_schedule(self.flow, self.optimizer, self.cfg.train.lr,
                     lr_factor(self.step, self.cfg, self.elapsed) * self.guard.lr_scale)

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The next global batch from the saved stream, and its rows' contexts (conditional flows)."""
        t, data = self.cfg.train, self.data
        return fetch_batch_and_context(data.train_x, data.train_c, t.batch_size, self.batches, data.n_levels,
                                       self.cfg.data.flip, data.lattice)

    def out_of_time(self) -> bool:
        """Whether ``train.time_budget`` is spent; under DDP rank 0's clock decides for every rank."""
        budget = self.cfg.train.time_budget
        return budget > 0 and self.elapsed >= budget

    def local(self, batch: torch.Tensor) -> torch.Tensor:
        """This rank's share of the global batch, in the memory layout the model runs fastest with."""
        return local_slice(batch, self.info).contiguous(memory_format=self.memory_format)

    def snapshot(self) -> Checkpoint:
        """Everything ``--resume`` needs to continue bit for bit, and ``load`` to rebuild the flow."""
        return Checkpoint(self.cfg, self.data.event_shape, self.flow.state_dict(), self.optimizer.state_dict(),
                          self.batches.get_state(), torch.get_rng_state(), self.step, self.elapsed, self.best_val,
                          self.stale, self.flow.n_params(), self.data.n_levels, self.guard.lr_scale)


class _RunningMean:
    """The mean training NLL since the last ``take``, summed on the device (no host sync per step) and
    averaged over ranks."""

    def __init__(self) -> None:
        self.total: torch.Tensor | float = 0.0
        self.count = 0

    def add(self, nll: torch.Tensor) -> None:
        self.total = self.total + nll
        self.count += 1

    def reset(self) -> None:
        self.total, self.count = 0.0, 0

    def take(self) -> float:
        value = mean_over_ranks(self.total / self.count).item()
        self.reset()
        return value


def _open_run(cfg: Config, run: RunDir, resume: bool, event_shape: tuple[int, ...], info: DistInfo,
              log: Any) -> tuple[Checkpoint, Path] | None:
    """Check the run directory, read the checkpoint to resume from (if any) and check it fits ``cfg``;
    only then does rank 0 write ``config.json`` and tidy what a killed run left behind. Returns the
    checkpoint state and its path, or None for a fresh start."""
    run_dir = run.path
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"--out {run_dir} exists and is not a directory")
    if resume and not run.holds_run():
        raise UserError(f"nothing to resume: {run_dir} holds no run (train without --resume to start one)")
    check_fits(cfg, event_shape, run_dir)  # the model fits the data's shape, the memory and the disk
    if info.is_main:  # one training per directory, until train() ends (rundir.training_scope)
        run.lock(log)
    if not resume and run.has_checkpoint():  # a start that failed before its first checkpoint may be retried
        raise UserError(f"{run_dir} already holds a run; use --resume to continue it or pick another --out")
    latest = load_latest(run_dir, log) if resume else None  # read and checked before anything is written
    if latest:
        check_compatible(latest[0], cfg, event_shape, latest[1])
    distributed.barrier(info)  # every rank has checked the run directory before rank 0 writes into it
    try:
        if info.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            run.write_config(cfg)
            tidy(run_dir, latest[0].step if latest else 0)
    except OSError as exc:
        raise UserError(f"cannot write to run directory {run_dir}: {exc.strerror}") from None
    if resume and not latest:
        log(f"no checkpoint yet in {run_dir}: starting from step 0")
    return latest


def _start(cfg: Config, run: RunDir, data: TrainingData, device: torch.device, info: DistInfo,
           latest: tuple[Checkpoint, Path] | None, log: Any) -> _Job:
    """Build the flow and optimizer (seeded with ``train.seed``), restore the checkpoint when resuming,
    arm the non-finite guard and wrap the flow for DDP and ``torch.compile`` as asked."""
    torch.manual_seed(cfg.train.seed)
    columns = column_types(cfg, data.event_shape)
    flow = build_model(cfg.model, data.event_shape, data.loc, data.scale, columns).to(device)
    if info.is_main:
        log(f"model: {flow.n_params():,} parameters")
    if data.train_c is not None and data.train_c.is_floating_point():  # context columns: standardised
        flow.fit_context(data.train_c)
    if flow.defensive is not None and data.spread is not None:  # resuming overwrites them with the saved ones
        flow.defensive.loc.copy_(data.spread[0])
        flow.defensive.chol.copy_(data.spread[1])
    optimizer = make_optimizer(flow, cfg)
    batches = torch.Generator(device=device).manual_seed(cfg.train.seed)
    counters: dict[str, Any] = {}
    if latest:
        ckpt, path = latest
        restore(ckpt, flow, optimizer, batches, path)
        counters = {"step": ckpt.step, "elapsed": ckpt.elapsed_s, "best_val": ckpt.best_val_nll, "stale": ckpt.stale}
        log(f"resumed {run.path} at step {ckpt.step} from {path.name}")
    # Rejects non-finite steps: rolls back to the last checkpointed state with half the learning rate.
    guard = NonFiniteGuard(flow, optimizer, cfg.train.max_bad_steps, log, latest[0].lr_scale if latest else 1.0)
    guard.mark_good(counters.get("step", 0))
    # Convolutions on a GPU run fastest with channels-last tensors (NHWC); the maths is unchanged.
    memory_format = (torch.channels_last if device.type == "cuda" and len(data.event_shape) == 3
                     else torch.contiguous_format)  # preserve_format: a RuntimeError in .contiguous()
    flow.to(memory_format=memory_format)
    # DDP hooks forward (train_step adds the base density itself); each batch norm uses the global batch's moments.
    model = data_parallel(flow) if info.enabled else flow
    model = CompiledOrEager(model, log) if cfg.train.compile else model
    flow.train()
    metrics_log = metrics_logger(cfg.train.tensorboard and info.is_main, run.path)
    job = _Job(cfg, run, info, data, flow, model, optimizer, batches, guard, memory_format, metrics_log, **counters)
    if not latest and (cfg.model.whiten or not cfg.train.steps):
        _keep_baseline(job)
    return job


def _keep_baseline(job: _Job) -> None:
    """An untrained whitened flow is the non-test rows' full-covariance Gaussian: its weights are
    ``best.pt`` and its validation NLL, less one standard error of that mean, is the best so far, so
    training only replaces them by weights that beat the baseline on validation by more than the
    validation set's own noise (on 20-24 validation rows, the best of many evaluations often beats the
    Gaussian by chance and then loses to it on the test rows)."""
    if len(job.data.val_x):
        nll = validation_nll(job.flow, job.data.val_x, job.data.val_c)
        job.best_val = nll.mean().item() - nll.std().nan_to_num().item() / math.sqrt(len(nll))
    if job.info.is_main:
        job.snapshot().write(job.run / BEST)


def _roll_back(job: _Job, display: Progress, batch: torch.Tensor, step: int,
               context: torch.Tensor | None = None) -> None:
    """The guard rejected step ``step + 1``: back to the last good state, forgetting what came since."""
    job.step = job.guard.reject(batch, step, context)
    display.rewind(job.step)
    job.since_eval.reset()
    job.since_log.reset()
    job.pending.clear()


def _evaluate_and_save(job: _Job) -> dict[str, Any]:
    """Validation NLL (updating the best and the early-stopping count), then on rank 0 the queued
    running records and the evaluation record, ``best.pt`` when it improved and the rotated latest
    checkpoint; marks the state good. Returns the evaluation record."""
    job.since_log.reset()  # running records restart at each checkpoint, so --resume repeats them exactly
    record = {"step": job.step, "train_nll": job.since_eval.take(), "lr": job.optimizer.param_groups[0]["lr"],
              "elapsed_s": round(job.elapsed, 3)}
    improved = True
    if len(job.data.val_x):
        val_nll = validation_nll(job.flow, job.data.val_x, job.data.val_c).mean().item()
        record["val_nll"] = val_nll
        improved = val_nll < job.best_val
        job.best_val, job.stale = (val_nll, 0) if improved else (job.best_val, job.stale + 1)
    job.data.with_bits_per_dim(record)
    if job.info.is_main:
        # Metrics first, checkpoint last: a crash in between is undone by --resume, which trims
        # the log back to the checkpoint's step.
        for running in job.pending:
            job.run.append_metrics(running)
            job.metrics_log(running)
        job.run.append_metrics(record)
        job.metrics_log(record)
        ckpt = job.snapshot()
        if improved:
            ckpt.write(job.run / BEST)
        save_latest(job.run.path, ckpt)
    job.pending.clear()
    job.guard.mark_good(job.step)
    return record


def _early_stopping(job: _Job) -> str:
    """The stop reason when ``train.patience`` evaluations passed without a better validation NLL."""
    return (f"early stopping: no validation improvement in {job.stale} evaluations "
            f"({job.stale * job.cfg.train.eval_every} steps); best val NLL {job.best_val:.4f}")


def _finish(job: _Job, stop_reason: str) -> TrainResult:
    """Load the best weights (``best.pt``, rank 0's, once every rank is done) into the flow and hand it
    back with the counters; training ended at an evaluation, so ``job`` holds the latest checkpoint's."""
    job.metrics_log.close()
    distributed.barrier(job.info)  # rank 0's last checkpoint is on disk before anyone reads it
    best = Checkpoint.read(job.run / BEST)
    job.flow.load_state_dict(best.model)
    return TrainResult(job.flow.eval(), job.cfg, job.step, best.step, job.best_val, job.elapsed, stop_reason,
                       job.info, GAUSSIAN_NAMES.get(job.data.start, ""))


def validation_nll(flow: Flow, val_x: torch.Tensor, val_c: torch.Tensor | None) -> torch.Tensor:
    """Each validation row's NLL (float64, eval mode); a defensive mixture first takes the weight of
    ``DEFENSIVE_WEIGHTS`` these rows prefer, so the best weights are chosen with their mixture.

    Example:
        >>> from realnvp.distributions import StudentT
        >>> from realnvp.models import build_vector_flow
        >>> flow = build_vector_flow(dim=2, n_couplings=2, hidden=(8,))
        >>> flow.set_defensive(StudentT(torch.zeros(2), torch.eye(2)))
        >>> nll = validation_nll(flow, torch.tensor([[0.0, 0.0], [30.0, 30.0]]), None)
        >>> float(flow.defensive_weight) > 0, bool(nll[1] < 30)  # the far row is caught by the t
        (True, True)
    """
    if flow.defensive is None:
        log_p = log_prob_in_chunks(flow, val_x, context=val_c)
    else:
        flow.eval()
        with torch.no_grad():
            own = flow.log_prob(val_x, val_c, defensive=False).double()
            t_log_p = flow.defensive.log_prob(val_x)
        weight, _ = best_weight(own, t_log_p)
        flow.defensive_weight.fill_(weight)
        log_p = torch.logaddexp(own + math.log1p(-weight), t_log_p + math.log(weight))
    flow.train()
    return -log_p.cpu()
