"""``## Real tables``: ``realnvp train --data`` with no flags against Gaussians, a BIC-chosen mixture, a
KDE and zuko's NSF and MAF on public tables from R's datasets (``benchmarks/real_tables.py`` writes the
lines); per table the mean over seeds, with the seeds' spread, and the issue's tallies."""

from __future__ import annotations

import statistics
from typing import Any

from benchmarks.rawlines import Row
from benchmarks.render.fixed import goal

CONTENDERS = ["realnvp", "gaussian", "shrinkage", "gmm", "kde", "zuko_nsf", "zuko_maf"]


def variant(row: Row) -> str:
    """The column a line belongs to: realnvp lines by tag, the others by contender."""
    if row["contender"] == "realnvp" and row.get("tag"):
        return f"realnvp[{row['tag']}]"
    return row["contender"]


def collect(rows: list[Row], tables: list[str], budget: float) -> dict[tuple[str, str], dict[int, Row]]:
    """``{(table, variant): {seed: last line}}`` for the chosen tables at this budget."""
    out: dict[tuple[str, str], dict[int, Row]] = {}
    for row in rows:
        if row["table"] in tables and row.get("budget_s") == budget:
            out.setdefault((row["table"], variant(row)), {})[row["seed"]] = row
    return out


def cell(lines: dict[int, Row] | None, key: str) -> str:
    """``mean ± std`` over seeds of ``key`` (std of the seeds' values; 'err' if any seed failed)."""
    if not lines:
        return ""
    values = [line.get(key) for line in lines.values()]
    if any(v is None for v in values):
        return "err"
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {spread:.3f}"


def ahead(got: dict, ours: str, table: str, others: list[str]) -> bool | None:
    """Is ``ours``'s mean NLL (over the seeds all of them share) at most the best of ``others``?"""
    sets = [got.get((table, v), {}) for v in (ours, *others)]
    seeds = set.intersection(*(set(s) for s in sets))
    values = [[s[k].get("nll_mean") for k in sorted(seeds)] for s in sets]
    if not seeds or any(v is None for vs in values for v in vs):
        return None
    return statistics.mean(values[0]) <= min(statistics.mean(v) for v in values[1:])


def _table(got: dict, present: list[str], variants: list[str], key: str) -> list[str]:
    out = ["| table | rows x cols | seeds | " + " | ".join(variants) + " |", "|---" * (3 + len(variants)) + "|"]
    for t in present:
        some = next(iter(next(got[(t, v)] for v in variants if (t, v) in got).values()))
        seeds = sorted({s for v in variants for s in got.get((t, v), {})})
        cells = " | ".join(cell(got.get((t, v)), key) for v in variants)
        out.append(f"| {t} | {some['n_train'] + some['n_test']} x {some['n_cols']} | "
                   f"{','.join(map(str, seeds))} | {cells} |")
    return out


def _tallies(got: dict, present: list[str], ours: str) -> list[str]:
    out = [f"**{ours}** (mean NLL, over the seeds both have):"]
    for others, key, label in ((["gaussian", "shrinkage"], "not_worse_than_gaussians",
                                "at most the better of gaussian/shrinkage"),
                               (["gmm"], "ahead_of_gmm", "ahead of gmm"),
                               (["zuko_nsf"], "ahead_of_zuko_nsf", "ahead of zuko_nsf")):
        share = goal("real_tables", key)
        verdicts = [ahead(got, ours, t, others) for t in present]
        known = [v for v in verdicts if v is not None]
        wins = sum(known)
        losers = [t for t, v in zip(present, verdicts) if v is False]
        met = "met" if known and wins >= share * len(known) - 1e-9 else "NOT met"
        out.append(f"- {label}: {wins}/{len(known)} tables (goal {share:.0%}: {met})"
                   + (f"; behind on {', '.join(losers)}" if losers else ""))
    return out


def summary(rows: list[Row], tables: list[str], budget: float, order: list[str] = CONTENDERS) -> str:
    """Markdown: mean and median NLL per table and contender, then the issue's tallies."""
    got = collect(rows, tables, budget)
    found = {v for _, v in got}
    variants = [c for c in order if c in found] + sorted(found - set(order))
    present = [t for t in tables if any((t, v) in got for v in variants)]
    if not present:
        return f"no lines for these tables at budget {budget:g} s"
    out = [f"Test NLL, nats per row, original units; mean over seeds ± std of the seeds; budget {budget:g} s."]
    for key, title in (("nll_mean", "mean over test rows"), ("nll_median", "median over test rows")):
        out += ["", f"**{title}**", "", *_table(got, present, variants, key)]
    for ours in (v for v in variants if v.startswith("realnvp")):
        out += ["", *_tallies(got, present, ours)]
    return "\n".join(out)


def real_tables_section(rows: list[Row], roles: dict[str, str]) -> str:
    """The section: the report tables (what is claimed), then the design tables (what chose the defaults)."""
    if not rows:
        return ""
    budget = goal("real_tables", "budget_s")
    hosts = sorted({r["host"]["cpu"] for r in rows if isinstance(r.get("host"), dict) and r["host"].get("cpu")})
    commits = sorted({str(r.get("realnvp_commit"))[:7] for r in rows if r["contender"] == "realnvp"})
    out = [f"## Real tables (issue {goal('real_tables', 'issue')})", "",
           "`python -m benchmarks.real_tables` (its docstring gives the protocol and the venv); every line is in "
           "`real_tables_results.jsonl` with its host's CPU model and flags and its load average.",
           f"Hosts: {', '.join(hosts) or 'not recorded'}; realnvp commits: {', '.join(commits)}.", ""]
    for role in ("report", "design"):
        names = [t for t, r in roles.items() if r == role]
        note = ([] if role == "report" else [
            "Each cell keeps the last line of its table, seed and column: `realnvp` untagged is the first design "
            "run (the defaults of its commit), `realnvp[TAG]` a variant the defaults were chosen between; every "
            "other contender scored the same dequantized lattice columns realnvp models.", ""])
        out += [f"### {role} tables", "", *note, summary(rows, names, budget), ""]
    return "\n".join(out)


def roles_of(rows: list[Row]) -> dict[str, str]:
    """``{table: role}`` as the lines record it, in the order first seen."""
    roles: dict[str, Any] = {}
    for r in rows:
        roles.setdefault(r["table"], r.get("role", "report"))
    return roles
