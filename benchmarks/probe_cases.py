"""The cases of benchmarks/probe.py (issue 25): their tables and generators, the files they read, and the
rule each ending is judged by (``judge``); the runner, the tally and the record are probe.py's."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

TINY = [arg for setting in ("train.lr_schedule=constant", "model.n_couplings=2", "model.hidden=8",
                             "data.n_train=600", "data.n_test=300", "train.eval_every=20", "train.time_budget=0")
        for arg in ("--set", setting)]
BAD_SETTING = ["--set", "train.max_bad_steps=-7"]  # refused after the odd part of a command was accepted
TIMEOUT = 60  # seconds; the slowest valid case takes about 20 on a shared core


@dataclass
class Case:
    """One probe: a command line with {run} (the shared run, or a copy of its own), {w} (the workspace) and
    {out} (an empty folder of its own); what it must end in; how to prepare or run it when not plain."""

    name: str
    argv: list[str]
    expect: str = "error"  # "error", "ok" or "either"
    own_run: bool = False  # works on a copy of the run (it may damage it or change it)
    prepare: Callable[[Path], None] | None = None  # gets the case's run folder
    user: str | None = None  # "nobody": run without root's rights
    special: Callable[[Case, Path, Path, dict], str | None] | None = None  # returns a failure or None
    changes_run: bool = False  # the command may legitimately change the run folder


def command(argv: list[str], user: str | None = None) -> list[str]:
    """``python -m realnvp ARGV`` (as ``nobody`` through setpriv when asked)."""
    base = [sys.executable, "-m", "realnvp", *argv]
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *base] if user == "nobody" else base


def judge(expect: str, code: int, err: str) -> str | None:
    """Why the ending ``code``/``err`` breaks the rule, or None."""
    lines = err.splitlines()
    if "Traceback" in err:
        return f"traceback (exit {code})"
    if code == 2:
        if len(lines) != 1 or not lines[0].startswith("realnvp: error: "):
            return f"exit 2 with {len(lines)} stderr lines"
        return None
    if code != 0:
        return f"exit {code}"
    if expect == "error":
        return "accepted bad input (exit 0)"
    odd = [line for line in lines if not line.startswith("realnvp: warning: ")]
    return f"exit 0 with {len(odd)} other stderr lines" if odd else None


def fill(argv: list[str], run: Path, workspace: Path, out: Path) -> list[str]:
    return [a.replace("{run}", str(run)).replace("{w}", str(workspace)).replace("{out}", str(out)) for a in argv]


def _rows(head: str, row: str, n: int = 20) -> bytes:
    return (head + row * n).encode()


CSV = {  # name: (bytes of a file with a .csv suffix, what reading it must end in)
    "crlf": (_rows("x,y\r\n", "0.5,0.25\r\n-1,2\r\n"), "ok"),
    "scientific": (_rows("x,y\n", "1e-3,2E+1\n-3.5e0,4\n"), "ok"),
    "quoted": (_rows('"x","y"\n', '"1","2"\n"3","5"\n'), "ok"), "bom": (_rows("\ufeffx,y\n", "1,2\n3,5\n"), "ok"),
    "no_header": (_rows("", "1,2\n3,5\n"), "ok"), "spaces": (_rows("x, y\n", " 1 , 2 \n3,5\n"), "either"),
    "utf16": ("x,y\n1,2\n3,5\n".encode("utf-16"), "error"), "utf16be": ("x,y\n1,2\n".encode("utf-16-be"), "error"),
    "utf32": ("x,y\n1,2\n".encode("utf-32"), "error"), "cp1252": ("x\u20ac,y\n1,2\n".encode("cp1252") * 3, "error"),
    "semicolon": (_rows("x;y\n", "1;2\n3;5\n"), "error"), "decimal_comma": (_rows("x;y\n", "1,5;2,5\n"), "error"),
    "tabs": (_rows("x\ty\n", "1\t2\n"), "error"), "pipes": (_rows("x|y\n", "1|2\n"), "error"),
    "cr_only": (_rows("x,y\r", "1,2\r3,5\r"), "either"), "quoted_comma": (_rows("x,y\n", '"1,5",2\n'), "error"),
    "thousands": (_rows("x,y\n", '"1,000",2\n'), "error"), "trailing_comma": (_rows("x,y,\n", "1,2,\n"), "either"),
    "blank_lines": (_rows("x,y\n", "\n1,2\n\n3,5\n"), "either"),
    "comment": (_rows("# a comment\nx,y\n", "1,2\n3,5\n"), "either"),
    "hex": (_rows("x,y\n", "0x1p3,2\n"), "error"), "underscore": (_rows("x,y\n", "1_000,2\n3,5\n"), "either"),
    "unicode_minus": (_rows("x,y\n", "\u22121,2\n"), "error"),
    "fullwidth": (_rows("x,y\n", "\uff11,2\n3,5\n"), "either"),
    "nul_bytes": (_rows("x,y\n", "1,2\x00\n"), "error"), "garbage": (bytes(range(256)) * 40, "error"),
    "png": (b"\x89PNG\r\n\x1a\n" + b"\x00" * 200, "error"), "gzip": (b"\x1f\x8b\x08\x00" + b"\x00" * 200, "error"),
    "zero_bytes": (b"", "error"), "only_newlines": (b"\n\n\n", "error"), "only_spaces": (b"   \n  \n", "error"),
    "unclosed_quote": (_rows("x,y\n", '"1,2\n3,5\n'), "error"), "ragged": (_rows("x,y\n", "1,2,3\n"), "error"),
    "header_dup": (_rows("x,x\n", "1,2\n3,5\n"), "either"), "bool_words": (_rows("x,y\n", "true,false\n"), "error"),
    "huge_exponent": (_rows("x,y\n", "1e999,2\n"), "error"),
    "tiny_exponent": (_rows("x,y\n", "1e-999,2\n3,5\n"), "either"),
}
NAN_SPELLINGS = ["nan", "NaN", "NAN", "-nan", "+nan", "NA", "N/A", "n/a", "null", "NULL", "None", "?", "", " ",
                 "inf", "Infinity", "-Infinity", "1.#IND", "#N/A", "-", "\u2014", "nil", "NaT", "missing"]
ODD_INTS = ["+5", "0b11", "0o7", "٠", "5 ", "\t5", "0005", "-00", "5.0", "１０", "1e309", "½", "5e", ".", "true", "[1]"]
ODD_FLOATS = ["+0.5", "1e-300", "-0.0", ".5", "5.", "0.5 ", "１", "1e309", "infinity", "+inf", "NaN", "1/2",
              "0,5", "0x1"]
INT_FLAGS = {"sample -n": ["sample", "{run}", "-o", "{out}/s.npy", "--quiet", "-n"],
             "sample --seed": ["sample", "{run}", "-o", "{out}/s.npy", "--quiet", "-n", "3", "--seed"],
             "animate -n": ["animate", "{run}", "-o", "{out}/a.txt", "-n"],
             "train --steps": ["train", "moons", "--out", "{out}/new", "--quiet", *BAD_SETTING, "--steps"]}
FLOAT_FLAGS = {"sample --temperature": ["sample", "{run}", "-o", "{out}/s.npy", "--quiet", "-n", "3", "--temperature"],
               "train --time-budget": ["train", "moons", "--out", "{out}/new", "--quiet", *BAD_SETTING,
                                       "--time-budget"]}
SETTINGS = ["train.lr=1e-3 ", "train.lr= 1e-3", "model.hidden=[8,8]", "model.hidden=8;8", "model.hidden=(8, 8)",
            "model.hidden=8,,8", "train.steps=0x10", "Train.lr=1", "train.LR=1", "train..lr=1", ".lr=1", "train.lr==1",
            "=1", "train.lr=１", "data.name=", "model.kind=VECTOR", "train.device=CPU", "train.precision=bf16 ",
            "train.lr=1e-3#x", "model.hidden=８"]
TOMLS = {"utf16.toml": "[train]\nlr = -1\n".encode("utf-16"), "bom.toml": b"\xef\xbb\xbf[train]\nlr = -1\n",
         "crlf.toml": b"[train]\r\nlr = -1\r\n", "twice.toml": b"[train]\nlr = 1\n[train]\nsteps = 3\n",
         "big_int.toml": b"[train]\nsteps = 1_000_000_000_000_000\n", "date.toml": b"[train]\nseed = 1979-05-27\n",
         "array_tables.toml": b"[[train]]\nlr = 1\n", "unicode_key.toml": "[train]\n\u00e9tapes = 3\n".encode(),
         "inline.toml": b"train = {lr = -2}\n", "bool_steps.toml": b"[train]\nsteps = true\n",
         "float_steps.toml": b"[train]\nsteps = 3.0\n", "hidden_str.toml": b'[model]\nhidden = "8,8"\n',
         "nested_hidden.toml": b"[model]\nhidden = [[8], [8]]\n", "nul.toml": b"[train]\nlr = 1\x00\n",
         "preset_key.toml": b'preset = "moons"\n[train]\nlr = -1\n'}


def _link(target: str) -> Callable[[Path], None]:
    return lambda path: path.symlink_to(target)


def make_files(w: Path) -> None:
    """The data files, TOML files and odd file kinds the cases name, under ``w``."""
    import numpy as np

    (w / "d").mkdir()
    for name, (data, _) in CSV.items():
        (w / "d" / f"{name}.csv").write_bytes(data)
    for i, word in enumerate(NAN_SPELLINGS):
        (w / "d" / f"nan{i}.csv").write_text("x,y\n" + "1,2\n" * 12 + f"3,{word}\n" + "4,5\n" * 5)
    for name, data in TOMLS.items():
        (w / "d" / name).write_bytes(data)
    np.save(w / "d" / "ok.npy", np.random.default_rng(5).normal(size=(40, 2)).astype(np.float32))
    kinds = {"dir.csv": Path.mkdir, "dir.npy": Path.mkdir, "link.csv": _link(str(w / "d" / "crlf.csv")),
             "dangling.csv": _link(str(w / "nowhere.csv")), "loop.csv": _link(str(w / "d" / "loop.csv")),
             "devnull.csv": _link("/dev/null"), "devnull.npy": _link("/dev/null"), "devzero.npy": _link("/dev/zero"),
             "fifo.csv": os.mkfifo, "fifo.npy": os.mkfifo, "fifo.toml": os.mkfifo, "dir.toml": Path.mkdir,
             "loop.toml": _link(str(w / "d" / "loop.toml")), "empty.npy": Path.touch, "empty.npz": Path.touch,
             "garbage.npz": lambda p: p.write_bytes(os.urandom(3000)),
             "upper.CSV": lambda p: p.write_bytes(CSV["crlf"][0]),
             ".csv": lambda p: p.write_bytes(CSV["crlf"][0]), "one_row.npy": lambda p: np.save(p, np.ones((1, 2))),
             "x_and_more.npz": lambda p: np.savez(p, x=np.random.default_rng(1).normal(size=(30, 2)), y=np.ones(3)),
             "f16.npy": lambda p: np.save(p, np.random.default_rng(2).normal(size=(30, 2)).astype(np.float16)),
             "int8.npy": lambda p: np.save(p, np.random.default_rng(3).integers(-5, 5, (30, 2)).astype(np.int8)),
             "big_endian.npy": lambda p: np.save(p, np.random.default_rng(4).normal(size=(30, 2)).astype(">f8")),
             "fortran.npy": lambda p: np.save(p, np.asfortranarray(np.random.default_rng(6).normal(size=(30, 2)))),
             "données ünï ✓.csv": lambda p: p.write_bytes(CSV["crlf"][0]),
             "sp ace.csv": lambda p: p.write_bytes(CSV["quoted"][0])}
    for name, make in kinds.items():
        make(w / "d" / name)
    ro = w / "readonly"
    ro.mkdir()
    ro.chmod(0o555)


def _reading(names: list[str], expect: Callable[[str], str]) -> list[Case]:
    """Each file under score, every other one under evaluate --data (valid files too)."""
    cases = []
    for i, name in enumerate(names):
        data = "{w}/d/" + name
        cases.append(Case(f"score-{name}", ["score", "{run}", data, "-o", "{out}/s.csv", "--quiet"], expect(name)))
        if i % 2 == 0:  # every other file under evaluate too (a process costs seconds)
            cases.append(Case(f"evaluate-{name}", ["evaluate", "{run}", "--data", data], expect(name)))
    return cases


def data_cases() -> list[Case]:
    """CSV dialects, NaN spellings and file kinds under score, evaluate and (bad ones) train."""
    kinds = {"dir.csv": "error", "dir.npy": "error", "link.csv": "ok", "dangling.csv": "error", "loop.csv": "error",
             "devnull.csv": "error", "devnull.npy": "error", "devzero.npy": "error", "fifo.csv": "error",
             "fifo.npy": "error", "empty.npy": "error", "empty.npz": "error", "garbage.npz": "error",
             "upper.CSV": "ok", ".csv": "either", "one_row.npy": "ok", "x_and_more.npz": "ok", "f16.npy": "ok",
             "int8.npy": "ok", "big_endian.npy": "ok", "fortran.npy": "ok", "données ünï ✓.csv": "ok",
             "sp ace.csv": "ok"}
    expect = {**{f"{n}.csv": e for n, (_, e) in CSV.items()}, **kinds,
              **{f"nan{i}.csv": "error" for i in range(len(NAN_SPELLINGS))}}
    cases = _reading(list(expect), expect.get)
    for i, (name, e) in enumerate(expect.items()):
        if e == "error" and (i % 3 == 0 or name.startswith(("fifo", "dev"))):
            cases.append(Case(f"train-{name}", ["train", "vector", "--out", "{out}/new", "--quiet", "--data",
                                                "{w}/d/" + name], "error"))
    return cases


def _recode(path: Path, change: Callable[[bytes], bytes]) -> None:
    path.write_bytes(change(path.read_bytes()))


RUN_DAMAGE = {  # name: (change to a copy of the run, expected of evaluate / sample / runs)
    "symlinked": (None, "ok"), "best-fifo": (lambda r: ((r / "best.pt").unlink(), os.mkfifo(r / "best.pt")), "error"),
    "best-devnull": (lambda r: ((r / "best.pt").unlink(), (r / "best.pt").symlink_to("/dev/null")), "error"),
    "best-devzero": (lambda r: ((r / "best.pt").unlink(), (r / "best.pt").symlink_to("/dev/zero")), "error"),
    "best-loop": (lambda r: ((r / "best.pt").unlink(), (r / "best.pt").symlink_to(r / "best.pt")), "error"),
    "best-gone": (lambda r: (r / "best.pt").unlink(), "either"), "all-weights-gone": (
        lambda r: [(r / n).unlink() for n in ("best.pt", "checkpoint.pt", "checkpoint.prev.pt")], "error"),
    "config-gone": (lambda r: (r / "config.json").unlink(), "either"),
    "config-utf16": (lambda r: _recode(r / "config.json", lambda b: b.decode().encode("utf-16")), "either"),
    "config-bom": (lambda r: _recode(r / "config.json", lambda b: b"\xef\xbb\xbf" + b), "either"),
    "evaluation-utf16": (lambda r: (r / "evaluation.json").write_bytes("{}".encode("utf-16")), "either"),
    "evaluation-infinity": (lambda r: (r / "evaluation.json").write_text('{"test_nll_nats": Infinity, "steps": 1e999}'),
                            "either"),
    "evaluation-fifo": (lambda r: ((r / "evaluation.json").unlink(), os.mkfifo(r / "evaluation.json")), "either"),
    "metrics-fifo": (lambda r: ((r / "metrics.jsonl").unlink(), os.mkfifo(r / "metrics.jsonl")), "either"),
    "metrics-crlf": (lambda r: _recode(r / "metrics.jsonl", lambda b: b.replace(b"\n", b"\r\n")),
                     "either"),
    "metrics-huge-line": (lambda r: (r / "metrics.jsonl").write_text('{"step": ' + "9" * 5000 + "}\n"), "either"),
    "metrics-nul": (lambda r: (r / "metrics.jsonl").write_bytes(b"\x00" * 5000), "either"),
    "lock-garbage": (lambda r: (r / ".lock").write_bytes(os.urandom(100)), "either"),
    "tmp-leftover": (lambda r: (r / ".best.pt.1234.tmp").write_bytes(b"junk"), "either"),
}
LOOKS = {"evaluate": ["evaluate", "{run}", "--json"],
         "sample": ["sample", "{run}", "-n", "4", "-o", "{out}/s.csv", "--quiet"],
         "runs": ["runs", "{run}", "--json"], "score": ["score", "{run}", "{w}/d/ok.npy", "-o", "-", "--quiet"]}


def run_cases() -> list[Case]:
    """Damaged or odd run folders under the commands that read them; a run that is a file or a fifo."""
    cases = []
    for name, (edit, expect) in RUN_DAMAGE.items():
        for look, argv in LOOKS.items():
            e = "either" if look == "runs" and expect == "error" else expect
            argv = [a.replace("{run}", "{out}/link") for a in argv] if name == "symlinked" else argv
            prep = (lambda r: (r.parent / "link").symlink_to(r)) if name == "symlinked" else edit
            cases.append(Case(f"run-{name}-{look}", argv, e, own_run=True, prepare=prep))
    for kind, prep in {"file": lambda r: shutil.rmtree(r) or r.write_text("x"),
                       "fifo": lambda r: shutil.rmtree(r) or os.mkfifo(r)}.items():
        for look, argv in LOOKS.items():
            cases.append(Case(f"run-is-{kind}-{look}", argv, "error", own_run=True, prepare=prep))
    return cases


def argument_cases() -> list[Case]:
    """Odd spellings of every numeric flag's value, option syntax, subcommands, --set values and TOML files."""
    cases = [Case(f"flag-{flag.replace(' ', '')}-{i}", [*argv, value],
                  "either" if flag.startswith("sample") else "error")
             for flags, values in ((INT_FLAGS, ODD_INTS), (FLOAT_FLAGS, ODD_FLOATS))
             for flag, argv in flags.items() for i, value in enumerate(values)]
    syntax = {"n-attached": (["-n5"], "ok"), "n-equals": (["-n=5"], "ok"), "temp-abbrev": (["--temp", "0.5"], "ok"),
              "temp-equals-negative": (["--temperature=-1"], "error"), "seed-empty": (["--seed="], "error"),
              "n-twice": (["-n", "5", "-n", "6"], "ok"), "quiet-value": (["--quiet=1"], "error"),
              "double-dash-n": (["--n", "5"], "error"), "class-on-plain": (["--class", "0"], "error"),
              "context-on-plain": (["--context", "1,2"], "error"), "output-twice": (["-o", "{out}/t.npy"], "ok")}
    for name, (extra, expect) in syntax.items():
        cases.append(Case(f"syntax-{name}", ["sample", "{run}", "-o", "{out}/s.npy", "--quiet", *extra], expect))
    for i, words in enumerate([[], ["sampel"], ["SAMPLE"], ["train-"], [""], ["--help-me"], ["-"], ["runs", "a", "b"],
                               ["completion", "fish"], ["completion"], ["evaluate"], ["score", "{run}"]]):
        cases.append(Case(f"subcommand-{i}", words, "error"))
    cases += [Case(f"set-{i}", ["train", "moons", "--out", "{out}/new", "--quiet", "--set", s, *BAD_SETTING])
              for i, s in enumerate(SETTINGS)]
    cases += [Case(f"toml-{name}", ["train", "{w}/d/" + name, "--out", "{out}/new", "--quiet", *BAD_SETTING])
              for name in [*TOMLS, "fifo.toml", "dir.toml", "loop.toml"]]
    return cases


def _wait(proc: subprocess.Popen) -> tuple[int, str]:
    """The exit and stderr of ``proc``; killed (exit -9) when it has not ended within ``TIMEOUT``."""
    try:
        _, err = proc.communicate(timeout=TIMEOUT)  # reads as it waits: a full pipe never blocks the child
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return proc.returncode, err


def _together(case: Case, run: Path, out: Path, env: dict) -> str | None:
    """The case's command twice at once: both must end by the rule, with the exits ``case.expect`` lists."""
    argv = fill(case.argv, run, out.parent.parent, out)
    procs = [subprocess.Popen(command(argv), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                              env=env) for _ in range(2)]
    ends = sorted(_wait(p) for p in procs)
    bad = [judge("ok", code, err) for code, err in ends]
    return next((b for b in bad if b), None) or (None if [c for c, _ in ends] == json.loads(case.expect) else
                                                 f"exits {[c for c, _ in ends]}, expected {case.expect}")


def _interrupt(case: Case, run: Path, out: Path, env: dict) -> str | None:
    """Train, send the signal ``case.expect`` names after the seconds in the case's name, then resume."""
    signum, delay = getattr(signal, case.expect), float(case.name.rsplit("-", 1)[1])
    proc = subprocess.Popen(command(fill(case.argv, run, out, out)), stderr=subprocess.PIPE, text=True, env=env)
    time.sleep(delay)
    proc.send_signal(signum)
    code, err = _wait(proc)
    lines = err.strip().splitlines()
    if "Traceback" in err or code == 0:
        return f"traceback or exit 0 after {case.expect} (exit {code}): {lines[-1:]}"
    if signum == signal.SIGINT and (code != 130 or len(lines) != 1 or "interrupted" not in lines[0]):
        return f"exit {code} with {lines[-2:]} after SIGINT"
    if not (out / "new" / "checkpoint.pt").exists():
        return None
    again = subprocess.run(command(fill(case.argv, run, out, out) + ["--resume", "--time-budget", "3"]), env=env,
                           capture_output=True, text=True, timeout=TIMEOUT * 3)
    why = judge("ok", again.returncode, again.stderr)
    return why and f"resume after it: {why}"


def special_cases() -> list[Case]:
    """Concurrent writers, signals during training, read-only and immutable run folders."""
    train = ["train", "moons", "--out", "{out}/new", "--quiet", "--no-pictures", *TINY]
    cases = [Case(f"together-train-{i}", [*train, "--steps", str(100 + 50 * i)], "[0, 2]", special=_together)
             for i in range(3)]
    cases += [Case(f"together-sample-{i}", ["sample", "{run}", "-n", str(300 * (i + 1)), "-o", "{out}/s.npy",
                                            "--quiet"], "[0, 0]", special=_together) for i in range(3)]
    cases += [Case(f"together-score-{i}", ["score", "{run}", "{w}/d/ok.npy", "-o", "{out}/s.csv", "--quiet"],
                   "[0, 0]", special=_together) for i in range(2)]
    cases += [Case(f"signal-{name}-{t}", [*train, "--steps", "100000"], name, special=_interrupt)
              for name, t in (("SIGINT", 1.5), ("SIGINT", 6), ("SIGINT", 12), ("SIGINT", 20), ("SIGTERM", 12))]
    nobody = {"report": (["report", "{run}"], "error"),
              "sample-into-run": (["sample", "{run}", "-o", "{run}/s.npy"], "error"),
              "resume": (["train", "moons", "--out", "{run}", "--resume", "--quiet", *TINY], "error"),
              "score-readonly": (["score", "{run}", "{w}/d/ok.npy", "-o", "{w}/readonly/s.csv"], "error"),
              "train-readonly": (["train", "moons", "--out", "{w}/readonly/new", "--quiet"], "error"),
              "evaluate": (["evaluate", "{run}"], "either"), "runs": (["runs", "{run}"], "ok"),
              "sample": (["sample", "{run}", "-n", "5", "-o", "{out}/s.npy", "--quiet"], "ok")}
    cases += [Case(f"nobody-{name}", argv, e, user="nobody") for name, (argv, e) in nobody.items()]
    immutable = lambda r: subprocess.run(["chattr", "+i", str(r)], check=True)  # noqa: E731
    cases += [Case(f"immutable-{name}", nobody[name][0], "error", own_run=True, prepare=immutable)
              for name in ("report", "sample-into-run", "resume")]
    return cases


def all_cases() -> list[Case]:
    return [*data_cases(), *run_cases(), *argument_cases(), *special_cases()]
