"""Every bad input of docs/bad-input.md, run through the CLI: exit code 2, exactly one line
``realnvp: error: <message>`` on stderr, and no file of the run directory changed (bytes and
modification times compared before and after). The table in the docs is checked against the cases
here, so it shows the real messages.

``{run}`` is a trained run, ``{tmp}`` a scratch folder; a message ending in ``…`` is a prefix (the
rest lists presets or settings, or quotes a library's own words)."""

from __future__ import annotations

import io
import re
import shutil
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from realnvp.cli import main
from realnvp.models import build_vector_flow
from realnvp.rundir import PREVIOUS

TINY = ["--quiet", "--steps", "20", "--no-pictures", "--set", "model.n_couplings=2", "--set", "model.hidden=8",
        "--set", "train.eval_every=10", "--set", "train.time_budget=0", "--set", "data.n_train=300",
        "--set", "data.n_test=100"]
DOC = Path(__file__).resolve().parents[1] / "docs" / "bad-input.md"


class Evil:
    """Unpickling this would create a file: the payload of a checkpoint crafted to run code."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _rewrite_best(run: Path, edit) -> None:
    """Replace best.pt by ``edit(original state)`` saved as a valid torch file."""
    state = torch.load(run / "best.pt", weights_only=True)
    buffer = io.BytesIO()
    torch.save(edit(state), buffer)
    (run / "best.pt").write_bytes(buffer.getvalue())


def _flip_a_weight_byte(run: Path) -> None:
    data = bytearray((run / "best.pt").read_bytes())
    with zipfile.ZipFile(run / "best.pt") as archive:
        info = max((i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26 : info.header_offset + 30])
    data[info.header_offset + 30 + name_len + extra_len + info.file_size // 2] ^= 0x40  # inside the tensor
    (run / "best.pt").write_bytes(bytes(data))


def _reshape_weight(state: dict) -> dict:
    key = next(k for k in state["model"] if k.endswith("conditioner.0.weight"))
    state["model"][key] = torch.zeros(3, 1)
    return state


def _change_config(state: dict) -> dict:
    state["config"]["model"]["hidden"] = [4]
    return state


SETUPS = {
    "garbage_best": lambda run: (run / "best.pt").write_bytes(b"not a checkpoint at all"),
    "truncated_best": lambda run: (run / "best.pt").write_bytes((run / "best.pt").read_bytes()[:5000]),
    "flipped_best": _flip_a_weight_byte,
    "evil_best": lambda run: torch.save({"model": Evil(run.parent / "pwned"), "config": {}}, run / "best.pt"),
    "foreign_best": lambda run: torch.save({"weights": torch.zeros(3)}, run / "best.pt"),
    "reshaped_best": lambda run: _rewrite_best(run, _reshape_weight),
    "config_edited_best": lambda run: _rewrite_best(run, _change_config),
    "garbage_checkpoints": lambda run: [(run / n).write_bytes(b"junk") for n in ("checkpoint.pt", PREVIOUS)],
}

T = "train vector --out {tmp}/new"
# (id, what is wrong, command, message, setup)
CASES = [
    ("data-missing", "data file does not exist", T + " --data {tmp}/missing.npy",
     "data file not found: {tmp}/missing.npy", None),
    ("data-directory", "data path is a directory", T + " --data {tmp}/a_dir",
     "expected a data file, got a directory: {tmp}/a_dir", None),
    ("data-suffix", "unsupported file type", T + " --data {tmp}/notes.txt",
     "unsupported data file 'notes.txt': expected one of .npy, .npz, .csv", None),
    ("data-unreadable", "file is not a real .npy", T + " --data {tmp}/garbage.npy",
     "cannot read {tmp}/garbage.npy: …", None),
    ("data-nan", "NaN in the data", T + " --data {tmp}/nan.npy",
     "{tmp}/nan.npy: 1 non-finite values (NaN/Inf), first at row 3, column 1", None),
    ("data-inf", "Inf in a .csv", T + " --data {tmp}/inf.csv",
     "{tmp}/inf.csv: 1 non-finite values (NaN/Inf), first at row 2, column 0", None),
    ("data-shape", "3-D array instead of a table", T + " --data {tmp}/cube.npy",
     "{tmp}/cube.npy: expected a 2-D table [examples, features], got shape (20, 2, 2)", None),
    ("data-dtype", "strings instead of numbers", T + " --data {tmp}/strings.npy",
     "{tmp}/strings.npy: expected real numbers, got dtype <U1", None),
    ("data-empty", "no rows", T + " --data {tmp}/empty.npy", "{tmp}/empty.npy: the file holds no examples", None),
    ("data-too-few", "too few rows to split", T + " --data {tmp}/few.npy",
     "{tmp}/few.npy: 5 examples are too few to split (need at least 10)", None),
    ("data-npz", ".npz with two arrays", T + " --data {tmp}/two.npz",
     "{tmp}/two.npz: an .npz must hold one array or one named 'x'; found ['a', 'b']", None),
    ("preset", "unknown preset", "train nope --out {tmp}/new", "unknown preset 'nope'; presets: …", None),
    ("set-key", "unknown --set key", T + " --data {tmp}/ok.npy --set train.bogus=1",
     "--set: unknown setting 'train.bogus'; train has: …", None),
    ("set-section", "unknown --set section", T + " --data {tmp}/ok.npy --set optim.lr=1",
     "--set: unknown setting 'optim.lr' (sections: data, model, train)", None),
    ("set-type", "value of the wrong type", T + " --data {tmp}/ok.npy --set train.lr=fast",
     "train.lr: expected float, got 'fast'", None),
    ("set-syntax", "--set without =", T + " --data {tmp}/ok.npy --set train.lr",
     "--set expects key=value, got 'train.lr'", None),
    ("flag-type", "flag value of the wrong type", T + " --steps many",
     "argument --steps: invalid int value: 'many' (see: realnvp train --help)", None),
    ("option", "unknown option", T + " --bogus", "unrecognized arguments: --bogus (see: realnvp --help)", None),
    ("range-lr", "negative learning rate", T + " --data {tmp}/ok.npy --set train.lr=-1",
     "train.lr must be > 0, got -1.0", None),
    ("range-nan", "NaN setting", T + " --data {tmp}/ok.npy --set train.grad_clip=nan",
     "train.grad_clip must be >= 0, got nan", None),
    ("range-fraction", "validation share above 1", T + " --data {tmp}/ok.npy --set data.val_fraction=1.5",
     "data.val_fraction must be in [0, 1), got 1.5", None),
    ("range-steps", "zero steps", T + " --data {tmp}/ok.npy --steps 0", "train.steps must be > 0, got 0", None),
    ("config-missing", "config file does not exist", "train {tmp}/missing.toml --out {tmp}/new",
     "config file not found: {tmp}/missing.toml", None),
    ("config-toml", "config file is not TOML", "train {tmp}/bad.toml --out {tmp}/new",
     "{tmp}/bad.toml: not valid TOML (…", None),
    ("device", "--device cuda without a GPU", T + " --data {tmp}/ok.npy --device cuda",
     "--device cuda was asked for but no CUDA GPU is available (use --device cpu)", None),
    ("out-unwritable", "run directory cannot be created", "train vector --data {tmp}/ok.npy --out {tmp}/a_file/run",
     "cannot write to run directory {tmp}/a_file/run: Not a directory", None),
    ("out-file", "--out is a file", "train vector --data {tmp}/ok.npy --out {tmp}/a_file",
     "--out {tmp}/a_file exists and is not a directory", None),
    ("out-taken", "--out already holds a run", "train moons --out {run}",
     "{run} already holds a run; use --resume to continue it or pick another --out", None),
    ("resume-missing", "--resume of a missing run", "train moons --out {tmp}/none --resume",
     "nothing to resume: {tmp}/none holds no run (train without --resume to start one)", None),
    ("resume-model", "--resume with another model",
     "train moons --out {run} --resume --set model.n_couplings=2 --set model.hidden=4",
     "cannot resume from {run}/checkpoint.pt: model.hidden is (8,) in the run, (4,) now "
     "(only train.* settings may change)", None),
    ("resume-columns", "--resume with data of another width",
     "train moons --out {run} --resume --data {tmp}/wide.npy --set model.n_couplings=2 --set model.hidden=8",
     "cannot resume from {run}/checkpoint.pt: the run has examples of shape (2,), the data has (3,)", None),
    ("resume-corrupt", "--resume when both checkpoints are damaged", "train moons --out {run} --resume",
     "cannot resume {run}: no valid checkpoint (corrupt or truncated checkpoint {run}/checkpoint.pt: File is not "
     "a zip file; corrupt or truncated checkpoint {run}/checkpoint.prev.pt: File is not a zip file)",
     "garbage_checkpoints"),
    ("score-columns", "scoring data of another width", "score {run} {tmp}/wide.csv -o {tmp}/scores.csv",
     "{tmp}/wide.csv: the run was trained on 2 columns, the file has 3", None),
    ("temperature-negative", "negative temperature", "sample {run} --temperature -1 -o {tmp}/s.npy",
     "--temperature must be between 0 and 10, got -1.0", None),
    ("temperature-large", "temperature out of range", "sample {run} --temperature 50 -o {tmp}/s.npy",
     "--temperature must be between 0 and 10, got 50.0", None),
    ("samples-negative", "negative -n", "sample {run} -n -5 -o {tmp}/s.npy",
     "-n must be a positive number of samples, got -5", None),
    ("output-directory", "output folder does not exist", "sample {run} -o {tmp}/nowhere/s.npy",
     "cannot write {tmp}/nowhere/s.npy: directory {tmp}/nowhere does not exist", None),
    ("output-suffix", "output type not supported", "sample {run} -o {run}/checkpoint.pt",
     "output 'checkpoint.pt' must end in .png or .npy", None),
    ("animate-suffix", "animation type not supported", "animate {run} -o {tmp}/a.avi",
     "output 'a.avi' must end in .gif or .mp4", None),
    ("run-missing-evaluate", "evaluate a missing run", "evaluate {tmp}/none",
     "run directory not found: {tmp}/none", None),
    ("run-missing-sample", "sample a missing run", "sample {tmp}/none -o {tmp}/s.npy",
     "run directory not found: {tmp}/none", None),
    ("checkpoint-garbage", "checkpoint is not a checkpoint", "evaluate {run}",
     "corrupt or truncated checkpoint {run}/best.pt: File is not a zip file", "garbage_best"),
    ("checkpoint-truncated", "checkpoint cut short", "evaluate {run}",
     "corrupt or truncated checkpoint {run}/best.pt: File is not a zip file", "truncated_best"),
    ("checkpoint-tampered", "one byte of a weight changed", "sample {run} -o {tmp}/s.npy",
     "corrupt checkpoint {run}/best.pt: archive/data/…", "flipped_best"),
    ("checkpoint-code", "checkpoint crafted to run code", "evaluate {run}",
     "refusing to load {run}/best.pt: it asks to run code (io.open); only tensors are loaded", "evil_best"),
    ("checkpoint-foreign", "valid torch file, not a realnvp checkpoint", "evaluate {run}",
     "{run}/best.pt is not a realnvp checkpoint (no model/config entries)", "foreign_best"),
    ("checkpoint-shapes", "weights of the wrong shape", "evaluate {run}",
     "{run}/best.pt does not match its own config: size mismatch for chain.layers.1.conditioner.0.weight: "
     "copying a param with shape torch.Size([3, 1]) from checkpoint, the shape in current model is "
     "torch.Size([8, 1]).", "reshaped_best"),
    ("checkpoint-config", "config edited, weights not", "sample {run} -o {tmp}/s.npy",
     "{run}/best.pt does not match its own config: size mismatch for chain.layers.1.conditioner.0.weight: "
     "copying a param with shape torch.Size([8, 1]) from checkpoint, the shape in current model is "
     "torch.Size([4, 1]).", "config_edited_best"),
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = tmp_path_factory.mktemp("bad_input") / "run"
    assert main(["train", "moons", "--out", str(run), *TINY]) == 0
    return run


def _scratch(tmp: Path) -> None:
    """The bad (and one good) input files the cases point at."""
    ok = np.random.RandomState(0).randn(50, 2).astype(np.float32)
    np.save(tmp / "ok.npy", ok)
    bad = ok.copy()
    bad[3, 1] = np.nan
    np.save(tmp / "nan.npy", bad)
    (tmp / "inf.csv").write_text("x,y\n1,2\n3,4\ninf,5\n" + "1,1\n" * 20)
    np.save(tmp / "cube.npy", np.zeros((20, 2, 2)))
    np.save(tmp / "strings.npy", np.array([["a", "b"]] * 20))
    np.save(tmp / "empty.npy", np.zeros((0, 2)))
    np.save(tmp / "few.npy", ok[:5])
    np.savez(tmp / "two.npz", a=ok, b=ok)
    np.save(tmp / "wide.npy", np.random.RandomState(1).randn(50, 3))
    (tmp / "wide.csv").write_text("\n".join("1,2,3" for _ in range(5)))
    (tmp / "garbage.npy").write_bytes(b"\x93NUMPY garbage")
    (tmp / "notes.txt").write_text("1,2\n")
    (tmp / "bad.toml").write_text("[train\nsteps = 3")
    (tmp / "a_file").write_text("a plain file")
    (tmp / "a_dir").mkdir()


def _state(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _prepare(trained: Path, tmp_path: Path, setup: str | None) -> tuple[Path, Path]:
    tmp = tmp_path / "scratch"
    tmp.mkdir()
    _scratch(tmp)
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    if setup:
        SETUPS[setup](run)
    return run, tmp


def _expect(line: str, template: str, run: Path, tmp: Path) -> None:
    expected = "realnvp: error: " + template.format(run=run, tmp=tmp)
    if expected.endswith("…"):
        assert line.startswith(expected[:-1]), line
    else:
        assert line == expected


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_changes_nothing(case, trained, tmp_path, capsys):
    name, _, command, template, setup = case
    if name == "device" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    run, tmp = _prepare(trained, tmp_path, setup)
    before, scratch_before = _state(run), _state(tmp)
    code = main(command.format(run=run, tmp=tmp).split())
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1, err
    _expect(err[0], template, run, tmp)
    assert _state(run) == before  # nothing in the run directory was touched
    assert _state(tmp) == scratch_before and not (tmp / "new").exists()
    assert not (tmp_path / "pwned").exists()  # the crafted checkpoint ran nothing


@pytest.mark.parametrize("name", ["option", "checkpoint-code"])
def test_bad_input_in_a_real_process(name, trained, tmp_path):
    """The installed entry point: exit status 2, one line, no traceback."""
    _, _, command, template, setup = next(c for c in CASES if c[0] == name)
    run, tmp = _prepare(trained, tmp_path, setup)
    before = _state(run)
    proc = subprocess.run([sys.executable, "-m", "realnvp", *command.format(run=run, tmp=tmp).split()],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    _expect(proc.stderr.strip(), template, run, tmp)
    assert _state(run) == before and not (tmp_path / "pwned").exists()


def test_the_crafted_checkpoint_really_runs_code_when_loaded_unsafely(tmp_path):
    """The payload used above is live: an unsafe loader would create the file."""
    torch.save({"model": Evil(tmp_path / "pwned"), "config": {}}, tmp_path / "evil.pt")
    torch.load(tmp_path / "evil.pt", weights_only=False)
    assert (tmp_path / "pwned").exists()


def test_library_rejects_examples_of_the_wrong_shape():
    flow = build_vector_flow(2, 2, hidden=(8,))
    with pytest.raises(ValueError, match=re.escape("expected a batch of examples of shape (2,), got a tensor "
                                                   "of shape (5, 3)")):
        flow.log_prob(torch.zeros(5, 3))


def test_the_docs_table_lists_every_case_with_its_message():
    rows = {}
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0].isdigit():
            rows[cells[1]] = cells[2:]
    assert len(rows) >= 15
    for name, what, command, template, _ in CASES:
        assert rows.get(name) == [what, f"`realnvp {command}`", f"`realnvp: error: {template}`"], name


if __name__ == "__main__":  # prints the table rows of docs/bad-input.md
    for i, (name, what, command, template, _) in enumerate(CASES, 1):
        print(f"| {i} | {name} | {what} | `realnvp {command}` | `realnvp: error: {template}` |")
