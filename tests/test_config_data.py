"""Presets, overrides with type checks, toy densities and the user's files."""

import numpy as np
import pytest

from realnvp.config import load_config, preset_names
from realnvp.data import TOY_DENSITIES, load_splits, make_toy, read_vectors
from realnvp.errors import UserError
from realnvp.models import build_model

VECTOR_PRESETS = ["moons", "moons-tutorial", "vector", *[n for n in TOY_DENSITIES if n != "moons"]]


def test_every_toy_and_vector_preset_exists_and_builds():
    assert set(VECTOR_PRESETS) <= set(preset_names())
    for name in VECTOR_PRESETS:
        cfg = load_config(name)
        flow = build_model(cfg.model, (2,))
        assert flow.sample(3).shape == (3, 2), name


def test_moons_tutorial_is_seed_004s_model():
    cfg = load_config("moons-tutorial")
    flow = build_model(cfg.model, (2,))
    # 4 x (1-512-512-2 MLP) = 1,058,824 weights, plus one learned tanh scale per coupling.
    assert flow.n_params() == 1_058_824 + 4
    assert (cfg.train.steps, cfg.train.batch_size, cfg.train.lr) == (3000, 256, 1e-3)


def test_overrides_are_type_checked():
    cfg = load_config("moons", ["model.hidden=64,32", "train.lr=3e-4", "model.batch_norm=true"])
    assert cfg.model.hidden == (64, 32) and cfg.train.lr == 3e-4 and cfg.model.batch_norm is True
    with pytest.raises(UserError, match="train.steps: expected int, got 'many'"):
        load_config("moons", ["train.steps=many"])
    with pytest.raises(UserError, match="unknown setting 'model.widht'"):
        load_config("moons", ["model.widht=3"])
    with pytest.raises(UserError, match="expects key=value"):
        load_config("moons", ["train.lr"])
    with pytest.raises(UserError, match="unknown preset 'moon'"):
        load_config("moon")


def test_config_file(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('[data]\nname = "rings"\n[model]\nn_couplings = 3\n')
    cfg = load_config(str(path))
    assert cfg.data.name == "rings" and cfg.model.n_couplings == 3
    path.write_text("[model]\nn_couplings = 'three'\n")
    with pytest.raises(UserError, match="model.n_couplings: expected int"):
        load_config(str(path))
    path.write_text("[model\n")
    with pytest.raises(UserError, match="not valid TOML"):
        load_config(str(path))


@pytest.mark.parametrize("name", sorted(TOY_DENSITIES))
def test_toy_densities_are_seeded_2d_and_finite(name):
    a, b = make_toy(name, 500, seed=0), make_toy(name, 500, seed=0)
    assert a.shape == (500, 2) and a.dtype == np.float32 and np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, make_toy(name, 500, seed=1))


def test_toy_splits_follow_the_moons_protocol():
    from sklearn.datasets import make_moons

    cfg = load_config("moons-tutorial").data
    splits = load_splits(cfg)
    np.testing.assert_allclose(splits.test, make_moons(10000, noise=0.05, random_state=1)[0], rtol=1e-6)
    assert len(splits.train) == 10000 and len(splits.val) == 0


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".csv"])
def test_read_vectors_formats(tmp_path, suffix):
    data = np.random.RandomState(0).randn(20, 3).astype(np.float32)
    path = tmp_path / f"d{suffix}"
    if suffix == ".npy":
        np.save(path, data)
    elif suffix == ".npz":
        np.savez(path, x=data)
    else:
        np.savetxt(path, data, delimiter=",", header="a,b,c", comments="")
    np.testing.assert_allclose(read_vectors(path), data, rtol=1e-6)


def test_read_vectors_rejects_bad_files(tmp_path):
    with pytest.raises(UserError, match="not found"):
        read_vectors(tmp_path / "missing.npy")
    bad = np.ones((5, 2))
    bad[3, 1] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(UserError, match="missing cells, first at row 3, column 'x1'"):
        read_vectors(tmp_path / "nan.npy")
    np.save(tmp_path / "ok.npy", np.ones((5, 2)))
    with pytest.raises(UserError, match="trained on 3 columns, the file has 2"):
        read_vectors(tmp_path / "ok.npy", expected_dim=3)
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    with pytest.raises(UserError, match="cannot read"):
        read_vectors(tmp_path / "junk.npy")
    np.savez(tmp_path / "two.npz", a=np.ones(3), b=np.ones(3))
    with pytest.raises(UserError, match="one array or one named 'x'"):
        read_vectors(tmp_path / "two.npz")
