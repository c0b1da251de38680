"""Soak run (minutes; a benchmark, not CI): the default moons model trained for a long stretch with
frequent evaluations and checkpoints, checking that every logged metric stays finite and that the
process's resident memory (RSS) stays flat once warmed up: no leak from the checkpoint rotation, the
non-finite guard's in-memory snapshots, the metrics log or the evaluation loop.

    .venv/bin/python -m benchmarks.soak --minutes 5

Prints the RSS trace summary (MB at each fifth of the run, growth after warm-up, fitted slope in
MB/minute) and exits 1 if a metric is non-finite or RSS grew by more than ``--max-growth-mb``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

from realnvp.config import load_config
from realnvp.evaluation.metrics import evaluate_run
from realnvp.rundir import METRICS
from realnvp.training import train


def rss_mb() -> float:
    """Resident set size of this process in MB (Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class RssSampler(threading.Thread):
    """Samples RSS once a second in the background: ``(seconds since start, MB)``."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: list[tuple[float, float]] = []
        self.stop = threading.Event()
        self.t0 = time.perf_counter()

    def run(self) -> None:
        while not self.stop.wait(1.0):
            self.samples.append((time.perf_counter() - self.t0, rss_mb()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--max-growth-mb", type=float, default=20.0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    run = Path(tempfile.mkdtemp(prefix="soak_")) / "run"
    cfg = load_config("moons", [f"train.time_budget={args.minutes * 60}", "train.steps=1000000000",
                                "train.lr_schedule=constant", f"train.eval_every={args.eval_every}",
                                "train.patience=0", "train.device=cpu"])
    sampler = RssSampler()
    sampler.start()
    result = train(cfg, run, progress=False, log=lambda *a: None)
    sampler.stop.set()
    sampler.join()

    records = [json.loads(line) for line in (run / METRICS).read_text().splitlines()]
    values = [r[k] for r in records for k in ("train_nll", "val_nll") if k in r]
    finite = all(math.isfinite(v) for v in values)
    metrics = evaluate_run(run)
    samples = result.flow.sample(20000)
    t, mb = np.array(sampler.samples).T
    warm = t >= 0.2 * t[-1]  # after the first fifth: allocator pools, caches and imports have settled
    growth = float(np.median(mb[t >= 0.9 * t[-1]]) - np.median(mb[warm & (t < 0.3 * t[-1])]))
    slope = float(np.polyfit(t[warm] / 60, mb[warm], 1)[0])
    fifths = [f"{np.interp(f * t[-1], t, mb):.1f}" for f in (0.2, 0.4, 0.6, 0.8, 1.0)]
    print(f"soak: {result.step} steps in {t[-1] / 60:.1f} min, {len(records)} evaluations and checkpoints "
          f"({result.stop_reason})")
    print(f"metrics finite: {finite} (train/val NLL from {values[0]:.3f} to {records[-1]['val_nll']:.3f}); "
          f"test NLL {metrics['test_nll_nats']:.4f}, inverse error {metrics['inverse_max_abs_error']:.2e}, "
          f"20000 samples finite: {bool(torch.isfinite(samples).all())}")
    print(f"RSS MB at 1/5..5/5 of the run: {', '.join(fifths)}; growth after warm-up {growth:+.1f} MB, "
          f"slope {slope:+.2f} MB/min (max {mb.max():.1f}, min after warm-up {mb[warm].min():.1f})")
    ok = finite and bool(torch.isfinite(samples).all()) and growth <= args.max_growth_mb
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
