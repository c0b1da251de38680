"""The limits on what realnvp reads (docs/bad-input.md, "Limits"): each is checked before the read it
bounds, so a huge or crafted file is refused at once with one line, and each raisable one follows its
environment variable. The command-line cases are rows of tests/test_bad_input.py; these check the
timing, the raising and the edges."""

from __future__ import annotations

import io
import time
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from realnvp.cli.common import OUTPUT_NAME_ROOM, check_name_lengths, check_output
from realnvp.data import image_files
from realnvp.data.image_files import MAX_IMAGE_PIXELS, open_image, read_image_folder
from realnvp.data.images import read_image_npz
from realnvp.data.vectors import MAX_FILE_MB, array_claims, read_table
from realnvp.errors import UserError


def _sparse(path: Path, head: bytes, size: int) -> Path:
    """``head`` then a hole up to ``size`` bytes: NUL bytes when read, no disk used."""
    with path.open("wb") as f:
        f.write(head)
        f.truncate(size)
    return path


def _refused_quickly(path: Path, match: str) -> None:
    start = time.perf_counter()
    with pytest.raises(UserError, match=match):
        read_table(path)
    assert time.perf_counter() - start < 3.0  # was a MemoryError after 17 s (2 GB read and parsed)


def test_a_2_gb_sparse_csv_is_refused_at_once_by_its_size(tmp_path):
    _refused_quickly(_sparse(tmp_path / "big.csv", b"a,b\n1,2\n", 2**31), "2,048 MB is more than the 1,024 MB")
    _refused_quickly(_sparse(tmp_path / "nul.csv", b"", 2**31), "REALNVP_MAX_FILE_MB")


def test_with_the_size_limit_raised_nul_bytes_and_one_huge_line_are_still_refused_at_once(tmp_path, monkeypatch):
    monkeypatch.setenv("REALNVP_MAX_FILE_MB", "4096")
    _refused_quickly(_sparse(tmp_path / "nul.csv", b"", 2**31), "line 1 holds a NUL byte: not CSV text")
    _refused_quickly(_sparse(tmp_path / "hole.csv", b"a,b\n1,2\n", 2**31), "cells is more than the 200,000,000")
    monkeypatch.setenv("REALNVP_MAX_CELLS", str(2**40))  # the cell estimate raised too: the text is read
    _refused_quickly(_sparse(tmp_path / "late.csv", b"a,b\n1,2\n", 2**24), "line 3 holds a NUL byte")


def test_the_file_size_limit_follows_its_environment_variable(tmp_path, monkeypatch):
    np.save(tmp_path / "t.npy", np.zeros((300_000, 2)))  # 4.8 MB
    assert read_table(tmp_path / "t.npy").shape == (300_000, 2) and MAX_FILE_MB == 1024
    monkeypatch.setenv("REALNVP_MAX_FILE_MB", "4")
    with pytest.raises(UserError, match=r"t.npy: 5 MB is more than the 4 MB realnvp reads"):
        read_table(tmp_path / "t.npy")
    for bad in ("lots", "0", "-5", "1.5"):
        monkeypatch.setenv("REALNVP_MAX_FILE_MB", bad)
        with pytest.raises(UserError, match=f"REALNVP_MAX_FILE_MB must be a positive whole number, got '{bad}'"):
            read_table(tmp_path / "t.npy")


def test_an_npz_member_is_checked_by_its_header_against_the_cell_limit(tmp_path, monkeypatch):
    """The member's header, not the file, is what counts: a compressed member may be far larger unpacked."""
    np.savez_compressed(tmp_path / "t.npz", x=np.zeros((1000, 2)))
    assert read_table(tmp_path / "t.npz").shape == (1000, 2)
    monkeypatch.setenv("REALNVP_MAX_CELLS", "1999")
    with pytest.raises(UserError, match=r"t.npz: 1000 x 2 = 2,000 cells is more than the 1,999 realnvp reads; .* "
                                        r"REALNVP_MAX_CELLS"):
        read_table(tmp_path / "t.npz")


def test_array_claims_reads_headers_only_and_catches_a_truncated_array(tmp_path):
    np.savez(tmp_path / "two.npz", x_train=np.zeros((4, 8, 8), np.uint8), y_train=np.arange(4))
    claims = array_claims(tmp_path / "two.npz")
    assert claims["x_train"][:3] == ((4, 8, 8), np.dtype(np.uint8), 256) and claims["y_train"].shape == (4,)
    np.save(tmp_path / "cut.npy", np.zeros((100, 2)))
    (tmp_path / "cut.npy").write_bytes((tmp_path / "cut.npy").read_bytes()[:-8])  # one value short
    with pytest.raises(UserError, match=r"cut.npy: corrupt or truncated: its header claims shape \(100, 2\) of "
                                        r"float64 \(1,600 bytes\), the file holds 1,592 bytes of data"):
        read_table(tmp_path / "cut.npy")


def test_image_arrays_larger_than_the_memory_are_refused_before_loading(tmp_path, monkeypatch):
    np.savez(tmp_path / "m.npz", x_train=np.zeros((5, 8, 8), np.uint8), x_test=np.zeros((2, 8, 8), np.uint8))
    assert read_image_npz(tmp_path / "m.npz", 256).train.shape == (5, 1, 8, 8)
    monkeypatch.setattr(image_files, "physical_memory", lambda: 400)
    with pytest.raises(UserError, match=r"m.npz: its arrays hold 448 bytes, more than this machine's memory "
                                        r"\(400 bytes\)"):
        read_image_npz(tmp_path / "m.npz", 256)


def _png_claiming(path: Path, width: int, height: int) -> Path:
    """A valid PNG header claiming ``width`` x ``height``, its data a few bytes (nothing to decode)."""
    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")  # the IHDR's size, then its checksum
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")
    path.write_bytes(bytes(data))
    return path


def test_the_pixel_limit_reads_the_header_and_follows_its_environment_variable(tmp_path, monkeypatch):
    (tmp_path / "pics").mkdir()
    Image.new("L", (20, 10)).save(tmp_path / "pics" / "a.png")
    assert read_image_folder(tmp_path / "pics").shape == (1, 1, 10, 20)
    monkeypatch.setenv("REALNVP_MAX_IMAGE_PIXELS", "199")
    with pytest.raises(UserError, match=r"a.png: an image of 20x10 = 200 pixels is more than the 199 realnvp decodes"):
        open_image(tmp_path / "pics" / "a.png")
    monkeypatch.delenv("REALNVP_MAX_IMAGE_PIXELS")
    before, start = Image.MAX_IMAGE_PIXELS, time.perf_counter()
    for side in (12_000, 60_000):  # past Pillow's own warning (a second line), then its error (a traceback)
        with warnings.catch_warnings(), pytest.raises(UserError, match=f"{side}x{side} = {side * side:,} pixels is "
                                                                       f"more than the {MAX_IMAGE_PIXELS:,}"):
            warnings.simplefilter("error")
            open_image(_png_claiming(tmp_path / f"big{side}.png", side, side))
    assert time.perf_counter() - start < 1.0 and Image.MAX_IMAGE_PIXELS == before  # Pillow's own limit restored


def test_output_names_keep_room_for_the_temporary_copy(tmp_path, monkeypatch):
    room_left = 255 - OUTPUT_NAME_ROOM
    check_output(tmp_path / ("a" * (room_left - 4) + ".npy"), (".npy",))  # the longest name an output may take
    with pytest.raises(UserError, match=f"its name is {room_left + 1} bytes long; this file system takes at most 255 "
                                        f"\\({room_left} for an output"):
        check_output(tmp_path / ("a" * (room_left - 3) + ".npy"), (".npy",))
    check_name_lengths(tmp_path / ("r" * 255), room=0)  # a run directory needs no room of its own
    with pytest.raises(UserError, match="é" * 20 + r"\.\.\..*: its name is 256 bytes long"):  # bytes, not characters
        check_name_lengths(tmp_path / ("é" * 128), room=0)
    monkeypatch.setattr("os.pathconf", lambda *a: (_ for _ in ()).throw(OSError("unsupported")))
    with pytest.raises(UserError, match="takes at most 255"):  # where the file system does not say: 255
        check_name_lengths(tmp_path / "x" / ("b" * 256))


def test_a_data_file_name_too_long_is_not_found(tmp_path):
    with pytest.raises(UserError, match="data file not found"):
        read_table(tmp_path / ("c" * 300 + ".csv"))
    with zipfile.ZipFile(tmp_path / "empty.npz", "w"):
        pass
    with pytest.raises(UserError, match=r"an .npz must hold one array or one named 'x'; found none"):
        read_table(tmp_path / "empty.npz")


def test_a_config_file_name_too_long_is_not_found(tmp_path):
    from realnvp.config import load_config  # Path.is_file raised OSError 36 (File name too long) here

    with pytest.raises(UserError, match="config file not found"):
        load_config(str(tmp_path / ("c" * 300 + ".toml")))


def test_a_path_longer_than_the_file_system_takes_is_one_line(tmp_path):
    deep = tmp_path.joinpath(*["ab"] * 1500, "s.npy")
    with pytest.raises(UserError, match=r"the path is \d+ bytes long; this file system takes at most 4095 "
                                        r"\(4068 for an output\)"):
        check_output(deep, (".npy",))


def test_an_npz_member_that_is_not_an_array_is_one_line(tmp_path):
    """np.load hands a member that is not an .npy over as bytes (an AttributeError further on)."""
    with zipfile.ZipFile(tmp_path / "csv.npz", "w") as archive:
        archive.writestr("x.csv", "1,2\n3,4\n")
    with pytest.raises(UserError, match=r"csv.npz: member 'x.csv' is not an array \(an .npz holds .npy files\)"):
        read_table(tmp_path / "csv.npz")
    with pytest.raises(UserError, match=r"member 'x.csv' is not an array"):
        image_files.read_pixel_file(tmp_path / "csv.npz")


def _npy_claiming(shape: tuple[int, ...]) -> bytes:
    """An .npy whose header claims ``shape`` of float64 but holds 16 bytes of data."""
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": "<f8", "fortran_order": False, "shape": shape})
    return out.getvalue() + bytes(16)


def test_context_files_are_checked_by_their_headers_before_loading(tmp_path):
    from realnvp.data.labels import read_context_file  # sample --context-file: numpy allocated 29 TiB here

    (tmp_path / "ctx.npy").write_bytes(_npy_claiming((10**12, 4)))
    with zipfile.ZipFile(tmp_path / "ctx.npz", "w") as archive:
        archive.writestr("context.npy", _npy_claiming((10**12, 4)))
    for name in ("ctx.npy", "ctx.npz"):
        with pytest.raises(UserError, match=rf"{name}.*corrupt or truncated: its header claims shape"):
            read_context_file(tmp_path / name, 4)
