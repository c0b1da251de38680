"""realnvp on the digits protocol (protocol B of ../shared/benchmarks/PROTOCOLS.md), side by side with
the peers in ../shared/benchmarks/peers/.

The library's ``digits`` preset trained by ``realnvp.training.loop.train`` for ``--budget`` seconds of wall time
(300 in the protocol; validation evaluations count against it), seed ``PEERS_SEED``. Same data and split
as the peers (checked against ``common.digits``): the validation images (10 %) come out of the protocol's
1,437 training images, the 360 test images are touched once, at the end, with the best-validation
weights. Early stopping on the validation NLL may end training before the budget; ``stop_reason`` says
when and why. Differences from the peers' loop: our own batch order and dequantization noise (seeded),
and 1,293 training images instead of 1,437 (the other 144 validate).

The test metric is computed three ways and must agree: the protocol's own arrays
(``common.digits_test_draws``: ``RandomState(1).rand(10, 360, 64)``) through ``common.bits_per_dim``,
``realnvp.evaluation.metrics.dequantized_nll`` + ``bits_per_dim`` on the integer test images, and
``realnvp.evaluation.metrics.evaluate_run`` (what ``realnvp evaluate RUN`` prints). Prints one JSON line in the
peers' format (``common.emit``). Run with the peers' venv and ``PYTHONPATH=src``; ``PEERS_SMOKE=1``
gives the peers' 10-second smoke budget.

    PEERS_SEED=0 PYTHONPATH=src /tmp/peers-venv/bin/python -m benchmarks.digits
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.harness import image_rows, peers_common, train_logged
from benchmarks.rawlines import machine
from realnvp.config import load_config
from realnvp.data import load_splits
from realnvp.evaluation.metrics import bits_per_dim, dequantized_nll, evaluate_run

common = peers_common()  # the protocol: data, split, test draws, metric, JSON line

AGREE = 1e-6  # bits/dim: the three ways of computing the test metric must agree to this


def protocol_test_nll(flow: torch.nn.Module, test: np.ndarray) -> float:
    """Mean NLL (nats per image) of y over the protocol's 10 fixed dequantizations of the test set."""
    flow.eval()
    with torch.inference_mode():
        return float(np.mean([-flow.log_prob(torch.from_numpy(d).view(-1, 1, 8, 8)).double().mean().item()
                              for d in common.digits_test_draws(test)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=common.B_BUDGET_S, help="seconds of training")
    parser.add_argument("--preset", default="digits", help="realnvp preset or TOML file")
    parser.add_argument("--run-dir", type=Path, default=None, help="keep the run here (default: a temp folder)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="extra settings (not the protocol's: e.g. train.precision=bf16 with train.steps=N)")
    args = parser.parse_args()
    common.torch_setup()  # 2 threads, torch.manual_seed(PEERS_SEED)
    t0, host = time.perf_counter(), machine()
    train_v, test_v = common.digits()
    cfg = load_config(args.preset, [f"train.seed={common.SEED}", f"train.time_budget={args.budget}", *args.set])
    splits = load_splits(cfg.data)
    if not (np.array_equal(splits.test.reshape(len(splits.test), -1), test_v)
            and image_rows(np.concatenate([splits.train, splits.val])) == image_rows(train_v)):
        raise SystemExit("realnvp's digits split differs from the protocol's (common.digits)")
    if cfg.train.batch_size != common.B_BATCH:
        raise SystemExit(f"the preset's batch size {cfg.train.batch_size} is not the protocol's {common.B_BATCH}")
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = args.run_dir or Path(tmp) / "digits"
        result, records, messages = train_logged(cfg, run_dir)
        flow = result.flow
        nll_protocol = protocol_test_nll(flow, test_v)
        nll_ours, nll_iw = dequantized_nll(flow, torch.from_numpy(splits.test), splits.n_levels, draws=10, seed=1)
        evaluation = evaluate_run(run_dir)
    bpd = common.bits_per_dim(nll_protocol)
    ours = bits_per_dim(nll_ours, 64, 17)
    if max(abs(bpd - ours), abs(bpd - evaluation["bits_per_dim"])) > AGREE:
        raise SystemExit(f"test bits/dim disagree: protocol {bpd}, dequantized_nll {ours}, "
                         f"evaluate_run {evaluation['bits_per_dim']}")
    train_s = records[-1]["elapsed_s"]
    common.emit(peer="realnvp", protocol="digits", bits_per_dim=bpd, params=flow.n_params(),
                images_per_s=result.step * cfg.train.batch_size / train_s, steps=result.step, train_s=train_s,
                wall_s=time.perf_counter() - t0, final_train_bpd=common.bits_per_dim(records[-1]["train_nll"]),
                nan_at_step=None, stop_reason=result.stop_reason, best_step=evaluation["best_step"],
                best_val_bpd=common.bits_per_dim(result.best_val_nll),
                bits_per_dim_realnvp=ours, bits_per_dim_evaluate_run=evaluation["bits_per_dim"],
                bits_per_dim_iw_bound=bits_per_dim(nll_iw, 64, 17), budget_s=args.budget,
                n_train=len(splits.train), n_val=len(splits.val), torch=torch.__version__, cpu=host["cpu"],
                cpu_flags=host["cpu_flags"], loadavg_1m_before=host["loadavg"],
                log=[m for m in messages if "stopped" in m or "non-finite" in m],
                settings=args.set, precision=cfg.train.precision,
                note=f"realnvp '{args.preset}' preset: {cfg.model.n_scales} scales, {cfg.model.feature_maps} feature "
                     f"maps, {cfg.model.n_blocks} residual blocks, batch {cfg.train.batch_size}, lr {cfg.train.lr}, "
                     f"validation every {cfg.train.eval_every} steps, patience {cfg.train.patience}; "
                     f"best-validation weights; test metric = protocol arrays = dequantized_nll = evaluate_run")


if __name__ == "__main__":
    main()
