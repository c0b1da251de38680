"""Re-run one protocol from a clean worktree of a commit, seed by seed, and regenerate RESULTS.md.

One command per protocol (issue 27): the driver and ``src/`` come from ``git worktree add --detach``
of ``--rev`` (default HEAD), so edits in this checkout cannot leak into the figures; every JSON line the
driver prints is tagged with the invocation (its UTC start, the commit, this command, the seeds) and
appended to this checkout's raw file; then ``python -m benchmarks.results`` rewrites RESULTS.md.

    /tmp/peers-venv/bin/python -m benchmarks.rerun colour --seeds 0,1,2 -- --minutes 10 --only cifar-cpu,normflows
    /tmp/peers-venv/bin/python -m benchmarks.rerun mnist10k --seeds 0,1,2 -- --budget 600

``--cpus 1 --threads 1`` pins the driver to CPU 1 with one thread (``taskset``), for a host where other
work shares the machine; each line records its threads and CPU affinity.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.drivers import PEERS_DIR, module_command
from benchmarks.rawlines import HERE, ROOT, append_jsonl

PROTOCOLS = {"colour": "colour_results.jsonl", "mnist10k": "mnist10k_results.jsonl"}
MNIST10K = ROOT.parent / "shared/data/mnist10k.npz"


def worktree(rev: str) -> tuple[Path, str]:
    """A clean, detached worktree of ``rev`` under /tmp (made once per commit) and the commit's hash."""
    sha = subprocess.run(["git", "rev-parse", rev], capture_output=True, text=True, cwd=ROOT, check=True).stdout.strip()
    folder = Path("/tmp/realnvp-rerun") / sha[:12]
    if not (folder / "benchmarks").is_dir():
        subprocess.run(["git", "worktree", "add", "--detach", str(folder), sha], cwd=ROOT, check=True,
                       capture_output=True)
    return folder, sha


def run_seed(protocol: str, seed: int, folder: Path, args: argparse.Namespace, tag: dict) -> int:
    """One driver process for ``seed``; its JSON lines, tagged, appended to this checkout's raw file."""
    env = dict(os.environ, PEERS_SEED=str(seed), PEERS_DIR=str(PEERS_DIR), MNIST10K=str(MNIST10K),
               PYTHONPATH=str(folder / "src"), OMP_NUM_THREADS=str(args.threads), OMP_WAIT_POLICY="PASSIVE")
    pin = ["taskset", "-c", args.cpus] if args.cpus else []
    cmd = [*pin, sys.executable, *module_command(protocol), *args.driver_args]
    proc = subprocess.Popen(cmd, cwd=folder, env=env, stdout=subprocess.PIPE, text=True)
    for line in proc.stdout:
        print(line, end="", flush=True)
        if line.startswith("{"):
            append_jsonl(HERE / PROTOCOLS[protocol], {**json.loads(line), **tag, "seed": seed})
    return proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("protocol", choices=sorted(PROTOCOLS))
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated initialisation seeds, one process each")
    parser.add_argument("--rev", default="HEAD", help="the commit whose src/ and benchmarks/ run")
    parser.add_argument("--cpus", default="", help="taskset CPU list for the driver (default: no pinning)")
    parser.add_argument("--threads", type=int, default=2, help="OMP_NUM_THREADS for the driver (the protocols': 2)")
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:cut])
    args.driver_args = argv[cut + 1:]  # after --: the driver's own arguments
    folder, sha = worktree(args.rev)
    seeds = [int(s) for s in args.seeds.split(",")]
    tag = {"invocation": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "commit": sha[:7],
           "command": shlex.join(["python", *module_command("rerun"), *sys.argv[1:]]), "seeds": seeds}
    failed = [seed for seed in seeds if run_seed(args.protocol, seed, folder, args, tag) != 0]
    subprocess.run([sys.executable, *module_command("results")], cwd=ROOT, check=True)
    if failed:
        raise SystemExit(f"driver failed for seeds {failed}")


if __name__ == "__main__":
    main()
