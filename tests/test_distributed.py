"""DDP under torchrun with gloo and 2 processes equals one process with the same global batch, for a
vector flow with flow batch norm and for an image flow whose s/t ResNets use batch norm; a run resumes
onto another world size where it stopped and continues the uninterrupted trajectory.

Every 2-process run of this module comes from one torchrun launch (tests/run_many.py runs the command
lines one after another in both ranks) and the 1-process references run in this process with one
thread, as each rank has: a launch starts three Python processes that import torch, several times the
cost of these tiny runs."""

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from contextlib import redirect_stderr
from pathlib import Path

import pytest
import torch
from torch import nn

from realnvp.checkpoint import Checkpoint
from realnvp.cli import main
from realnvp.training.distributed import GlobalBatchNorm2d, sync_batch_norms

ARGS = ["--steps", "40", "--no-pictures", "--quiet", "--set", "model.hidden=32,32", "--set", "model.batch_norm=true",
        "--set", "model.n_couplings=4", "--set", "train.eval_every=10", "--set", "train.log_every=5",
        "--set", "train.batch_size=64", "--set", "data.n_train=2000", "--set", "data.n_test=500"]
# digits with the preset's batch norm in the s/t ResNets (conditioner_norm = "batch"). Flow batch norm is off
# here: it makes the couplings' output biases redundant (zero gradient up to rounding), and Adam turns the
# rounding differences of any two summation orders into different steps of them: one process on 1 vs 2
# threads differs by ~6e-3 nats after 5 steps with it (docs/distributed.md). The vector test covers it.
IMAGE_ARGS = ["--steps", "20", "--no-pictures", "--quiet", "--set", "model.feature_maps=8", "--set", "model.n_blocks=1",
              "--set", "model.batch_norm=false", "--set", "train.eval_every=10", "--set", "train.log_every=5",
              "--set", "train.batch_size=32", "--set", "train.time_budget=0", "--set", "train.patience=0",
              "--set", "train.lr_schedule=constant", "--set", "data.test_draws=1"]
# Validation runs in eval mode on the running averages. The bias of a convolution that feeds a batch norm
# has zero gradient up to rounding too, so it drifts differently in 1 and 2 processes; only the running
# means see it: validation agrees to ~1.5e-2 nats (3e-4 bits/dim) after 20 steps, training to 5e-5.
IMAGE_VAL_TOL = 0.05
TWO = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
       str(Path(__file__).parent / "run_many.py")]
CONSTANT = ["--set", "train.lr_schedule=constant", "--set", "train.warmup_steps=0"]  # steps don't shape the lr


def _metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _loud(args):
    return [a for a in args if a != "--quiet"]


def _half(args, steps):
    return [a if a != steps else str(int(steps) // 2) for a in args]


def _single(preset, run, args, *extra):
    """``realnvp train`` in this process on one thread (as each rank of ``_two`` has); returns its stderr."""
    threads, err = torch.get_num_threads(), io.StringIO()
    torch.set_num_threads(1)
    try:
        with pytest.MonkeyPatch.context() as env, redirect_stderr(err):
            env.delenv("WORLD_SIZE", raising=False)
            code = main(["train", preset, "--out", str(run), *args, *extra])
    finally:
        torch.set_num_threads(threads)
    assert code == 0, err.getvalue()[-2000:]
    return err.getvalue()


def _two(logs, commands):
    """``{name: (preset, run, *args)}``: every ``realnvp train`` in one torchrun launch of 2 processes
    (one thread each), in order, logs in ``logs``; returns each command's stderr, rank 0's then rank 1's."""
    plan = [{"argv": ["train", preset, "--out", str(run), *map(str, args)], "log": str(logs / f"{name}.log")}
            for name, (preset, run, *args) in commands.items()]
    (logs / "plan.json").write_text(json.dumps(plan))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("WORLD_SIZE", None)
    out = subprocess.run([*TWO, str(logs / "plan.json")], env=env, capture_output=True, text=True, timeout=900)
    read = lambda name, r: Path(f"{logs / name}.log.rank{r}").read_text()  # noqa: E731
    assert out.returncode == 0, (out.stderr[-2000:], {n: read(n, 0)[-500:] for n in commands
                                                      if Path(f"{logs / n}.log.rank0").exists()})
    return {name: read(name, 0) + read(name, 1) for name in commands}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every run of this module by its name, and the stderr of the resumed ones: the 1-process
    references, then one launch of every 2-process run, then the resumes onto 1 process."""
    root = tmp_path_factory.mktemp("ddp")
    half, first = _half(IMAGE_ARGS, "20"), [*_half(ARGS, "40"), *CONSTANT]
    _single("moons", root / "single", ARGS)
    _single("moons", root / "straight", ARGS, *CONSTANT)
    _single("digits", root / "image_single", IMAGE_ARGS)
    _single("digits", root / "image_from_single", half)  # 10 steps, to resume from
    logs = _two(root, {"ddp": ("moons", root / "ddp", *ARGS),
                       "run": ("moons", root / "run", *first),
                       "image_ddp": ("digits", root / "image_ddp", *IMAGE_ARGS),
                       "image_from_ddp": ("digits", root / "image_from_ddp", *half),
                       "1-to-2": ("digits", root / "image_from_single", *_loud(IMAGE_ARGS), "--resume")})
    logs["2-to-1"] = _single("digits", root / "image_from_ddp", _loud(IMAGE_ARGS), "--resume")
    logs["resume"] = _single("moons", root / "run", _loud(ARGS), "--resume", *CONSTANT)
    return root, logs


def _same_trajectory(a, b, tol, val_tol=None):
    """Equal record by record (steps, train NLL to ``tol``, validation NLL to ``val_tol``, by default
    ``tol``); the records of both runs are compared, none left over."""
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for ra, rb in zip(a, b, strict=True):
        assert abs(ra["train_nll"] - rb["train_nll"]) < tol, (ra, rb)
        assert ("val_nll" in ra) == ("val_nll" in rb)
        assert abs(ra.get("val_nll", 0) - rb.get("val_nll", 0)) < (val_tol or tol), (ra, rb)


def test_two_process_ddp_matches_single_process(runs):
    root, _ = runs
    a = _metrics(root / "single")
    assert [r["step"] for r in a if "val_nll" in r] == [10, 20, 30, 40]
    # Summation order (2 ranks vs 1) only: 1e-5 nats after 5 steps, 2e-4 after 40 (batch-norm averages at the
    # warm-up's slow pace keep the first batch's moments longer); unsynchronised batch norm differs by ~1e-2.
    _same_trajectory(a, _metrics(root / "ddp"), 5e-4)
    # Only rank 0 wrote: one metrics line per record, and the run evaluates like any other.
    assert (root / "ddp" / "evaluation.json").exists()


def test_resume_under_a_different_world_size(runs):
    """20 steps on 2 processes, resumed on 1 to 40: the trajectory of 40 steps on 1 process."""
    root, logs = runs
    assert f"resumed {root / 'run'} at step 20 from checkpoint.pt" in logs["resume"]
    # Same trajectory up to float summation order (2 ranks vs 1), amplified a little by Adam at lr 2e-3.
    _same_trajectory(_metrics(root / "run"), _metrics(root / "straight"), 1e-3)


def test_global_batch_norm_equals_batch_norm_in_one_process():
    torch.manual_seed(0)
    plain = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4, momentum=0.3))
    synced = sync_batch_norms(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4, momentum=0.3)))
    synced.load_state_dict(plain.state_dict())
    assert type(synced[1]) is GlobalBatchNorm2d and list(synced.state_dict()) == list(plain.state_dict())
    x = torch.randn(8, 3, 5, 5) * 3 + 1
    for _ in range(2):  # training mode: batch statistics, running averages updated
        y_plain, y_synced = plain(x), synced(x)
        assert torch.allclose(y_plain, y_synced, atol=1e-5)
    (y_plain**2).sum().backward()
    (y_synced**2).sum().backward()
    for p, q in zip(plain.parameters(), synced.parameters(), strict=True):
        assert torch.allclose(p.grad, q.grad, rtol=1e-4, atol=1e-4)
    for key, value in plain.state_dict().items():
        assert torch.allclose(value.float(), synced.state_dict()[key].float(), atol=1e-6), key
    assert torch.allclose(plain.eval()(x), synced.eval()(x), atol=1e-5)  # eval: the running averages


def test_image_ddp_with_batch_norm_matches_single_process(runs):
    root, _ = runs
    a = _metrics(root / "image_single")
    assert [r["step"] for r in a if "val_nll" in r] == [10, 20]
    _same_trajectory(a, _metrics(root / "image_ddp"), 1e-4, IMAGE_VAL_TOL)


@pytest.mark.parametrize("start, resumed", [("from_ddp", "2-to-1"), ("from_single", "1-to-2")],
                         ids=["2-to-1", "1-to-2"])
def test_image_run_resumes_onto_another_world_size(runs, start, resumed):
    root, logs = runs
    run = root / f"image_{start}"
    assert f"resumed {run} at step 10 from checkpoint.pt" in logs[resumed]
    _same_trajectory(_metrics(run), _metrics(root / "image_single"), 1e-4, IMAGE_VAL_TOL)


# A run long enough to be killed mid-training: no time budget, no early stopping, a checkpoint every 5 steps.
ENDLESS = ["--steps", "100000", "--no-pictures", "--quiet", "--set", "model.hidden=8", "--set", "data.n_train=500",
           "--set", "train.time_budget=0", "--set", "train.patience=0", "--set", "train.eval_every=5"]


def _rank_pid(parent, rank, deadline):
    """The pid of the torchrun worker of ``parent`` whose environment says ``RANK=rank`` (read from /proc:
    no hook in realnvp for the test)."""
    while time.monotonic() < deadline:
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
                env = (stat.parent / "environ").read_bytes().split(b"\0") if ppid == parent else []
            except (OSError, ValueError, IndexError):  # gone meanwhile
                continue
            if f"RANK={rank}".encode() in env:
                return int(stat.parent.name)
        time.sleep(0.2)
    raise AssertionError(f"no worker with RANK={rank} under torchrun {parent}")


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the rank's process in /proc")
def test_a_killed_rank_ends_the_other_with_one_line_and_the_run_resumes(tmp_path):
    """SIGKILL to rank 1 mid-training: rank 0 ends at once with one line naming rank 1 and the intact
    checkpoint (before: gloo's "Connection reset by peer" traceback), and --resume continues from it."""
    run, logs = tmp_path / "run", tmp_path / "logs"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone", "--redirects=2",
               f"--log-dir={logs}", "-m", "realnvp", "train", "moons", "--out", str(run), *ENDLESS]
    env = {k: v for k, v in dict(os.environ, OMP_NUM_THREADS="1").items() if k not in ("WORLD_SIZE", "RANK")}
    launch = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        victim = _rank_pid(launch.pid, 1, deadline)
        while not (run / "metrics.jsonl").exists() or not (run / "metrics.jsonl").read_text().strip():
            assert launch.poll() is None and time.monotonic() < deadline, launch.communicate()[1][-2000:]
            time.sleep(0.2)
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        _, torchrun_err = launch.communicate(timeout=60)
        took = time.monotonic() - killed
    finally:
        if launch.poll() is None:
            os.killpg(launch.pid, signal.SIGKILL)
    assert launch.returncode != 0 and took < 60, (launch.returncode, took, torchrun_err[-2000:])
    err = next(logs.glob("*/attempt_0/0/stderr.log")).read_text()
    errors = [line for line in err.splitlines() if line.startswith("realnvp: error:")]
    assert len(errors) == 1 and "Traceback" not in err, err[-3000:]
    # Rank 0 mostly hears of it from gloo (the connection closes), else from torchrun's SIGTERM first.
    assert re.fullmatch(r"realnvp: error: (rank 1 of 2 stopped \(connection to it lost during training at step \d+\)"
                        r"|rank 0 of 2 was stopped by SIGTERM during training at step \d+ \(torchrun .* rank 1 of 2\))"
                        r"; the checkpoints up to step \d+ are intact: rerun with --resume to continue", errors[0]), err
    saved = int(re.search(r"up to step (\d+)", errors[0])[1])
    assert Checkpoint.read(run / "checkpoint.pt").step == saved  # what the line promises is on disk
    resumed = _single("moons", run, _loud([*ENDLESS[:1], str(saved + 5), *ENDLESS[2:]]), "--resume")
    assert f"resumed {run} at step {saved} from checkpoint.pt" in resumed
    assert _metrics(run)[-1]["step"] == saved + 5
