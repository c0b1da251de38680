"""``## conditional``: class-conditional digits against the unconditional preset with a classifier check of
the samples, and rotated moons against the exact conditional entropy."""

from __future__ import annotations

import math

from benchmarks.rawlines import Row
from benchmarks.render.cells import as_module, host, hosts_line, load_cell, loads, span
from benchmarks.render.fixed import goal, prose


def _digits_conditional(rows: list[Row]) -> list[str]:
    """The class-conditional digits table and the classifier check of its samples."""
    plain = [r for r in rows if r["task"] == "digits" and r["preset"] == "digits"]
    cond = [r for r in rows if r["task"] == "digits" and r["preset"] == "digits-cond"]
    if not (plain and cond):
        return []
    a, b = plain[-1], cond[-1]
    out = [f"**Digits, same {a['budget_s']:.0f} s budget.** `digits-cond` is the `digits` model whose s/t ResNets also "
           f"see a learned label embedding ({b['n_params'] - a['n_params']:+,} parameters); its figure is "
           f"`-log2 p(x | y)` per dimension against `-log2 p(x)` (the label is worth at most log2(10)/64 = "
           f"{math.log2(10) / 64:.3f} bits/dim): {b['test_bits_per_dim'] - a['test_bits_per_dim']:+.4f} bits/dim.", "",
           "| model | steps | test bits/dim | IW bound | train bits/dim | params | command | load before / after "
           "| host |",
           "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- |"]
    out += [f"| `{r['preset']}` | {r['steps']} | {r['test_bits_per_dim']:.4f} | {r['test_bits_per_dim_iw']:.4f} | "
            f"{r['train_bits_per_dim']:.4f} | {r['n_params']:,} | `{as_module(r['command'])}` | {load_cell(r)} | "
            f"{host(r)} |"
            for r in (a, b)]
    out += ["", "A classifier fit on the real training digits recognises the requested class in the conditional "
            "samples at temperature 0.7:", "",
            "| classifier (real test accuracy) | requested class recognised | worst class |", "| --- | ---: | --- |"]
    for key, name in (("logistic", "LogisticRegression"), ("svc", "SVC, RBF")):
        per = b.get(f"{key}_per_class_t0.7")
        if per is None:
            continue
        out.append(f"| {name} ({b[f'{key}_real_test_accuracy']:.3f}) | "
                   f"{100 * b[f'{key}_sample_accuracy_t0.7']:.1f} % | {100 * min(per):.0f} % ({_worst(per)}) |")
    return out + [""]


def _worst(per_class: list[float]) -> str:
    """The classes with the lowest score, or "every class" when they all tie."""
    worst = [str(i) for i, v in enumerate(per_class) if v == min(per_class)]
    return "every class" if len(worst) == len(per_class) else ", ".join(worst)


def _moons_conditional(rows: list[Row]) -> list[str]:
    """The rotated-moons runs: test NLL against the known conditional entropy."""
    runs = [r for r in rows if "true_conditional_entropy_nats" in r]
    if not runs:
        return []
    h, se = runs[-1]["true_conditional_entropy_nats"], runs[-1]["entropy_mc_se"]
    out = ["**Rotated moons** (`rotated-moons`, `data/rotated.py`): two moons turned by theta ~ U[0, pi) about their "
           "centre, theta given as context; the density is a known continuous mixture, so the true conditional "
           f"entropy is computed, not estimated by a KDE: H(X | theta) = {h:.4f} nats (Monte Carlo standard error "
           f"{se:.4f}). Test NLL of `log p(x | theta)`:", "",
           "| run | budget s | steps | stopped | test NLL | gap to H(X \\| theta) | command | load before / after "
           "| host |",
           "| --- | ---: | ---: | --- | ---: | ---: | --- | ---: | --- |"]
    out += [f"| {r['date']} | {r['budget_s']:.0f} | {r['steps']:,} | {r['stop_reason']} | {r['test_nll_nats']:.4f} | "
            f"{r['gap_nats']:+.3f} | `{as_module(r['command'])}` | {load_cell(r)} | {host(r)} |" for r in runs]
    full = [r for r in runs if r["stop_reason"].startswith("reached")]
    if full:
        gaps, limit = [r["gap_nats"] for r in full], goal("conditional", "rotated_moons_gap_max")
        out += ["", f"The target is a gap <= {limit:g} nats. Runs that finished their schedule: gaps "
                f"{', '.join(f'{g:+.3f}' for g in gaps)} ({sum(g <= limit for g in gaps)} of {len(gaps)} at or under "
                f"{limit:g}), {max(gaps) - min(gaps):.3f} apart; the test NLL's own standard error is not in the "
                "lines, so whether that difference is noise is not measured."]
    return out + [""]


def conditional_section(rows: list[Row]) -> str:
    """The whole ``## conditional`` section."""
    loads_before = [loads(r)[0] for r in rows]
    return "\n".join([prose("conditional") + "\n", *_digits_conditional(rows), *_moons_conditional(rows),
                      f"Load before the runs {span(loads_before, '.1f')} on the 2-core box. {hosts_line(rows)}", ""])
