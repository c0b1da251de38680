"""``## digits`` (protocol B): one line per implementation, and its reading: our figure against its goal
and the best peer, over-fitting, the three ways the metric is computed, images/s."""

from __future__ import annotations

import math

from benchmarks.rawlines import Row
from benchmarks.render.cells import (
    REFERENCE,
    finite_mean,
    host,
    hosts_line,
    load_cell,
    num,
    ordered,
    previous_sentence,
    span,
)
from benchmarks.render.fixed import goal, met, prose

# Order of the implementations in the table (the driver's RUNS order).
DIGITS_ORDER = ("torch_ref", "normflows", "nflows", "zuko", "jax", "realnvp")


def digits_table(rows: list[Row]) -> str:
    """Protocol B: one line per digits run, in ``DIGITS_ORDER``, images/s against the eager reference."""
    ok = [r for r in rows if "error" not in r and r.get("protocol") == "digits"]
    if not ok:
        return "(no digits runs)"
    ref = finite_mean(r["images_per_s"] for r in ok if r.get("label", r["peer"]) == REFERENCE)
    out = ["| implementation | test bits/dim | params | images/s | vs torch_ref | steps | train s | final train bpd "
           "| stopped | started (UTC) | load before / at end | host |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | ---: | --- |"]
    for label in ordered((r.get("label", r["peer"]) for r in ok), DIGITS_ORDER):
        for r in (r for r in ok if r.get("label", r["peer"]) == label):
            stop = r.get("stop_reason") or (f"NaN at step {r['nan_at_step']}" if r.get("nan_at_step")
                                            else "budget used")
            out.append(f"| {label} | {r['bits_per_dim']:.3f} | {r['params']:,} | {r['images_per_s']:.0f} | "
                       f"{num(r['images_per_s'] / ref if ref else None, '.2f')} | {r['steps']} | "
                       f"{r['train_s']:.0f} | {r['final_train_bpd']:.3f} | {stop} | {r.get('started_utc', '-')} | "
                       f"{load_cell(r)} | {host(r)} |")
    return "\n".join(out)


def digits_reading(rows: list[Row]) -> list[str]:
    """Sentences about the digits table: the goal, the best peer, over-fitting, the metric checks."""
    ok = {r.get("label", r["peer"]): r for r in rows if "error" not in r and r.get("protocol") == "digits"}
    ours = ok.get("realnvp")
    if ours is None:
        return []
    peers = {k: r for k, r in ok.items() if k != "realnvp" and math.isfinite(r["bits_per_dim"])}
    best = min(peers, key=lambda k: peers[k]["bits_per_dim"]) if peers else None
    limit = goal("digits", "test_bpd_max")
    out = [f"- **realnvp {ours['bits_per_dim']:.3f} bits/dim** (goal <= {limit:g}: {met(ours['bits_per_dim'], limit)})"
           + (f"; the best peer, {best}, {peers[best]['bits_per_dim']:.3f}." if best else ".")]
    gaps = {k: r["bits_per_dim"] - r["final_train_bpd"] for k, r in peers.items()}
    out.append(f"- Test minus final training bits/dim: peers {span(gaps.values())} "
               f"({', '.join(f'{k} {v:+.2f}' for k, v in gaps.items())}), realnvp "
               f"{ours['bits_per_dim'] - ours['final_train_bpd']:+.2f}. The peers' scripts have no validation split "
               f"or early stopping; ours stopped after {ours['train_s']:.0f} s of its {ours.get('budget_s', 0):.0f} s "
               f"with its own message (the *stopped* column) and kept its best-validation weights "
               f"(step {ours.get('best_step', '-')}).")
    checks = [ours.get(k) for k in ("bits_per_dim_realnvp", "bits_per_dim_evaluate_run") if ours.get(k) is not None]
    if checks:
        out.append(f"- Test bits/dim three ways (protocol arrays, `dequantized_nll`, `evaluate_run`): largest "
                   f"difference {max(abs(c - ours['bits_per_dim']) for c in checks):.1e}.")
    if ref := ok.get(REFERENCE):
        out.append(f"- images/s: ours {ours['images_per_s'] / ref['images_per_s']:.2f}x the reference's; ours is "
                   "the paper's multi-scale convolutional model (ResNet s/t networks, batch norm), the reference a "
                   "vector MLP flow: a different model, not a slower implementation of the same one.")
    return out


def digits_section(rows: list[Row], previous: list[Row]) -> str:
    """The whole ``## digits`` section; ``previous``: the lines of earlier runs, named in one sentence."""
    digits = [r for r in rows if r.get("protocol") == "digits"]
    return "\n".join([prose("digits"), "", digits_table(digits), "", hosts_line(digits), "",
                      previous_sentence(previous, "images_results_previous.jsonl"), "", "Reading it:",
                      *digits_reading(digits), "", prose("digits_notes"), ""])
