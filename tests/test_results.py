"""benchmarks/RESULTS.md is written by ``python -m benchmarks.results`` from the raw ``.jsonl`` lines: a hand
edit or a raw line added without rerunning the command fails here, and the sentences follow the numbers and
the goals of ``benchmarks/goals.toml``."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

from benchmarks import results
from benchmarks.rawlines import HERE as BENCH
from benchmarks.rawlines import ROOT, read_jsonl
from benchmarks.render import cells
from benchmarks.render.fixed import goal


def test_results_md_is_what_the_command_writes(tmp_path):
    out = tmp_path / "RESULTS.md"
    subprocess.run([sys.executable, "-m", "benchmarks.results", "--out", str(out)], cwd=ROOT, check=True,
                   capture_output=True)
    assert out.read_bytes() == (BENCH / "RESULTS.md").read_bytes(), (
        "benchmarks/RESULTS.md differs from what `python -m benchmarks.results` writes from the .jsonl files: "
        "run it (and never edit RESULTS.md by hand)")


def _copy_raw(tmp_path: Path) -> Path:
    for path in BENCH.glob("*.jsonl"):
        shutil.copy(path, tmp_path / path.name)
    return tmp_path


def _rewrite(path: Path, change) -> None:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    path.write_text("".join(json.dumps(change(r)) + "\n" for r in rows))


def test_a_changed_raw_number_changes_the_table_and_the_sentences(tmp_path):
    folder = _copy_raw(tmp_path)
    before = results.render(folder)
    rows = read_jsonl(folder / "moons_results.jsonl")
    nll = {(r["label"], r["seed"]): r["test_nll"] for r in rows}
    spread = max(abs(nll["realnvp", s] - nll["realnvp_compiled", s]) for s in (0, 1, 2))

    def worse_preset_better_zuko(row):
        if row.get("label") == "realnvp_moons_preset" and row["seed"] == 1:
            row["test_nll"] = 0.4123
        if row.get("label") == "zuko":  # better than ours by more than the spread on every seed
            row["test_nll"] = nll["realnvp", row["seed"]] - spread - 0.05
        return row

    _rewrite(folder / "moons_results.jsonl", worse_preset_better_zuko)
    after = results.render(folder)
    assert after != before
    preset = [nll["realnvp_moons_preset", s] for s in (0, 2)]
    assert f"| {preset[0]:.3f} | 0.412 | {preset[1]:.3f} |" in after  # the table cell
    limit = goal("moons", "preset_test_nll_max")
    assert limit < 0.412, "the changed figure must cross the goal for this test to mean anything"
    assert f"(goal <= {limit:g}: not met)" in after and f"(goal <= {limit:g}: met)" in before  # the sentence
    # zuko now beats ours on every seed by more than the eager-vs-compiled spread: three losses, no win
    verdicts = [line for line in after.splitlines() if "ours minus zuko" in line]
    assert len(verdicts) == 1 and "0 wins, 0 ties, 3 losses" in verdicts[0]
    assert verdicts[0] not in before


def test_per_seed_verdicts_count_a_difference_inside_the_spread_as_a_tie():
    assert cells.verdict(0.004, 0.031) == "tie"
    assert cells.verdict(-0.146, 0.031) == "win"
    assert cells.verdict(0.05, 0.031) == "loss"
    assert cells.verdict(3.0, 4.0, lower_is_better=False) == "tie"
    assert cells.tally(["win", "tie", "tie"]) == "1 win, 2 ties, 0 losses"


def test_host_cells_say_what_a_line_lacks():
    assert cells.host({}) == "not recorded"
    assert cells.host({"cpu": "x86_64"}) == "x86_64 (no model name, no lscpu flags)"
    assert cells.host({"cpu": "AMD EPYC"}) == "AMD EPYC (no lscpu flags)"
    assert cells.host({"cpu": "AMD EPYC", "cpu_flags": "fpu avx2 fma"}) == "AMD EPYC, AVX2, no AVX-512"
    assert cells.host({"cpu": "AMD EPYC", "avx512": ["avx512f"], "avx2": True}) == "AMD EPYC, AVX-512 (AVX flags only)"
