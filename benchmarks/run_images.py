"""One command for the image protocols side by side: the digits peers and realnvp (protocol B, 300 s of
training each), one run at a time, then realnvp on mnist10k (protocol C, 30 minutes), then the markdown
tables (test bits/dim, params, images/s and its ratio to the eager reference measured in the same run).

    python benchmarks/run_images.py            # the full run (~6 x 5 min digits + 30 min MNIST)
    python benchmarks/run_images.py --quick    # smoke run: 10 s digits budgets (PEERS_SMOKE=1), 60 s MNIST

Every run gets ``OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE``; the load average and CPU busy fraction
seen just before it started are recorded with its JSON line (appended to ``--jsonl``, so the tables
can be rebuilt with ``--table-only``).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from run_moons import cpu_busy, fmt  # same folder: the moons harness's load probe and number format

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEERS_DIR = Path(os.environ.get("PEERS_DIR", ROOT.parent / "shared/benchmarks/peers"))
REFERENCE = "torch_ref"
# label -> (protocol, working directory, script); label = the "peer" field the script emits.
RUNS = {
    "torch_ref": ("digits", PEERS_DIR, ["digits_torch_ref.py"]),
    "normflows": ("digits", PEERS_DIR, ["digits_normflows.py"]),
    "nflows": ("digits", PEERS_DIR, ["digits_nflows.py"]),
    "zuko": ("digits", PEERS_DIR, ["digits_zuko.py"]),
    "jax": ("digits", PEERS_DIR, ["digits_jax.py"]),
    "realnvp": ("digits", ROOT, [str(HERE / "digits.py")]),
    "realnvp_mnist10k": ("mnist10k", ROOT, [str(HERE / "mnist10k.py")]),
}


def run_one(label: str, args: argparse.Namespace) -> dict:
    protocol, cwd, cmd = RUNS[label]
    cmd = [args.python, *cmd]
    if protocol == "mnist10k" and args.quick:  # keep the committed sample grid for full runs
        cmd += ["--samples", str(Path(tempfile.gettempdir()) / "mnist10k_samples_quick.png")]
    env = dict(os.environ, OMP_NUM_THREADS="2", MKL_NUM_THREADS="2", OPENBLAS_NUM_THREADS="2",
               OMP_WAIT_POLICY="PASSIVE", PEERS_DIR=str(PEERS_DIR),
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")])))
    if args.quick:
        env["PEERS_SMOKE"] = "1"
    before = {"loadavg_1m_before": round(os.getloadavg()[0], 2), "cpu_busy_before": cpu_busy(),
              "started_utc": f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M}"}
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"peer": label, "protocol": protocol, "error": f"exit {proc.returncode}: {' | '.join(tail)}", **before}
    result = json.loads(lines[-1])
    result.update(before, label=label, process_s=round(time.perf_counter() - started, 1))
    return result


def _loads(rows: list[dict]) -> str:
    before = [r["loadavg_1m_before"] for r in rows]
    busy = [r["cpu_busy_before"] for r in rows]
    return (f"1-min load average before each run {min(before):.2f}-{max(before):.2f} (median "
            f"{statistics.median(before):.2f}); CPU busy fraction before each run {min(busy):.2f}-{max(busy):.2f}")


def digits_table(rows: list[dict]) -> str:
    """Protocol B: one line per implementation, in ``RUNS`` order (the mean where it ran several times)."""
    ok = [r for r in rows if "error" not in r and r.get("protocol") == "digits"]
    if not ok:
        return "(no digits runs)"
    ref = [r["images_per_s"] for r in ok if r["label"] == REFERENCE]
    out = ["| implementation | test bits/dim | params | images/s | images/s vs torch_ref | steps | train s "
           "| final train bpd | stopped | load before / at end |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |"]
    for label in RUNS:
        for r in (r for r in ok if r["label"] == label):
            ratio = r["images_per_s"] / statistics.mean(ref) if ref else None
            stop = r.get("stop_reason") or (f"NaN at step {r['nan_at_step']}" if r.get("nan_at_step")
                                            else "budget used")
            out.append(f"| {label} | {r['bits_per_dim']:.3f} | {r['params']:,} | {r['images_per_s']:.0f} | "
                       f"{fmt(ratio, '.2f')} | {r['steps']} | {r['train_s']:.0f} | {r['final_train_bpd']:.3f} | "
                       f"{stop} | {r['loadavg_1m_before']:.2f} / {r['loadavg_1m_at_end']:.2f} |")
    return "\n".join(out + ["", f"{len(ok)} digits runs; {_loads(ok)}."])


def mnist_table(rows: list[dict]) -> str:
    """Protocol C: realnvp's runs."""
    ok = [r for r in rows if "error" not in r and r.get("protocol") == "mnist10k"]
    if not ok:
        return "(no mnist10k runs)"
    out = ["| implementation | test bits/dim | params | images/s | steps | train s | best val bpd (step) "
           "| final train bpd | stopped | load before / at end |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |"]
    for r in ok:
        out.append(f"| {r['label']} | {r['bits_per_dim']:.3f} | {r['params']:,} | {r['images_per_s']:.1f} | "
                   f"{r['steps']} | {r['train_s']:.0f} | {r['best_val_bpd']:.3f} ({r['best_step']}) | "
                   f"{r['final_train_bpd']:.3f} | {r['stop_reason']} | "
                   f"{r['loadavg_1m_before']:.2f} / {r['loadavg_1m_at_end']:.2f} |")
    return "\n".join(out + ["", f"{_loads(ok)}."])


def tables(rows: list[dict]) -> str:
    failed = [f"FAILED: {r['peer']}: {r['error']}" for r in rows if "error" in r]
    return "\n".join(["### digits (protocol B)", "", digits_table(rows), "", "### mnist10k (protocol C)", "",
                      mnist_table(rows), *([""] + failed if failed else [])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: PEERS_SMOKE=1 (10 s digits), 60 s MNIST")
    parser.add_argument("--only", default=",".join(RUNS), help=f"comma-separated subset of {', '.join(RUNS)}")
    parser.add_argument("--python", default=os.environ.get("PEERS_PYTHON", "/tmp/peers-venv/bin/python"),
                        help="the peers' venv interpreter (torch 2.13.0 CPU, normflows, nflows, zuko, jax)")
    parser.add_argument("--jsonl", type=Path, default=None, help="append each run's JSON line here")
    parser.add_argument("--table-only", action="store_true", help="print the tables of an existing --jsonl")
    args = parser.parse_args()
    labels = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(labels) - set(RUNS))
    if unknown:
        parser.error(f"unknown implementation(s) {', '.join(unknown)}; known: {', '.join(RUNS)}")
    if args.table_only:
        if args.jsonl is None:
            parser.error("--table-only needs --jsonl")
        print(tables([json.loads(line) for line in args.jsonl.read_text().splitlines() if line.strip()]))
        return
    if not Path(args.python).exists():
        parser.error(f"{args.python} not found: set up the peers' venv (benchmarks/README.md) or pass --python")
    print(f"# image protocols, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC" + (", QUICK" if args.quick else ""),
          file=sys.stderr)
    rows: list[dict] = []
    for label in labels:
        result = run_one(label, args)
        rows.append(result)
        print(f"  {label}: " + (result.get("error") or
              f"{result['bits_per_dim']:.4f} bits/dim, {result['images_per_s']:.0f} images/s, {result['steps']} steps, "
              f"load {result['loadavg_1m_before']}"), file=sys.stderr, flush=True)
        if args.jsonl:
            args.jsonl.parent.mkdir(parents=True, exist_ok=True)
            with args.jsonl.open("a") as f:
                f.write(json.dumps(result) + "\n")
    print(tables(rows))


if __name__ == "__main__":
    main()
