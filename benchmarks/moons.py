"""realnvp on the moons protocol (protocol A; the peers' protocol module ``common``, see harness.py),
side by side with the peers.

Two modes, each printing one JSON line in the peers' format (``common.emit``):

- ``protocol`` (default): the ``moons-tutorial`` preset's model (4 couplings, MLP 1-512-512-2, plus one
  learned tanh scale per coupling) trained exactly as the peers are: the protocol's data, batch index
  stream, Adam lr 1e-3 (the library's fused Adam), 3,000 steps, init seed ``PEERS_SEED``, each step
  the library's own ``realnvp.training.train_step``. The data enter in original units; the flow's
  first layer standardises them with the training mean/std, so its test NLL is the protocol's
  ``test_nll`` directly.
- ``preset``: the library's default ``moons`` preset trained by ``realnvp.training.train`` for
  ``--budget`` seconds of wall time (seed ``PEERS_SEED``), test NLL on the protocol's test set.

    PEERS_SEED=1 PYTHONPATH=src /tmp/peers-venv/bin/python -m benchmarks.moons --compile

Run with the peers' venv and ``PYTHONPATH=src``; ``PEERS_SMOKE=1`` gives the peers' 150-step smoke run.
"""

# isort: off
from benchmarks import process_start  # noqa: F401  (first: the OpenMP spin, before torch loads libgomp)

# isort: on
import argparse
import os
import tempfile
import time

import numpy as np
import torch

from benchmarks.harness import moons_protocol_data, peers_common
from benchmarks.pwl_mlp import use_scalar_input_conditioners
from realnvp.config import load_config
from realnvp.data import load_splits
from realnvp.evaluation.metrics import mean_nll
from realnvp.models import build_model
from realnvp.training import make_optimizer, train, train_step

common = peers_common()  # the protocol: constants, batch stream, timer, JSON line


def run_protocol(compile_step: bool, conditioner: str, precision: str, flush: bool) -> None:
    common.torch_setup()  # 2 threads, torch.manual_seed(PEERS_SEED)
    t0 = time.perf_counter()
    train_np, test_np, mu, sd = moons_protocol_data()
    cfg = load_config("moons-tutorial", [f"train.precision={precision}", f"train.flush_denormal={str(flush).lower()}"])
    assert (cfg.train.batch_size, cfg.train.lr, cfg.train.scale_l2) == (common.A_BATCH, common.A_LR, 0.0)
    flow = build_model(cfg.model, (2,), torch.tensor(mu, dtype=torch.float32), torch.tensor(sd, dtype=torch.float32))
    if conditioner == "pwl":
        assert use_scalar_input_conditioners(flow) == cfg.model.n_couplings
    optimizer = make_optimizer(flow, cfg)
    train_x, test_x = torch.from_numpy(train_np), torch.from_numpy(test_np)
    model = torch.compile(flow) if compile_step else flow
    flow.train()
    timer, losses = common.StepTimer(), []
    for idx in torch.from_numpy(common.moons_batches()):
        ts = time.perf_counter()
        losses.append(train_step(flow, optimizer, train_x[idx], cfg, model).item())
        timer.add(time.perf_counter() - ts)
    nll = mean_nll(flow, test_x)
    final_train = float(np.mean(losses[-100:]))
    peer = ("realnvp" + ("_pwl" if conditioner == "pwl" else "") + ("_compiled" if compile_step else "")
            + ("_nospin" if os.environ.get("GOMP_SPINCOUNT") == "0" else "")
            + ("_bf16" if precision == "bf16" else "") + ("" if flush else "_noflush"))
    common.emit(peer=peer, protocol="moons", test_nll=nll,
                params=flow.n_params(), step_ms_median=timer.median_ms(), wall_s=time.perf_counter() - t0,
                final_train_loss_std_space=final_train - float(np.log(sd).sum()),
                nan_losses=int(np.isnan(losses).sum()), torch=torch.__version__,
                gomp_spincount=os.environ.get("GOMP_SPINCOUNT"),
                first_step_ms=1e3 * timer.t[0],
                note="realnvp moons-tutorial preset: 4 AffineCoupling(MLP 1-512-512-2, zero-init last layer, "
                     "s = scale*tanh(raw)) after a Standardize layer; fused Adam"
                     + ("; torch.compile(flow)" if compile_step else "")
                     + ("; train.precision=bf16 (s/t networks in bf16 autocast)" if precision == "bf16" else "")
                     + ("" if flush else "; train.flush_denormal=false (IEEE denormals kept)")
                     + ("; prototype benchmarks/pwl_mlp.py: same MLPs, piecewise-linear evaluation without the "
                        "512x512 GEMMs" if conditioner == "pwl" else ""))


def run_preset(budget_s: float) -> None:
    common.torch_setup()
    t0 = time.perf_counter()
    _, test_np, _, _ = moons_protocol_data()
    cfg = load_config("moons", [f"train.seed={common.SEED}", f"train.time_budget={budget_s}"]
                      + ([f"train.steps={common.A_STEPS}"] if common.SMOKE else []))
    if not np.array_equal(load_splits(cfg.data).test, test_np):
        raise SystemExit("the moons preset's test split is not the protocol's test set")
    with tempfile.TemporaryDirectory() as run_dir:
        result = train(cfg, run_dir, progress=False, log=lambda *_: None)
    nll = mean_nll(result.flow, torch.from_numpy(test_np))
    common.emit(peer="realnvp_moons_preset", protocol="moons", test_nll=nll, params=result.flow.n_params(),
                step_ms_median=None, wall_s=time.perf_counter() - t0, steps=result.step,
                budget_s=budget_s, stop_reason=result.stop_reason, best_val_nll=result.best_val_nll,
                torch=torch.__version__,
                note=f"realnvp default 'moons' preset ({cfg.model.n_couplings} couplings, hidden "
                     f"{list(cfg.model.hidden)}, batch {cfg.train.batch_size}, lr {cfg.train.lr} "
                     f"{cfg.train.lr_schedule}), train.seed={common.SEED}, best-validation weights")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("protocol", "preset"), default="protocol")
    parser.add_argument("--compile", action="store_true", help="protocol mode: torch.compile the log-density")
    parser.add_argument("--conditioner", choices=("mlp", "pwl"), default="mlp",
                        help="protocol mode: 'pwl' evaluates the same MLPs with the prototype in pwl_mlp.py")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="protocol mode: train.precision")
    parser.add_argument("--no-flush", action="store_true",
                        help="protocol mode: train.flush_denormal=false (row realnvp_noflush)")
    parser.add_argument("--no-spin", action="store_true",
                        help="GOMP_SPINCOUNT=0: OpenMP threads sleep at once under OMP_WAIT_POLICY=PASSIVE (row "
                             "realnvp_nospin; the default lets realnvp set a short spin)")
    parser.add_argument("--budget", type=float, default=100.0,
                        help="preset mode: seconds of training (the protocol run's wall time)")
    args = parser.parse_args()
    if args.mode == "protocol":
        run_protocol(args.compile, args.conditioner, args.precision, not args.no_flush)
    else:
        run_preset(args.budget)


if __name__ == "__main__":
    main()
