"""A fuzzer for the command line: a few hundred generated combinations of bad settings, bad files and
damaged run directories, each run through ``realnvp.cli.main`` in this process. Every case must end
the same way: exit status 2, exactly one line on stderr (``realnvp: error: ...``), no traceback, and
every file of every run directory and of the scratch folder unchanged (SHA-256 before and after).

The cases are generated from tables (each bad value crossed with the commands that read it, plus
seeded random pairs of bad settings), so a failure names a case that can be rerun alone. Train
commands pass ``--quiet``: progress notes are not errors, and every case fails during validation,
before any training step."""

from __future__ import annotations

import hashlib
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from realnvp.cli import main

SETTINGS = [  # (setting, value): each is out of range, of the wrong type or unknown
    *[("data.n_train", v) for v in ("0", "-5", "100000000", "1.5", "nan")],
    *[("data.n_test", v) for v in ("0", "-1", "1e3")],
    *[("data.noise", v) for v in ("nan", "inf", "-inf", "x")],
    *[("data.seed", v) for v in ("-1", "4294967296", "1e20")],
    *[("data.val_fraction", v) for v in ("1", "-0.1", "nan", "inf")],
    *[("data.test_fraction", v) for v in ("0", "1", "nan")],
    *[("train.seed", v) for v in ("-1", "1e20", "100000000000000000000", "nan")],
    *[("train.lr", v) for v in ("inf", "-1", "0", "nan", "1e3", "fast")],
    *[("train.steps", v) for v in ("-1", "10000000000", "1.5")],
    *[("train.cv_folds", v) for v in ("1", "-1", "1000")],
    *[("train.batch_size", v) for v in ("0", "10000000", "-3")],
    *[("train.eval_every", v) for v in ("0", "-10")],
    *[("train.time_budget", v) for v in ("-1", "inf", "nan")],
    *[("train.grad_clip", v) for v in ("-1", "inf")],
    *[("train.weight_decay", v) for v in ("-1", "inf")],
    *[("train.max_bad_steps", v) for v in ("0", "100000")],
    *[("train.warmup_steps", v) for v in ("-1",)],
    *[("train.lr_schedule", v) for v in ("linear",)],
    *[("train.device", v) for v in ("tpu",)],
    *[("train.precision", v) for v in ("fp8",)],
    *[("model.scale_init", v) for v in ("inf", "0", "-1", "nan")],
    *[("model.n_couplings", v) for v in ("0", "100000", "-2")],
    *[("model.hidden", v) for v in ("0", "-3", "99999999", "abc", "8,0")],
    *[("model.bn_momentum", v) for v in ("0", "2")],
    *[("model.kind", v) for v in ("bogus",)],
    *[("model.mask", v) for v in ("diagonal",)],
    *[("model.logit_alpha", v) for v in ("0.5", "0")],
    *[("train.bogus", "1"), ("optim.lr", "1"), ("model", "1")],
]
BIG = ["--set", "model.n_couplings=1000", "--set", "model.hidden=4096,4096"]  # valid, but too big for memory

FILES = {  # name: writer; every one is bad as a table of training vectors
    "empty.csv": lambda p: p.write_text(""),
    "header.csv": lambda p: p.write_text("a,b\n"),
    "ragged.csv": lambda p: p.write_text("1,2\n3\n" * 10),
    "words.csv": lambda p: p.write_text("a,b\n1,x\n" * 10),
    "latin1.csv": lambda p: p.write_bytes("x,y\n1,2\n\xe9,3\n".encode("latin-1")),
    "inf.csv": lambda p: p.write_text("x,y\n" + "1,2\n" * 20 + "inf,1\n"),
    "one.csv": lambda p: p.write_text("x\n" + "1\n" * 30),
    "nan.npy": lambda p: np.save(p, np.where(np.eye(20, 2) > 0, np.nan, 1.0)),
    "huge.npy": lambda p: np.save(p, np.full((20, 2), 1e300)),
    "no_columns.npy": lambda p: np.save(p, np.zeros((20, 0))),
    "cube.npy": lambda p: np.save(p, np.zeros((20, 2, 2))),
    "strings.npy": lambda p: np.save(p, np.array([["a", "b"]] * 20)),
    "complex.npy": lambda p: np.save(p, np.ones((20, 2), dtype=complex)),
    "objects.npy": lambda p: np.save(p, np.array([[1, None]] * 20, dtype=object), allow_pickle=True),
    "garbage.npy": lambda p: p.write_bytes(b"\x93NUMPY garbage"),
    "few.npy": lambda p: np.save(p, np.ones((5, 2))),
    "two.npz": lambda p: np.savez(p, a=np.ones((20, 2)), b=np.ones((20, 2))),
    "empty.npz": lambda p: np.savez(p),
    "notes.txt": lambda p: p.write_text("1,2\n"),
    "a_dir.csv": lambda p: p.mkdir(),
}
MISSING = "missing.npy"
TRAIN_ONLY = {"few.npy"}  # too few rows to split for training, but fine to score

TOMLS = {  # name: text of a config file that must be refused
    "latin1.toml": "[train]\n# d\xe9j\xe0\n".encode("latin-1"),
    "broken.toml": b"[train\nsteps = 3",
    "section.toml": b"data = 5\n",
    "unknown.toml": b"[train]\nstepz = 3\n",
    "type.toml": b"[train]\nsteps = \"many\"\n",
    "float_seed.toml": b"[train]\nseed = 1e20\n",
    "inf_lr.toml": b"[train]\nlr = inf\n",
    "nan_noise.toml": b"[data]\nnoise = nan\n",
    "hidden.toml": b"[model]\nhidden = [8, -1]\n",
}


def _rewrite_best(run: Path, edit) -> None:
    state = torch.load(run / "best.pt", weights_only=True)
    torch.save(edit(state), run / "best.pt")


def _nan(state: dict) -> dict:
    for tensor in state["model"].values():
        if tensor.is_floating_point():
            tensor.fill_(float("nan"))
    return state


class _Evil:
    def __reduce__(self):
        return (print, ("this ran",))


RUN_STATES = {  # name: damage done to a copy of the trained run
    "garbage": lambda run: (run / "best.pt").write_bytes(b"junk"),
    "truncated": lambda run: (run / "best.pt").write_bytes((run / "best.pt").read_bytes()[:3000]),
    "empty": lambda run: (run / "best.pt").write_bytes(b""),
    "nan": lambda run: _rewrite_best(run, _nan),
    "config_list": lambda run: _rewrite_best(run, lambda s: {**s, "config": [1]}),
    "config_string": lambda run: _rewrite_best(run, lambda s: {**s, "config": "moons"}),
    "model_list": lambda run: _rewrite_best(run, lambda s: {**s, "model": [1, 2]}),
    "no_shape": lambda run: _rewrite_best(run, lambda s: {k: v for k, v in s.items() if k != "event_shape"}),
    "bad_shape": lambda run: _rewrite_best(run, lambda s: {**s, "event_shape": [-2]}),
    "no_step": lambda run: _rewrite_best(run, lambda s: {k: v for k, v in s.items() if k != "step"}),
    "bad_settings": lambda run: _rewrite_best(run, lambda s: {**s, "config": {"train": {"lr": float("inf")}}}),
    "unknown_setting": lambda run: _rewrite_best(run, lambda s: {**s, "config": {"train": {"stepz": 1}}}),
    "foreign": lambda run: torch.save({"weights": torch.zeros(3)}, run / "best.pt"),
    "list_file": lambda run: torch.save([1, 2, 3], run / "best.pt"),
    "evil": lambda run: torch.save({"model": _Evil(), "config": {}}, run / "best.pt"),
    "directory": lambda run: ((run / "best.pt").unlink(), (run / "best.pt").mkdir()),
}
LATEST = ("checkpoint.pt", "checkpoint.prev.pt")
RESUME_STATES = {  # damage that --resume must refuse
    "garbage_checkpoints": lambda run: [(run / n).write_bytes(b"junk") for n in LATEST],
    "nan_checkpoints": lambda run: [torch.save(_nan(torch.load(run / n, weights_only=True)), run / n) for n in LATEST],
}
TINY_RUN = ["--set", "data.n_train=2000", "--set", "data.n_test=1000", "--set", "model.n_couplings=2",
            "--set", "model.hidden=8"]
CHANGES = [("data.n_train", "500"), ("data.noise", "0.2"), ("data.seed", "3"), ("data.val_fraction", "0.3"),
           ("model.hidden", "16"), ("model.n_couplings", "4"), ("model.mask", "half"), ("model.batch_norm", "true"),
           ("model.scale_init", "2"), ("model.whiten", "true")]


def _cases() -> list[tuple[str, list[str], str | None]]:
    """(id, command line with {run}/{tmp} placeholders, run state or None)."""
    out = "--out={tmp}/new"
    cases = []
    for key, value in SETTINGS:
        cases.append((f"moons-{key}={value}", ["train", "moons", out, "--quiet", "--set", f"{key}={value}"], None))
        cases.append((f"file-{key}={value}", ["train", "vector", out, "--quiet", "--data", "{tmp}/ok.npy", "--set",
                                             f"{key}={value}"], None))
    rng = random.Random(13)
    for i in range(30):  # two bad settings at once: the first one checked is reported, alone
        pair = rng.sample(SETTINGS, 2)
        cases.append((f"pair{i}", ["train", rng.choice(["moons", "circles", "rings"]), out, "--quiet",
                                   *[arg for key, value in pair for arg in ("--set", f"{key}={value}")]], None))
    cases.append(("too-big", ["train", "moons", out, "--quiet", *BIG], None))
    for name in [*FILES, MISSING]:
        data = "{tmp}/" + name
        cases.append((f"train-{name}", ["train", "vector", out, "--quiet", "--data", data], None))
        if name not in TRAIN_ONLY:
            cases.append((f"score-{name}", ["score", "{run}", data, "-o", "{tmp}/scores.csv"], None))
            cases.append((f"evaluate-{name}", ["evaluate", "{run}", "--data", data], None))
    for name in TOMLS:
        cases.append((f"toml-{name}", ["train", "{tmp}/" + name, out, "--quiet"], None))
    commands = {"evaluate": ["evaluate", "{run}"], "json": ["evaluate", "{run}", "--json"],
                "sample": ["sample", "{run}", "-o", "{tmp}/s.npy"], "png": ["sample", "{run}", "-o", "{tmp}/s.png"],
                "score": ["score", "{run}", "{tmp}/ok.npy", "-o", "{tmp}/scores.csv"]}
    for state in RUN_STATES:
        for command, argv in commands.items():
            cases.append((f"{state}-{command}", argv, state))
    for state in RESUME_STATES:
        cases.append((f"resume-{state}", ["train", "moons", "--out", "{run}", "--resume", "--quiet", *TINY_RUN], state))
    for key, value in CHANGES:
        cases.append((f"resume-{key}", ["train", "moons", "--out", "{run}", "--resume", "--quiet", *TINY_RUN, "--set",
                                        f"{key}={value}"], None))
    for preset in ("circles", "rings", "8gaussians", "digits"):
        cases.append((f"resume-{preset}", ["train", preset, "--out", "{run}", "--resume", "--quiet"], None))
    cases.append(("fresh-over-run", ["train", "moons", "--out", "{run}", "--quiet", *TINY_RUN], None))
    cases.append(("resume-data-file", ["train", "moons", "--out", "{run}", "--resume", "--quiet", "--data",
                                       "{tmp}/ok.npy", *TINY_RUN], None))
    others = {"evaluate": ["evaluate", "{tmp}/none"], "sample": ["sample", "{tmp}/none", "-o", "{tmp}/s.npy"],
              "sample-dir": ["sample", "{run}", "-o", "{tmp}"],
              "score-dir": ["score", "{run}", "{tmp}/ok.npy", "-o", "{tmp}/a_dir.csv"],
              "temperature": ["sample", "{run}", "-o", "{tmp}/s.npy", "--temperature", "nan"],
              "n": ["sample", "{run}", "-o", "{tmp}/s.npy", "-n", "0"]}
    for command, argv in others.items():
        cases.append((f"other-{command}", argv, None))
    return cases


CASES = _cases()


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def world(tiny_moons, tmp_path_factory):
    """The scratch folder of bad files and one copy of the trained run per state (no pictures)."""
    root = tmp_path_factory.mktemp("fuzz")
    tmp = root / "scratch"
    tmp.mkdir()
    np.save(tmp / "ok.npy", np.random.RandomState(0).randn(200, 2).astype(np.float32))
    for name, write in FILES.items():
        write(tmp / name)
    for name, text in TOMLS.items():
        (tmp / name).write_bytes(text)
    runs = {}
    for state, damage in {None: None, **RUN_STATES, **RESUME_STATES}.items():
        run = root / f"run-{state}"
        run.mkdir()
        for path in tiny_moons.iterdir():
            if path.is_file() and path.suffix in (".pt", ".json", ".jsonl"):
                shutil.copy2(path, run / path.name)
        if damage:
            damage(run)
        runs[state] = run
    return tmp, runs


def test_there_are_enough_cases():
    assert len(CASES) >= 200 and len({name for name, _, _ in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[name for name, _, _ in CASES])
def test_the_cli_fuzzer(case, world, capsys):
    _, argv, state = case
    tmp, runs = world
    run = runs[state]
    before = (_digest(run), _digest(tmp))
    code = main([arg.format(run=run, tmp=tmp) for arg in argv])
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert code == 2, (code, captured.err[-2000:])
    assert len(err) == 1 and err[0].startswith("realnvp: error: "), err
    assert "Traceback" not in captured.err and "this ran" not in captured.out
    assert (_digest(run), _digest(tmp)) == before
    assert not (tmp / "new").exists() and not (tmp / "s.npy").exists() and not (tmp / "scores.csv").exists()
