"""Every bad input of docs/bad-input.md, run through the CLI: exit code 2, exactly one line
``realnvp: error: <message>`` on stderr, and no file of the run directory changed (bytes and
modification times compared before and after). The table in the docs is checked against the cases
here, so it shows the real messages.

``{run}`` is a trained run, ``{tmp}`` a scratch folder; a message ending in ``…`` is a prefix (the
rest lists presets or settings, or quotes a library's own words)."""

from __future__ import annotations

import errno
import io
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from realnvp.cli import main
from realnvp.errors import UserError
from realnvp.models import build_vector_flow
from realnvp.rundir import PREVIOUS
from realnvp.training.guard import NonFiniteGuard

DOC = Path(__file__).resolve().parents[1] / "docs" / "bad-input.md"


class Evil:
    """Unpickling this would create a file (or run ``call`` on the marker's path): the payload of a
    checkpoint crafted to run code."""

    def __init__(self, marker: Path, call=open) -> None:
        self.marker, self.call = str(marker), call

    def __reduce__(self):
        return (self.call, (self.marker, "w") if self.call is open else (f"touch {self.marker}",))


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


def _wide_run(run: Path) -> None:
    """The run's checkpoints say its examples had 3 columns (as if its data file had been rewritten)."""
    for name in ("checkpoint.pt", PREVIOUS):
        state = torch.load(run / name, weights_only=True)
        torch.save({**state, "event_shape": [3]}, run / name)


def _nan_weight(state: dict) -> dict:
    state["model"]["chain.layers.1.conditioner.0.weight"].fill_(float("nan"))
    return state


def _raw_pickle(run: Path, payload: bytes) -> None:
    """best.pt with its data.pkl replaced by ``payload`` (a hand-written pickle), the zip kept valid."""
    with zipfile.ZipFile(run / "best.pt") as src:
        entries = [(info, src.read(info.filename)) for info in src.infolist()]
    with zipfile.ZipFile(run / "best.pt", "w") as out:
        for info, data in entries:
            out.writestr(info, payload if info.filename.endswith("data.pkl") else data)


def _disk_full(monkeypatch, suffix: str = ".pt") -> None:
    """Every checkpoint write (``.pt``) fails as on a full disk; other writes work."""
    real = tempfile.mkstemp

    def mkstemp(*args, **kwargs):
        if kwargs.get("prefix", "").endswith(f"{suffix}."):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


def _unreadable(monkeypatch, name: str) -> None:
    """Reading ``name`` fails as without read permission (root reads anything, so it is simulated)."""
    real = Path.read_bytes

    def read_bytes(self):
        if self.name == name:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)


ON_RUN = {  # changes to the trained run's files
    "garbage_best": lambda run: (run / "best.pt").write_bytes(b"not a checkpoint at all"),
    "truncated_best": lambda run: (run / "best.pt").write_bytes((run / "best.pt").read_bytes()[:5000]),
    "flipped_best": _flip_a_weight_byte,
    "evil_best": lambda run: torch.save({"model": Evil(run.parent / "pwned"), "config": {}}, run / "best.pt"),
    "system_best": lambda run: torch.save({"model": Evil(run.parent / "pwned", os.system), "config": {}},
                                          run / "best.pt"),
    "protocol0_best": lambda run: _raw_pickle(run, b"cos\nsystem\n(S'touch pwned'\ntR."),
    "stack_global_best": lambda run: _raw_pickle(run, b"\x80\x04\x8c\x02os\x8c\x06system\x93\x8c\x04true\x85R."),
    "foreign_best": lambda run: torch.save({"weights": torch.zeros(3)}, run / "best.pt"),
    "reshaped_best": lambda run: _rewrite_best(run, _reshape_weight),
    "config_edited_best": lambda run: _rewrite_best(run, _change_config),
    "config_list_best": lambda run: _rewrite_best(run, lambda state: {**state, "config": [1, 2]}),
    "no_shape_best": lambda run: _rewrite_best(run, lambda state: {**state, "event_shape": None}),
    "range_best": lambda run: _rewrite_best(run, lambda state: {**state, "config": {"data": {"n_train": -5}}}),
    "nan_best": lambda run: _rewrite_best(run, _nan_weight),
    "garbage_checkpoints": lambda run: [(run / n).write_bytes(b"junk") for n in ("checkpoint.pt", PREVIOUS)],
    "wide_run": _wide_run,
}


def _on_run(edit):
    return lambda run, tmp, mp: edit(run)


def _fake_npy(shape: tuple[int, ...], descr: str) -> bytes:
    """An .npy whose header claims ``shape`` of ``descr`` followed by only 100 bytes of data."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue() + bytes(100)


def _claims_npz(path: Path, **members: tuple[tuple[int, ...], str]) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for name, (shape, descr) in members.items():
            archive.writestr(f"{name}.npy", _fake_npy(shape, descr))


def _png_header(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` grey pixels: its header is valid, its data a few bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(bytes(10))) + chunk(b"IEND", b""))


def _sparse(path: Path, head: bytes, size: int) -> None:
    """``head`` then a hole up to ``size`` bytes (NUL bytes when read; no disk is used for them)."""
    with path.open("wb") as f:
        f.write(head)
        f.truncate(size)


SETUPS = {  # name: f(run, scratch folder, monkeypatch)
    **{name: _on_run(edit) for name, edit in ON_RUN.items()},
    "disk_full": lambda run, tmp, mp: _disk_full(mp),
    "unreadable_toml": lambda run, tmp, mp: _unreadable(mp, "ok.toml"),
    "sparse_csv": lambda run, tmp, mp: _sparse(tmp / "sparse.csv", b"", 2**31),
    "long_line_csv": lambda run, tmp, mp: (tmp / "long_line.csv").write_bytes(b"1," * 5_000_001),
}

# --quiet: `train --data` first says which defaults it sized to the table (a note, not an error).
T = "train vector --quiet --out {tmp}/new"
RESUME = "train moons --out {run} --resume --set data.n_train=2000 --set data.n_test=1000 --set model.n_couplings=2"
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
     "{tmp}/nan.npy: 1 rows have missing cells, first at row 3, column 'x1'; fill them, or --set "
     "data.missing=drop to drop those rows", None),
    ("data-inf", "Inf in a .csv", T + " --data {tmp}/inf.csv",
     "{tmp}/inf.csv: 1 infinite values, first at row 2, column 'x'", None),
    ("data-shape", "3-D array instead of a table", T + " --data {tmp}/cube.npy",
     "{tmp}/cube.npy: expected a 2-D table [examples, features], got shape (20, 2, 2)", None),
    ("data-dtype", "strings instead of numbers", T + " --data {tmp}/strings.npy",
     "{tmp}/strings.npy: expected real numbers, got dtype <U1", None),
    ("data-empty", "no rows", T + " --data {tmp}/empty.npy", "{tmp}/empty.npy: the file holds no examples", None),
    ("data-too-few", "too few rows to split", T + " --data {tmp}/few.npy",
     "{tmp}/few.npy: 5 rows are too few to split into training, validation and test (need at least 10)",
     None),
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
    ("schedule-budget", "time-based cosine without a time budget",
     T + " --data {tmp}/ok.npy --set train.lr_schedule=cosine_time --set train.time_budget=0",
     "train.lr_schedule = 'cosine_time' needs train.time_budget > 0 (seconds)", None),
    ("range-fraction", "validation share above 1", T + " --data {tmp}/ok.npy --set data.val_fraction=1.5",
     "data.val_fraction must be in [0, 1), got 1.5", None),
    ("range-steps", "negative steps", T + " --data {tmp}/ok.npy --steps -3", "train.steps must be >= 0, got -3", None),
    ("config-missing", "config file does not exist", "train {tmp}/missing.toml --out {tmp}/new",
     "config file not found: {tmp}/missing.toml", None),
    ("config-toml", "config file is not TOML", "train {tmp}/bad.toml --out {tmp}/new",
     "{tmp}/bad.toml: not valid TOML (…", None),
    ("device", "--device cuda without a GPU", T + " --data {tmp}/ok.npy --device cuda",
     "--device cuda was asked for but no CUDA GPU is available (use --device cpu)", None),
    ("out-unwritable", "run directory cannot be created",
     "train vector --quiet --data {tmp}/ok.npy --out {tmp}/a_file/run",
     "cannot write to run directory {tmp}/a_file/run: Not a directory", None),
    ("out-file", "--out is a file", "train vector --quiet --data {tmp}/ok.npy --out {tmp}/a_file",
     "--out {tmp}/a_file exists and is not a directory", None),
    ("out-taken", "--out already holds a run", "train moons --out {run}",
     "{run} already holds a run; use --resume to continue it or pick another --out", None),
    ("resume-missing", "--resume of a missing run", "train moons --out {tmp}/none --resume",
     "nothing to resume: {tmp}/none holds no run (train without --resume to start one)", None),
    ("resume-model", "--resume with another model",
     RESUME + " --set model.hidden=4",
     "cannot resume from {run}/checkpoint.pt: model.hidden is (8,) in the run, (4,) now "
     "(only train.* settings may change)", None),
    ("resume-columns", "--resume with the same settings, data of another width",
     RESUME + " --set model.hidden=8",
     "cannot resume from {run}/checkpoint.pt: the run has examples of shape (3,), the data has (2,)", "wide_run"),
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
     "argument -n: must be from 1 to 10,000,000, got -5 (see: realnvp sample --help)", None),
    ("output-directory", "output folder does not exist", "sample {run} -o {tmp}/nowhere/s.npy",
     "cannot write {tmp}/nowhere/s.npy: directory {tmp}/nowhere does not exist", None),
    ("output-suffix", "output type not supported", "sample {run} -o {run}/checkpoint.pt",
     "output 'checkpoint.pt' must end in .png, .npy or .csv", None),
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
    # Reliability round 2 (issue 13): each was a traceback, two lines, a wrong exit status or a wrong message.
    ("config-utf8", "config file is not UTF-8", "train {tmp}/latin1.toml --out {tmp}/new",
     "{tmp}/latin1.toml: not valid TOML (not UTF-8 text: byte 11 is 0xe9)", None),
    ("config-unreadable", "config file cannot be read", "train {tmp}/ok.toml --out {tmp}/new",
     "cannot read {tmp}/ok.toml: Permission denied", "unreadable_toml"),
    ("range-n-train", "no training examples", "train moons --out {tmp}/new --set data.n_train=0",
     "data.n_train must be > 0, got 0", None),
    ("range-n-train-negative", "negative number of examples", "train moons --out {tmp}/new --set data.n_train=-5",
     "data.n_train must be > 0, got -5", None),
    ("range-noise", "NaN noise", "train moons --out {tmp}/new --set data.noise=nan",
     "data.noise must be a finite number (< 0 for the dataset's default), got nan", None),
    ("range-data-seed", "negative data seed", "train moons --out {tmp}/new --set data.seed=-1",
     "data.seed must be >= 0, got -1", None),
    ("range-seed-float", "seed written as a float", "train moons --out {tmp}/new --set train.seed=1e20",
     "train.seed: expected int, got '1e20'", None),
    ("range-seed-large", "seed beyond what the generators take",
     "train moons --out {tmp}/new --seed 100000000000000000000",
     "train.seed must be at most 2147483647, got 100000000000000000000", None),
    ("range-lr-inf", "infinite learning rate", "train moons --out {tmp}/new --set train.lr=inf",
     "train.lr must be at most 10, got inf", None),
    ("range-scale-init-inf", "infinite scale_init", "train moons --out {tmp}/new --set model.scale_init=inf",
     "model.scale_init must be at most 100, got inf", None),
    ("range-couplings", "absurd number of couplings", "train moons --out {tmp}/new --set model.n_couplings=100000",
     "model.n_couplings must be at most 1000, got 100000", None),
    ("range-memory", "model too big for the memory",
     "train moons --out {tmp}/new --set model.n_couplings=1000 --set model.hidden=4096,4096",
     "model.n_couplings=1000, model.hidden=(4096, 4096) make about 1.68e+10 parameters: about 873 GB to train "
     "(52 bytes each: …", None),
    ("model-kind", "unknown model kind", "train moons --out {tmp}/new --set model.kind=bogus",
     "model.kind must be one of vector, image, got 'bogus'", None),
    ("data-one-column", "one column: nothing to couple", T + " --data {tmp}/one.csv",
     "the vector model needs at least 2 columns (a coupling transforms some columns given the others); the data "
     "has examples of shape (1,)", None),
    ("data-empty-csv", "empty .csv", T + " --data {tmp}/empty.csv",
     "{tmp}/empty.csv: the file holds no examples", None),
    ("data-header-only", ".csv with a header and no rows", T + " --data {tmp}/header.csv",
     "{tmp}/header.csv: the file holds no examples", None),
    ("data-no-columns", "0-column .npy", T + " --data {tmp}/no_columns.npy",
     "{tmp}/no_columns.npy: the table has no columns (shape (20, 0))", None),
    ("data-huge", "float64 values beyond float32", T + " --data {tmp}/huge.npy",
     "{tmp}/huge.npy: 2 values beyond float32's range (±3.4e38), first at row 0, column 'x1' (1e+300); "
     "rescale the data",
     None),
    ("disk-full", "disk full at the first checkpoint", "train moons --out {tmp}/new --quiet --no-pictures --steps 20 "
     "--set data.n_train=300 --set model.hidden=8 --set train.eval_every=10 --set train.time_budget=0",
     "cannot write {tmp}/new/best.pt: No space left on device (any earlier version of it is intact)", "disk_full"),
    ("resume-other-data", "--resume with another dataset", "train circles --out {run} --resume",
     "cannot resume from {run}/checkpoint.pt: data.name is 'moons' in the run, 'circles' now; …", None),
    ("resume-other-file", "--resume with a data file",
     RESUME + " --set model.hidden=8 --data {tmp}/more.npy",
     "cannot resume from {run}/checkpoint.pt: data.name is 'moons' in the run, 'file' now; data.path is '' in the "
     "run, '{tmp}/more.npy' now; data.column_types is 'auto' in the run, 'real,real' now; "
     "and 1 more (only train.* settings may change)", None),
    ("sample-output-folder", "sample -o names a folder", "sample {run} -o {tmp}/a_dir",
     "cannot write {tmp}/a_dir: it is a directory", None),
    ("score-output-folder", "score -o names a folder", "score {run} {tmp}/ok.npy -o {tmp}",
     "cannot write {tmp}: it is a directory", None),
    ("checkpoint-config-list", "checkpoint config is a list", "sample {run} -o {tmp}/s.npy",
     "{run}/best.pt is not a realnvp checkpoint (its config is a list, not a table)", "config_list_best"),
    ("checkpoint-no-shape", "checkpoint without event_shape", "evaluate {run}",
     "{run}/best.pt is not a complete realnvp checkpoint (event_shape is None, expected a list of 1 to 3 sizes)",
     "no_shape_best"),
    ("checkpoint-settings", "checkpoint config out of range", "evaluate {run}",
     "{run}/best.pt: data.n_train must be > 0, got -5", "range_best"),
    ("checkpoint-nan-evaluate", "NaN weights: evaluate", "evaluate {run} --json",
     "{run}/best.pt holds 8 non-finite weights (NaN/Inf), first in chain.layers.1.conditioner.0.weight: the run "
     "diverged or the file was altered", "nan_best"),
    ("checkpoint-nan-score", "NaN weights: score", "score {run} {tmp}/ok.npy -o {tmp}/scores.csv",
     "{run}/best.pt holds 8 non-finite weights (NaN/Inf), first in chain.layers.1.conditioner.0.weight: the run "
     "diverged or the file was altered", "nan_best"),
    ("checkpoint-code-system", "checkpoint crafted to call os.system", "evaluate {run}",
     "refusing to load {run}/best.pt: it asks to run code (posix.system); only tensors are loaded", "system_best"),
    ("checkpoint-code-protocol0", "hand-written protocol-0 pickle", "evaluate {run}",
     "refusing to load {run}/best.pt: it asks to run code (os.system); only tensors are loaded", "protocol0_best"),
    ("checkpoint-code-stack-global", "protocol-4 STACK_GLOBAL pickle", "sample {run} -o {tmp}/s.npy",
     "refusing to load {run}/best.pt: it asks to run code (os.system); only tensors are loaded",
     "stack_global_best"),
    ("samples-too-many", "more samples than one call draws", "sample {run} -n 10000000000 -o {tmp}/s.npy",
     "argument -n: must be from 1 to 10,000,000, got 10000000000 (see: realnvp sample --help)", None),
    ("animate-negative", "negative animation points", "animate {run} -n -5 -o {tmp}/a.gif",
     "argument -n: must be from 1 to 100,000, got -5 (see: realnvp animate --help)", None),
    ("seed-overflow", "a seed beyond 2**31 - 1", "sample {run} --seed 99999999999999999999999 -o {tmp}/s.npy",
     "argument --seed: must be from 0 to 2,147,483,647, got 99999999999999999999999 (see: realnvp sample --help)",
     None),
    ("data-too-wide", "a CSV wider than realnvp models", "train --data {tmp}/too_wide.csv --out {tmp}/new --quiet",
     "{tmp}/too_wide.csv: 10001 columns; realnvp models at most 10000 (a full-covariance first layer is "
     "quadratic in them)", None),
    ("data-text-cell", "a text cell in a CSV", "train --data {tmp}/text.csv --out {tmp}/new --quiet",
     "{tmp}/text.csv: line 3, column 'b' holds 'abc', not a number; realnvp models numeric columns only "
     "(remove or encode that column)", None),
    ("data-constant-column", "a constant column", "train --data {tmp}/constant.csv --out {tmp}/new --quiet",
     "{tmp}/constant.csv: column 'c' is constant (no density exists along it); remove it, or --set "
     "data.constant=drop to model the other columns", None),
    # Reliability round 3 (issue 25): bounded input; each was a traceback (MemoryError after 17 s for the CSV).
    ("image-pixels", "a PNG claiming 60000x60000 pixels", "train images --quiet --out {tmp}/new --data {tmp}/bomb",
     "{tmp}/bomb/big.png: an image of 60000x60000 = 3,600,000,000 pixels is more than the 100,000,000 realnvp "
     "decodes; shrink it, or set REALNVP_MAX_IMAGE_PIXELS to allow more", None),
    ("image-npz-claim", "image .npz whose header claims a huge shape",
     "train images --quiet --out {tmp}/new --data {tmp}/claims_images.npz",
     "{tmp}/claims_images.npz:x_train: corrupt or truncated: its header claims shape (100000, 3, 60000, 60000) of "
     "uint8 (1,080,000,000,000,000 bytes), the file holds 100 bytes of data", None),
    ("data-npz-claim", "table .npz whose header claims a huge shape", T + " --data {tmp}/claims.npz",
     "{tmp}/claims.npz: 1000000000000 x 2 = 2,000,000,000,000 cells is more than the 200,000,000 realnvp reads; "
     "subsample the rows, or set REALNVP_MAX_CELLS to allow more", None),
    ("data-npz-truncated", "table .npz member shorter than its header claims", T + " --data {tmp}/short.npz",
     "{tmp}/short.npz:x: corrupt or truncated: its header claims shape (1000, 2) of float64 (16,000 bytes), the "
     "file holds 100 bytes of data", None),
    ("data-npy-claim", ".npy whose header claims a huge 3-D shape", T + " --data {tmp}/claims.npy",
     "{tmp}/claims.npy: expected a 2-D table [examples, features], got shape (1000000, 1000000, 1000)", None),
    ("data-file-size", "a 2 GB sparse CSV of NUL bytes", T + " --data {tmp}/sparse.csv",
     "{tmp}/sparse.csv: 2,048 MB is more than the 1,024 MB realnvp reads from a table file; subsample the rows, "
     "or set REALNVP_MAX_FILE_MB to allow more", "sparse_csv"),
    ("data-nul", "a CSV of NUL bytes", T + " --data {tmp}/nul.csv",
     "{tmp}/nul.csv: line 1 holds a NUL byte: not CSV text (a binary or sparse file?)", None),
    ("data-long-line", "a CSV line of 10 million characters", T + " --data {tmp}/long_line.csv",
     "{tmp}/long_line.csv: the first line is longer than 10,000,000 characters; a CSV has one row per line",
     "long_line_csv"),
    ("output-name-long", "an output name of 300 characters", "sample {run} -o {tmp}/{long}.png",
     "cannot write {tmp}/aaaaaaaaaaaaaaaaaaaa...aaaa.png: its name is 304 bytes long; this file system takes at "
     "most 255 (228 for an output, which needs room for a temporary copy)", None),
    ("animate-name-long", "an animation name of 300 characters", "animate {run} -o {tmp}/{long}.gif",
     "cannot write {tmp}/aaaaaaaaaaaaaaaaaaaa...aaaa.gif: its name is 304 bytes long; this file system takes at "
     "most 255 (228 for an output, which needs room for a temporary copy)", None),
    ("output-folder-long", "an output folder name of 300 characters", "score {run} {tmp}/ok.npy -o {tmp}/{long}/s.csv",
     "cannot write {tmp}/aaaaaaaaaaaaaaaaaaaa...aaaaaaaa/s.csv: a folder name is 300 bytes long; this file system "
     "takes at most 255", None),
    ("out-name-long", "a run directory name of 300 characters", "train moons --quiet --out {tmp}/{long}",
     "cannot write to run directory {tmp}/aaaaaaaaaaaaaaaaaaaa...aaaaaaaa: its name is 300 bytes long; this file "
     "system takes at most 255", None),
    ("data-fifo", "data path is a named pipe (reading it would wait forever)", T + " --data {tmp}/fifo.csv",
     "expected a regular data file, got a named pipe (fifo): {tmp}/fifo.csv", None),
    ("data-hash-cell", "a cell '1.#IND' ('#' is not a comment inside a CSV)", T + " --data {tmp}/hash.csv",
     "{tmp}/hash.csv: line 2, column 'b' holds '1.#IND', not a number; realnvp models numeric columns only "
     "(remove or encode that column)", None),
]
LONG = "a" * 300  # {long} in a command: one name longer than any file system takes (NAME_MAX 255)


@pytest.fixture(scope="module")
def trained(tiny_moons):
    return tiny_moons  # the shared tiny run (hidden=8, 2 couplings, as the messages quote); cases use a copy


def _scratch(tmp: Path) -> None:
    """The bad (and one good) input files the cases point at."""
    ok = np.random.RandomState(0).randn(50, 2).astype(np.float32)
    np.save(tmp / "ok.npy", ok)
    bad = ok.copy()
    bad[3, 1] = np.nan
    np.save(tmp / "nan.npy", bad)
    (tmp / "inf.csv").write_text("x,y\n1,2\n3,4\ninf,5\n" + "1,1\n" * 20)
    (tmp / "too_wide.csv").write_text(",".join(["1"] * 10_001) + "\n")
    (tmp / "text.csv").write_text("a,b\n1,2\n3,abc\n" + "1,1\n" * 20)
    (tmp / "constant.csv").write_text("a,b,c\n" + "".join(f"{i},{i * i % 7},5\n" for i in range(30)))
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
    (tmp / "latin1.toml").write_bytes("[train]\n# d\xe9j\xe0 vu\n".encode("latin-1"))
    (tmp / "ok.toml").write_text("[train]\nsteps = 3\n")
    (tmp / "one.csv").write_text("x\n" + "\n".join(str(i) for i in range(20)) + "\n")
    (tmp / "empty.csv").write_text("")
    (tmp / "header.csv").write_text("a,b\n")
    np.save(tmp / "no_columns.npy", np.zeros((20, 0)))
    np.save(tmp / "more.npy", np.random.RandomState(2).randn(1000, 2).astype(np.float32))
    np.save(tmp / "huge.npy", np.array([[1.0, 1e300], [2.0, -1e300]] + [[0.0, 0.0]] * 20))
    (tmp / "bomb").mkdir()
    (tmp / "bomb" / "big.png").write_bytes(_png_header(60000, 60000))
    _claims_npz(tmp / "claims_images.npz", x_train=((100000, 3, 60000, 60000), "|u1"), x_test=((10, 3, 8, 8), "|u1"))
    _claims_npz(tmp / "claims.npz", x=((10**12, 2), "<f8"))
    _claims_npz(tmp / "short.npz", x=((1000, 2), "<f8"))
    (tmp / "claims.npy").write_bytes(_fake_npy((10**6, 10**6, 1000), "<f8"))
    _sparse(tmp / "nul.csv", b"", 2**20)
    os.mkfifo(tmp / "fifo.csv")
    (tmp / "hash.csv").write_text("a,b\n3,1.#IND\n" + "1,2\n" * 20)


def _state(folder: Path) -> dict[str, tuple[bytes, int, int]]:
    return {str(p.relative_to(folder)): (_bytes(p), p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _bytes(path: Path) -> bytes:
    if path.stat().st_size > 2**26:  # the 2 GB sparse CSV: its size and modification time are compared
        return b""
    with path.open("rb") as f:  # not Path.read_bytes, which a case may make fail
        return f.read()


def _prepare(trained: Path, tmp_path: Path, setup: str | None, monkeypatch=None) -> tuple[Path, Path]:
    tmp = tmp_path / "scratch"
    tmp.mkdir()
    _scratch(tmp)
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    if setup:
        SETUPS[setup](run, tmp, monkeypatch)
    return run, tmp


def _expect(line: str, template: str, run: Path, tmp: Path) -> None:
    expected = "realnvp: error: " + template.format(run=run, tmp=tmp, long=LONG)
    if expected.endswith("…"):
        assert line.startswith(expected[:-1]), line
    else:
        assert line == expected


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_changes_nothing(case, trained, tmp_path, capsys, monkeypatch):
    name, _, command, template, setup = case
    if name == "device" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    run, tmp = _prepare(trained, tmp_path, setup, monkeypatch)
    before, scratch_before = _state(run), _state(tmp)
    code = main(command.format(run=run, tmp=tmp, long=LONG).split())
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
    with pytest.raises(ValueError, match=re.escape("expected one example of shape (2,) or a batch [N, 2], got shape "
                                                   "(5, 3)")):
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


def test_the_docs_name_every_test_beyond_the_table():
    """The list under the table names tests that exist, and every test of the lock and the fuzzer."""
    named = set(re.findall(r"`(test_\w+)`", DOC.read_text().partition("## One training per run directory")[2]))
    here = Path(__file__).parent
    defined = {f: set(re.findall(r"^def (test_\w+)", (here / f).read_text(), re.M))
               for f in ("test_bad_input.py", "test_lock.py", "test_fuzz_cli.py")}
    assert named <= set().union(*defined.values()), named - set().union(*defined.values())
    assert defined["test_lock.py"] | defined["test_fuzz_cli.py"] <= named
    assert len(named) >= 9


if __name__ == "__main__":  # prints the table rows of docs/bad-input.md
    for i, (name, what, command, template, _) in enumerate(CASES, 1):
        print(f"| {i} | {name} | {what} | `realnvp {command}` | `realnvp: error: {template}` |")


def test_sample_works_without_config_json(trained, tmp_path, capsys):
    """The checkpoint holds the settings: a deleted or torn config.json does not stop ``sample``."""
    for name, damage in (("deleted", lambda p: p.unlink()), ("torn", lambda p: p.write_text('{"data": {'))):
        run = shutil.copytree(trained, tmp_path / name)
        damage(run / "config.json")
        assert main(["sample", str(run), "-n", "50", "-o", str(tmp_path / f"{name}.npy"), "--quiet"]) == 0
        assert np.load(tmp_path / f"{name}.npy").shape == (50, 2)
    assert capsys.readouterr().err == ""


def test_a_csv_header_of_letters_e_and_n_is_a_header(trained, tmp_path, capsys):
    """``e,n`` (letters that also spell numbers: 1e3, nan) names columns; ``1e3,nan`` would be data."""
    (tmp_path / "en.csv").write_text("e,n\n0.5,0.25\n1,0\n")
    assert main(["score", str(trained), str(tmp_path / "en.csv"), "-o", str(tmp_path / "s.csv"), "--quiet"]) == 0
    assert len((tmp_path / "s.csv").read_text().splitlines()) == 3  # header + 2 rows
    assert capsys.readouterr().err == ""


def test_divergence_before_any_checkpoint_does_not_claim_one_is_kept():
    flow = build_vector_flow(2, 2, hidden=(4,))
    guard = NonFiniteGuard(flow, torch.optim.Adam(flow.parameters()), max_bad_steps=1, log=lambda *a: None)
    guard.mark_good(0)
    guard.reject(torch.full((4, 2), float("nan")), step=0)
    with pytest.raises(UserError) as caught:
        guard.reject(torch.full((4, 2), float("nan")), step=1)
    assert "since the start (no checkpoint was written)" in str(caught.value)
    assert "kept" not in str(caught.value)


def test_a_full_disk_while_resuming_keeps_the_last_checkpoint(trained, tmp_path, capsys, monkeypatch):
    """ENOSPC on a checkpoint write: one line, exit 2, the last complete checkpoint intact; once there
    is room again, --resume continues from it."""
    run = shutil.copytree(trained, tmp_path / "run")
    kept = {name: (run / name).read_bytes() for name in ("checkpoint.pt", "best.pt")}
    resume = ["train", "moons", "--out", str(run), "--resume", "--quiet", "--no-pictures", "--steps", "80",
              *RESUME.split()[5:], "--set", "model.hidden=8"]
    _disk_full(monkeypatch)
    assert main(resume) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left on device" in err[0], err
    assert not list(run.glob(".*.tmp"))
    latest = max((run / n for n in ("checkpoint.pt", PREVIOUS) if (run / n).exists()), key=lambda p: p.stat().st_mtime)
    assert latest.read_bytes() == kept["checkpoint.pt"] and (run / "best.pt").read_bytes() == kept["best.pt"]
    monkeypatch.undo()
    assert main(resume) == 0
    assert torch.load(run / "checkpoint.pt", weights_only=True)["step"] == 80


def test_a_disk_full_at_the_first_checkpoint_leaves_nothing_and_the_retry_starts(tmp_path, capsys, monkeypatch):
    """best.pt (the untrained start) is written, then checkpoint.pt hits a full disk: the failed first
    start removes what it wrote, so the same command works once there is space (docs/bad-input.md)."""
    argv = ["train", "moons", "--out", str(tmp_path / "new"), "--quiet", "--no-pictures", "--steps", "20",
            "--set", "data.n_train=500", "--set", "model.hidden=8", "--set", "train.eval_every=10"]
    with monkeypatch.context() as patch:
        _disk_full(patch, suffix="checkpoint.pt")
        assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left on device" in err[0]
    assert not (tmp_path / "new").exists()
    assert main(argv) == 0 and (tmp_path / "new" / "checkpoint.pt").exists()
