"""``## Tables``: ``realnvp train --data`` with no flags against a Gaussian, a mixture and a KDE on public
and known-density tables, the latest seed-0 line of each (``benchmarks.tabular`` writes the lines)."""

from __future__ import annotations

from benchmarks.rawlines import Row
from benchmarks.render.cells import finite_mean, host, hosts_line, load_cell, loads, num, plural
from benchmarks.render.fixed import goal, prose

# The tables benchmarks.tabular runs (defined here, where the standard-library renderer can read them).
SIZES = (100, 1000, 10_000, 100_000)
DIMS = (2, 8, 16, 32)
N_TEST_SYNTH = 5000
# A flow kept at its untrained Gaussian scores the test rows in float32, the baseline in float64: they
# differ by about 1e-6 nats, which is a tie, not a loss.
TIE = 1e-4
SMALL = 1000  # rows: tables under this choose their steps by cross-validation
LARGE = 10_000  # rows: the mean KL gap is over tables with at least this many training rows


def tabular_names() -> list[tuple[str, int, int]]:
    """``(name, rows, dim)`` of every table ``tabular.py`` knows, the skipped ones included."""
    real = [("iris", 150, 4), ("diabetes", 442, 10), ("digits", 1797, 64)]
    return real + [(f"synth{d}_n{n}", n, d) for d in DIMS for n in SIZES]


def _tabular_row(r: Row) -> tuple[list[str], float, float | None]:
    """One table line's cells, its margin over the best baseline per dim and its KL gap per dim."""
    gap = r.get("kl_gap")
    margin = (r["ours"] - min(r["gaussian"], r["gmm"], r["kde"])) / r["dim"]
    cells = [r["table"], f"{r['rows'] - (N_TEST_SYNTH if gap is not None else 0)} x {r['dim']}",
             f"{r['ours']:.3f}", f"{r['gaussian']:.3f}", f"{r['gmm']:.3f} ({r['gmm_components']})",
             f"{r['kde']:.3f}", f"{r['entropy']:.3f}" if gap is not None else "",
             f"{gap / r['dim']:.4f}" if gap is not None else "", f"{margin:+.4f}", f"{r['wall_s']:.0f}",
             load_cell(r), r.get("commit") or "not recorded", host(r)]
    return cells, margin, (gap / r["dim"] if gap is not None else None)


def _summary(latest: dict[str, Row], wins: int, close: int, gaps: list[tuple[float, str]]) -> str:
    """The counts under the table: ties-or-wins against the Gaussian, near-best tables, KL gaps, commits."""
    n = len(latest)
    small = [r for r in latest.values() if r["rows"] - (N_TEST_SYNTH if "kl_gap" in r else 0) < SMALL]
    commits = sorted({r["commit"] for r in latest.values() if r.get("commit")})
    unrecorded = sum(not r.get("commit") for r in latest.values())
    return (f"\n{n} tables; ours <= Gaussian on {wins}/{n}; within {goal('tabular', 'near_best_nats_per_dim'):g} "
            f"nats/dim of the best baseline on {close}/{n} ({100 * close / max(n, 1):.0f} %); mean KL gap for n >= "
            f"{LARGE:,}: {num(finite_mean(g for g, _ in gaps) if gaps else float('nan'), '.4f')} nats/dim (largest: "
            f"{'; '.join(f'{name} {g:.4f}' for g, name in sorted(gaps)[-1:])}); slowest run "
            f"{max((r['wall_s'] for r in latest.values()), default=0):.0f} s. The rows were run at "
            f"{plural(len(commits), 'commit')} ({', '.join(commits)})"
            + (f" and {unrecorded} before commits were recorded" if unrecorded else "") + "; "
            f"{sum('cv_folds=' in r.get('defaults', '') for r in small)} of the {len(small)} tables under "
            f"{SMALL:,} rows ran with cross-validated steps. {hosts_line(list(latest.values()))}")


def _reruns(rows: list[Row], latest: dict[str, Row], seed: int) -> list[str]:
    """A sentence for each shown line that replaced an earlier run of the same table at the same commit."""
    reruns = [(r, [e for e in rows if e["table"] == r["table"] and e["seed"] == seed and not e["extra"]
                   and e.get("commit") == r.get("commit") and e is not r]) for r in latest.values()]
    return [f"\n{r['table']} was run again alone at the same commit; the shown line replaces "
            + ", ".join(f"a {e['wall_s']:.0f} s run (load {num(loads(e)[0], '.1f')} before, "
                        f"{num(loads(e)[1], '.1f')} after; same NLL {e['ours']:.3f})"
                        if abs(e["ours"] - r["ours"]) < 1e-9 else f"a run with NLL {e['ours']:.3f}"
                        for e in earlier) + "." for r, earlier in reruns if earlier]


def tabular_table(rows: list[Row], seed: int = 0) -> str:
    """The table section's body: one line per table (the latest seed-``seed`` line), then the counts."""
    latest = {r["table"]: r for r in rows if r["seed"] == seed and not r["extra"]}
    lines = ["| table | rows x D | ours | Gaussian | GMM (BIC) | KDE (CV) | entropy | KL gap /dim | ours - best /dim "
             "| wall s | load | commit | host |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    wins = close = 0
    gaps, missing = [], []
    for name, _, _ in tabular_names():
        if name not in latest:
            missing.append(name)
            continue
        cells, margin, gap = _tabular_row(latest[name])
        wins += latest[name]["ours"] <= latest[name]["gaussian"] + TIE
        close += margin <= goal("tabular", "near_best_nats_per_dim")
        if gap is not None and latest[name]["rows"] - N_TEST_SYNTH >= LARGE:
            gaps.append((gap, name))
        lines.append("| " + " | ".join(cells) + " |")
    if missing:
        lines.append(f"\nNo row yet for {', '.join(missing)}.")
    lines.append(_summary(latest, wins, close, gaps))
    return "\n".join(lines + _reruns(rows, latest, seed))


def tabular_section(rows: list[Row], seed: int = 0) -> str:
    """The whole ``## Tables`` section (``python -m benchmarks.tabular --table`` prints it)."""
    return prose("tabular", tie=f"{TIE:.0e}".replace("e-0", "e-")) + "\n\n" + tabular_table(rows, seed) + "\n"
