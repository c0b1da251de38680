"""DDP under torchrun with gloo and 2 processes equals one process with the same global batch, for a
vector flow with flow batch norm and for an image flow whose s/t ResNets use batch norm; a run resumes
onto another world size where it stopped and continues the uninterrupted trajectory."""

import json
import os
import subprocess
import sys

import pytest
import torch
from torch import nn

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
              "--set", "train.lr_schedule=constant"]
# Validation runs in eval mode on the running averages. The bias of a convolution that feeds a batch norm
# has zero gradient up to rounding too, so it drifts differently in 1 and 2 processes; only the running
# means see it: validation agrees to ~1.5e-2 nats (3e-4 bits/dim) after 20 steps, training to 5e-5.
IMAGE_VAL_TOL = 0.05
SINGLE = [sys.executable, "-m", "realnvp", "train"]
TWO = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone", "-m", "realnvp", "train"]


def _metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("WORLD_SIZE", None)
    return env


def _train(launcher, preset, run, args, *extra):
    out = subprocess.run([*launcher, preset, "--out", str(run), *args, *extra], env=_env(), capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stderr


def _same_trajectory(a, b, tol, val_tol=None):
    """Equal record by record (steps, train NLL to ``tol``, validation NLL to ``val_tol``, by default
    ``tol``); the records of both runs are compared, none left over."""
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for ra, rb in zip(a, b, strict=True):
        assert abs(ra["train_nll"] - rb["train_nll"]) < tol, (ra, rb)
        assert ("val_nll" in ra) == ("val_nll" in rb)
        assert abs(ra.get("val_nll", 0) - rb.get("val_nll", 0)) < (val_tol or tol), (ra, rb)


def test_two_process_ddp_matches_single_process(tmp_path):
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    _train(SINGLE, "moons", single, ARGS)
    _train(TWO, "moons", ddp, ARGS)
    a = _metrics(single)
    assert [r["step"] for r in a if "val_nll" in r] == [10, 20, 30, 40]
    _same_trajectory(a, _metrics(ddp), 1e-4)
    # Only rank 0 wrote: one metrics line per record, and the run evaluates like any other.
    assert (ddp / "evaluation.json").exists()


def test_resume_under_a_different_world_size(tmp_path):
    run = tmp_path / "run"
    constant = ["--set", "train.lr_schedule=constant", "--set", "train.warmup_steps=0"]  # steps don't shape the lr
    first = [a if a != "40" else "20" for a in ARGS] + constant
    _train(TWO, "moons", run, first)
    loud = [a for a in ARGS if a != "--quiet"]
    log = _train(SINGLE, "moons", run, loud, "--resume", *constant)
    assert f"resumed {run} at step 20 from checkpoint.pt" in log
    straight = tmp_path / "straight"
    _train(SINGLE, "moons", straight, ARGS, *constant)
    # Same trajectory up to float summation order (2 ranks vs 1), amplified a little by Adam at lr 2e-3.
    _same_trajectory(_metrics(run), _metrics(straight), 1e-3)


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


@pytest.fixture(scope="module")
def image_runs(tmp_path_factory):
    """digits trained 20 steps in one process and in two; and 10 steps in each world, to resume from."""
    root = tmp_path_factory.mktemp("image_ddp")
    _train(SINGLE, "digits", root / "single", IMAGE_ARGS)
    _train(TWO, "digits", root / "ddp", IMAGE_ARGS)
    half = [a if a != "20" else "10" for a in IMAGE_ARGS]
    _train(SINGLE, "digits", root / "from_single", half)
    _train(TWO, "digits", root / "from_ddp", half)
    return root


def test_image_ddp_with_batch_norm_matches_single_process(image_runs):
    a = _metrics(image_runs / "single")
    assert [r["step"] for r in a if "val_nll" in r] == [10, 20]
    _same_trajectory(a, _metrics(image_runs / "ddp"), 1e-4, IMAGE_VAL_TOL)


@pytest.mark.parametrize("start, launcher", [("from_ddp", SINGLE), ("from_single", TWO)], ids=["2-to-1", "1-to-2"])
def test_image_run_resumes_onto_another_world_size(image_runs, start, launcher):
    run = image_runs / start
    log = _train(launcher, "digits", run, [a for a in IMAGE_ARGS if a != "--quiet"], "--resume")
    assert f"resumed {run} at step 10 from checkpoint.pt" in log
    _same_trajectory(_metrics(run), _metrics(image_runs / "single"), 1e-4, IMAGE_VAL_TOL)
