"""``## Colour``: natural photo patches, ``cifar-cpu`` against the ``images`` preset and normflows' Glow
for the same wall time, the reading against the issue's goal, and the design runs that chose the preset."""

from __future__ import annotations

from benchmarks.rawlines import Row
from benchmarks.render.cells import host, hosts_line, load_cell, loads, num, span
from benchmarks.render.fixed import goal, prose
from benchmarks.render.seeded import by_contender, invocation_line, latest_invocation, seeded_table, spread_verdict


def colour_table(rows: list[Row]) -> str:
    """One line per colour run, in file order."""
    out = ["| contender | minutes | test bits/dim | at 10 min | steps x batch | ms/step (whole budget) | images/s | "
           "params | evaluate s | started | load before / after | host |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- |"]
    for r in rows:
        name = r.get("model", f"`{r['contender']}`" + (" (compiled)" if r.get("compile") else ""))
        out.append(f"| {name} | {r['minutes']:g} | {r['test_bpd']:.3f} | {num(r.get('test_bpd_at_10min'), '.3f')} | "
                   f"{r['steps']} x {r['batch_size']} | "
                   f"{r['ms_per_step']:.0f} | {r['images_per_s']:.0f} | {r['params']:,} | "
                   f"{num(r.get('evaluate_s'), '.1f')} | {r['date']} | {load_cell(r)} | {host(r)} |")
    return "\n".join(out)


def _colour_reading(rows: list[Row]) -> list[str]:
    """Differences between the contenders of the latest budget, what the budget cut, what is still to run."""
    minutes = rows[-1]["minutes"]
    last = {r["contender"]: r for r in rows if r["minutes"] == minutes}
    out = []
    cifar, images, peer = last.get("cifar-cpu"), last.get("images"), last.get("normflows")
    target = goal("colour", "minutes")
    if cifar and images:
        out.append(f"- At {minutes:g} minutes `cifar-cpu` minus `images`: "
                   f"{cifar['test_bpd'] - images['test_bpd']:+.3f} bits/dim (the issue asks for at most "
                   f"{goal('colour', 'cifar_minus_images_max'):g} at {target} minutes).")
    if cifar and peer:
        out.append(f"- `cifar-cpu` minus the normflows Glow: {cifar['test_bpd'] - peer['test_bpd']:+.3f} bits/dim "
                   "(one run each, so no spread and no verdict: the seeded table above is the comparison); "
                   "images seen: "
                   f"{cifar['steps'] * cifar['batch_size']:,} against {peer['steps'] * peer['batch_size']:,}. Which of "
                   "the peer's parts makes the difference was not measured.")
    early = [(name, r["test_bpd_at_10min"]) for name, r in last.items() if r.get("test_bpd_at_10min") is not None]
    if early:
        out.append("- 10 minutes into the same runs (test bits/dim; realnvp's schedules are set for the whole budget, "
                   "so these are not what a 10-minute run reaches): "
                   + ", ".join(f"`{name}` {bpd:.3f}" for name, bpd in early) + ".")
    if cifar and cifar.get("train_steps_setting"):
        out.append(f"- `cifar-cpu`'s cosine was scaled to {cifar['train_steps_setting']:,} steps and cut by the budget "
                   f"at {cifar['steps']:,} ({100 * cifar['steps'] / cifar['train_steps_setting']:.0f} % of it); its "
                   "compilation time counts against the budget and is not recorded separately.")
    full = sorted({r["contender"] for r in rows if r["minutes"] >= target})
    out.append(f"- The {target}-minute protocol (the issue's target): "
               + (f"run for {', '.join(full)}." if full else f"**not run yet** (no {target}-minute line)."))
    before = [loads(r)[0] for r in rows] + [loads(r)[1] for r in rows]
    out.append(f"- Load average around the runs {span(before, '.1f')} on the host's {rows[-1].get('cpus', '?')} "
               "CPUs (it includes the benchmark's own process): the contenders did not see the same load.")
    out.append("- `evaluate` seconds (the *evaluate s* column: 10 draws over the test patches, in the process) are "
               "the only evaluation timings with a raw line; before/after timings of the evaluation change and "
               "per-image costs quoted before have none and are left out.")
    return out


def seeded_colour(rows: list[Row]) -> list[str]:
    """The newest seeded invocation: every seed's test bits/dim per contender, and ``cifar-cpu`` against
    the peer by the spread."""
    lines = latest_invocation(rows)
    if not lines:
        return []
    groups = by_contender(lines, lambda r: r["contender"])
    out = [f"### {lines[0]['minutes']:g} minutes per contender, seeds {', '.join(map(str, lines[0]['seeds']))}", "",
           invocation_line(lines), "", *seeded_table(groups, "test_bpd", "test bits/dim"), ""]
    if "cifar-cpu" in groups and "normflows" in groups:
        seeds = sorted(set(groups["cifar-cpu"]) & set(groups["normflows"]))
        ours = [groups["cifar-cpu"][s]["test_bpd"] for s in seeds]
        peer = [groups["normflows"][s]["test_bpd"] for s in seeds]
        out.append(f"- **`cifar-cpu` against the normflows Glow: {spread_verdict(ours, peer)}.**")
    out += ["- Every contender trains for the same minutes by its own clock (*train s*); a realnvp run that "
            "stopped earlier (*stopped*: patience on validation) is compared at its end, with less time than the "
            "peer had.", ""]
    return out


def colour_design_table(rows: list[Row]) -> str:
    """One line per design run, in file order."""
    out = ["| settings | minutes | val bits/dim | test bits/dim | steps x batch | ms/step | params | evaluate s | "
           "started | host |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    for r in rows:
        name = r.get("model", " ".join(f"`{x}`" for x in r.get("settings", [])) or "the preset")
        out.append(f"| {name} | {r['minutes']:g} | {num(r.get('val_bpd_at_10min'))} | {r['test_bpd']:.3f} | "
                   f"{r['steps']} x {r['batch_size']} | {r['ms_per_step']:.0f} | {r['params']:,} | "
                   f"{num(r.get('evaluate_s'), '.1f')} | {r['date']} | {host(r)} |")
    return "\n".join(out)


def colour_section(rows: list[Row], design: list[Row] = ()) -> str:
    """The whole ``## Colour`` section (``design``: the runs that chose the preset)."""
    if not rows:
        return ""
    seeded = seeded_colour(rows)
    rows = [r for r in rows if not r.get("invocation")]
    first = rows[-1]
    setup = (f"{first['n_train']:,} training / {first['n_test']:,} test patches. torch "
             f"{', '.join(sorted({r['torch'] for r in rows}))}, {span((r['threads'] for r in rows), 'd')} threads, "
             f"nice {span((r['nice'] for r in rows), 'd')}. {hosts_line(rows)}")
    intro = prose("colour", minutes=span((r["minutes"] for r in rows), "g")) + "\n"
    parts = [intro, *seeded, "### Single runs", "", setup, "", colour_table(rows), "", "Reading it:",
             *_colour_reading(rows),
             "- The sample sheet `colour_samples.png` is the committed one; which run drew it is not in the lines.", ""]
    if design:
        parts += [prose("colour_design"), "", colour_design_table(list(design)), ""]
    return "\n".join(parts + [prose("colour_notes"), ""])
