"""Natural colour images on this CPU (issue 11): 32x32 patches of the photographs scikit-image ships
inside its wheel, ``cifar-cpu`` vs today's ``images`` preset vs a peer, each trained for the same wall
time in the same run, scored by test bits/dim under one fixed dequantization.

Data (``make_patches``, deterministic; written channels-last as users' arrays usually are): the natural
photographs among ``skimage.data`` (astronaut, chelsea, coffee, rocket, immunohistochemistry,
hubble_deep_field, retina; no synthetic images, no download), each cut into a grid of 32x32 cells;
near-flat cells (pixel std < 4: retina's black border) dropped; 600 cells drawn with
``RandomState(0)`` are the test set; the training set is every 32x32 window at stride 16 that overlaps
no test cell (no test pixel is ever trained on). scikit-learn's two sample photographs are not used:
they are kept for an independent check.

Contenders, one after another in one process, ``--minutes`` of training each (the protocol: 30):
- ``cifar-cpu``: ``realnvp.training.train`` with the preset, its cosine schedule's ``train.steps``
  scaled to the budget (the preset's own for 30 minutes);
- ``images``: the ``images`` preset as a user runs it today, with the same time budget;
- ``normflows``: the multi-scale Glow model of normflows' example (``examples/glow.ipynb``: L=3
  levels of GlowBlocks with affine channel couplings, invertible 1x1 convolutions and ActNorm, squeeze,
  split, Adamax lr 1e-3, weight decay 1e-5), unconditional (``GlowBase``), sized to the same per-image
  cost as the first ``cifar-cpu`` (K=8 blocks per level, 96 hidden channels instead of 32 and 512: a GPU
  model).

Metric: test bits/dim of the 600 test patches, ``y = (v + u) / 256`` with ``u`` the first draw of
``RandomState(1)`` (``realnvp.evaluation.metrics.seeded_dequantizations``), the same array for all three;
the same figure 10 minutes into the run (``test_bpd_at_10min``: realnvp runs stop there, are scored
and resumed, their schedule set for the whole budget; normflows is scored with its clock paused).
Also: bits/dim on validation at the last evaluation within 10 minutes (realnvp runs), steps, images/s,
and for realnvp runs how long ``evaluate_run`` takes on the 600 test images (10 draws). Every line
records the CPU model, its flags, the load average before and after, and the niceness.

    OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE PYTHONPATH=src /tmp/peers-venv/bin/python -m benchmarks.colour \\
        --minutes 30 --jsonl benchmarks/colour_results.jsonl --grid benchmarks/colour_samples.png

(``/tmp/peers-venv``: benchmarks/README.md, plus ``pip install scikit-image``; both contenders run on its
PyTorch.)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import normflows as nf
import numpy as np
import torch

from benchmarks.drivers import cpu_busy
from benchmarks.harness import train_logged
from benchmarks.patches import LEVELS, SIZE, bpd_on_test, make_patches
from benchmarks.rawlines import append_jsonl, commit, machine
from realnvp.config import load_config
from realnvp.evaluation.metrics import evaluate_run
from realnvp.viz.images import grid, labelled, save_png

EARLY_S = 600  # the 10-minute mark of every contender's run, scored on the test patches too
CONTENDERS = ("cifar-cpu", "images", "normflows")


def host() -> dict[str, Any]:
    """The CPU model, its flags, threads, torch version, load and niceness: recorded with every figure."""
    info = machine()
    flags = set(info["cpu_flags"].split())
    return {"cpu": info["cpu"], "cpu_flags": info["cpu_flags"], "cpus": info["cpus"],
            "avx512": sorted(f for f in flags if f.startswith(("avx512", "amx"))), "avx2": "avx2" in flags,
            "torch": torch.__version__, "threads": torch.get_num_threads(), "nice": os.nice(0),
            "cpu_affinity": sorted(os.sched_getaffinity(0)), "loadavg": os.getloadavg()[0], "commit": commit()}


def run_realnvp(preset: str, data: Path, test: np.ndarray, seconds: float, work: Path,
                extra: list[str], seed: int = 0) -> tuple[dict, np.ndarray]:
    """Train a realnvp preset on the patches for ``seconds`` (``extra``: more settings; ``seed``: the
    initialisation and batch seed); its row and 36 samples ``[36, 3, 32, 32]``. ``test``: the test
    patches ``[N, 3, 32, 32]``."""
    base = load_config(preset)
    overrides = [f"data.path={data}", f"train.time_budget={seconds}", f"train.seed={seed}", *extra]
    if base.train.lr_schedule == "cosine":  # the schedule's length is part of the design: fit it to the budget
        overrides.append(f"train.steps={max(200, round(base.train.steps * seconds / base.train.time_budget))}")
    cfg = load_config(preset, overrides)
    run_dir = work / f"{preset}-seed{seed}"
    early_bpd = None
    if seconds > EARLY_S:  # stop at 10 minutes, score the best weights so far, resume to the full budget
        early, _, _ = train_logged(load_config(preset, [*overrides, f"train.time_budget={EARLY_S}"]), run_dir)
        early_bpd = bpd_on_test(early.flow.eval().log_prob, test)
    result, records, _ = train_logged(cfg, run_dir, resume=early_bpd is not None)
    flow = result.flow.eval()
    started = time.perf_counter()
    evaluation = evaluate_run(run_dir)
    evaluate_s = time.perf_counter() - started
    early = [r for r in records if r.get("elapsed_s", math.inf) <= 600 and "val_bpd" in r]
    train_s = records[-1]["elapsed_s"]
    torch.manual_seed(0)
    with torch.inference_mode():
        samples = flow.sample(36).clamp(0, 1).numpy()
    row = {"contender": preset, "test_bpd": bpd_on_test(flow.log_prob, test), "test_bpd_at_10min": early_bpd,
           "steps": result.step,
           "batch_size": cfg.train.batch_size, "train_s": train_s, "images_per_s": result.step * cfg.train.batch_size
           / train_s, "ms_per_step": 1000 * train_s / result.step, "params": flow.n_params(),
           "val_bpd_at_10min": early[-1]["val_bpd"] if early else None, "stop_reason": result.stop_reason,
           "evaluate_s": round(evaluate_s, 2), "evaluate_bpd_10_draws": evaluation["bits_per_dim"],
           "train_steps_setting": cfg.train.steps, "compile": cfg.train.compile, "settings": extra}
    return row, samples


def glow(k: int = 8, hidden: int = 96) -> torch.nn.Module:
    """normflows' multi-scale Glow example (examples/glow.ipynb), unconditional, K blocks per level."""
    levels, shape = 3, (3, SIZE, SIZE)
    q0, merges, flows = [], [], []
    for i in range(levels):
        flows.append([nf.flows.GlowBlock(shape[0] * 2 ** (levels + 1 - i), hidden, split_mode="channel", scale=True)
                      for _ in range(k)] + [nf.flows.Squeeze()])
        if i > 0:
            merges.append(nf.flows.Merge())
            latent = (shape[0] * 2 ** (levels - i), shape[1] // 2 ** (levels - i), shape[2] // 2 ** (levels - i))
        else:
            latent = (shape[0] * 2 ** (levels + 1), shape[1] // 2 ** levels, shape[2] // 2 ** levels)
        q0.append(nf.distributions.GlowBase(latent))
    return nf.MultiscaleFlow(q0, flows, merges, class_cond=False)


def run_normflows(train: np.ndarray, test: np.ndarray, seconds: float, batch: int = 64,
                  seed: int = 0) -> tuple[dict, np.ndarray]:
    """The peer for ``seconds``, with its example's optimizer, uniform dequantization and random batches
    (``train`` ``[N, 32, 32, 3]`` as stored, ``test`` ``[N, 3, 32, 32]``; ``seed``: initialisation and batches)."""
    torch.manual_seed(seed)
    model = glow()
    optimizer = torch.optim.Adamax(model.parameters(), lr=1e-3, weight_decay=1e-5)
    v = torch.from_numpy(np.ascontiguousarray(train.transpose(0, 3, 1, 2)))
    generator = torch.Generator().manual_seed(seed)
    started, steps, skipped, early_bpd = time.perf_counter(), 0, 0, None
    while time.perf_counter() - started < seconds:
        if early_bpd is None and seconds > EARLY_S and time.perf_counter() - started >= EARLY_S:
            paused = time.perf_counter()
            early_bpd = bpd_on_test(lambda y: model.eval().log_prob(y, None), test)
            model.train()
            started += time.perf_counter() - paused  # scoring is not training time
        x = (v[torch.randint(len(v), (batch,), generator=generator)].float()
             + torch.rand(batch, 3, SIZE, SIZE, generator=generator)) / LEVELS
        loss = model.forward_kld(x)
        optimizer.zero_grad(set_to_none=True)
        if torch.isfinite(loss):  # as the example does: skip non-finite batches
            loss.backward()
            optimizer.step()
        else:
            skipped += 1
        steps += 1
    train_s = time.perf_counter() - started
    model.eval()
    bpd = bpd_on_test(lambda y: model.log_prob(y, None), test)
    with torch.inference_mode():
        samples = model.sample(36, temperature=1.0)[0].clamp(0, 1).numpy()
    row = {"contender": "normflows", "test_bpd": bpd, "test_bpd_at_10min": early_bpd, "steps": steps,
           "batch_size": batch, "train_s": train_s,
           "images_per_s": steps * batch / train_s, "ms_per_step": 1000 * train_s / steps,
           "params": sum(p.numel() for p in model.parameters()), "skipped_steps": skipped,
           "model": "normflows Glow example: L=3, K=8, hidden 96, GlowBase, Adamax 1e-3"}
    return row, samples


def sample_sheet(panels: list[tuple[str, np.ndarray]], path: Path, minutes: float) -> None:
    """One PNG: the test patches beside each contender's samples (temperature 1), each panel labelled."""
    pictures = [labelled(grid(images, ncol=6, zoom=2), title) for title, images in panels]
    height = max(p.shape[0] for p in pictures)
    gap = np.full((height, 12, 3), 255, np.uint8)
    padded = [np.concatenate([p, np.full((height - p.shape[0], *p.shape[1:]), 255, np.uint8)]) for p in pictures]
    sheet = np.concatenate([x for p in padded for x in (p, gap)][:-1], axis=1)
    title = f"colour benchmark: 32x32 photo patches and samples at temperature 1 after {minutes:g} minutes each"
    save_png(labelled(sheet, title), path, title)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="training wall time per contender")
    parser.add_argument("--only", default=",".join(CONTENDERS), help=f"subset of {', '.join(CONTENDERS)}")
    parser.add_argument("--jsonl", type=Path, default=None, help="append one JSON line per contender here")
    parser.add_argument("--grid", type=Path, default=None, help="write the sample sheet PNG here")
    parser.add_argument("--data", type=Path, default=None, help="keep the patches' .npz here (default: temp)")
    parser.add_argument("--seed", type=int, default=int(os.environ.get("PEERS_SEED", "0")),
                        help="every contender's initialisation and batch seed (the data and test draw stay fixed)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting for the realnvp contenders (e.g. train.compile=false for a smoke run)")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    train, test_nhwc = make_patches()
    test = np.ascontiguousarray(test_nhwc.transpose(0, 3, 1, 2))
    seconds = 60 * args.minutes
    panels = [("test patches", test[::16][:36] / 255.0)]  # every 16th: all seven photographs
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or Path(tmp) / "patches.npz"
        np.savez(data, x_train=train, x_test=test_nhwc)  # channels-last, as the user had them
        for name in [s.strip() for s in args.only.split(",") if s.strip()]:
            before = host()
            if name == "normflows":
                row, samples = run_normflows(train, test, seconds, seed=args.seed)
            else:
                row, samples = run_realnvp(name, data, test, seconds, Path(tmp), args.set, seed=args.seed)
            row = {"benchmark": "colour", "minutes": args.minutes, "seed": args.seed, "n_train": len(train),
                   "n_test": len(test),
                   **row, **before, "loadavg_after": os.getloadavg()[0], "cpu_busy_after": cpu_busy(1.0),
                   "date": time.strftime("%Y-%m-%d %H:%M")}
            print(json.dumps(row), flush=True)
            append_jsonl(args.jsonl, row)
            panels.append((f"{name}: {row['test_bpd']:.3f} bits/dim", samples))
    if args.grid:
        sample_sheet(panels, args.grid, args.minutes)


if __name__ == "__main__":
    main()
