"""``## bf16 against fp32 on digits``: one table row per seed, each pair's verdict against the fp32 seeds'
own spread."""

from __future__ import annotations

from benchmarks.rawlines import Row
from benchmarks.render.cells import group, host, tally, verdict
from benchmarks.render.fixed import prose


def precision_section(rows: list[Row]) -> str:
    """The digits bf16-vs-fp32 pairs: one table row per seed, and each pair's verdict against the fp32 seeds' spread."""
    by = group(rows, key="precision")
    fp32, bf16 = by.get("fp32", {}), by.get("bf16", {})
    seeds = sorted(set(fp32) & set(bf16))
    if not seeds:
        return ""
    out = [prose("precision") + "\n",
           "| seed | fp32 test bits/dim | bf16 test bits/dim | bf16 - fp32 | fp32 / bf16 images/s | host |",
           "| ---: | ---: | ---: | ---: | ---: | --- |"]
    diffs = {seed: bf16[seed]["bits_per_dim"] - fp32[seed]["bits_per_dim"] for seed in seeds}
    for seed in seeds:
        f, b = fp32[seed], bf16[seed]
        out.append(f"| {seed} | {f['bits_per_dim']:.4f} | {b['bits_per_dim']:.4f} | {diffs[seed]:+.4f} | "
                   f"{f['images_per_s']:.0f} / {b['images_per_s']:.0f} | {host(f)} |")
    spread = max(fp32[s]["bits_per_dim"] for s in seeds) - min(fp32[s]["bits_per_dim"] for s in seeds)
    out += ["", f"The fp32 seeds differ by {spread:.4f} bits/dim; bf16 against fp32 within that spread: "
            f"{tally([verdict(diffs[seed], spread) for seed in seeds])}."]
    return "\n".join(out) + "\n"
