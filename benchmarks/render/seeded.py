"""Seeded runs of one ``benchmarks.rerun`` invocation: per contender the figure of every seed, the mean
with the seeds' standard deviation, the wall time each got, and verdicts from the spread (issue 27:
a difference of means inside the larger of the two seed deviations is a tie, never a win)."""

from __future__ import annotations

import statistics
from collections.abc import Callable

from benchmarks.rawlines import Row
from benchmarks.render.cells import host, span, verdict


def latest_invocation(rows: list[Row]) -> list[Row]:
    """The lines of the newest ``benchmarks.rerun`` invocation (tagged ``invocation``), in file order."""
    tagged = [r for r in rows if r.get("invocation") and "error" not in r]
    return [r for r in tagged if r["invocation"] == tagged[-1]["invocation"]] if tagged else []


def by_contender(rows: list[Row], name: Callable[[Row], str]) -> dict[str, dict[int, Row]]:
    """``{contender: {seed: line}}`` (the last line wins for a repeated seed)."""
    out: dict[str, dict[int, Row]] = {}
    for r in rows:
        out.setdefault(name(r), {})[r["seed"]] = r
    return out


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def seeded_table(groups: dict[str, dict[int, Row]], key: str, unit: str) -> list[str]:
    """One row per contender: ``key`` per seed, mean ± std, training seconds and steps per seed, load, host."""
    seeds = sorted({s for lines in groups.values() for s in lines})
    out = [f"| contender | {' | '.join(f'seed {s}' for s in seeds)} | mean ± std ({unit}) | train s per seed | "
           "steps per seed | stopped | load before | host |",
           "| --- |" + " ---: |" * (len(seeds) + 3) + " --- | ---: | --- |"]
    for name, lines in groups.items():
        values = [lines[s][key] for s in seeds if s in lines]
        mean, std = mean_std(values)
        load = span((lines[s].get("loadavg", lines[s].get("loadavg_1m_before")) for s in lines), ".1f")
        stops = sorted({lines[s].get("stop_reason") or "its own clock, at the budget" for s in lines})
        out.append(f"| {name} | " + " | ".join(f"{lines[s][key]:.3f}" if s in lines else "-" for s in seeds)
                   + f" | {mean:.3f} ± {std:.3f} | " + " / ".join(f"{lines[s]['train_s']:.0f}" for s in sorted(lines))
                   + " | " + " / ".join(str(lines[s]["steps"]) for s in sorted(lines))
                   + f" | {'; '.join(stops)} | {load} | {host(next(iter(lines.values())))} |")
    return out


def spread_verdict(ours: list[float], theirs: list[float]) -> str:
    """``ahead``/``tie``/``behind`` (lower is better) with the numbers it rests on."""
    (mine, my_std), (other, other_std) = mean_std(ours), mean_std(theirs)
    spread = max(my_std, other_std)
    word = {"win": "ahead", "loss": "behind", "tie": "tie"}[verdict(mine - other, spread)]
    per_seed = ", ".join(f"{a - b:+.3f}" for a, b in zip(ours, theirs))
    return (f"{word} ({mine - other:+.3f} against a spread of {spread:.3f}, the larger seed std; per seed, ours "
            f"minus theirs: {per_seed})")


def invocation_line(rows: list[Row]) -> str:
    """Which invocation, commit and command the seeded lines come from, and their threads and CPUs."""
    first = rows[0]
    threads = span((r.get("threads") for r in rows if r.get("threads") is not None), "d")
    cpus = sorted({str(r.get("cpu_affinity")) for r in rows})
    return (f"One invocation, {first['invocation']} UTC, commit {first['commit']}, seeds "
            f"{', '.join(map(str, first['seeds']))}; {threads} thread(s), CPU affinity {', '.join(cpus)} (the load "
            "is the whole machine's 1-minute average: other work ran on the other CPUs):\n\n"
            f"    {first['command']}")
