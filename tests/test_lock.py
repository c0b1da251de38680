"""One training per run directory (``realnvp.runlock``): a second ``train --out SAME`` is refused at
once with one line while the first runs; after a SIGKILL of the first, ``--resume`` or a fresh start
takes the lock over with a notice; the lock is released however training ends, and a start that
failed before its first checkpoint leaves nothing behind (a retry needs no ``--resume``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import realnvp.training.loop as loop
from realnvp.cli import main
from realnvp.errors import UserError
from realnvp.runlock import LOCK, RunLock

QUICK = ["--quiet", "--no-pictures", "--set", "model.n_couplings=2", "--set", "model.hidden=8",
         "--set", "data.n_train=300", "--set", "data.n_test=100", "--set", "train.eval_every=10",
         "--set", "train.time_budget=0"]


def _files(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run.iterdir()) if p.is_file()}


def _wait_for(condition, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


def test_a_second_training_is_refused_and_a_killed_ones_lock_is_taken_over(tmp_path, capsys):
    run = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "realnvp", "train", "moons", "--out", str(run), "--steps",
                              "1000000", *QUICK], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_for(lambda: (run / "checkpoint.pt").exists() or first.poll() is not None)
        assert first.poll() is None, first.stderr.read().decode()
        holder = json.loads((run / LOCK).read_text())
        assert holder["pid"] == first.pid
        config = (run / "config.json").read_bytes()
        for extra in ([], ["--resume"]):  # a fresh start and a resume are both refused, at once
            started = time.monotonic()
            assert main(["train", "moons", "--out", str(run), "--steps", "20", *QUICK, *extra]) == 2
            assert time.monotonic() - started < 30
            err = capsys.readouterr().err.strip().splitlines()
            assert err == [f"realnvp: error: {run} is in use by another training (process {first.pid} on "
                           f"{holder['host']}, since {holder['since']}); wait for it to end or pick another --out"]
        assert (run / "config.json").read_bytes() == config
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert (run / LOCK).exists()  # a SIGKILL leaves the file, but not the lock (the kernel drops flocks)
    args = ["train", "moons", "--out", str(run), "--steps", "20", *QUICK, "--resume"]
    args.remove("--quiet")
    assert main(args) == 0
    err = capsys.readouterr().err
    assert f"taking over the lock of {run}: its holder (process {first.pid} on " in err
    assert not (run / LOCK).exists() and RunLock.held_on(run) is None


def test_a_stale_lock_and_a_failed_start_do_not_block_a_fresh_start(tmp_path, capsys):
    """A folder where a start was killed before its first checkpoint (config.json and a lock file
    from a dead process) takes a plain ``train`` again: no 'already holds a run', no --resume."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    (run / LOCK).write_text(json.dumps({"pid": 999999, "host": "elsewhere", "since": "2020-01-01 00:00:00"}))
    args = ["train", "moons", "--out", str(run), "--steps", "20", *QUICK]
    args.remove("--quiet")
    assert main(args) == 0
    assert "its holder (process 999999 on elsewhere, since 2020-01-01 00:00:00) ended without releasing it" in (
        capsys.readouterr().err)
    assert json.loads((run / "config.json").read_text())["train"]["steps"] == 20
    assert main(["train", "moons", "--out", str(run), "--steps", "20", *QUICK]) == 2  # now it holds a run
    assert "already holds a run" in capsys.readouterr().err


def _fail_at_build(*args, **kwargs):
    raise UserError("model: the build failed")


@pytest.mark.parametrize("existing", [False, True], ids=["new-folder", "empty-folder"])
def test_a_start_that_fails_before_its_first_checkpoint_leaves_nothing(tmp_path, capsys, monkeypatch, existing):
    run = tmp_path / "run"
    if existing:
        run.mkdir()
    monkeypatch.setattr(loop, "build_model", _fail_at_build)  # after config.json is written
    assert main(["train", "moons", "--out", str(run), "--steps", "20", *QUICK]) == 2
    assert capsys.readouterr().err.strip().splitlines() == ["realnvp: error: model: the build failed"]
    assert run.exists() == existing and (not existing or list(run.iterdir()) == [])
    assert RunLock.held_on(run) is None
    monkeypatch.undo()
    assert main(["train", "moons", "--out", str(run), "--steps", "20", *QUICK]) == 0  # the retry, no --resume


def test_a_failed_resume_changes_nothing_and_releases_the_lock(tiny_moons, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    for path in tiny_moons.iterdir():
        if path.is_file():
            (run / path.name).write_bytes(path.read_bytes())
    before = _files(run)
    assert main(["train", "circles", "--out", str(run), "--resume", *QUICK]) == 2
    assert "data.name is 'moons' in the run, 'circles' now" in capsys.readouterr().err
    assert _files(run) == before and RunLock.held_on(run) is None


def test_two_locks_on_one_folder_in_one_process(tmp_path):
    with RunLock(tmp_path):
        with pytest.raises(UserError, match=f"{tmp_path} is in use by another training \\(process {os.getpid()} "):
            RunLock(tmp_path).acquire()
    with RunLock(tmp_path):  # released: free again
        pass
    assert list(tmp_path.iterdir()) == []
