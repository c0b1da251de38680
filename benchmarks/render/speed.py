"""``## Speed and scale``: the speed issue's targets read off the moons and mnist10k lines."""

from __future__ import annotations

import math

from benchmarks.rawlines import Row
from benchmarks.render.cells import REFERENCE, finite_mean, group
from benchmarks.render.fixed import goal, met, prose
from benchmarks.render.moons import ms_per_step, speed_compare


def speed_section(moons: list[Row], mnist: list[Row]) -> str:
    """The ``## Speed and scale`` section: the targets of goals.toml [speed] read off the moons and mnist10k lines."""
    by = group(moons)
    ref = finite_mean(ms_per_step(by.get(REFERENCE, {})))
    out = [prose("speed") + "\n"]
    if ref and by.get("realnvp_compiled"):
        best = min(("realnvp", "realnvp_compiled"), key=lambda k: finite_mean(ms_per_step(by.get(k, {}))) or math.inf)
        ratio = finite_mean(ms_per_step(by[best])) / ref
        limit = goal("speed", "moons_step_vs_reference_max")
        out.append(f"- **Moons step <= {limit:g}x the eager reference: {met(ratio, limit)}**: the "
                   f"fastest of ours, {best}, runs at {ratio:.2f}x torch_ref's {ref:.1f} ms/step (the step's GEMMs and "
                   "this host's sgemm rates: `PROFILE.md`).")
        out.append("- **No slower than JAX**: " + speed_compare(by, "realnvp_compiled", "jax") + "; eager: "
                   + speed_compare(by, "realnvp", "jax") + ".")
    ok = [r for r in mnist if "error" not in r]
    if ok:
        out.append("- mnist10k, images/s over the whole 30-minute budget (the lines' own figure, compilation "
                   "included): " + "; ".join(f"line {i} {r['images_per_s']:.1f} ({r['steps']:,} steps)"
                                             for i, r in enumerate(ok, 1))
                   + ". The preset's fraction of the fp32 peak is in `PROFILE.md` (no raw line here).")
    out.append("- Distributed training is tested in CI (`tests/test_distributed.py`); what it guarantees for which "
               "presets is in `docs/distributed.md`. GPU throughput has no raw line: not measured.")
    return "\n".join(out + [""])
