"""Cells and verdicts every section uses: numbers, ranges, hosts and loads of raw lines, grouping by
implementation and seed, and the win / tie / loss rule (a difference inside the spread is a tie)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable

from benchmarks.rawlines import Row

REFERENCE = "torch_ref"  # the eager PyTorch reference every speed ratio is taken against


def num(value: float | None, spec: str = ".3f") -> str:
    """``value`` formatted with ``spec``; "-" when missing, "NaN" when not finite."""
    if value is None:
        return "-"
    return "NaN" if isinstance(value, float) and not math.isfinite(value) else format(value, spec)


def span(values: Iterable[float], spec: str = ".2f") -> str:
    """``lo-hi`` of ``values`` (one figure when they are equal), "-" when there are none."""
    values = sorted(values)
    if not values:
        return "-"
    lo, hi = num(values[0], spec), num(values[-1], spec)
    return lo if lo == hi else f"{lo}-{hi}"


def plural(n: int, word: str) -> str:
    """``"1 win"``, ``"2 wins"``."""
    return f"{n} {word}{'' if n == 1 else ('es' if word.endswith('s') else 's')}"


def host(row: Row) -> str:
    """The CPU model of a raw line, with its vector extensions when the line has ``lscpu`` flags, or
    what the line lacks."""
    model = row.get("cpu")
    if not model:
        return "not recorded"
    if model in ("x86_64", "aarch64", "arm64"):
        return f"{model} (no model name, no lscpu flags)"
    if row.get("cpu_flags"):
        flags, partial = set(row["cpu_flags"].split()), ""
    elif "avx512" in row:
        flags, partial = set(row["avx512"]) | ({"avx2"} if row.get("avx2") else set()), " (AVX flags only)"
    else:
        return f"{model} (no lscpu flags)"
    vector = "AVX-512" if "avx512f" in flags else "AVX2, no AVX-512" if "avx2" in flags else "no AVX2"
    return f"{model}, {vector}{partial}"


def loads(row: Row) -> tuple[float | None, float | None]:
    """The 1-minute load average before and after a run, whatever the driver called them."""
    before = row.get("loadavg_1m_before", row.get("load_before"))
    after = row.get("loadavg_1m_at_end", row.get("load_after", row.get("loadavg_after")))
    if before is None and "start_load" in row:
        before = row["start_load"][0]
    if before is None and isinstance(row.get("loadavg"), (int, float)):
        before = row["loadavg"]
    if after is None and isinstance(row.get("loadavg"), list) and "start_load" in row:
        after = row["loadavg"][0]
    return before, after


def load_cell(row: Row) -> str:
    """``before / after`` of ``loads``, "-" for a missing side."""
    before, after = loads(row)
    return f"{num(before, '.2f')} / {num(after, '.2f')}"


def hosts_line(rows: list[Row]) -> str:
    """One sentence naming the hosts of ``rows`` (a table usually has one)."""
    names = sorted({host(r) for r in rows})
    return "Host of every row: " + "; ".join(names) + "." if len(names) == 1 else \
        "Hosts: " + "; ".join(names) + " (per row in the table)."


def verdict(diff: float, spread: float, lower_is_better: bool = True) -> str:
    """``win``/``loss``/``tie`` of ours minus theirs: inside ``spread`` (inclusive) is a tie."""
    if not math.isfinite(diff):
        return "not comparable"
    if abs(diff) <= spread:
        return "tie"
    return "win" if (diff < 0) == lower_is_better else "loss"


def tally(verdicts: list[str]) -> str:
    """``"1 win, 2 ties, 0 losses"`` of a list of ``verdict`` results."""
    return ", ".join(plural(verdicts.count(v), v) for v in ("win", "tie", "loss"))


def group(rows: list[Row], key: str = "label") -> dict[str, dict[int, Row]]:
    """``{label: {seed: row}}``, the last line winning for a repeated (label, seed)."""
    out: dict[str, dict[int, Row]] = {}
    for r in rows:
        if "error" not in r:
            out.setdefault(r.get(key) or r["peer"], {})[r.get("seed", 0)] = r
    return out


def ordered(labels: Iterable[str], order: tuple[str, ...]) -> list[str]:
    """``labels`` in ``order``, unknown ones after, in their first-seen order."""
    labels = list(dict.fromkeys(labels))
    return [x for x in order if x in labels] + [x for x in labels if x not in order]


def finite_mean(values: Iterable[float]) -> float | None:
    """Mean of the finite values, None when there are none."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.mean(finite) if finite else None


def by_rows(by: dict[str, dict[int, Row]]) -> list[Row]:
    """Every line of a ``group`` result."""
    return [r for mine in by.values() for r in mine.values()]


def previous_sentence(previous: list[Row], filename: str) -> str:
    """One sentence on the lines of earlier runs kept in ``filename``, out of the table."""
    if not previous:
        return ""
    hosts = sorted({host(r) for r in previous})
    return (f"{len(previous)} lines of earlier runs (host: {', '.join(hosts)}; several invocations) are kept in "
            f"`{filename}`, not in the table.")


def added_after(rows: list[Row]) -> str:
    """Says which fields of which lines were added after their run, and why (``recorded_after_run``)."""
    late = [r for r in rows if r.get("recorded_after_run")]
    if not late:
        return ""
    reasons = sorted({r["recorded_after_run"] for r in late})
    return f" {len(late)} lines got their host and invocation fields after the run: {'; '.join(reasons)}."


def as_module(command: str) -> str:
    """A command a raw line recorded as ``benchmarks/NAME.py ARGS`` (before ``benchmarks/`` was a package)
    in today's form, ``-m benchmarks.NAME ARGS``; other commands unchanged."""
    first, _, rest = command.partition(" ")
    if first.startswith("benchmarks/") and first.endswith(".py"):
        first = "-m benchmarks." + first.removeprefix("benchmarks/").removesuffix(".py").replace("/", ".")
    return f"{first} {rest}".rstrip()
