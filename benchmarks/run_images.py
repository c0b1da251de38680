"""One command for the image protocols side by side: the digits peers and realnvp (protocol B, 300 s of
training each), one run at a time, then realnvp on mnist10k (protocol C, 30 minutes), then the markdown
tables (test bits/dim, params, images/s and its ratio to the eager reference measured in the same run).

    python -m benchmarks.run_images            # the full run (~6 x 5 min digits + 30 min MNIST)
    python -m benchmarks.run_images --quick    # smoke run: 10 s digits budgets (PEERS_SMOKE=1), 60 s MNIST

Every run gets ``OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE``; the load average and CPU busy fraction
seen just before it started, the host's ``lscpu`` model name and flags and the driver's command line are
recorded with its JSON line (appended to ``--jsonl``, so the tables can be rebuilt with ``--table-only``;
``python -m benchmarks.results`` writes them into RESULTS.md).
"""

import argparse
import os
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from benchmarks.drivers import (
    PEERS_DIR,
    cpu_busy,
    driver_labels,
    driver_parser,
    keep_row,
    module_command,
    peer_env,
    run_json,
)
from benchmarks.rawlines import ROOT, Row, machine
from benchmarks.render.digits import digits_table
from benchmarks.render.mnist10k import mnist_table

# label -> (protocol, working directory, script); label = the "peer" field the script emits.
RUNS = {
    "torch_ref": ("digits", PEERS_DIR, ["digits_torch_ref.py"]),
    "normflows": ("digits", PEERS_DIR, ["digits_normflows.py"]),
    "nflows": ("digits", PEERS_DIR, ["digits_nflows.py"]),
    "zuko": ("digits", PEERS_DIR, ["digits_zuko.py"]),
    "jax": ("digits", PEERS_DIR, ["digits_jax.py"]),
    "realnvp": ("digits", ROOT, module_command("digits")),
    "realnvp_mnist10k": ("mnist10k", ROOT, module_command("mnist10k")),
}


def images_tables(rows: list[Row]) -> str:
    """What ``--table-only`` prints: the digits and the mnist10k tables of one file, then the failures."""
    return "\n".join(["### digits (protocol B)", "", digits_table(rows), "", "### mnist10k (protocol C)", "",
                      mnist_table(rows)] + [f"FAILED: {r['peer']}: {r['error']}" for r in rows if "error" in r])


def run_one(label: str, args: argparse.Namespace) -> dict:
    protocol, cwd, cmd = RUNS[label]
    cmd = [args.python, *cmd]
    if protocol == "mnist10k" and args.quick:  # keep the committed sample grid for full runs
        cmd += ["--samples", str(Path(tempfile.gettempdir()) / "mnist10k_samples_quick.png")]
    env = peer_env(args.quick)
    host = machine()
    before = {"loadavg_1m_before": round(os.getloadavg()[0], 2), "cpu_busy_before": cpu_busy(),
              "started_utc": f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M}", "cpu": host["cpu"],
              "cpu_flags": host["cpu_flags"], "command": " ".join([*module_command("run_images"), *sys.argv[1:]])}
    result = run_json(cmd, cwd, env, {"label": label, **before})
    return {"peer": label, "protocol": protocol, **result} if "error" in result else result


def main() -> None:
    parser = driver_parser(__doc__, RUNS, "smoke run: PEERS_SMOKE=1 (10 s digits), 60 s MNIST")
    args = parser.parse_args()
    labels = driver_labels(parser, args, RUNS, images_tables)
    if labels is None:
        return
    print(f"# image protocols, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC" + (", QUICK" if args.quick else ""),
          file=sys.stderr)
    rows: list[dict] = []
    for label in labels:
        keep_row(rows, run_one(label, args), label, lambda r: f"{r['bits_per_dim']:.4f} bits/dim, "
                 f"{r['images_per_s']:.0f} images/s, {r['steps']} steps, load {r['loadavg_1m_before']}", args.jsonl)
    print(images_tables(rows))


if __name__ == "__main__":
    main()
