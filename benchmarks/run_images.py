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
import os
import statistics
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from harness import HERE, PEERS_DIR, ROOT, cpu_busy, driver_labels, driver_parser, fmt, keep_row, peer_env, run_json

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
    env = peer_env(args.quick)
    before = {"loadavg_1m_before": round(os.getloadavg()[0], 2), "cpu_busy_before": cpu_busy(),
              "started_utc": f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M}"}
    result = run_json(cmd, cwd, env, {"label": label, **before})
    return {"peer": label, "protocol": protocol, **result} if "error" in result else result


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
    parser = driver_parser(__doc__, RUNS, "smoke run: PEERS_SMOKE=1 (10 s digits), 60 s MNIST")
    args = parser.parse_args()
    labels = driver_labels(parser, args, RUNS, tables)
    if labels is None:
        return
    print(f"# image protocols, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC" + (", QUICK" if args.quick else ""),
          file=sys.stderr)
    rows: list[dict] = []
    for label in labels:
        keep_row(rows, run_one(label, args), label, lambda r: f"{r['bits_per_dim']:.4f} bits/dim, "
                 f"{r['images_per_s']:.0f} images/s, {r['steps']} steps, load {r['loadavg_1m_before']}", args.jsonl)
    print(tables(rows))


if __name__ == "__main__":
    main()
