"""One command for the moons protocol side by side: every peer and realnvp, seeds 0, 1, 2, one run at a
time, then one markdown table (test NLL per seed and mean, median ms/step, ratio to the eager reference
measured in the same run).

    python -m benchmarks.run_moons            # the full run (~45 min on the 2-core machine)
    python -m benchmarks.run_moons --quick    # smoke run: 150 steps each (PEERS_SMOKE=1)

Each run's JSON line is appended to ``--jsonl`` (with the load average and CPU busy fraction seen just
before it started) so a table can be rebuilt with ``--table-only``.
"""

import argparse
import os
import sys
import time
from datetime import datetime, timezone

from benchmarks.drivers import (
    PEERS_DIR,
    cpu_busy,
    driver_labels,
    driver_parser,
    fmt,
    keep_row,
    module_command,
    peer_env,
    run_json,
)
from benchmarks.rawlines import ROOT, machine, read_jsonl
from benchmarks.render.moons import REFERENCE, moons_table

# (label, working directory, script and arguments); label = the "peer" field the script emits.
RUNS = {
    "torch_ref": (PEERS_DIR, ["moons_torch_ref.py"]),
    "normflows": (PEERS_DIR, ["moons_normflows.py"]),
    "nflows": (PEERS_DIR, ["moons_nflows.py"]),
    "nflows_exp": (PEERS_DIR, ["moons_nflows.py", "--exp"]),
    "zuko": (PEERS_DIR, ["moons_zuko.py"]),
    "jax": (PEERS_DIR, ["moons_jax.py"]),
    "realnvp": (ROOT, module_command("moons")),
    "realnvp_nospin": (ROOT, module_command("moons", "--no-spin")),
    "realnvp_noflush": (ROOT, module_command("moons", "--no-flush")),
    "realnvp_bf16": (ROOT, module_command("moons", "--precision", "bf16")),
    "realnvp_compiled": (ROOT, module_command("moons", "--compile")),
    "realnvp_pwl": (ROOT, module_command("moons", "--conditioner", "pwl")),
    "realnvp_moons_preset": (ROOT, module_command("moons", "--mode", "preset")),
}


def run_one(label: str, seed: int, args: argparse.Namespace, budget_s: float) -> dict:
    cwd, cmd = RUNS[label]
    cmd = [args.python, *cmd] + (["--budget", f"{budget_s:.1f}"] if label == "realnvp_moons_preset" else [])
    env = peer_env(args.quick, PEERS_SEED=str(seed))
    waited, busy = 0.0, cpu_busy()
    while busy > 0.15 and waited < args.wait_idle:  # as the peers' run_all.sh: start on an idle machine
        time.sleep(8)
        waited += 10
        busy = cpu_busy()
    host = {key: value for key, value in machine().items() if key in ("cpu", "cpu_flags", "cpus")}
    before = {"loadavg_1m_before": round(os.getloadavg()[0], 2), "cpu_busy_before": busy, "waited_s": waited,
              "invocation": args.invocation, **host}
    result = run_json(cmd, cwd, env, {"label": label, **before})
    return {"peer": label, "seed": seed, **result} if "error" in result else result


def main() -> None:
    parser = driver_parser(__doc__, RUNS, "smoke run: 150 steps per run (PEERS_SMOKE=1)")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated PEERS_SEED values")
    parser.add_argument("--resume", action="store_true",
                        help="skip the (implementation, seed) runs already in --jsonl and include them in the table")
    parser.add_argument("--wait-idle", type=float, default=300.0,
                        help="before each run wait up to this many seconds for the CPU to be idle (busy < 15%%)")
    args = parser.parse_args()

    labels = driver_labels(parser, args, RUNS, moons_table)  # --table-only prints RESULTS.md's table
    if labels is None:
        return
    args.invocation = f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC"  # written on every line of this run
    print(f"# moons protocol, {args.invocation}, seeds {args.seeds}"
          + (", QUICK (150 steps)" if args.quick else ""), file=sys.stderr)
    if args.resume and args.jsonl is None:
        parser.error("--resume needs --jsonl")
    rows: list[dict] = []
    if args.resume and args.jsonl.exists():
        rows = [r for r in read_jsonl(args.jsonl) if "error" not in r]
    for seed in (int(s) for s in args.seeds.split(",")):
        for label in labels:
            if any(r.get("label") == label and r["seed"] == seed for r in rows):
                continue
            ref_wall = [r["wall_s"] for r in rows if r.get("label") == REFERENCE and r["seed"] == seed]
            result = run_one(label, seed, args, budget_s=ref_wall[0] if ref_wall else 100.0)
            keep_row(rows, result, f"seed {seed} {label}", lambda r: f"NLL {r['test_nll']:.4f}, "
                     f"{fmt(r.get('step_ms_median'), '.1f')} ms/step, wall {r['wall_s']:.0f} s, "
                     f"load {r['loadavg_1m_before']}", args.jsonl)
    print(moons_table(rows))


if __name__ == "__main__":
    main()
