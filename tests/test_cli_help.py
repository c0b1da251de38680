"""Every subcommand's --help shows examples; --quiet makes the commands that write files silent."""

from __future__ import annotations

import argparse
import shutil
import subprocess

import numpy as np
import pytest
from tiny import train_tiny

from realnvp.cli import build_parser, main


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
def run(tmp_path_factory):
    return train_tiny(tmp_path_factory.mktemp("quiet") / "moons")


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
