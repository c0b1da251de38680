"""``## mnist10k`` (protocol C): realnvp's 30-minute lines with the commands they record, their reading
against the goals, the design runs that chose the preset's settings and the notes without raw lines."""

from __future__ import annotations

from benchmarks.rawlines import Row
from benchmarks.render.cells import as_module, host, hosts_line, load_cell, num, previous_sentence, span
from benchmarks.render.fixed import goal, met, prose
from benchmarks.render.seeded import by_contender, invocation_line, latest_invocation, mean_std, seeded_table

CURVE_STEPS = (1000, 2000, 3000, 4000, 5000)  # the validation curve's steps shown for every line


def _preset_name(r: Row) -> str:
    """The preset a protocol C line's note names (``realnvp 'NAME' preset ...``); ``mnist-cpu`` when it names none."""
    preset = r.get("note", "").partition(" preset ")[0]
    return preset.split("'")[1] if "'" in preset else "mnist-cpu"


def _mnist_command(r: Row) -> str:
    """The command a line records (in today's module form) when it has one, else the ``mnist10k`` command
    rebuilt from its overrides (from the note) and its sample grid."""
    if r.get("command"):
        return f"PYTHONPATH=src /tmp/peers-venv/bin/python {as_module(r['command'])}"
    overrides = r.get("note", "").partition(" preset ")[2].split(":", 1)[0].split()
    name = _preset_name(r)
    return ("OMP_WAIT_POLICY=PASSIVE PYTHONPATH=src /tmp/peers-venv/bin/python -m benchmarks.mnist10k"
            + (f" --preset {name}" if name != "mnist-cpu" else "")
            + "".join(f" --set {o}" for o in overrides) + f" --samples {r.get('samples', '-')}")


def mnist_table(rows: list[Row]) -> str:
    """Protocol C: realnvp's runs, one line each, with the command each line records."""
    ok = [r for r in rows if "error" not in r and r.get("protocol") == "mnist10k"]
    if not ok:
        return "(no mnist10k runs)"
    out = ["| line | test bits/dim | best val bits/dim (step) | params | images/s | steps | train s | "
           "final train bpd | stopped | load before / at end | host |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- |"]
    for i, r in enumerate(ok, 1):
        out.append(f"| {i} | {r['bits_per_dim']:.3f} | {r['best_val_bpd']:.3f} ({r['best_step']}) | {r['params']:,} "
                   f"| {r['images_per_s']:.1f} | {r['steps']} | {r['train_s']:.0f} | {r['final_train_bpd']:.3f} | "
                   f"{r['stop_reason']} | {load_cell(r)} | {host(r)} |")
    out += ["", "Commands, as the lines record them (line: command):", ""]
    out += [f"    {i}: {_mnist_command(r)}" for i, r in enumerate(ok, 1)]
    return "\n".join(out)


def _goals_sentence(best: float, n_previous: int, plain: bool) -> str:
    """The best line against both goals, and how often the test set had been seen."""
    limit, issue = goal("mnist10k", "test_bpd_max"), goal("mnist10k", "stretch_issue")
    stretch = goal("mnist10k", "stretch_test_bpd_max")
    return (f"- **Best line {best:.3f} bits/dim: goal <= {limit:g} {met(best, limit)}; issue {issue}'s goal <= "
            f"{stretch:.2f} {met(best, stretch)}.** The preset was settled after the test figures of {n_previous} "
            "earlier runs (`mnist10k_results_previous.jsonl`) and of an 8-map eager run with no raw line had been "
            "seen, so it was not chosen on validation alone"
            + ("; the lines here run it as committed, with no overrides." if plain else "."))


def mnist_reading(rows: list[Row], previous: list[Row]) -> list[str]:
    """Sentences about the mnist10k lines: the goals, how often the test set was seen, the curves, the grid."""
    ok = [r for r in rows if "error" not in r and r.get("protocol") == "mnist10k"]
    if not ok:
        return []
    plain = all(" preset : " in r.get("note", "") for r in ok)  # no --set overrides recorded
    out = [_goals_sentence(min(r["bits_per_dim"] for r in ok), len(previous), plain),
           f"- Validation bits/dim at steps {' / '.join(f'{s:,}' for s in CURVE_STEPS)}: "
           + "; ".join(f"line {i} " + " / ".join(num(dict((c[0], c[2]) for c in r["val_bpd_curve"]).get(s))
                                              for s in CURVE_STEPS)
                       for i, r in enumerate(ok, 1)) + "."]
    drew = [i for i, r in enumerate(ok, 1) if r.get("samples", "").endswith("benchmarks/mnist10k_samples.png")]
    temperatures = span((r["sample_temperature"] for r in ok), "g")
    out.append(f"- `mnist10k_samples.png` (committed) is the sample grid line {drew[-1]} wrote, at temperature "
               f"{temperatures}." if drew else
               f"- `mnist10k_samples.png` (committed) is a sample grid at temperature {temperatures}; no line here "
               "names it as its grid, so which run drew it is not recorded.")
    return out


def seeded_mnist(rows: list[Row]) -> list[str]:
    """The newest seeded invocation: test bits/dim of every seed, mean and spread, against the goals."""
    lines = latest_invocation(rows)
    if not lines:
        return []
    groups = by_contender(lines, lambda r: f"realnvp `{_preset_name(r)}`")
    minutes = lines[0]["budget_s"] / 60
    out = [f"### {minutes:g} minutes, seeds {', '.join(map(str, lines[0]['seeds']))}", "", invocation_line(lines), "",
           *seeded_table(groups, "bits_per_dim", "test bits/dim"), ""]
    for name, by_seed in groups.items():
        mean, std = mean_std([r["bits_per_dim"] for r in by_seed.values()])
        limit = goal("mnist10k", "test_bpd_max")
        out.append(f"- **{name}: {mean:.3f} ± {std:.3f} bits/dim over {len(by_seed)} seeds in {minutes:g} minutes**; "
                   f"the 30-minute goal <= {limit:g} would be {met(mean + std, limit)} by "
                   "the mean plus one std. Best validation bits/dim per seed: "
                   + " / ".join(f"{by_seed[k]['best_val_bpd']:.3f}" for k in sorted(by_seed)) + ".")
    return out + [""]


def mnist_design_table(rows: list[Row]) -> str:
    """One line per design run, in file order: the override, its budget and what it reached."""
    out = ["| override | budget s | steps | images/s | best val bits/dim | test bits/dim | host |",
           "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        overrides = [w for w in r.get("command", "").split() if "=" in w]
        named = [f"`{_preset_name(r)}`"] if _preset_name(r) != "mnist-cpu" else []
        out.append(f"| {' '.join(named + [f'`{o}`' for o in overrides]) or 'the preset'} | {r['budget_s']:.0f} | "
                   f"{r['steps']} | {r['images_per_s']:.0f} | {r['best_val_bpd']:.3f} | {r['bits_per_dim']:.3f} | "
                   f"{host(r)} |")
    return "\n".join(out)


def _notes(previous: list[Row]) -> str:
    """The measurements that shaped the preset (``templates/mnist10k_notes.md``), the 16-map one read from
    its raw line in ``previous``."""
    sixteen = [r for r in previous if "model.feature_maps=16" in r.get("note", "")]
    return prose("mnist10k_notes", sixteen=f"{sixteen[0]['bits_per_dim']:.3f} ({sixteen[0]['steps']:,} steps)"
                 if sixteen else "a figure whose line is missing")


def mnist_section(rows: list[Row], previous: list[Row], design: list[Row] = ()) -> str:
    """The whole ``## mnist10k`` section; ``previous``: the lines of earlier runs, named in one sentence;
    ``design``: the short runs that chose the preset's settings."""
    seeded = seeded_mnist([r for r in rows if r.get("protocol") == "mnist10k"])
    ok = [r for r in rows if r.get("protocol") == "mnist10k" and not r.get("invocation")]
    sizes = {"n_train": ok[0]["n_train"] + ok[0]["n_val"], "n_val": ok[0]["n_val"]} if ok else {}
    parts = [prose("mnist10k", **sizes), "", *seeded, "### Single runs", "", mnist_table(ok), "", hosts_line(ok), "",
             previous_sentence(previous, "mnist10k_results_previous.jsonl"), "", "Reading it:",
             *mnist_reading(ok, previous), ""]
    if design:
        parts += [prose("mnist10k_design"), "", mnist_design_table(list(design)), ""]
    return "\n".join(parts + [_notes(previous), ""])
