"""The GPU check (issue 27): the ``cifar10`` preset (the paper's model) on CUDA, s/t networks in bf16
autocast on channels-last tensors, trained for ``--minutes`` on the colour benchmark's photo patches
(``benchmarks/patches.py``); images/s and test bits/dim under the colour benchmark's fixed
dequantization, one JSON line appended to ``benchmarks/gpu_results.jsonl`` with the GPU's name.

One command, within a device machine's 10-minute call (7 minutes of training, compilation included,
plus data, evaluation and start-up):

    PYTHONPATH=src python3 -m benchmarks.gpu
    PYTHONPATH=src python3 -m benchmarks.gpu --device cpu --minutes 0.2 --no-record   # smoke run anywhere
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.harness import train_logged
from benchmarks.patches import bpd_on_test, make_patches
from benchmarks.rawlines import HERE, append_jsonl, commit, machine
from realnvp.config import load_config

RESULTS = HERE / "gpu_results.jsonl"


def device_name(device: str) -> str:
    """The accelerator's name (``torch.cuda.get_device_name``), or the CPU's model for a smoke run."""
    return torch.cuda.get_device_name() if device == "cuda" else machine()["cpu"]


def run(device: str, minutes: float, seed: int) -> dict:
    """Train ``cifar10`` on the patches for ``minutes`` on ``device``; the raw line (not yet written)."""
    train, test_nhwc = make_patches()
    test = np.ascontiguousarray(test_nhwc.transpose(0, 3, 1, 2))
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "patches.npz"
        np.savez(data, x_train=train, x_test=test_nhwc)
        precision = "bf16" if device == "cuda" else "fp32"
        cfg = load_config("cifar10", [f"data.path={data}", f"train.device={device}", f"train.precision={precision}",
                                      f"train.time_budget={60 * minutes}", f"train.seed={seed}"])
        result, records, _ = train_logged(cfg, Path(tmp) / "run")
    flow = result.flow.eval()
    started = time.perf_counter()
    bpd = bpd_on_test(lambda y: flow.log_prob(y.to(next(flow.parameters()).device)), test)
    train_s = records[-1]["elapsed_s"]
    return {"benchmark": "gpu", "preset": "cifar10", "device": device, "device_name": device_name(device),
            "precision": precision, "channels_last": device == "cuda", "minutes": minutes, "seed": seed,
            "test_bpd": bpd, "best_val_bpd": min((r["val_bpd"] for r in records if "val_bpd" in r), default=None),
            "steps": result.step, "batch_size": cfg.train.batch_size, "train_s": train_s,
            "images_per_s": result.step * cfg.train.batch_size / train_s, "params": flow.n_params(),
            "stop_reason": result.stop_reason, "evaluate_s": round(time.perf_counter() - started, 1),
            "n_train": len(train), "n_test": len(test), "torch": torch.__version__,
            "python": platform.python_version(), "commit": commit(), "cpu": machine()["cpu"],
            "date": time.strftime("%Y-%m-%d %H:%M", time.gmtime())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"), help="cpu: a smoke run of the script")
    parser.add_argument("--minutes", type=float, default=7.0, help="training wall time, compilation included")
    parser.add_argument("--seed", type=int, default=0, help="initialisation and batch seed")
    parser.add_argument("--no-record", action="store_true",
                        help=f"print the line only, do not append to {RESULTS.name}")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("benchmarks.gpu: no CUDA GPU here (--device cpu runs a smoke check)")
    row = run(args.device, args.minutes, args.seed)
    print(json.dumps(row), flush=True)
    if not args.no_record:
        append_jsonl(RESULTS, row)


if __name__ == "__main__":
    main()
