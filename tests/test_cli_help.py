"""The command line's surface: every subcommand's --help shows examples; --quiet makes the commands that
write files silent; tab completion offers values without importing torch; a preset beats a same-named
folder; evaluate's table is readable; docs/cli.md lists every preset."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tiny import TINY, cli_settings

from realnvp.cli import build_parser, main
from realnvp.config import preset_names


def subcommands() -> list[str]:
    (action,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return sorted(action.choices)


def test_every_command_is_listed():
    assert {"train", "evaluate", "sample", "animate", "report", "score", "runs"} <= set(subcommands())


@pytest.mark.parametrize("command", subcommands())
def test_help_has_examples(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: realnvp {command}")
    assert "examples:" in out and f"realnvp {command} " in out.split("examples:")[1]


def test_top_level_help_documents_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "exit codes: 0 success, 2 bad input (one-line message), 130 interrupted" in capsys.readouterr().out


@pytest.fixture(scope="module")
def run(tiny_moons):
    return tiny_moons


@pytest.mark.parametrize("argv, written", [
    (["sample", "{run}", "-n", "50", "-o", "{tmp}/s.npy"], "s.npy"),
    (["animate", "{run}", "-n", "50", "-o", "{tmp}/a.gif"], "a.gif"),
    (["score", "{run}", "{tmp}/p.npy", "-o", "{tmp}/s.csv"], "s.csv"),
])
def test_quiet_is_silent(run, tmp_path, capsys, argv, written):
    np.save(tmp_path / "p.npy", np.zeros((3, 2), np.float32))
    argv = [a.format(run=run, tmp=tmp_path) for a in argv]
    assert main([*argv, "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""
    assert (tmp_path / written).stat().st_size > 0
    if argv[0] != "animate":  # (the animation is slow to draw twice; its message is the same code path)
        assert main(argv) == 0
        assert f"{tmp_path / written}" in capsys.readouterr().err  # by default, a message says what was written


def complete(script: str, line: str) -> list[str]:
    """What bash offers for ``line`` (ending at the cursor) with the generated completion loaded."""
    words = line.split(" ")
    program = script + "\nCOMP_WORDS=(" + " ".join(f"'{w}'" for w in words) + f"); COMP_CWORD={len(words) - 1}\n"
    program += '_realnvp; printf "%s\\n" "${COMPREPLY[@]}"\n'
    done = subprocess.run(["bash", "-c", program], capture_output=True, text=True, check=True)
    return sorted(done.stdout.split())


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_completion(capsys, tmp_path, monkeypatch):
    assert main(["completion", "bash"]) == 0
    script = capsys.readouterr().out
    assert complete(script, "realnvp re") == ["report"]
    assert complete(script, "realnvp score runs/x --j") == ["--json"]
    assert "--temperature" in complete(script, "realnvp sample --")
    assert complete(script, "realnvp train moo") == ["moons", "moons-tutorial"]
    (tmp_path / "points.csv").write_text("1,2\n")
    monkeypatch.chdir(tmp_path)
    assert complete(script, "realnvp score runs/x poi") == ["points.csv"]
    # values, not file names, where the option takes values (issue 14, item 6)
    assert complete(script, "realnvp train moons --device ") == ["auto", "cpu", "cuda"]
    assert complete(script, "realnvp train moons --device c") == ["cpu", "cuda"]
    assert complete(script, "realnvp train moons --set model.hid") == ["model.hidden="]
    settings = complete(script, "realnvp train moons --set ")
    assert {"train.precision=", "data.test_draws=", "model.scale_init="} <= set(settings) and len(settings) > 40
    assert "points.csv" not in settings


def test_completion_does_not_import_torch():
    """``realnvp completion bash`` (and ``python -m realnvp``) answer without importing torch: every new
    shell runs it, and torch alone takes seconds to import."""
    probe = ("import runpy, sys; sys.argv = ['realnvp', 'completion', 'bash']\n"
             "try:\n    runpy.run_module('realnvp', run_name='__main__')\nexcept SystemExit as done:\n"
             "    assert done.code == 0, done.code\n"
             "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert "complete -o filenames -F _realnvp realnvp" in done.stdout
    assert done.stderr.strip() == "NO-TORCH"


def test_a_folder_named_like_a_preset_does_not_hide_it(tmp_path, monkeypatch, capsys):
    """Issue 14, item 5: with a blobs/ folder in the working directory, ``train blobs`` takes the preset;
    a file of that name still loses to the preset, with a warning saying how to pick the file."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "blobs").mkdir()
    argv = ["train", "blobs", "--out", "x", "--steps", "2", "--quiet", "--no-pictures", *cli_settings(TINY)]
    assert main(argv) == 0
    assert json.loads((tmp_path / "x" / "config.json").read_text())["data"]["name"] == "blobs"
    (tmp_path / "moons").write_text('[data]\nname = "rings"\n')
    assert main(["train", "moons", "--out", "y", "--steps", "2", "--no-pictures", *cli_settings(TINY)]) == 0
    assert json.loads((tmp_path / "y" / "config.json").read_text())["data"]["name"] == "moons"
    assert "realnvp: warning: 'moons' is both a preset and a file here; took the preset (for the file, write " \
           "./moons)" in capsys.readouterr().err
    argv = ["train", "./moons", "--out", "z", "--steps", "2", "--quiet", "--no-pictures", *cli_settings(TINY)]
    assert main(argv) == 0
    assert json.loads((tmp_path / "z" / "config.json").read_text())["data"]["name"] == "rings"
    assert main(["train", "rings2", "--out", "w"]) == 2 and "unknown preset 'rings2'" in capsys.readouterr().err


def test_evaluate_prints_six_digits_and_keeps_stop_reason(run, capsys):
    """Issue 14, item 9: the table shows floats to 6 significant digits, the JSON every digit and both
    say why training stopped (from evaluation.json)."""
    assert main(["evaluate", str(run)]) == 0
    table = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    table = {key.strip(): value for key, value in table.items()}
    assert main(["evaluate", str(run), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["stop_reason"] == json.loads((run / "evaluation.json").read_text())["stop_reason"]
    assert table["stop_reason"] == metrics["stop_reason"] == "reached 60 steps"
    assert table["test_nll_nats"] == f"{metrics['test_nll_nats']:.6g}"
    significant = table["test_nll_nats"].lstrip("-").replace(".", "").lstrip("0")
    assert len(significant) <= 6 < len(repr(metrics["test_nll_nats"]).lstrip("-").replace(".", "").lstrip("0"))


def test_docs_list_every_preset_and_the_precision_setting():
    """docs/cli.md names every shipped preset and documents train.precision=bf16 (issue 14, item 9)."""
    text = (Path(__file__).parents[1] / "docs" / "cli.md").read_text()
    missing = [name for name in preset_names() if f"`{name}`" not in text]
    assert not missing, f"docs/cli.md does not list the presets {missing}"
    assert "train.precision=bf16" in text


def test_animate_help_describes_the_animation(capsys):
    with pytest.raises(SystemExit):
        main(["animate", "--help"])
    description = capsys.readouterr().out.split("\n\n")[1]
    assert "base N(0, I)" in description and "one frame per layer" in description
