"""Where the time of one moons training step goes (the moons protocol's model: realnvp's ``moons-tutorial``), and
what the same step costs under variants that keep the model and the math.

    PYTHONPATH=src /tmp/peers-venv/bin/python -m benchmarks.profile_moons            # everything
    PYTHONPATH=src /tmp/peers-venv/bin/python -m benchmarks.profile_moons --variants eager,pwl --blocks 4

Three parts, each printed as markdown:
1. the machine's fp32 GEMM rate for the step's GEMM shapes and for 2048^3 (median of repeated calls);
2. a ``torch.profiler`` breakdown of the eager step, grouped by kind of op, in ms per step;
3. interleaved timing of step variants: blocks of steps of each variant in turn, so that load from
   other processes hits all of them alike; median wall ms per step and median process CPU ms per step
   (CPU time is less sensitive to other processes than wall time).
"""

# isort: off
from benchmarks import process_start  # noqa: F401  (first: the OpenMP spin, before torch loads libgomp)

# isort: on
import argparse
import os
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable

import numpy as np
import torch

from benchmarks.harness import median_seconds, moons_protocol_data, peers_common, print_by_kind, self_time_by_kind
from benchmarks.pwl_mlp import use_scalar_input_conditioners
from realnvp.bijectors import AffineCoupling
from realnvp.config import load_config
from realnvp.models import build_model
from realnvp.training import make_optimizer, train_step

common = peers_common()  # the protocol's batch stream

HIDDEN, BATCH, COUPLINGS = 512, 256, 4
# One step: 4 couplings x (forward + grad-input + grad-weight) GEMMs of BATCH x HIDDEN x HIDDEN.
STEP_GEMM_FLOP = COUPLINGS * 3 * 2 * BATCH * HIDDEN * HIDDEN
KINDS = {  # profiler op name -> kind of work
    "aten::mm": "GEMM", "aten::addmm": "GEMM", "aten::_fused_adam_": "Adam (fused)",
    "aten::sum": "reductions (bias grads, log-dets)", "aten::clamp_min": "ReLU fwd + bwd",
    "aten::threshold_backward": "ReLU fwd + bwd", "aten::copy_": "copies (index, cat, contiguous)",
    "aten::index": "copies (index, cat, contiguous)", "aten::cat": "copies (index, cat, contiguous)",
    "aten::_index_put_impl_": "copies (index, cat, contiguous)",
}


def gemm_rates() -> None:
    a, w, g = torch.randn(BATCH, HIDDEN), torch.randn(HIDDEN, HIDDEN), torch.randn(BATCH, HIDDEN)
    big_a, big_b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    flop = 2 * BATCH * HIDDEN * HIDDEN
    rows = [("forward x W^T (256x512x512)", lambda: a @ w.t(), flop, 50),
            ("grad input g W (256x512x512)", lambda: g @ w, flop, 50),
            ("grad weight g^T x (512x256x512)", lambda: g.t() @ a, flop, 50),
            ("2048 x 2048 x 2048", lambda: big_a @ big_b, 2 * 2048**3, 8)]
    print(f"## fp32 GEMM rate, {torch.get_num_threads()} threads\n\n| GEMM | median GFLOP/s |\n| --- | ---: |")
    for name, fn, f, reps in rows:
        print(f"| {name} | {f / median_seconds(fn, reps) / 1e9:.1f} |")
    print(f"\nOne step's GEMMs: {STEP_GEMM_FLOP / 1e9:.2f} GFLOP.\n")


def make_step(variant: str) -> Callable[[int], float]:
    """A closure running training step ``i`` of the protocol for one variant (fresh model, seed 0): the
    library's ``train_step``, with the flow's forward compiled for the compile variants."""
    train_np, _, mu, sd = moons_protocol_data()
    cfg = load_config("moons-tutorial", ["train.precision=bf16"] if variant == "bf16" else [])
    torch.manual_seed(0)
    flow = build_model(cfg.model, (2,), torch.tensor(mu, dtype=torch.float32), torch.tensor(sd, dtype=torch.float32))
    if variant.startswith("pwl"):
        use_scalar_input_conditioners(flow)
    if variant == "eager-gather":  # the couplings' general index/cat path instead of narrow views
        for layer in flow.modules():
            if isinstance(layer, AffineCoupling):
                layer.blocks = None
    optimizer = make_optimizer(flow, cfg)
    model = flow
    if variant.endswith("compile"):
        model = torch.compile(flow)
    elif variant == "compile-max-autotune":
        model = torch.compile(flow, mode="max-autotune-no-cudagraphs")
    x, batches = torch.from_numpy(train_np), torch.from_numpy(common.moons_batches())

    def step(i: int) -> float:
        return train_step(flow, optimizer, x[batches[i % len(batches)]], cfg, model).item()

    flow.train()
    return step


def breakdown(steps: int) -> None:
    from torch.profiler import ProfilerActivity, profile

    step = make_step("eager")
    for i in range(20):
        step(i)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        for i in range(20, 20 + steps):
            step(i)
        wall = (time.perf_counter() - start) / steps
    per_kind = self_time_by_kind(prof, KINDS)
    print(f"## Profile of the eager step ({steps} steps, under the profiler {1e3 * wall:.1f} ms/step wall)\n")
    print_by_kind(per_kind, steps)
    gemm_ms = per_kind["GEMM"] / 1e3 / steps
    print(f"\nGEMM rate inside the step: {STEP_GEMM_FLOP / (gemm_ms / 1e3) / 1e9:.1f} GFLOP/s of CPU time "
          f"(x{torch.get_num_threads()} threads in wall terms if both stay busy).\n")


def variants(names: list[str], blocks: int, per_block: int) -> None:
    steps = {}
    for name in names:
        start = time.perf_counter()
        steps[name] = make_step(name)
        for i in range(3):  # compilation happens here
            steps[name](i)
        print(f"{name}: set-up and first 3 steps {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
    wall, cpu, losses = defaultdict(list), defaultdict(list), defaultdict(list)
    for block in range(blocks):
        for name in names:
            for i in range(3 + block * per_block, 3 + (block + 1) * per_block):
                w0, c0 = time.perf_counter(), time.process_time()
                losses[name].append(steps[name](i))
                wall[name].append(time.perf_counter() - w0)
                cpu[name].append(time.process_time() - c0)
    base = statistics.median(wall[names[0]])
    print(f"## Step variants, interleaved ({blocks} blocks x {per_block} steps each; load average "
          f"{os.getloadavg()[0]:.2f} at the end)\n")
    print(f"| variant | median ms/step | ratio to {names[0]} | median CPU ms/step | mean loss, last block |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name in names:
        med = statistics.median(wall[name])
        print(f"| {name} | {1e3 * med:.1f} | {med / base:.2f} | {1e3 * statistics.median(cpu[name]):.1f} | "
              f"{np.mean(losses[name][-per_block:]):.4f} |")
    print()


VARIANTS = ("eager", "eager-gather", "bf16", "compile", "compile-max-autotune", "pwl", "pwl-compile")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="eager,compile,pwl", help=f"comma-separated, from {', '.join(VARIANTS)}")
    parser.add_argument("--blocks", type=int, default=6)
    parser.add_argument("--per-block", type=int, default=20)
    parser.add_argument("--profile-steps", type=int, default=40)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-mkldnn", action="store_true", help="torch.backends.mkldnn.enabled = False")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: gemm, profile, variants")
    args = parser.parse_args()
    names = [v for v in args.variants.split(",") if v]
    if set(names) - set(VARIANTS):
        parser.error(f"unknown variant(s) {sorted(set(names) - set(VARIANTS))}; known: {', '.join(VARIANTS)}")
    torch.set_num_threads(args.threads)
    torch.backends.mkldnn.enabled = not args.no_mkldnn
    skip = set(args.skip.split(","))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, OMP_WAIT_POLICY="
          f"{os.environ.get('OMP_WAIT_POLICY')}, mkldnn {torch.backends.mkldnn.enabled}, "
          f"load average {os.getloadavg()[0]:.2f}\n")
    if "gemm" not in skip:
        gemm_rates()
    if "profile" not in skip:
        breakdown(args.profile_steps)
    if "variants" not in skip:
        variants(names, args.blocks, args.per_block)


if __name__ == "__main__":
    main()
