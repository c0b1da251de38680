"""DDP under torchrun with gloo and 2 processes equals one process with the same global batch."""

import json
import os
import subprocess
import sys

ARGS = ["--steps", "40", "--no-pictures", "--quiet", "--set", "model.hidden=32,32", "--set", "model.batch_norm=true",
        "--set", "model.n_couplings=4", "--set", "train.eval_every=10", "--set", "train.log_every=5",
        "--set", "train.batch_size=64",
        "--set", "data.n_train=2000", "--set", "data.n_test=500"]


def _metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("WORLD_SIZE", None)
    return env


def test_two_process_ddp_matches_single_process(tmp_path):
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    subprocess.run([sys.executable, "-m", "realnvp", "train", "moons", "--out", str(single), *ARGS],
                   check=True, env=_env(), timeout=300)
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
                          "-m", "realnvp", "train", "moons", "--out", str(ddp), *ARGS],
                         env=_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    a, b = _metrics(single), _metrics(ddp)
    assert [r["step"] for r in a if "val_nll" in r] == [10, 20, 30, 40]
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for ra, rb in zip(a, b, strict=True):
        assert abs(ra["train_nll"] - rb["train_nll"]) < 1e-4, (ra, rb)
        assert abs(ra.get("val_nll", 0) - rb.get("val_nll", 0)) < 1e-4, (ra, rb)
    # Only rank 0 wrote: one metrics line per evaluation, and the run evaluates like any other.
    assert (ddp / "evaluation.json").exists()


def test_resume_under_a_different_world_size(tmp_path):
    run = tmp_path / "run"
    constant = ["--set", "train.lr_schedule=constant", "--set", "train.warmup_steps=0"]  # steps don't shape the lr
    first = [a if a != "40" else "20" for a in ARGS] + constant
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
                    "-m", "realnvp", "train", "moons", "--out", str(run), *first], check=True, env=_env(),
                   capture_output=True, timeout=300)
    subprocess.run([sys.executable, "-m", "realnvp", "train", "moons", "--out", str(run), "--resume", *ARGS, *constant],
                   check=True, env=_env(), capture_output=True, timeout=300)
    straight = tmp_path / "straight"
    subprocess.run([sys.executable, "-m", "realnvp", "train", "moons", "--out", str(straight), *ARGS, *constant],
                   check=True, env=_env(), capture_output=True, timeout=300)
    for ra, rb in zip(_metrics(run), _metrics(straight)):
        assert ra["step"] == rb["step"]
        # Same trajectory up to float summation order (2 ranks vs 1), amplified a little by Adam at lr 2e-3.
        assert abs(ra["train_nll"] - rb["train_nll"]) < 1e-3, (ra, rb)
