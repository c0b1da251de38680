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
import io
import json
import os
import random
import shutil
import zipfile
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


# Round 3 (issue 25): more classes of bad input. Each case is (id, command line, run state, expected):
# "error" must end in exit 2 and one error line; "either" may also work (exit 0, nothing on stderr but
# warnings): an altered run file is skipped like a torn line. {out} is an empty folder of the case's own,
# where a command that works writes; {run}, {tmp} as above.
FLAGS = {  # every numeric flag of every subcommand, with a valid rest of the command line
    "sample -n": ["sample", "{run}", "-o", "{out}/s.npy", "--quiet", "-n"],
    "sample --seed": ["sample", "{run}", "-o", "{out}/s.npy", "--quiet", "-n", "5", "--seed"],
    "sample --temperature": ["sample", "{run}", "-o", "{out}/s.npy", "--quiet", "-n", "5", "--temperature"],
    "sample --class": ["sample", "{run}", "-o", "{out}/s.npy", "--quiet", "-n", "5", "--class"],
    "sample --context": ["sample", "{run}", "-o", "{out}/s.npy", "--quiet", "-n", "5", "--context"],
    "animate -n": ["animate", "{run}", "-o", "{out}/a.gif", "--quiet", "--seed", "99999999999", "-n"],
    "animate --seed": ["animate", "{run}", "-o", "{out}/a.gif", "--quiet", "-n", "0", "--seed"],
    "train --steps": ["train", "moons", "--out", "{out}/new", "--quiet", "--set", "model.hidden=-1", "--steps"],
    "train --time-budget": ["train", "moons", "--out", "{out}/new", "--quiet", "--set", "model.hidden=-1",
                            "--time-budget"],
    "train --seed": ["train", "moons", "--out", "{out}/new", "--quiet", "--set", "model.hidden=-1", "--seed"],
    "train --context-columns": ["train", "vector", "--out", "{out}/new", "--quiet", "--data", "{tmp}/ok.npy",
                                "--set", "model.hidden=-1", "--context-columns"],
}
ODD = ["-1", "-0", "0", "1e3", "1e400", "-1e400", "nan", "inf", "-inf", "99999999999999999999999", "2147483648",
       "0x10", "", " ", "five", "٣", "1,5", "--", "1.5", "5_000", "9" * 400]
# Values each flag may legitimately take (the command then works, or fails for its other bad setting).
VALID = {"sample -n": {"1e3": "error", "٣": "ok", "5_000": "ok"}, "sample --seed": {"-0": "ok", "0": "ok", "٣": "ok",
         "5_000": "ok", "2147483648": "error"}, "sample --temperature": {"-0": "ok", "0": "ok", "1.5": "ok", "٣": "ok",
         "5_000": "error", "1e3": "error"}}
PRESETS = ["nope", "Moons", "moons ", "moons.toml", "../moons", "MOONS", "mo\u200bons", "monos", "vectorr", "ünïcode",
           "digits/", "", "-", ".", "presets/moons", "8GAUSSIANS", "cifar", "mnist_small"]


def _flag_cases() -> list[tuple[str, list[str], str | None, str]]:
    """Odd values for every numeric flag; unknown presets."""
    cases = []
    for flag, argv in FLAGS.items():
        for i, value in enumerate(ODD):
            expect = VALID.get(flag, {}).get(value, "error")
            if flag.startswith("train") or flag.startswith("animate"):  # the rest of the line is bad
                expect = "error"
            cases.append((f"flag-{flag.replace(' ', '')}-{i}", [*argv, value], None, expect))
    for i, preset in enumerate(PRESETS):
        cases.append((f"preset-{i}", ["train", preset, "--out", "{out}/new", "--quiet"], None, "error"))
    return cases


def _npy_header(shape: tuple[int, ...], descr: str = "<f4") -> bytes:
    """An .npy file whose header claims ``shape`` and whose body holds a few bytes only."""
    header = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode()
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + b"\x00" * 64


def _zip_members(path: Path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for name, payload in members.items():
            archive.writestr(name, payload)


def _npy_bytes(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def _header_file(shape: tuple[int, ...], zipped: bool):
    """A writer of an .npy (or an .npz holding one) whose header claims ``shape``."""
    def write(path: Path) -> None:
        if zipped:
            _zip_members(path, {"x.npy": _npy_header(shape)})
        else:
            path.write_bytes(_npy_header(shape))
    return write


SHAPES = [(10**12, 2), (2**62, 2), (20, 10**9), (3, 2**40), (10**6, 10**6), (-1, 2), (20,), (), (0, 2), (2, 3, 4, 5),
          (10**18,), (1, 2**31)]
SIZE_FILES = {  # name: writer; tables too big, too wide, too long or malformed in size
    **{f"shape{i}.npy": _header_file(shape, zipped=False) for i, shape in enumerate(SHAPES)},
    **{f"shape{i}.npz": _header_file(shape, zipped=True) for i, shape in enumerate(SHAPES[:6])},
    "descr_huge.npy": lambda p: p.write_bytes(_npy_header((20, 2), "<V1000000000")),
    "descr_object.npy": lambda p: p.write_bytes(_npy_header((20, 2), "|O")),
    "header_long.npy": lambda p: p.write_bytes(b"\x93NUMPY\x02\x00" + (10**6).to_bytes(4, "little") + b"{" * 1000),
    "wide10001.csv": lambda p: p.write_text(",".join(["1"] * 10001) + "\n" + ",".join(["2"] * 10001) + "\n"),
    "wide50000.csv": lambda p: p.write_text((",".join(str(i % 7) for i in range(50000)) + "\n") * 3),
    "long_cell.csv": lambda p: p.write_text("x,y\n" + "1" * 1_000_000 + ",2\n" + "3,4\n" * 20),
    "long_header.csv": lambda p: p.write_text("x" * 1_000_000 + ",y\n" + "1,2\n3,5\n" * 10),
    "long_line.csv": lambda p: p.write_text("x,y\n" + "1,2" * 300_000 + "\n" + "3,4\n" * 20),
    "long_text.csv": lambda p: p.write_text("x,y\n" + "1,2\n" * 20 + "a" * 2_000_000 + ",3\n"),
    "many_rows_one_bad.csv": lambda p: p.write_text("x,y\n" + "1,2\n3,5\n" * 5_000 + "1,\n"),
    "nul.csv": lambda p: p.write_bytes(b"x,y\n" + b"1,2\n\x00\x00,3\n" * 10),
}
TAMPERED = {  # name: writer; .npz and .npy members that are not plain arrays of numbers
    "pickled.npz": lambda p: _zip_members(p, {"x.npy": _npy_bytes(np.array([[1, None]] * 20, object), True)}),
    "pickled_code.npz": lambda p: _zip_members(p, {"x.npy": _npy_bytes(np.array([_Evil()] * 2, object), True)}),
    "truncated.npz": lambda p: (np.savez(p, x=np.ones((20, 2))), p.write_bytes(p.read_bytes()[:150])),
    "truncated_tail.npz": lambda p: (np.savez(p, x=np.ones((20, 2))), p.write_bytes(p.read_bytes()[:-30])),
    "crc.npz": lambda p: (np.savez(p, x=np.ones((20, 2))),
                          p.write_bytes(p.read_bytes()[:200] + b"\xff" + p.read_bytes()[201:])),
    "strings.npz": lambda p: np.savez(p, x=np.array([["a", "b"]] * 20)),
    "complex.npz": lambda p: np.savez(p, x=np.ones((20, 2), complex)),
    "bytes.npz": lambda p: np.savez(p, x=np.array([[b"1", b"2"]] * 20)),
    "datetime.npz": lambda p: np.savez(p, x=np.zeros((20, 2), "datetime64[s]")),
    "structured.npz": lambda p: np.savez(p, x=np.zeros(20, [("a", "f4"), ("b", "f4")])),
    "void.npz": lambda p: np.savez(p, x=np.zeros((20, 2), "V4")),
    "text_member.npz": lambda p: _zip_members(p, {"x.npy": b"1,2\n3,4\n"}),
    "csv_member.npz": lambda p: _zip_members(p, {"x.csv": b"1,2\n3,4\n"}),
    "nested.npz": lambda p: _zip_members(p, {"x.npy": (np.savez(p.with_suffix(".in.npz"), x=np.ones((20, 2))),
                                                       p.with_suffix(".in.npz").read_bytes())[1]}),
    "zip_dir.npz": lambda p: _zip_members(p, {"x/": b""}),
    "not_zip.npz": lambda p: p.write_bytes(b"PK\x03\x04" + b"\x00" * 100),
    "empty_file.npz": lambda p: p.write_bytes(b""),
    "float16_inf.npz": lambda p: np.savez(p, x=np.full((20, 2), 70000.0).astype(np.float16)),
    "bool.npy": lambda p: np.save(p, np.ones((20, 2), bool)),
    "object_pickled.npy": lambda p: np.save(p, np.array([[1.0, 2.0]] * 20, object), allow_pickle=True),
}


DEEP = {"list": "[" * 100_000 + "]" * 100_000, "object": '{"a": ' * 50_000 + "1" + "}" * 50_000,
        "open": "[" * 1_000_000, "mixed": '[{"a": ' * 30_000 + "0" + "}]" * 30_000}
WRONG = ['"abc"', "null", "[1, 2]", '{"a": 1}', "true", "1e999", "NaN", "-Infinity", '""', "-1", "1e308", '"60"']
METRIC_KEYS = ("step", "train_nll", "val_nll", "lr", "elapsed_s")
EVALUATION_KEYS = ("test_nll_nats", "baseline_gaussian_test_nll_nats", "steps", "n_params", "stop_reason", "dim",
                   "n_levels", "bits_per_dim", "data", "started_from", "inverse_max_abs_error", "val_nll_nats")
CONFIG_PATHS = (("data",), ("model",), ("train",), ("data", "name"), ("data", "path"), ("model", "hidden"),
                ("model", "n_couplings"), ("train", "lr"), ("train", "steps"), ("data", "column_names"))


def _json_edit(name: str, path: tuple[str, ...], value: str):
    """A damage: the JSON file ``name`` of a run with the entry at ``path`` replaced by the JSON text ``value``
    (the whole file when ``path`` is empty)."""
    def damage(run: Path) -> None:
        if not path:
            (run / name).write_text(value)
            return
        table = json.loads((run / name).read_text())
        inner = table
        for key in path[:-1]:
            inner = inner[key]
        inner[path[-1]] = "\0VALUE\0"
        (run / name).write_text(json.dumps(table).replace('"\\u0000VALUE\\u0000"', value))
    return damage


def _metrics_edit(key: str, value: str):
    """A damage: the last metrics.jsonl record with ``key`` holding the JSON text ``value``."""
    def damage(run: Path) -> None:
        lines = (run / "metrics.jsonl").read_text().splitlines()
        record = json.loads(lines[-1])
        record[key] = "\0VALUE\0"
        lines[-1] = json.dumps(record).replace('"\\u0000VALUE\\u0000"', value)
        (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    return damage


def _checkpoint_edit(name: str, seed: int, cut: bool):
    """A damage: ``name`` with a seeded run of bytes flipped, or cut at a seeded length."""
    def damage(run: Path) -> None:
        data = bytearray((run / name).read_bytes())
        rng = random.Random(seed)
        if cut:
            del data[rng.randrange(1, len(data)):]
        else:
            for at in rng.sample(range(len(data)), rng.randint(1, 8)):
                data[at] ^= rng.randrange(1, 256)
        (run / name).write_bytes(bytes(data))
    return damage


RUN_FILE_STATES = {  # name: damage to a run file that commands read beside the checkpoints
    **{f"metrics-{key}-{i}": _metrics_edit(key, value) for key in METRIC_KEYS for i, value in enumerate(WRONG)},
    **{f"metrics-deep-{kind}": (lambda t: lambda run: (run / "metrics.jsonl").write_text(t + "\n"))(text)
       for kind, text in DEEP.items()},
    "metrics-binary": lambda run: (run / "metrics.jsonl").write_bytes(bytes(range(256)) * 10),
    "metrics-not-objects": lambda run: (run / "metrics.jsonl").write_text("1\n[]\n\"x\"\nnull\n"),
    **{f"evaluation-{key}-{i}": _json_edit("evaluation.json", (key,), value)
       for key in EVALUATION_KEYS for i, value in enumerate(WRONG[:4])},
    **{f"evaluation-deep-{kind}": _json_edit("evaluation.json", (), text) for kind, text in DEEP.items()},
    "evaluation-list": _json_edit("evaluation.json", (), "[1, 2]"),
    **{f"config-{'.'.join(path)}-{i}": _json_edit("config.json", path, value)
       for path in CONFIG_PATHS for i, value in enumerate(WRONG[:5])},
    **{f"config-deep-{kind}": _json_edit("config.json", (), text) for kind, text in DEEP.items()},
    "config-null": _json_edit("config.json", (), "null"),
    "config-directory": lambda run: ((run / "config.json").unlink(), (run / "config.json").mkdir()),
    "metrics-directory": lambda run: ((run / "metrics.jsonl").unlink(), (run / "metrics.jsonl").mkdir()),
    "evaluation-directory": lambda run: ((run / "evaluation.json").unlink(), (run / "evaluation.json").mkdir()),
    **{f"{name.split('.')[0]}-fifo": (lambda n: lambda run: ((run / n).unlink(), os.mkfifo(run / n)))(name)
       for name in ("evaluation.json", "config.json", "metrics.jsonl")},  # a read would wait forever
}
CHECKPOINT_STATES = {  # name: seeded byte damage to best.pt
    **{f"best-flip-{seed}": _checkpoint_edit("best.pt", seed, cut=False) for seed in range(12)},
    **{f"best-cut-{seed}": _checkpoint_edit("best.pt", seed, cut=True) for seed in range(8)},
}
RESUME_CUTS = {f"latest-cut-{seed}": (lambda s: lambda run: [_checkpoint_edit(n, s, cut=True)(run)
                                                            for n in LATEST])(seed) for seed in range(6)}
LOOKS = {  # the commands that read a run's files, writing (when they work) into {out} only
    "evaluate": ["evaluate", "{run}"], "evaluate-json": ["evaluate", "{run}", "--json"],
    "runs": ["runs", "{run}"], "runs-json": ["runs", "{run}", "--json"],
    "sample": ["sample", "{run}", "-n", "7", "-o", "{out}/s.npy", "--quiet"],
    "score": ["score", "{run}", "{tmp}/ok.npy", "-o", "{out}/s.csv", "--quiet"],
    "resume": ["train", "moons", "--out", "{run}", "--resume", "--quiet", *TINY_RUN, "--set", "model.hidden=4"],
}
REPORTED = ("metrics-step-0", "evaluation-deep-object", "config-model.hidden-0")  # a report draws: seconds each
LONG = "a" * 300
LONG_NAMES = {  # a file or folder name over the 255 bytes a file system allows
    "sample-out": ["sample", "{run}", "-n", "5", "-o", f"{{out}}/{LONG}.npy"],
    "score-out": ["score", "{run}", "{tmp}/ok.npy", "-o", f"{{out}}/{LONG}.csv"],
    "animate-out": ["animate", "{run}", "-n", "5", "-o", f"{{out}}/{LONG}.gif"],
    "report-out": ["report", "{run}", "-o", f"{{out}}/{LONG}.html"],
    "train-out": ["train", "moons", "--out", f"{{out}}/{LONG}", "--quiet", "--steps", "1"],
    "train-data": ["train", "vector", "--out", "{out}/new", "--quiet", "--data", f"{{tmp}}/{LONG}.npy"],
    "train-test-data": ["train", "vector", "--out", "{out}/new", "--quiet", "--data", "{tmp}/ok.npy",
                        "--test-data", f"{{tmp}}/{LONG}.csv"],
    "train-config": ["train", f"{{tmp}}/{LONG}.toml", "--out", "{out}/new", "--quiet"],
    "evaluate-run": ["evaluate", f"{{out}}/{LONG}"],
    "evaluate-data": ["evaluate", "{run}", "--data", f"{{tmp}}/{LONG}.csv"],
    "sample-run": ["sample", f"{{out}}/{LONG}", "-o", "{out}/s.npy"], "runs": ["runs", f"{{out}}/{LONG}"],
    "score-input": ["score", "{run}", f"{{tmp}}/{LONG}.csv", "-o", "{out}/s.csv"],
    "report-run": ["report", f"{{out}}/{LONG}"],
    "deep-path": ["sample", "{run}", "-n", "5", "-o", "{out}/" + "ab/" * 1500 + "s.npy"],
    "deep-data": ["score", "{run}", "{tmp}/" + "ab/" * 1500 + "x.csv", "-o", "{out}/s.csv"],
}
UNICODE = {  # (command, expected): names in other scripts, with spaces, emoji, controls
    "sample-out": (["sample", "{run}", "-n", "5", "-o", "{out}/ünï cödé ✓ 😀.npy", "--quiet"], "ok"),
    "sample-upper": (["sample", "{run}", "-n", "5", "-o", "{out}/S.NPY", "--quiet"], "ok"),
    "sample-dotfile": (["sample", "{run}", "-n", "5", "-o", "{out}/.npy", "--quiet"], "error"),
    "score-in": (["score", "{run}", "{tmp}/données ✓.csv", "-o", "{out}/s.csv", "--quiet"], "ok"),
    "evaluate-in": (["evaluate", "{run}", "--data", "{tmp}/données ✓.csv"], "either"),
    "score-rtl": (["score", "{run}", "{tmp}/\u202enpy.csv", "-o", "{out}/s.csv"], "error"),
    "score-newline": (["score", "{run}", "{tmp}/a\nb.csv", "-o", "{out}/s.csv"], "error"),
    "score-tab": (["score", "{run}", "{tmp}/a\tb.npy", "-o", "{out}/s.csv"], "error"),
    "sample-newline-out": (["sample", "{run}", "-o", "{out}/a\nb.jpg"], "error"),
    "train-newline-preset": (["train", "moo\nns", "--out", "{out}/new"], "error"),
    "train-cr-data": (["train", "vector", "--out", "{out}/new", "--quiet", "--data", "{tmp}/x\r.npy"], "error"),
    "surrogate": (["score", "{run}", "{tmp}/bad\udcff.csv", "-o", "{out}/s.csv"], "error"),
    "cjk-missing-run": (["evaluate", "{tmp}/実行"], "error"),
    "emoji-set": (["train", "moons", "--out", "{out}/new", "--quiet", "--set", "train.lr=😀"], "error"),
    "fullwidth-steps": (["train", "moons", "--out", "{out}/new", "--quiet", "--steps", "１２", "--set",
                         "model.hidden=0"], "error"),
}
FOCUS = {"metrics": ("runs", "runs-json"), "evaluation": ("evaluate", "runs-json"), "config": ("runs", "resume"),
         "best": ("evaluate",)}


def _state_cases() -> list[tuple[str, list[str], str | None, str]]:
    """Each damaged run file under the commands that read it, and one more command drawn with a seed."""
    rng, cases = random.Random(25), []
    for state in RUN_FILE_STATES:
        kind = state.split("-")[0]
        for command in (*FOCUS[kind], rng.choice([c for c in LOOKS if c not in FOCUS[kind]])):
            cases.append((f"{state}-{command}", LOOKS[command], state, "either"))
    for state in CHECKPOINT_STATES:
        command = rng.choice(["sample", "score", "evaluate-json"])
        for name in (*FOCUS["best"], command):
            cases.append((f"{state}-{name}", LOOKS[name], state, "error" if "-cut-" in state else "either"))
    for state in RESUME_CUTS:
        cases.append((f"resume-{state}", ["train", "moons", "--out", "{run}", "--resume", "--quiet", *TINY_RUN], state,
                      "error"))
    for state in REPORTED:
        cases.append((f"{state}-report", ["report", "{run}", "-o", "{out}/r.html", "--quiet"], state, "either"))
    return cases


def _file_cases() -> list[tuple[str, list[str], str | None, str]]:
    """Bad sizes and tampered members under train, score and evaluate; long and unicode names."""
    cases = []
    for name in [*SIZE_FILES, *TAMPERED]:
        data = "{tmp}/" + name
        cases.append((f"train-{name}", ["train", "vector", "--out", "{out}/new", "--quiet", "--data", data], None,
                      "error"))
        cases.append((f"score-{name}", ["score", "{run}", data, "-o", "{out}/s.csv", "--quiet"], None, "error"))
        cases.append((f"evaluate-{name}", ["evaluate", "{run}", "--data", data], None, "error"))
    cases += [(f"long-{name}", argv, None, "error") for name, argv in LONG_NAMES.items()]
    cases += [(f"unicode-{name}", argv, None, expect) for name, (argv, expect) in UNICODE.items()]
    cases += [(f"deep-toml-{i}", ["train", f"{{tmp}}/deep{i}.toml", "--out", "{out}/new", "--quiet"], None, "error")
              for i in range(len(DEEP_TOML))]
    return cases


DEEP_TOML = ["a = " + "[" * 100_000 + "]" * 100_000, "a = " + "{b = " * 50_000 + "1" + "}" * 50_000,
             "[" + "a." * 5_000 + "b]\n", "a = " + "[" * 1_000_000, "[train]\nsteps = " + "[" * 3000 + "]" * 3000,
             "x" * 1_000_000 + " = 1\n", "[data]\nname = \"" + "m" * 1_000_000 + "\"\n"]
NEW_CASES = [*_flag_cases(), *_state_cases(), *_file_cases()]


def _stamp(folder: Path, contents: bool = True) -> dict[str, tuple]:
    """Every entry under ``folder``: (SHA-256 or size, modification time); folders by name only."""
    return {str(p.relative_to(folder)): ((hashlib.sha256(p.read_bytes()).hexdigest() if contents else p.stat().st_size,
                                          p.stat().st_mtime_ns) if p.is_file() else "dir")
            for p in sorted(folder.rglob("*"))}


@pytest.fixture(scope="module")
def world3(world):
    """``world`` with round 3's files (sizes, tampered members, deep TOML, a unicode name) and one damaged
    copy of the run per state; a damaged metrics.jsonl comes without evaluation.json (an unfinished run,
    whose listing reads the metrics)."""
    tmp, runs = world
    for name, write in {**SIZE_FILES, **TAMPERED}.items():
        write(tmp / name)
    for i, text in enumerate(DEEP_TOML):
        (tmp / f"deep{i}.toml").write_text(text)
    (tmp / "données ✓.csv").write_text("x,y\n" + "0.5,0.25\n-1,0.5\n" * 10)
    runs = dict(runs)
    for state, damage in {**RUN_FILE_STATES, **CHECKPOINT_STATES, **RESUME_CUTS}.items():
        run = tmp.parent / f"run-{state}"
        shutil.copytree(runs[None], run)
        if state.startswith("metrics-"):
            (run / "evaluation.json").unlink()
        damage(run)
        runs[state] = run
    return tmp, runs


def test_round_three_has_enough_cases():
    names = [name for name, _, _, _ in NEW_CASES]
    assert len(NEW_CASES) >= 300 and len(set(names)) == len(names)


# Cases that still fail, each in a file this test's round does not own (strict: a fix makes them pass and
# then this list must shrink).
XFAIL: dict[str, str] = {}
PARAMS = [pytest.param(case, id=case[0], marks=[pytest.mark.xfail(reason=XFAIL[case[0]], strict=True)]
                       if case[0] in XFAIL else []) for case in NEW_CASES]


@pytest.mark.parametrize("case", PARAMS)
def test_round_three(case, world3, tmp_path, capsys):
    _, argv, state, expect = case
    tmp, runs = world3
    run, out = runs[state], tmp_path / "out"
    out.mkdir()
    before = (_stamp(run), _stamp(tmp, contents=False))
    code = main([arg.format(run=run, tmp=tmp, out=out) for arg in argv])
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert "Traceback" not in captured.err and "this ran" not in captured.out
    if expect == "error" or code != 0:
        assert code == 2, (code, captured.err[-2000:])
        assert len(lines) == 1 and lines[0].startswith("realnvp: error: "), lines[-5:]
    else:
        assert all(line.startswith("realnvp: warning: ") for line in lines), lines[-5:]
        assert expect != "ok" or not lines
    assert (_stamp(run), _stamp(tmp, contents=False)) == before
