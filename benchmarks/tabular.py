"""Tables nobody tuned for: ``realnvp train --data train.npy --test-data test.npy`` with no other flags
(the CLI is what is measured, through ``realnvp.cli.main`` in a fresh process per table) against
baselines fitted on the same training rows and scored on the same test rows:

- ``gaussian``: the full-covariance Gaussian (``realnvp.evaluation.baselines``), what ``evaluate`` reports;
- ``gmm``: scikit-learn ``GaussianMixture`` (full covariances), components 1..10 chosen by BIC;
- ``kde``: ``KernelDensity`` (Gaussian kernel) on standardised columns, bandwidth by 5-fold
  cross-validation (on at most 5,000 rows), scored with the log-det of the standardisation.

Tables: scikit-learn's bundled iris (150 x 4), diabetes (442 x 10) and 8x8 digits as 64-D vectors
(1,797 rows, pixels 0..16 dequantized with uniform noise so the density exists), split 80/20 with a
seeded permutation; and synthetic tables with an exactly known density in D = 2, 8, 16, 32 (pairs of
"bananas" ``(a, s b + c (a^2 - 1))`` mixed by a random rotation) at several sizes, with 5,000 fresh
test rows: there the KL gap ``mean(log p - log q)`` over the test rows is exact up to sampling.
Seed 0 is reported; seed 1 (other rotations, other draws, other splits) is what the defaults were
chosen on (``--seed 1``).

    python -m benchmarks.tabular                  # every table (nice'd), rows appended to tabular_results.jsonl
    python -m benchmarks.tabular --only 'iris,synth8*'   # iris and every table starting with synth8
    python -m benchmarks.tabular --table          # print the RESULTS.md section from tabular_results.jsonl
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn import datasets
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import KernelDensity

from benchmarks.rawlines import HERE, append_jsonl, commit, machine, read_jsonl
from benchmarks.render.tabular import N_TEST_SYNTH, tabular_names, tabular_section
from realnvp.evaluation.baselines import gaussian_nll

JSONL = HERE / "tabular_results.jsonl"
# The KDE baseline is fitted on at most this many training rows: its scoring is quadratic in them.
KDE_ROWS = 20_000
SPREAD, BEND = 0.5, 0.4  # the banana pair (a, SPREAD * b + BEND * (a^2 - 1)), a, b ~ N(0, 1)


def rotation(dim: int, seed: int) -> np.ndarray:
    """A random rotation (Haar, via QR) fixed by ``seed``."""
    q, r = np.linalg.qr(np.random.RandomState(1000 + seed).randn(dim, dim))
    return q * np.sign(np.diag(r))


def banana_sample(n: int, dim: int, seed: int, draw: int) -> np.ndarray:
    """``n`` rows of the known density: banana pairs, rotated (``draw`` separates train and test)."""
    rng = np.random.RandomState(seed * 7919 + draw)
    a, b = rng.randn(n, dim // 2), rng.randn(n, dim // 2)
    y = np.empty((n, dim))
    y[:, 0::2], y[:, 1::2] = a, SPREAD * b + BEND * (a**2 - 1)
    return y @ rotation(dim, seed).T


def banana_log_prob(x: np.ndarray, seed: int) -> np.ndarray:
    """The exact ``log p(x)`` of ``banana_sample`` (the rotation's log-det is 0)."""
    y = x @ rotation(x.shape[1], seed)
    a, rest = y[:, 0::2], y[:, 1::2] - BEND * (y[:, 0::2] ** 2 - 1)
    per_pair = -0.5 * a**2 - 0.5 * (rest / SPREAD) ** 2 - math.log(SPREAD) - math.log(2 * math.pi)
    return per_pair.sum(1)


def real_table(name: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(train, test)`` of a bundled scikit-learn table, an 80/20 split by a ``seed`` permutation."""
    if name == "iris":
        x = datasets.load_iris().data
    elif name == "diabetes":
        x = datasets.load_diabetes().data
    else:  # digits: integer pixels 0..16, dequantized so a density exists
        x = datasets.load_digits().data + np.random.RandomState(seed).rand(1797, 64)
    order = np.random.RandomState(seed).permutation(len(x))
    n_test = int(round(0.2 * len(x)))
    return x[order[n_test:]], x[order[:n_test]]


def baselines(train: np.ndarray, test: np.ndarray, seed: int) -> dict[str, float]:
    """Test NLL (nats per example) of the Gaussian, the BIC-chosen mixture and the CV'd KDE."""
    out = {"gaussian": gaussian_nll(train, test)}
    best = None
    for k in range(1, 11):
        if k * 3 > len(train):
            break
        gmm = GaussianMixture(k, covariance_type="full", random_state=seed, reg_covar=1e-6).fit(train)
        bic = gmm.bic(train)
        if best is None or bic < best[0]:
            best = (bic, gmm)
    out["gmm"] = float(-best[1].score(test))
    out["gmm_components"] = best[1].n_components
    loc, scale = train.mean(0), train.std(0) + 1e-12
    z_train, z_test = (train - loc) / scale, (test - loc) / scale
    pick = np.random.RandomState(seed).permutation(len(z_train))[:5000]
    grid = GridSearchCV(KernelDensity(), {"bandwidth": np.logspace(-1.5, 0.5, 21)}, cv=5)
    grid.fit(z_train[pick])
    fit = np.random.RandomState(seed + 1).permutation(len(z_train))[:KDE_ROWS]
    kde = KernelDensity(bandwidth=grid.best_params_["bandwidth"]).fit(z_train[fit])
    out["kde"] = float(-kde.score_samples(z_test).mean() + np.log(scale).sum())
    out["kde_bandwidth"] = float(grid.best_params_["bandwidth"])
    return out


def run_cli(train: np.ndarray, test: np.ndarray, folder: Path, extra: list[str]) -> tuple[dict[str, Any], float, str]:
    """``realnvp train --data train.npy --test-data test.npy`` in a fresh process: its metrics, wall
    seconds and the one line of chosen defaults."""
    np.save(folder / "train.npy", train.astype(np.float32))
    np.save(folder / "test.npy", test.astype(np.float32))
    cmd = [sys.executable, "-m", "realnvp", "train", "--data", str(folder / "train.npy"), "--test-data",
           str(folder / "test.npy"), "--out", str(folder / "run"), "--no-pictures", "--json", *extra]
    start, cpu = time.perf_counter(), _child_cpu()
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    wall = time.perf_counter() - start
    _CPU["last"] = _child_cpu() - cpu
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed")
    line = next((x for x in done.stderr.splitlines() if x.startswith("defaults for")), "")
    return json.loads(done.stdout.strip().splitlines()[-1]), wall, line


_CPU: dict[str, float] = {}


def _child_cpu() -> float:
    """User + system CPU seconds of finished child processes: what a run costs whatever the load."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def host() -> dict[str, Any]:
    """The CPU's model name and flags, the load averages and the commit, recorded with every row."""
    info = machine()
    return {"cpu": info["cpu"], "cpu_flags": info["cpu_flags"], "loadavg": os.getloadavg(), "commit": commit()}


def one(name: str, rows: int, dim: int, seed: int, extra: list[str]) -> dict[str, Any]:
    """Train, evaluate and score the baselines on one table; the row that goes into the .jsonl."""
    if name.startswith("synth"):
        train, test = banana_sample(rows, dim, seed, 0), banana_sample(N_TEST_SYNTH, dim, seed, 1)
    else:
        train, test = real_table(name, seed)
    row: dict[str, Any] = {"table": name, "rows": len(train) + len(test), "dim": dim, "seed": seed,
                           "extra": extra, "start_load": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        metrics, wall, line = run_cli(train, test, Path(tmp), extra)
        if name.startswith("synth"):
            flow_log_p = score_file(Path(tmp))
            truth = banana_log_prob(test, seed)
            row["kl_gap"] = float(np.mean(truth - flow_log_p))
            row["entropy"] = float(-banana_log_prob(banana_sample(200_000, dim, seed, 2), seed).mean())
    row.update(ours=metrics["test_nll_nats"], wall_s=round(wall, 1), cpu_s=round(_CPU["last"], 1),
               steps=metrics["steps"], best_step=metrics["best_step"], stop=metrics.get("stop_reason", ""),
               defaults=line)
    row.update(baselines(train, test, seed))
    row.update(host())
    return row


def score_file(folder: Path) -> np.ndarray:
    """Per-row log-likelihood of the test file under the trained run (``realnvp score``)."""
    out = folder / "scores.csv"
    subprocess.run([sys.executable, "-m", "realnvp", "score", str(folder / "run"), str(folder / "test.npy"),
                    "-o", str(out), "--quiet"], check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return np.loadtxt(out, delimiter=",", skiprows=1)[:, 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="*", help="comma-separated table names; NAME* matches a prefix")
    parser.add_argument("--seed", type=int, default=0, help="0 is reported; 1 is for choosing defaults")
    parser.add_argument("--set", action="append", default=[], help="extra --set for realnvp train (trials)")
    parser.add_argument("--table", action="store_true", help="print the RESULTS.md section and exit")
    parser.add_argument("--jsonl", type=Path, default=JSONL)
    args = parser.parse_args()
    if args.table:
        print(tabular_section(read_jsonl(args.jsonl), args.seed))
        return
    os.nice(10)
    extra = [f"--set={s}" for s in args.set]
    for name, rows, dim in tabular_names():
        if not any(name == pick or (pick.endswith("*") and name.startswith(pick[:-1]))
                   for pick in args.only.split(",")):
            continue
        row = one(name, rows, dim, args.seed, extra)
        append_jsonl(args.jsonl, row)
        print(f"{name}: ours {row['ours']:.3f} gaussian {row['gaussian']:.3f} gmm {row['gmm']:.3f} "
              f"kde {row['kde']:.3f} kl/dim {row.get('kl_gap', float('nan')) / dim:.4f} {row['wall_s']} s",
              file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
