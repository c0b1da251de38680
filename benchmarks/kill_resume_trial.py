"""Kill-and-resume trial: training is killed with SIGKILL at random moments, resumed with
``--resume``, and its final state compared with an uninterrupted run of the same settings.

Each trial starts a fresh run of ``realnvp train`` (the CLI's ``main``) in a child process, kills it
at a moment drawn uniformly over the reference run's lifetime, sometimes kills the resumed run again,
every fourth trial also truncates ``checkpoint.pt`` after the kill (a damaged disk; the atomic
writes never leave a torn file themselves) so ``--resume`` must fall back to
``checkpoint.prev.pt``, then resumes to the end. The result must be *bit-exact*: every tensor of the
final checkpoint (weights, batch-norm statistics, Adam moments and step counts), both random streams,
the best checkpoint, ``evaluation.json`` and every ``metrics.jsonl`` record, apart from wall-clock
fields (``elapsed_s``, ``train_seconds``).

Deterministic settings: ``torch.use_deterministic_algorithms(True)``, one CPU thread, a step budget
(``train.time_budget = 0``: a time budget makes where a run stops depend on the clock). Children are
forked from a ``multiprocessing`` fork server that has already imported torch, so a trial costs
seconds instead of an interpreter start; a SIGKILLed child dies exactly as a CLI process would.

    .venv/bin/python -m benchmarks.kill_resume_trial --trials 20
"""

from __future__ import annotations

import argparse
import importlib
import json
import multiprocessing as mp
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch
from tqdm.std import tqdm

from realnvp.rundir import BEST, CHECKPOINT, METRICS, RunDir, load_checkpoint

# A small vector model that still has every piece of state resume must carry: batch norm buffers,
# a warm-up + cosine schedule, gradient clipping, validation/best tracking, and 30 checkpoints.
SETTINGS = ["--steps", "300", "--device", "cpu", "--no-pictures", "--seed", "3",
            "--set", "model.n_couplings=4", "--set", "model.hidden=64,64", "--set", "model.batch_norm=true",
            "--set", "data.n_train=4000", "--set", "data.n_test=2000", "--set", "train.batch_size=256",
            "--set", "train.lr_schedule=cosine", "--set", "train.warmup_steps=50", "--set", "train.grad_clip=5",
            "--set", "train.eval_every=10", "--set", "train.time_budget=0", "--set", "train.patience=0"]
WALL_CLOCK = {"elapsed_s", "train_seconds", "run"}
# Imported once before children start; torch._dynamo because the first optimizer imports it (seconds).
PRELOAD = ["torch", "torch._dynamo", "tqdm.auto", "sklearn.datasets", "realnvp.cli", "realnvp.training.loop",
           "realnvp.evaluation.metrics"]


def _child(argv: list[str], log: str) -> None:
    """One CLI run with deterministic settings, stderr appended to ``log``."""
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    sys.stderr = open(log, "a", buffering=1)  # open until the process ends or is killed
    os.dup2(sys.stderr.fileno(), 2)
    tqdm.set_lock(threading.RLock())  # not tqdm's default multiprocessing lock, which a kill would leak
    from realnvp.cli import main

    sys.exit(main(argv))


def context(method: str = "forkserver") -> mp.context.BaseContext:
    """Where children come from: a fork server that has imported torch and realnvp (clean children,
    no interpreter start each), or ``"fork"`` of this process once it has imported them (free; what
    the test uses, safe because each child runs single-threaded, as DataLoader workers do)."""
    ctx = mp.get_context(method)
    if method == "forkserver":
        ctx.set_forkserver_preload(PRELOAD)
    else:
        for module in PRELOAD:
            importlib.import_module(module)
    return ctx


def start(ctx: mp.context.BaseContext, run_dir: Path, settings: list[str], preset: str = "moons") -> mp.Process:
    """Start (or, when ``run_dir`` already holds a run, resume) training in a child process."""
    argv = ["train", preset, "--out", str(run_dir), *settings] + (["--resume"] if RunDir(run_dir).holds_run() else [])
    proc = ctx.Process(target=_child, args=(argv, str(run_dir.parent / f"{run_dir.name}.log")))
    proc.start()
    return proc


def last_step(run_dir: Path) -> int:
    """The step of the last complete metrics record (0 if none)."""
    step = 0
    if (run_dir / METRICS).exists():
        for line in (run_dir / METRICS).read_text().splitlines():
            try:
                step = json.loads(line)["step"]
            except (json.JSONDecodeError, KeyError):
                pass
    return step


def kill(proc: mp.Process) -> bool:
    """SIGKILL ``proc``; False if it had already finished."""
    if not proc.is_alive():
        proc.join()
        return False
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    return proc.exitcode == -signal.SIGKILL


def _same(a: object, b: object) -> bool:
    """Bit-exact equality of nested checkpoint contents."""
    if isinstance(a, torch.Tensor):
        return (isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape
                and torch.equal(a.reshape(-1).view(torch.uint8), b.reshape(-1).view(torch.uint8)))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(map(_same, a, b))
    return a == b


def _records(path: Path) -> list[dict]:
    """The JSON objects of a .json or .jsonl file, wall-clock fields removed."""
    return [{k: v for k, v in json.loads(line).items() if k not in WALL_CLOCK}
            for line in path.read_text().splitlines() if line.strip()] if path.suffix == ".jsonl" else \
        [{k: v for k, v in json.loads(path.read_text()).items() if k not in WALL_CLOCK}]


def differences(ref: Path, run: Path) -> list[str]:
    """Everything that differs between two finished runs, wall-clock fields aside (empty: identical)."""
    diffs = []
    last_ref, last_run = load_checkpoint(ref / CHECKPOINT), load_checkpoint(run / CHECKPOINT)
    diffs += [f"{CHECKPOINT}:{k}" for k in last_ref.keys() | last_run.keys()
              if k not in WALL_CLOCK and not _same(last_ref.get(k), last_run.get(k))]
    if not _same(load_checkpoint(ref / BEST)["model"], load_checkpoint(run / BEST)["model"]):
        diffs.append(f"{BEST}:model")

    if _records(ref / METRICS) != _records(run / METRICS):
        diffs.append(METRICS)
    if _records(ref / "evaluation.json") != _records(run / "evaluation.json"):
        diffs.append("evaluation.json")
    diffs += [f"leftover {p.name}" for p in run.glob(".*.tmp")]
    return diffs


def run_to_end(ctx: mp.context.BaseContext, run_dir: Path, settings: list[str]) -> None:
    proc = start(ctx, run_dir, settings)
    proc.join()
    if proc.exitcode != 0:
        log = run_dir.parent / f"{run_dir.name}.log"
        last = log.read_text().strip().splitlines()[-1:] if log.exists() else []
        raise RuntimeError(f"{run_dir} exited with {proc.exitcode}: {''.join(last)}")


def trial(ctx: mp.context.BaseContext, ref: Path, run_dir: Path, lifetime: float, rng: random.Random,
          corrupt: bool, settings: list[str] = SETTINGS) -> dict:
    """Kill one run at random moments (once, or twice with probability 1/2), optionally truncate its
    latest checkpoint, resume to the end and compare with ``ref``. A run that finishes before its
    kill moment (the machine was faster than the reference) is started afresh with new moments."""
    n_kills = 1 if rng.random() < 0.5 else 2
    attempt = 0
    while attempt < 10:
        attempt += 1
        kills = []
        for _ in range(n_kills):
            proc = start(ctx, run_dir, settings)
            delay = rng.uniform(0.0, lifetime)
            time.sleep(delay)
            if kill(proc):
                kills.append({"after_s": round(delay, 2), "last_logged_step": last_step(run_dir),
                              "had_checkpoint": (run_dir / CHECKPOINT).exists()})
        if kills:
            break
        shutil.rmtree(run_dir)
        (run_dir.parent / f"{run_dir.name}.log").unlink()
    truncated = corrupt and (run_dir / CHECKPOINT).exists()
    if truncated:
        data = (run_dir / CHECKPOINT).read_bytes()
        (run_dir / CHECKPOINT).write_bytes(data[: len(data) // 2])
    run_to_end(ctx, run_dir, settings)
    log = (run_dir.parent / f"{run_dir.name}.log").read_text()
    return {"kills": kills, "attempts": attempt, "truncated_latest": truncated,
            "fell_back": "skipped a damaged checkpoint" in log, "differences": differences(ref, run_dir)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="keep the run directories here (default: a temporary folder)")
    args = parser.parse_args()
    root = Path(args.out or tempfile.mkdtemp(prefix="kill_resume_"))
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    ctx = context()
    ref = root / "reference"
    t0 = time.perf_counter()
    run_to_end(ctx, ref, SETTINGS)  # the first child also starts the fork server
    t1 = time.perf_counter()
    run_to_end(ctx, root / "reference2", SETTINGS)  # an uninterrupted repeat: the baseline for "identical"
    lifetime = time.perf_counter() - t1
    repeat = differences(ref, root / "reference2")
    print(f"reference run: {t1 - t0:.1f} s (with fork-server start), repeat {lifetime:.1f} s, "
          f"repeat identical: {not repeat}{' ' + ', '.join(repeat) if repeat else ''}", flush=True)
    passed = 0
    for i in range(args.trials):
        rng = random.Random(args.seed * 1000 + i)
        result = trial(ctx, ref, root / f"trial{i:02d}", lifetime, rng, corrupt=i % 4 == 3)
        passed += not result["differences"]
        kills = ", ".join(f"{k['after_s']}s (step {k['last_logged_step']}"
                          f"{'' if k['had_checkpoint'] else ', no checkpoint yet'})" for k in result["kills"])
        retried = f" (attempt {result['attempts']})" if result["attempts"] > 1 else ""
        print(f"trial {i:2d}: killed at {kills}{retried}; "
              f"{'truncated checkpoint.pt, resumed from checkpoint.prev.pt; ' if result['fell_back'] else ''}"
              f"{'bit-exact' if not result['differences'] else 'DIFFERS: ' + ', '.join(result['differences'])}",
              flush=True)
    print(f"{passed}/{args.trials} trials bit-exact with the uninterrupted run")
    if not args.out:
        shutil.rmtree(root, ignore_errors=True)
    sys.exit(0 if passed == args.trials else 1)


if __name__ == "__main__":
    main()
