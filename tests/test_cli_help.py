"""Every subcommand's --help shows examples; --quiet makes the commands that write files silent."""

from __future__ import annotations

import argparse

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
    assert main(argv) == 0
    assert capsys.readouterr().err != ""  # by default, a message says what was written
    (tmp_path / written).unlink()
    assert main([*argv, "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""
    assert (tmp_path / written).stat().st_size > 0
