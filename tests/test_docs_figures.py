"""The docs' benchmark figures are the benchmarks' own: every figure in a sentence of README.md or
docs/*.md that names ``RESULTS.md`` appears in benchmarks/RESULTS.md (which tests/test_results.py
keeps equal to what the raw ``.jsonl`` lines give); docs/distributed.md's agreement table states the
tolerances tests/test_distributed.py asserts; and a claim that training never does worse than the
starting Gaussian says on which rows it holds (validation, not test).

Convention: a figure is quoted from the benchmarks when its sentence names ``RESULTS.md``. A figure is
a decimal number (``1.257``, ``+0.011``), a number in scientific notation (``1e-4``), or a whole
number followed by a unit (``30 minutes``, ``50 s``, ``9 ms``); inline code (settings such as
```model.logit_alpha=0.0001```) is not a figure. Figures from elsewhere (a paper, a hand measurement)
go in a sentence of their own."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

DECIMAL = re.compile(r"(?<![\w.])[-+]?(\d+(?:\.\d+)?e[-+]?\d+|\d+\.\d+)(?![\d.]*\d)")
UNITS = {"ms/step": "ms/step", "ms": "ms", "s": "s", "minute": "minutes?", "minutes": "minutes?", "nats": "nats",
         "bits/dim": "bits/dim"}
WHOLE_WITH_UNIT = re.compile(rf"(?<![\w.,-])(\d+) ({'|'.join(sorted(UNITS, key=len, reverse=True))})(?![\w/])")
SENTENCE_END = re.compile(r"(?<=[.!?])\)?\s+(?=[A-Z(`*])")


def sentences(text: str) -> list[str]:
    """The prose sentences of a markdown text: fenced code blocks and tables left out, wrapped lines
    joined, list items and paragraphs apart."""
    text = re.sub(r"^```.*?^```", "\n", text, flags=re.S | re.M)
    blocks = re.split(r"\n\s*\n|\n(?=\s*[-*] |\s*\d+\. |\|)", text)
    prose = [" ".join(block.split()) for block in blocks if not block.lstrip().startswith("|")]
    return [s for block in prose for s in SENTENCE_END.split(block) if s]


def figures(sentence: str) -> list[str]:
    """The figures of a sentence (see the module's convention), as written."""
    prose = re.sub(r"`[^`]*`", " ", sentence)
    return ([m.group(0) for m in DECIMAL.finditer(prose)]
            + [m.group(0) for m in WHOLE_WITH_UNIT.finditer(prose)])


def quoted() -> list[tuple[str, str, str]]:
    """``(file, sentence, figure)`` for every figure the docs quote from the benchmarks."""
    return [(path.name, s, f) for path in DOCS for s in sentences(path.read_text())
            if "RESULTS.md" in s for f in figures(s)]


def in_results(figure: str, results: str) -> bool:
    """Whether ``figure`` is one of RESULTS.md's numbers (by value: 1e-4 is 0.0001), or a whole number
    with the same unit."""
    whole = WHOLE_WITH_UNIT.fullmatch(figure)
    if whole:
        number, unit = whole.groups()
        return re.search(rf"(?<![\w.,]){number} {UNITS[unit]}(?![\w/])", results) is not None
    value = float(figure.lstrip("+-"))
    return any(float(m.group(1)) == value for m in DECIMAL.finditer(results))


def test_the_convention_finds_the_figures_of_a_sentence():
    s = ("On a 2-core Xeon the first reached test 1.257 bits/dim in its 30 minutes (`benchmarks/RESULTS.md`, "
         "line 3); it compiles first (about 50 s, `model.logit_alpha=0.0001`), 7.6 against 9.7 ms/step, "
         "+0.011 nats, alpha 1e-4, seeds 0-2, 1,332 steps.")
    assert figures(s) == ["1.257", "7.6", "9.7", "+0.011", "1e-4", "30 minutes", "50 s"]
    assert sentences("One 1.5 s. Two (`RESULTS.md`).\n\n```\n3.5 s\n```\n- a 2.5\n  b.\n| 9.9 |\n") == [
        "One 1.5 s.", "Two (`RESULTS.md`).", "- a 2.5 b."]
    results = "took 0.0001 and 1.414 bits/dim in 30 minutes, about 50 s"
    assert [in_results(f, results) for f in ("1e-4", "+1.414", "1.41", "30 minutes", "50 s", "3 minutes")] == [
        True, True, False, True, True, False]


def test_every_figure_quoted_from_the_benchmarks_is_in_results_md():
    results = RESULTS.read_text()
    found = quoted()
    assert len(found) >= 10, found  # the convention still finds the docs' quotes
    missing = [(name, figure, sentence) for name, sentence, figure in found if not in_results(figure, results)]
    assert not missing, "figures quoted from benchmarks/RESULTS.md that it does not hold:\n" + "\n".join(
        f"{name}: {figure!r} in: {sentence}" for name, figure, sentence in missing)


def _tolerances() -> dict[str, tuple[float, float | None]]:
    """Each test of tests/test_distributed.py that compares two trajectories: its train and
    validation tolerances, read from its ``_same_trajectory`` call."""
    tree = ast.parse((ROOT / "tests" / "test_distributed.py").read_text())
    constants = {t.id: ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
                 for t in node.targets if isinstance(t, ast.Name) and isinstance(node.value, ast.Constant)}

    def value(arg: ast.expr) -> float:
        return constants[arg.id] if isinstance(arg, ast.Name) else ast.literal_eval(arg)

    out = {}
    for fn in tree.body:
        if isinstance(fn, ast.FunctionDef) and fn.name.startswith("test_"):
            for call in ast.walk(fn):
                if isinstance(call, ast.Call) and getattr(call.func, "id", "") == "_same_trajectory":
                    args = [value(a) for a in call.args[2:]]
                    out[fn.name] = (args[0], args[1] if len(args) > 1 else None)
    return out


def test_distributed_md_states_the_tolerances_the_distributed_tests_assert():
    text = (ROOT / "docs" / "distributed.md").read_text()
    table = text.split("### How equal", 1)[1].split("\n\n", 2)[1]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in table.splitlines()[2:]]
    agreement = [row[2] for row in rows]
    assert len(rows) == 5 and agreement[4] == "as above", rows
    stated = [float(re.match(r"([\d.e-]+) nats", cell).group(1)) for cell in agreement[:4]]
    tol = _tolerances()
    image = tol["test_image_ddp_with_batch_norm_matches_single_process"]
    assert stated == [tol["test_two_process_ddp_matches_single_process"][0],
                      tol["test_resume_under_a_different_world_size"][0], image[0], image[1]]
    assert tol["test_image_run_resumes_onto_another_world_size"] == image  # "as above"


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_never_worse_than_the_gaussian_says_on_which_rows(path):
    """Best-validation weights beat the starting Gaussian on validation rows only; on test rows they
    can lose (benchmarks/RESULTS.md's tables count how often)."""
    claims = [s for s in sentences(path.read_text())
              if re.search(r"can only improve|never worse|no worse|cannot be worse", s, re.I) and "Gaussian" in s]
    assert all("validation" in s for s in claims), claims
