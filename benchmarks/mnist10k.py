"""realnvp on the mnist10k protocol (protocol C of ../shared/benchmarks/PROTOCOLS.md): the 10k MNIST
subset ``../shared/data/mnist10k.npz``, a fixed training budget (30 minutes) on this machine.

A preset (default ``mnist-cpu``) trained by ``realnvp.training.loop.train`` for ``--budget`` seconds of wall time
(validation evaluations count against it); the validation images come out of the 9,000 training
images (checked against the file), the 1,000 test images are touched once, at the end, with the
best-validation weights. Test bits/dim with the protocol's fixed dequantization draw ``RandomState(1)``,
computed twice and checked equal: from the protocol's own array ``(x_test + RandomState(1).rand(1000,
784)) / 256`` and with ``realnvp.evaluation.metrics.dequantized_nll`` (1 draw, seed 1). Writes a sample grid PNG and
prints one JSON line in the peers' format (``common.emit``). Run with ``PYTHONPATH=src``:

    OMP_WAIT_POLICY=PASSIVE PYTHONPATH=src /tmp/peers-venv/bin/python -m benchmarks.mnist10k
"""

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.drivers import module_command
from benchmarks.harness import image_rows, peers_common, train_logged
from benchmarks.rawlines import HERE, commit, machine
from realnvp.config import load_config
from realnvp.data import load_splits
from realnvp.evaluation.metrics import bits_per_dim, dequantized_nll
from realnvp.viz.images import sample_grid

DATA = Path(os.environ.get("MNIST10K", HERE.parents[1] / "shared/data/mnist10k.npz"))
common = peers_common()  # JSON line, thread setup

D, LEVELS = 784, 256


def protocol_test_bpd(flow: torch.nn.Module, x_test: np.ndarray) -> float:
    """Protocol C's metric: bits/dim of the test images under one fixed dequantization, RandomState(1)."""
    u = np.random.RandomState(1).rand(len(x_test), D)
    y = torch.from_numpy(((x_test.reshape(len(x_test), D) + u) / LEVELS).astype(np.float32)).view(-1, 1, 28, 28)
    flow.eval()
    with torch.inference_mode():
        nll = float(np.mean(np.concatenate([-flow.log_prob(c).double().numpy() for c in y.split(500)])))
    return (nll + D * math.log(LEVELS)) / (D * math.log(2.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=60.0 if common.SMOKE else 1800.0, help="seconds of training")
    parser.add_argument("--preset", default="mnist-cpu", help="realnvp preset or TOML file")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra config overrides")
    parser.add_argument("--samples", type=Path, default=HERE / "mnist10k_samples.png", help="sample grid PNG")
    parser.add_argument("--temperature", type=float, default=1.0, help="sampling temperature of the grid")
    parser.add_argument("--run-dir", type=Path, default=None, help="keep the run here (default: a temp folder)")
    args = parser.parse_args()
    common.torch_setup()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))  # the protocol's 2, or what the host gives
    t0, host = time.perf_counter(), machine()
    with np.load(DATA) as archive:
        x_train, x_test = archive["x_train"], archive["x_test"]
    cfg = load_config(args.preset, [f"data.path={DATA}", f"train.seed={common.SEED}",
                                    f"train.time_budget={args.budget}", *args.set])
    splits = load_splits(cfg.data)
    if not (splits.n_levels == LEVELS and np.array_equal(splits.test[:, 0], x_test)
            and image_rows(np.concatenate([splits.train, splits.val])) == image_rows(x_train)):
        raise SystemExit(f"the preset's data are not the protocol's mnist10k split of {DATA}")
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = args.run_dir or Path(tmp) / "mnist10k"
        result, records, messages = train_logged(cfg, run_dir)
    flow = result.flow
    bpd = protocol_test_bpd(flow, x_test.astype(np.float64))
    nll_ours, _ = dequantized_nll(flow, torch.from_numpy(splits.test), LEVELS, draws=1, seed=1)
    ours = bits_per_dim(nll_ours, D, LEVELS)
    if abs(bpd - ours) > 1e-6:
        raise SystemExit(f"test bits/dim disagree: protocol array {bpd}, dequantized_nll {ours}")
    sample_grid(flow, args.samples, n=64, temperature=args.temperature)
    train_s = records[-1]["elapsed_s"]
    best = min(records, key=lambda r: r.get("val_nll", math.inf))
    common.emit(peer="realnvp", protocol="mnist10k", bits_per_dim=bpd, params=flow.n_params(),
                images_per_s=result.step * cfg.train.batch_size / train_s, steps=result.step, train_s=train_s,
                wall_s=time.perf_counter() - t0, final_train_bpd=bits_per_dim(records[-1]["train_nll"], D, LEVELS),
                best_val_bpd=bits_per_dim(result.best_val_nll, D, LEVELS), best_step=best["step"],
                stop_reason=result.stop_reason, bits_per_dim_realnvp=ours, budget_s=args.budget,
                n_train=len(splits.train), n_val=len(splits.val), samples=str(args.samples),
                sample_temperature=args.temperature, torch=torch.__version__, cpu=host["cpu"],
                threads=torch.get_num_threads(), cpu_affinity=sorted(os.sched_getaffinity(0)), commit=commit(),
                cpu_flags=host["cpu_flags"], loadavg_1m_before=host["loadavg"],
                command=" ".join([*module_command("mnist10k"), *sys.argv[1:]]),
                val_bpd_curve=[(r["step"], round(r["elapsed_s"]), round(bits_per_dim(r["val_nll"], D, LEVELS), 4))
                               for r in records if "val_nll" in r],
                log=[m for m in messages if "stopped" in m or "non-finite" in m],
                note=f"realnvp '{args.preset}' preset {' '.join(args.set)}: {cfg.model.n_scales} scales, "
                     f"{cfg.model.feature_maps} feature maps, {cfg.model.n_blocks} residual blocks "
                     f"({cfg.model.conditioner_norm} norm), {cfg.model.scale_couplings} couplings per scale, "
                     f"batch {cfg.train.batch_size}, lr {cfg.train.lr} {cfg.train.lr_schedule} (warm-up "
                     f"{cfg.train.warmup_steps}); best-validation weights")


if __name__ == "__main__":
    main()
