"""What the benchmark scripts share (they import this module and never each other): the peers'
protocol module, the moons protocol's data, timing and profiler tables, the drivers' run-one-script
and table plumbing, and the prototype GEMM-free conditioner of ``pwl_mlp.py``.

The peers and their protocol module ``common.py`` live in ``PEERS_DIR`` (environment variable, by
default ``shared/benchmarks/peers`` beside this checkout); benchmarks/README.md says how to set them up.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from realnvp.config import Config
from realnvp.data import make_toy
from realnvp.nets import MLP
from realnvp.training import TrainResult, train

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEERS_DIR = Path(os.environ.get("PEERS_DIR", ROOT.parent / "shared/benchmarks/peers"))


def peers_common() -> ModuleType:
    """The peers' protocol module ``common`` (constants, data, batch stream, timer, JSON line)."""
    if str(PEERS_DIR) not in sys.path:
        sys.path.insert(0, str(PEERS_DIR))
    return importlib.import_module("common")


def moons_protocol_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Train/test moons in original units plus the training mean/std, checked against the protocol's
    own standardised arrays (``common.moons``) so both sides provably see the same points."""
    common = peers_common()
    train_x = make_toy("moons", 10_000, seed=0).astype(np.float64)
    test_x = make_toy("moons", 10_000, seed=1).astype(np.float64)
    mu, sd = train_x.mean(0), train_x.std(0)  # population std, as the protocol's numpy code
    tr_std, te_std, log_sd = common.moons()
    if not (np.allclose((train_x - mu) / sd, tr_std, atol=1e-6) and np.allclose((test_x - mu) / sd, te_std, atol=1e-6)
            and math.isclose(np.log(sd).sum(), log_sd, rel_tol=1e-6)):
        raise SystemExit("realnvp's moons data differ from the protocol's (common.moons)")
    return train_x.astype(np.float32), test_x.astype(np.float32), mu, sd


def image_rows(images: np.ndarray) -> list[bytes]:
    """The images as sorted byte strings: equal lists mean the same multiset of images."""
    return sorted(r.tobytes() for r in images.reshape(len(images), -1).astype(np.uint8))


def train_logged(cfg: Config, run_dir: Path,
                 resume: bool = False) -> tuple[TrainResult, list[dict[str, Any]], list[str]]:
    """``train`` quietly into ``run_dir`` (``resume``: from its checkpoint): the result, the evaluation
    records of ``metrics.jsonl`` (those with a validation NLL or, without a validation split, every
    record) and the log lines."""
    messages: list[str] = []
    result = train(cfg, run_dir, resume=resume, progress=False, log=messages.append)
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    evaluations = [r for r in records if "val_nll" in r] or records
    return result, evaluations, messages


def median_seconds(fn: Callable[[], object], reps: int, warmup: int = 3) -> float:
    """Median wall seconds of ``reps`` calls of ``fn`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def self_time_by_kind(prof: torch.profiler.profile, kinds: dict[str, str]) -> dict[str, float]:
    """Profiler self CPU time (microseconds) summed per kind of op; ops not in ``kinds`` count as overhead."""
    per_kind: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        if event.self_cpu_time_total > 0:
            per_kind[kinds.get(event.key, "other ops + Python/autograd overhead")] += event.self_cpu_time_total
    return per_kind


def print_by_kind(per_kind: dict[str, float], steps: int) -> None:
    """The markdown table of ``self_time_by_kind``: ms per step and share, largest first."""
    total = sum(per_kind.values())
    print("| kind | ms/step (self CPU) | share |\n| --- | ---: | ---: |")
    for kind, us in sorted(per_kind.items(), key=lambda kv: -kv[1]):
        print(f"| {kind} | {us / 1e3 / steps:.2f} | {us / total:.0%} |")


def cpu_busy(seconds: float = 2.0) -> float:
    """Fraction of all CPU time that was busy over ``seconds`` (from /proc/stat)."""

    def read() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
        return sum(fields), fields[3] + fields[4]

    total0, idle0 = read()
    time.sleep(seconds)
    total1, idle1 = read()
    return round(1 - (idle1 - idle0) / max(total1 - total0, 1), 2)


def fmt(value: float | None, spec: str) -> str:
    """``value`` formatted with ``spec``, or "-" when missing."""
    return "-" if value is None else format(value, spec)


def peer_env(quick: bool, **extra: str) -> dict[str, str]:
    """The environment every driven run gets: 2 threads, passive OpenMP waits, ``PEERS_DIR``, this
    checkout's ``src`` on ``PYTHONPATH`` and, for ``--quick``, the peers' smoke mode."""
    env = dict(os.environ, OMP_NUM_THREADS="2", MKL_NUM_THREADS="2", OPENBLAS_NUM_THREADS="2",
               OMP_WAIT_POLICY="PASSIVE", PEERS_DIR=str(PEERS_DIR), **extra,
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")])))
    if quick:
        env["PEERS_SMOKE"] = "1"
    return env


def run_json(cmd: list[str], cwd: Path, env: dict[str, str], row: dict[str, Any]) -> dict[str, Any]:
    """Run one benchmark script; its last JSON line updated with ``row`` (the label, the load before it)
    and the process's wall seconds, or ``row`` with an ``error`` when it failed."""
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {**row, "error": f"exit {proc.returncode}: {' | '.join(tail)}"}
    result = json.loads(lines[-1])
    result.update(row, process_s=round(time.perf_counter() - started, 1))
    return result


def driver_parser(doc: str, runs: Iterable[str], quick_help: str) -> argparse.ArgumentParser:
    """The options both drivers (``run_moons.py``, ``run_images.py``) take."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--only", default=",".join(runs), help=f"comma-separated subset of {', '.join(runs)}")
    parser.add_argument("--python", default=os.environ.get("PEERS_PYTHON", "/tmp/peers-venv/bin/python"),
                        help="the peers' venv interpreter (torch 2.13.0 CPU, normflows, nflows, zuko, jax)")
    parser.add_argument("--jsonl", type=Path, default=None, help="append each run's JSON line here")
    parser.add_argument("--table-only", action="store_true", help="print the table(s) of an existing --jsonl")
    return parser


def driver_labels(parser: argparse.ArgumentParser, args: argparse.Namespace, runs: Iterable[str],
                  table: Callable[[list[dict]], str]) -> list[str] | None:
    """The implementations to run, checked; None when ``--table-only`` printed the table instead."""
    labels = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(labels) - set(runs))
    if unknown:
        parser.error(f"unknown implementation(s) {', '.join(unknown)}; known: {', '.join(runs)}")
    if args.table_only:
        if args.jsonl is None:
            parser.error("--table-only needs --jsonl")
        print(table(read_jsonl(args.jsonl)))
        return None
    if not Path(args.python).exists():
        parser.error(f"{args.python} not found: set up the peers' venv (benchmarks/README.md) or pass --python")
    return labels


def keep_row(rows: list[dict], row: dict[str, Any], prefix: str, summary: Callable[[dict], str],
             jsonl: Path | None) -> None:
    """Add a finished run's row to ``rows`` and ``jsonl``, with one progress line on stderr."""
    rows.append(row)
    print(f"  {prefix}: " + (row.get("error") or summary(row)), file=sys.stderr, flush=True)
    append_jsonl(jsonl, row)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every JSON line of ``path``."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def append_jsonl(path: Path | None, row: dict[str, Any]) -> None:
    """Append ``row`` as one JSON line to ``path`` (nothing when None)."""
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as f:
            f.write(json.dumps(row) + "\n")


# Prototype conditioner (not in the library), used by ``moons.py --conditioner pwl`` and checked by
# ``pwl_mlp.py``.
#
# Prototype (not in the library): the SAME conditioner MLP, evaluated without its 512x512 GEMMs when its
# input is one number, as in every coupling layer of a 2-D flow.
#
# With a scalar input ``x`` the first layer ``h1 = relu(w1 x + b1)`` is piecewise linear in ``x``: unit
# ``j`` is on for ``x`` above (``w1_j > 0``) or below (``w1_j < 0``) its breakpoint ``-b1_j / w1_j``. Sort
# the batch by ``x``; then each unit is on for a prefix or a suffix of the sorted batch, and the second
# layer's pre-activation ``W2 h1 = x * A + C`` with
#
#     A_i = sum_{j on at i} w1_j W2[:, j],    C_i = sum_{j on at i} b1_j W2[:, j]
#
# is a running sum over the sorted batch of the units switching there (one scatter-add of the ``H1``
# columns of ``W2`` into ``B + 1`` buckets, then a cumulative sum over the batch). The backward pass is
# the same idea in reverse: the gradients of ``W2``, ``w1`` and ``b1`` need, per unit, the sums of
# ``x_i g_i`` and ``g_i`` over the examples where that unit is on, which are prefix sums over the sorted
# batch. Forward and backward each cost a few ``O(H1 H2)`` passes instead of ``O(B H1 H2)`` GEMMs: one
# moons step's 12 GEMMs of 256x512x512 (1.6 GFLOP) disappear. Function, parameters and gradients are
# exactly the MLP's: ``python benchmarks/pwl_mlp.py`` checks them against autograd through the plain MLP.
#
# Measured (PROFILE.md): in eager PyTorch the ~25 memory-bound passes that replace the GEMMs cost about
# as much as the GEMMs do on 2 threads (7.3 vs 7.1 ms per coupling); it pays only on 1 thread or under
# load, and would need one fused kernel to turn the FLOP saving into time.


class _ScalarReluLinear(torch.autograd.Function):
    """``W2 @ relu(w1 x + b1)`` for ascending scalars ``x``: ``[B] -> [B, H2]`` (no second bias).

    Written for PyTorch's fast CPU paths: 2-D contiguous tensors, scans (``cumsum``) along the last,
    contiguous dimension, and every intermediate in the layout its next op reads fastest.
    """

    @staticmethod
    def forward(ctx, xs: Tensor, w1: Tensor, b1: Tensor, w2: Tensor) -> Tensor:
        h2 = w2.shape[0]
        inf = torch.tensor(math.inf, dtype=w1.dtype, device=w1.device)
        # A unit with w1 = 0 is always on (b1 > 0) or always off: an "on above" breakpoint at -inf / +inf.
        breaks = torch.where(w1 != 0, -b1 / w1, torch.where(b1 > 0, -inf, inf))
        above = (w1 >= 0).to(w1.dtype)  # 1: on for x above its breakpoint; 0: on below it
        first_on = torch.searchsorted(xs, breaks)  # sorted examples [first_on, B) lie above the breakpoint
        cols = w2.t().contiguous()  # [H1, H2]: unit j's outgoing weights as a row
        sign = 2 * above - 1
        # Example 0 starts with every "on below" unit on; each unit then switches on (or, "on below",
        # off) at its first_on: scatter its scaled row there (row B: never), then running sums over the
        # sorted batch. Separate same-shape ops: a broadcast [H1, 2, H2] product is ~5x slower on CPU.
        start = torch.stack([w1, b1]) * (1 - above) @ cols  # [2, H2]
        tables = []
        for c in (w1, b1):
            steps = xs.new_zeros(len(xs) + 1, h2).index_add_(0, first_on, cols * (sign * c)[:, None])
            tables.append(steps[:-1].t().contiguous().cumsum(1))  # [H2, B]: running sums, minus start
        slope = tables[0] + start[0, :, None]  # [H2, B]
        ctx.save_for_backward(xs, w1, b1, w2, above, first_on, slope)
        return torch.addcmul(tables[1] + start[1, :, None], slope, xs).t().contiguous()

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        xs, w1, b1, w2, above, first_on, slope = ctx.saved_tensors
        h2 = w2.shape[0]
        grad_t = grad.t().contiguous()  # [H2, B]
        grad_x = (grad_t * slope).sum(0)
        # Column k of ``prefix`` sums x_i g_i (top) and g_i (bottom) over the first k sorted examples.
        prefix = nn.functional.pad(torch.cat([grad_t * xs, grad_t]).cumsum(1), (1, 0))  # [2 H2, B + 1]
        below = prefix.index_select(1, first_on).view(2, h2, -1)  # [2, H2, H1]: under each breakpoint
        total = prefix[:, -1].view(2, h2)  # over the whole batch
        # A unit is on below its breakpoint ("on below") or above it (total - below), so with
        # flip = 1 - 2 above:  on = flip * below + above * total.
        flip = 1 - 2 * above
        coef = torch.stack([w1, b1])  # [2, H1]
        grad_w2 = torch.addcmul(below[0] * (flip * w1), below[1], flip * b1).addmm_(total.t(), coef * above)
        through = total @ w2  # [2, H1]
        grad_w1 = flip * (below[0] * w2).sum(0) + above * through[0]
        grad_b1 = flip * (below[1] * w2).sum(0) + above * through[1]
        return grad_x, grad_w1, grad_b1, grad_w2


class ScalarInputMLP(nn.Module):
    """Wraps an ``MLP(1, out, hidden)`` with at least two hidden layers and evaluates its first two layers
    as above; shares, and so trains, the wrapped MLP's own parameters."""

    def __init__(self, mlp: MLP) -> None:
        super().__init__()
        if not (isinstance(mlp[0], nn.Linear) and mlp[0].in_features == 1 and len(mlp) >= 5):
            raise ValueError("ScalarInputMLP needs an MLP with one input and at least two hidden layers")
        self.mlp = mlp

    def forward(self, x: Tensor) -> Tensor:
        first, second = self.mlp[0], self.mlp[2]
        xs, order = x.reshape(-1).sort()
        out = _ScalarReluLinear.apply(xs, first.weight[:, 0], first.bias, second.weight)
        out = torch.relu(out + second.bias)
        for i in range(4, len(self.mlp)):  # the remaining layers, on the sorted batch
            out = self.mlp[i](out)
        return out.new_empty(out.shape).index_copy(0, order, out)  # back to the input's order


def use_scalar_input_conditioners(flow: nn.Module) -> int:
    """Swap every coupling's 1-input MLP conditioner for its ``ScalarInputMLP`` view; returns how many."""
    swapped = 0
    for module in flow.modules():
        net = getattr(module, "conditioner", None)
        if isinstance(net, MLP) and net[0].in_features == 1 and len(net) >= 5:
            module.conditioner = ScalarInputMLP(net)
            swapped += 1
    return swapped
