"""An outside probe of the ``realnvp`` command line (issue 25), independent of tests/test_fuzz_cli.py: about
370 cases with their own generators (CSV encodings and dialects, NaN spellings, files that are folders,
symlinks, fifos or garbage, damaged run folders, odd flag spellings, odd ``--set`` and TOML, concurrent
writers, SIGINT during training, read-only run folders), each run as a real ``python -m realnvp`` process
with a timeout. A case holds when the process ends with exit 2 and one stderr line ``realnvp: error: ...``
(or exit 0 where the input is valid; ``either`` where both are fair), prints no traceback, and leaves every
file of the run folder it reads with the same bytes and modification time.

    taskset -c 0 .venv/bin/python -m benchmarks.probe            # about 20 minutes on a shared core
    .venv/bin/python -m benchmarks.probe --only csv --no-record   # a subset, nothing appended

Prints the tally (held / failed, each failure with its last stderr line) and appends one JSON line to
benchmarks/probe_results.jsonl: date, commit, host, counts and the failing cases.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.probe_cases import TIMEOUT, TINY, Case, all_cases, command, fill, judge, make_files

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "probe_results.jsonl"


@dataclass
class Outcome:
    """What one probe found: None when it held, else why not, with the last stderr line."""

    name: str
    command: str
    failure: str | None = None
    last_line: str = ""
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)


def stamp(folder: Path) -> dict[str, tuple]:
    """Every file under ``folder``: (SHA-256, mtime); other entries by kind."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_symlink() or not p.is_file():
            out[str(p.relative_to(folder))] = "link" if p.is_symlink() else "dir" if p.is_dir() else "other"
        else:
            out[str(p.relative_to(folder))] = (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
    return out


def environment(workspace: Path) -> dict[str, str]:
    """The child's environment: one thread, a writable home (a user without root's rights needs one)."""
    home = workspace / "home"
    home.mkdir(exist_ok=True)
    home.chmod(0o777)
    return {**os.environ, "OMP_NUM_THREADS": "1", "HOME": str(home), "MPLCONFIGDIR": str(home),
            "PYTHONPATH": str(ROOT / "src")}


def run_case(case: Case, shared_run: Path, workspace: Path, env: dict) -> Outcome:
    """Run one case in a folder of its own and judge it."""
    out = Path(tempfile.mkdtemp(prefix="case-", dir=workspace / "cases"))
    out.chmod(0o777)
    run = shared_run
    if case.own_run:
        run = out / "run"
        shutil.copytree(shared_run, run)
        if case.prepare:
            case.prepare(run)
    argv = fill(case.argv, run, workspace, out)
    outcome, start = Outcome(case.name, "realnvp " + " ".join(argv)[:300]), time.perf_counter()
    before = stamp(run) if run.is_dir() and not run.is_symlink() else {}
    if case.special:
        try:
            outcome.failure = case.special(case, run, out, env)
        except (OSError, subprocess.SubprocessError) as exc:
            outcome.failure = f"probe: {type(exc).__name__}: {exc}"[:300]
    else:
        try:
            done = subprocess.run(command(argv, case.user), capture_output=True, text=True, errors="replace",
                                  timeout=TIMEOUT, env=env, stdin=subprocess.DEVNULL)
            outcome.failure = judge(case.expect, done.returncode, done.stderr)
            outcome.last_line = (done.stderr.strip().splitlines() or [""])[-1][:300]
        except subprocess.TimeoutExpired:
            outcome.failure = f"no answer within {TIMEOUT} s"
    if outcome.failure is None and not case.changes_run and before and stamp(run) != before:
        outcome.failure = "changed the run folder"
    outcome.seconds = round(time.perf_counter() - start, 2)
    if case.name.startswith("immutable"):
        subprocess.run(["chattr", "-R", "-i", str(out)], capture_output=True)
    shutil.rmtree(out, ignore_errors=True)
    return outcome


def train_shared(workspace: Path, env: dict) -> Path:
    """The tiny trained run every reading case shares (60 steps, no pictures)."""
    run = workspace / "run"
    subprocess.run(command(["train", "moons", "--out", str(run), "--steps", "60", "--quiet", "--no-pictures",
                            *TINY]), check=True, env=env, timeout=600)
    for path in [workspace, *workspace.rglob("*")]:  # readable by the unprivileged cases
        path.chmod(path.stat().st_mode | 0o755 if path.is_dir() else path.stat().st_mode | 0o644)
    return run


def record(outcomes: list[Outcome], total_s: float, jobs: int) -> dict:
    """The JSON line of this probe."""
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain", "src"], capture_output=True, text=True,
                                cwd=ROOT).stdout.strip())
    model = next((line.split(":", 1)[1].strip() for line in subprocess.run(
        ["lscpu"], capture_output=True, text=True).stdout.splitlines() if line.startswith("Model name")), "?")
    failed = [o for o in outcomes if o.failure]
    return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "commit": commit,
            "src_dirty": dirty, "host": model, "cpus": os.cpu_count(), "load": os.getloadavg()[0], "jobs": jobs,
            "cases": len(outcomes), "held": len(outcomes) - len(failed), "failed": len(failed),
            "seconds": round(total_s), "failures": [{"case": o.name, "why": o.failure, "command": o.command,
                                                      "last_stderr": o.last_line} for o in failed]}



def main(argv: list[str] | None = None) -> int:
    """Run the probe; exit 1 when a case failed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="", help="run the cases whose name contains one of these (comma-separated)")
    parser.add_argument("--jobs", type=int, default=2, help="cases at once (default 2)")
    parser.add_argument("--no-record", action="store_true", help="append nothing to probe_results.jsonl")
    parser.add_argument("--list", action="store_true", help="print the case names and stop")
    parser.add_argument("--minutes", type=float, default=0, help="start no case after this long (0: no limit); "
                        "the cases run in a seeded shuffled order, so a capped run samples every class")
    args = parser.parse_args(argv)
    cases = [case for case in all_cases() if any(part in case.name for part in args.only.split(","))]
    random.Random(25).shuffle(cases)
    if args.list:
        print("\n".join(case.name for case in cases), f"\n{len(cases)} cases", sep="")
        return 0
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:  # started in the background by a script: the children
        signal.signal(signal.SIGINT, signal.default_int_handler)  # would inherit the ignored SIGINT and never stop
    workspace = Path(tempfile.mkdtemp(prefix="realnvp-probe-"))
    start = time.perf_counter()
    try:
        env = environment(workspace)
        (workspace / "cases").mkdir()
        shared = train_shared(workspace, env)
        make_files(workspace)
        (workspace / "cases").chmod(0o777)
        deadline = start + args.minutes * 60 if args.minutes else float("inf")

        def one(case: Case) -> Outcome | None:
            if time.perf_counter() > deadline:
                return None
            outcome = run_case(case, shared, workspace, env)
            verdict = f"FAILED {outcome.failure}" if outcome.failure else "held"
            print(f"{verdict}: {case.name} ({outcome.seconds} s)",
                  flush=True)
            return outcome

        with ThreadPoolExecutor(args.jobs) as pool:
            outcomes = [o for o in pool.map(one, cases) if o is not None]
    finally:
        subprocess.run(["chattr", "-R", "-i", str(workspace)], capture_output=True)
        shutil.rmtree(workspace, ignore_errors=True)
    line = {**record(outcomes, time.perf_counter() - start, args.jobs), "not_run": len(cases) - len(outcomes)}
    for o in outcomes:
        if o.failure:
            print(f"FAILED {o.name}: {o.failure}\n    {o.command}\n    {o.last_line}")
    print(f"{line['held']} held, {line['failed']} failed of {line['cases']} cases in {line['seconds']} s "
          f"({line['not_run']} not started: --minutes)")
    if not args.no_record:
        with RESULTS.open("a") as f:
            f.write(json.dumps(line) + "\n")
    return 1 if line["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
