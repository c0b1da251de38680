"""``## moons`` (protocol A): the table of every implementation and seed, and its reading: the default
preset against its goal, ours against the best peer per seed, bf16, divergences and speed."""

from __future__ import annotations

import math
import statistics

from benchmarks.rawlines import Row
from benchmarks.render.cells import (
    REFERENCE,
    added_after,
    by_rows,
    finite_mean,
    group,
    host,
    hosts_line,
    loads,
    num,
    ordered,
    previous_sentence,
    span,
    tally,
    verdict,
)
from benchmarks.render.fixed import goal, met, prose

# Order of the implementations in the table (the driver's RUNS order).
MOONS_ORDER = ("torch_ref", "normflows", "nflows", "nflows_exp", "zuko", "jax", "realnvp", "realnvp_nospin",
               "realnvp_noflush", "realnvp_bf16", "realnvp_compiled", "realnvp_pwl", "realnvp_moons_preset")
Seeds = dict[int, Row]
SLOW = 1.25  # a row this much slower than the same implementation's fastest seed is named
BUSY_LOAD = 3  # a row started at this load average or above is named
HIGH_NLL = 2  # nats: a test NLL above this is named as diverged


def moons_table(rows: list[Row]) -> str:
    """The moons table: one line per implementation (``MOONS_ORDER``), per-seed NLL, ms/step and load."""
    by = group(rows)
    seeds = sorted({s for mine in by.values() for s in mine})
    ref = finite_mean(r["step_ms_median"] for r in by.get(REFERENCE, {}).values())
    head = ("| implementation | params | " + " | ".join(f"NLL seed {s}" for s in seeds) + " | mean test NLL | "
            "ms/step per seed | mean ms/step | ratio to torch_ref | wall s | load before per seed | host |")
    out = [head, "| --- |" + " ---: |" * (head.count("|") - 3) + " --- |"]
    for label in ordered(by, MOONS_ORDER):
        mine = by[label]
        nll = [mine[s]["test_nll"] if s in mine else None for s in seeds]
        nans = sum(v is not None and not math.isfinite(v) for v in nll)
        mean = num(finite_mean(nll)) + (f" ({nans} NaN left out)" if nans else "")
        ms = [mine[s].get("step_ms_median") for s in seeds if s in mine]
        mean_ms = finite_mean(ms)
        steps = {r.get("steps") for r in mine.values()} - {None}
        name = label + (f" ({', '.join(map(str, sorted(steps)))} steps)" if steps else "")
        cells = [name, f"{next(iter(mine.values()))['params']:,}", *(num(v) for v in nll), mean,
                 " / ".join(num(m, ".1f") for m in ms), num(mean_ms, ".1f"),
                 num(mean_ms / ref if mean_ms and ref else None, ".2f"),
                 f"{statistics.mean(r['wall_s'] for r in mine.values()):.0f}",
                 " / ".join(num(loads(mine[s])[0], ".2f") for s in seeds if s in mine),
                 ", ".join(sorted({host(r) for r in mine.values()}))]
        out.append("| " + " | ".join(cells) + " |")
    ok = [r for r in rows if "error" not in r]
    before = [loads(r)[0] for r in ok]
    busy = [r.get("cpu_busy_before", 0.0) for r in ok]
    out += ["", f"{len(ok)} runs ({len(rows) - len(ok)} failed); 1-min load average before each run "
            f"{span(before)} (median {statistics.median(before):.2f}); CPU busy fraction before each run "
            f"{span(busy)}."]
    out += [f"FAILED: {r['peer']} seed {r.get('seed')}: {r['error']}" for r in rows if "error" in r]
    return "\n".join(out)


def _nll_spread(a: Seeds, b: Seeds) -> tuple[float, list[int]]:
    """Largest per-seed |NLL difference| between two runs of the same model (eager vs compiled)."""
    seeds = sorted(set(a) & set(b))
    diffs = [abs(a[s]["test_nll"] - b[s]["test_nll"]) for s in seeds]
    return (max(diffs) if diffs else float("nan")), seeds


def _best_peer(by: dict[str, Seeds], seeds: list[int]) -> str | None:
    """The peer with the lowest mean test NLL among those finite on every seed."""
    peers = [x for x in by if not x.startswith("realnvp")
             and all(s in by[x] and math.isfinite(by[x][s]["test_nll"]) for s in seeds)]
    return min(peers, key=lambda x: statistics.mean(by[x][s]["test_nll"] for s in seeds), default=None)


def _preset_goal(preset: Seeds) -> str:
    """The default preset's per-seed NLL against its goal."""
    nll = [preset[s]["test_nll"] for s in sorted(preset)]
    limit = goal("moons", "preset_test_nll_max")
    return (f"- **Default `moons` preset: {' / '.join(num(v) for v in nll)} nats, mean "
            f"{num(statistics.mean(nll))}** (goal <= {limit:g}: {met(max(nll), limit)}), "
            f"{span((r['steps'] for r in preset.values()), ',d')} steps in "
            f"{span((r['wall_s'] for r in preset.values()), '.0f')} s of wall time (budgets "
            f"{span((r['budget_s'] for r in preset.values()), '.0f')} s).")


def _against_peer(ours: Seeds, theirs: Seeds, peer: str, seeds: list[int], spread: float) -> str:
    """Ours minus the best peer, per seed, each a win, tie or loss against the eager/compiled spread."""
    diffs = {s: ours[s]["test_nll"] - theirs[s]["test_nll"] for s in seeds}
    verdicts = [verdict(diffs[s], spread) for s in seeds]
    mean_o = statistics.mean(ours[s]["test_nll"] for s in seeds)
    mean_p = statistics.mean(theirs[s]["test_nll"] for s in seeds)
    outside = [s for s in seeds if abs(diffs[s]) > spread]
    return (f"- **Same model, same steps: realnvp against {peer}** (the peer with the lowest mean among those "
            f"finite on every seed): means {num(mean_o)} vs {num(mean_p)}. Spread: the largest per-seed "
            f"difference between our eager and compiled runs (same maths, different float rounding) is "
            f"{num(spread)} nats. Per seed, ours minus {peer}: "
            + ", ".join(f"seed {s} {diffs[s]:+.3f} ({v})" for s, v in zip(seeds, verdicts))
            + f": {tally(verdicts)}. The means differ by {abs(mean_o - mean_p):.3f}; only "
            f"{'seed ' + ', '.join(map(str, outside)) if outside else 'no seed'} differs by more than the spread.")


def _bf16_against_fp32(bf16: Seeds, ours: Seeds, seeds: list[int], spread: float) -> str:
    diffs = {s: bf16[s]["test_nll"] - ours[s]["test_nll"] for s in seeds if s in bf16}
    verdicts = [verdict(d, spread) for d in diffs.values()]
    return ("- **bf16 against fp32** (same seeds and steps): per seed, realnvp_bf16 minus realnvp "
            + ", ".join(f"seed {s} {d:+.3f}" for s, d in diffs.items())
            + f" nats against the eager/compiled spread {num(spread)}: {tally(verdicts)}.")


def _scale_init_caveat(old_o: Seeds, old_c: Seeds) -> str:
    """How ``model.scale_init = 2`` was chosen, with the superseded lines of scales started at 1."""
    old_spread, _ = _nll_spread(old_o, old_c)
    return ("- Caveat on the choice: `model.scale_init = 2` (the couplings' tanh scales start at 2, not 1) was "
            "picked by looking at this protocol's test NLL on these same seeds, which the discipline in "
            "`README.md` now forbids, and has not been re-run on fresh seeds. With scales started at 1 "
            f"(superseded lines): realnvp {' / '.join(num(old_o[s]['test_nll']) for s in sorted(old_o))}, "
            f"mean {num(statistics.mean(r['test_nll'] for r in old_o.values()))}; compiled "
            f"{' / '.join(num(old_c[s]['test_nll']) for s in sorted(old_c))} (eager-vs-compiled spread then "
            f"{num(old_spread)}).")


def _moons_quality(by: dict[str, Seeds], previous: list[Row]) -> list[str]:
    """Reading of the NLL columns: the preset's goal, ours vs the best peer per seed, bf16, the caveat."""
    out = [_preset_goal(by["realnvp_moons_preset"])] if by.get("realnvp_moons_preset") else []
    ours = by.get("realnvp", {})
    spread, seeds = _nll_spread(ours, by.get("realnvp_compiled", {}))
    peer = _best_peer(by, seeds) if seeds else None
    if peer:
        out.append(_against_peer(ours, by[peer], peer, seeds, spread))
    if by.get("realnvp_bf16") and seeds:
        out.append(_bf16_against_fp32(by["realnvp_bf16"], ours, seeds, spread))
    old = group([r for r in previous if r.get("discarded")])
    if old.get("realnvp"):
        out.append(_scale_init_caveat(old["realnvp"], old.get("realnvp_compiled", {})))
    return out


def _moons_divergence(by: dict[str, Seeds]) -> str:
    """Which runs ended with a NaN or a test NLL above 2, and whether any of ours did."""
    bad = [f"{label} seed {s} ({r.get('nan_losses', '?')} NaN losses)" for label, mine in by.items()
           for s, r in sorted(mine.items()) if not math.isfinite(r["test_nll"])]
    high = [f"{label} seed {s} ({num(r['test_nll'])})" for label, mine in by.items()
            for s, r in sorted(mine.items()) if math.isfinite(r["test_nll"]) and r["test_nll"] > HIGH_NLL]
    ours = [r for label, mine in by.items() if label.startswith("realnvp") for r in mine.values()]
    clean = all(math.isfinite(r["test_nll"]) and not r.get("nan_losses") for r in ours)
    return (f"- Test NLL NaN: {', '.join(bad) or 'none'}; above {HIGH_NLL} nats: {', '.join(high) or 'none'}. "
            f"Our {len(ours)} runs: {'every NLL finite, no NaN loss' if clean else 'not all finite'} "
            "(the log-scales are `scale * tanh`, bounded).")


def ms_per_step(mine: Seeds) -> list[float]:
    """The median ms/step of each seed that has one, in seed order."""
    return [r["step_ms_median"] for _, r in sorted(mine.items()) if r.get("step_ms_median") is not None]


def speed_compare(by: dict[str, Seeds], ours: str, theirs: str) -> str:
    """``ours`` vs ``theirs`` in ms/step: means, the spread (the larger seed-to-seed range of the two:
    seeds do not change the work, so it is run-to-run noise), the per-seed verdicts and the means'."""
    a, b = by.get(ours, {}), by.get(theirs, {})
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return f"{ours} vs {theirs}: no common seed"
    spread = max(max(ms_per_step(a)) - min(ms_per_step(a)), max(ms_per_step(b)) - min(ms_per_step(b)))
    diffs = [a[s]["step_ms_median"] - b[s]["step_ms_median"] for s in seeds]
    mean_a, mean_b = statistics.mean(ms_per_step(a)), statistics.mean(ms_per_step(b))
    verdicts = [verdict(d, spread) for d in diffs]
    return (f"{ours} {mean_a:.1f} ms/step vs {theirs} {mean_b:.1f} ({mean_a / mean_b:.2f}x); spread "
            f"{spread:.1f} ms; per seed " + ", ".join(f"{d:+.1f}" for d in diffs) + f" ms ({tally(verdicts)}); "
            f"means: {verdict(mean_a - mean_b, spread)}")


def _moons_speed(by: dict[str, Seeds]) -> list[str]:
    """Reading of the ms/step columns: ours vs the eager reference and JAX, compile time, slowed rows."""
    pairs = (("realnvp", REFERENCE), ("realnvp", "jax"), ("realnvp_nospin", "jax"), ("realnvp_compiled", "jax"),
             ("realnvp", "realnvp_noflush"), ("realnvp_bf16", "realnvp"), ("realnvp_bf16", "jax"))
    out = ["- **Speed** (a difference inside the spread is a tie): "
           + "; ".join(speed_compare(by, o, t) for o, t in pairs if by.get(o) and by.get(t)) + "."]
    first = [r["first_step_ms"] / 1000 for r in by.get("realnvp_compiled", {}).values() if r.get("first_step_ms")]
    jit = [r["first_step_ms_incl_jit"] / 1000 for r in by.get("jax", {}).values() if r.get("first_step_ms_incl_jit")]
    out.append(f"- First step, compilation included: realnvp_compiled {span(first, '.1f')} s (the Inductor "
               f"cache's state is not recorded), JAX's jit {span(jit, '.1f')} s. A cold-cache compile time quoted "
               "before has no raw line and is left out.")
    slow = []
    for label, mine in by.items():
        ms = ms_per_step(mine)
        slow += [f"{label} seed {s} ({r['step_ms_median']:.1f} ms against {min(ms):.1f}; load "
                 f"{num(loads(r)[0], '.2f')}, CPU busy {num(r.get('cpu_busy_before'), '.2f')}, waited "
                 f"{num(r.get('waited_s'), '.0f')} s)"
                 for s, r in sorted(mine.items()) if r.get("step_ms_median") and r["step_ms_median"] > SLOW * min(ms)]
    busy = [f"{label} seed {s} (load {num(loads(r)[0], '.2f')}, CPU busy {num(r.get('cpu_busy_before'), '.2f')})"
            for label, mine in by.items() for s, r in sorted(mine.items()) if (loads(r)[0] or 0) >= BUSY_LOAD]
    out.append(f"- Rows over {100 * (SLOW - 1):.0f} % slower than the same implementation's fastest seed: "
               + ("; ".join(slow) or "none") + ". What else ran on the machine then is not in the lines. Rows kept "
               f"although made at load >= {BUSY_LOAD}: "
               + ("; ".join(busy) or "none") + ".")
    runs = sorted({r.get("invocation") or "not recorded" for r in by_rows(by)})
    spin = sorted({r.get("gomp_spincount") or "off" for r in by.get("realnvp", {}).values()})
    out.append(f"- Invocations: {', '.join(runs)}"
               + (" (one run of the driver, peers and ours interleaved)." if len(runs) == 1 and runs[0] !=
                  "not recorded" else ": not one interleaved invocation, which the discipline forbids.")
               + f" The `realnvp` row's OpenMP spin: {', '.join(spin)}.")
    return out


def moons_section(rows: list[Row], previous: list[Row]) -> str:
    """The whole ``## moons`` section of RESULTS.md."""
    by = group(rows)
    versions = sorted({r["torch"] for r in rows if r.get("torch")}) + sorted(
        {f"jax {r['jax']}" for r in rows if r.get("jax")})
    notes = sorted({r["note"].split(":")[0] for r in rows if ":" in r.get("note", "") and r["peer"] in
                    ("normflows", "nflows", "zuko")})
    return "\n".join([
        prose("moons") + "\n", f"Versions on the lines: torch {', '.join(versions)}; peers: {', '.join(notes)}. "
        + previous_sentence(previous, "moons_results_previous.jsonl") + added_after(rows), "", moons_table(rows), "",
        hosts_line(rows), "",
        "Reading it:",
        *_moons_quality(by, previous), _moons_divergence(by), *_moons_speed(by), ""])
