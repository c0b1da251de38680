"""Image datasets read from small files the tests write in each dataset's own format, and every kind
of bad input ending in a one-line UserError."""

import gzip
import pickle
import struct

import numpy as np
import pytest
from PIL import Image

from realnvp.config import DataConfig
from realnvp.data import load_splits
from realnvp.data.images import load_images, read_idx
from realnvp.errors import UserError


def cfg(**kw):
    return DataConfig(**kw)


def write_idx(path, array, gz=True):
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") if gz else path.open("wb") as f:
        f.write(data)


def fake_mnist(root, sub="MNIST", n_train=30, n_test=10):
    rng = np.random.RandomState(0)
    train = rng.randint(0, 256, (n_train, 28, 28))
    test = rng.randint(0, 256, (n_test, 28, 28))
    write_idx(root / sub / "raw" / "train-images-idx3-ubyte.gz", train)
    write_idx(root / sub / "raw" / "t10k-images-idx3-ubyte.gz", test)
    return train, test


def test_digits_is_offline_and_matches_the_benchmark_split():
    from sklearn.datasets import load_digits

    images = load_images(cfg(name="digits"))
    x = load_digits().data
    p = np.random.RandomState(0).permutation(len(x))
    assert images.n_levels == 17 and images.train.shape == (1437, 1, 8, 8) and images.test.shape == (360, 1, 8, 8)
    np.testing.assert_array_equal(images.test.reshape(360, 64), x[p[1437:]])
    splits = load_splits(cfg(name="digits", val_fraction=0.1))
    assert len(splits.train) + len(splits.val) == 1437 and len(splits.val) == 144 and splits.n_levels == 17


@pytest.mark.parametrize(("name", "sub"), [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_mnist_idx_files(tmp_path, name, sub):
    train, test = fake_mnist(tmp_path, sub)
    images = load_images(cfg(name=name, path=str(tmp_path)))
    assert images.n_levels == 256 and images.train.dtype == np.uint8
    np.testing.assert_array_equal(images.train[:, 0], train)
    np.testing.assert_array_equal(images.test[:, 0], test)


def test_plain_idx_file(tmp_path):
    array = np.arange(24).reshape(2, 3, 4)
    write_idx(tmp_path / "a-idx3-ubyte", array, gz=False)
    np.testing.assert_array_equal(read_idx(tmp_path / "a-idx3-ubyte"), array)


def test_corrupt_idx_files(tmp_path):
    fake_mnist(tmp_path)
    path = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte.gz"
    data = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(data[:-100]))
    with pytest.raises(UserError, match="truncated"):
        load_images(cfg(name="mnist", path=str(tmp_path)))
    path.write_bytes(b"not gzip at all")
    with pytest.raises(UserError, match="cannot read"):
        load_images(cfg(name="mnist", path=str(tmp_path)))
    path.write_bytes(gzip.compress(b"\x00\x00\x0d\x03" + data[4:]))
    with pytest.raises(UserError, match="magic"):
        load_images(cfg(name="mnist", path=str(tmp_path)))


def test_missing_dataset_says_how_to_get_it(tmp_path):
    with pytest.raises(UserError, match="data.download=true") as err:
        load_images(cfg(name="mnist", path=str(tmp_path)))
    assert "\n" not in str(err.value) and "npz" in str(err.value)
    with pytest.raises(UserError, match="cifar-10-python.tar.gz"):
        load_images(cfg(name="cifar10", path=str(tmp_path)))
    with pytest.raises(UserError, match="list_eval_partition.txt"):
        load_images(cfg(name="celeba", path=str(tmp_path)))


def test_download_uses_torchvision_layout(tmp_path, monkeypatch):
    """The download path: torchvision fetches into ROOT/MNIST/raw, then our reader takes over."""
    from torchvision import datasets

    calls = []

    def fake_download(root, train, download):
        calls.append((root, train, download))
        fake_mnist(tmp_path)

    monkeypatch.setattr(datasets, "MNIST", fake_download)
    images = load_images(cfg(name="mnist", path=str(tmp_path), download=True))
    assert calls == [(str(tmp_path), True, True)] and images.train.shape == (30, 1, 28, 28)

    def offline(*args, **kwargs):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried https://...")

    monkeypatch.setattr(datasets, "CIFAR10", offline)
    with pytest.raises(UserError, match=r"downloading cifar10 into .* failed: Error downloading") as err:
        load_images(cfg(name="cifar10", path=str(tmp_path / "c"), download=True))
    assert "\n" not in str(err.value)


def write_cifar(root, n=4):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.RandomState(0)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.randint(0, 256, (n, 3072)).astype(np.uint8)
        with (folder / name).open("wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"labels": [0] * n, b"data": data}, f, protocol=2)
        batches[name] = data
    return folder, batches


def test_cifar10_pickle_batches(tmp_path):
    folder, batches = write_cifar(tmp_path)
    images = load_images(cfg(name="cifar10", path=str(tmp_path)))
    assert images.train.shape == (20, 3, 32, 32) and images.test.shape == (4, 3, 32, 32)
    np.testing.assert_array_equal(images.test.reshape(4, -1), batches["test_batch"])
    # channel-major rows, as CIFAR stores them: the first 1024 values are the red plane
    np.testing.assert_array_equal(images.train[0, 0].ravel(), batches["data_batch_1"][0, :1024])


def test_cifar10_corrupt_and_malicious_batches(tmp_path):
    folder, _ = write_cifar(tmp_path)
    (folder / "data_batch_3").write_bytes(b"\x80\x02garbage")
    with pytest.raises(UserError, match="data_batch_3: not a CIFAR-10 python batch"):
        load_images(cfg(name="cifar10", path=str(tmp_path)))

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with (folder / "data_batch_3").open("wb") as f:
        pickle.dump({b"data": Evil()}, f)
    with pytest.raises(UserError, match="refusing to load builtins.print"):
        load_images(cfg(name="cifar10", path=str(tmp_path)))


def write_celeba(root, n_train=3, n_test=2):
    folder = root / "celeba" / "img_align_celeba"
    folder.mkdir(parents=True)
    rng = np.random.RandomState(0)
    lines = []
    for i in range(n_train + 2 + n_test):
        name = f"{i:06d}.jpg"
        Image.fromarray(rng.randint(0, 256, (218, 178, 3)).astype(np.uint8)).save(folder / name)
        part = 0 if i < n_train else (1 if i < n_train + 2 else 2)
        lines.append(f"{name} {part}")
    (root / "celeba" / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    return folder


def test_celeba_crops_resizes_and_caches(tmp_path):
    folder = write_celeba(tmp_path)
    images = load_images(cfg(name="celeba", path=str(tmp_path), image_size=16))
    assert images.train.shape == (3, 3, 16, 16) and images.test.shape == (2, 3, 16, 16)
    # the first image: crop (15, 40, 163, 188), then resize
    expected = Image.open(folder / "000000.jpg").crop((15, 40, 163, 188)).resize((16, 16), Image.Resampling.BOX)
    np.testing.assert_array_equal(images.train[0], np.asarray(expected).transpose(2, 0, 1))
    assert (tmp_path / "celeba" / "celeba_16.npz").is_file()
    (folder / "000000.jpg").unlink()  # the cache answers now
    again = load_images(cfg(name="celeba", path=str(tmp_path), image_size=16))
    np.testing.assert_array_equal(again.train, images.train)


def test_celeba_bad_partition_line(tmp_path):
    write_celeba(tmp_path)
    (tmp_path / "celeba" / "list_eval_partition.txt").write_text("000000.jpg 7\n")
    with pytest.raises(UserError, match="list_eval_partition.txt:1"):
        load_images(cfg(name="celeba", path=str(tmp_path), image_size=16))


def test_folder_of_images(tmp_path):
    rng = np.random.RandomState(0)
    for i in range(10):
        Image.fromarray(rng.randint(0, 256, (6, 6)).astype(np.uint8)).save(tmp_path / f"{i}.png")
    (tmp_path / ".hidden").write_text("ignored")
    images = load_images(cfg(name="folder", path=str(tmp_path)))
    assert images.train.shape == (8, 1, 6, 6) and images.test.shape == (2, 1, 6, 6)
    Image.fromarray(rng.randint(0, 256, (6, 6, 3)).astype(np.uint8)).save(tmp_path / "rgb.png")
    with pytest.warns(UserWarning, match="converted to 8-bit RGB: 10 grey"):  # mixed: RGB, and says so
        assert load_images(cfg(name="folder", path=str(tmp_path))).train.shape[1] == 3


def test_folder_errors(tmp_path):
    with pytest.raises(UserError, match="is empty"):
        load_images(cfg(name="folder", path=str(tmp_path)))
    with pytest.raises(UserError, match="image folder not found"):
        load_images(cfg(name="folder", path=str(tmp_path / "nope")))
    Image.new("L", (6, 6)).save(tmp_path / "a.png")
    Image.new("L", (8, 6)).save(tmp_path / "b.png")
    with pytest.raises(UserError, match=r"b.png: image of size 8x6, but a.png is 6x6.*image_size"):
        load_images(cfg(name="folder", path=str(tmp_path)))
    assert load_images(cfg(name="folder", path=str(tmp_path), image_size=4,
                           test_fraction=0.5)).train.shape == (1, 1, 4, 4)
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(UserError, match="notes.txt: not an image file"):
        load_images(cfg(name="folder", path=str(tmp_path), image_size=4))
    (tmp_path / "notes.txt").unlink()
    (tmp_path / "c.png").write_bytes((tmp_path / "a.png").read_bytes()[:30])
    with pytest.raises(UserError, match="c.png"):
        load_images(cfg(name="folder", path=str(tmp_path), image_size=4))


def test_npz_like_mnist10k(tmp_path):
    rng = np.random.RandomState(0)
    path = tmp_path / "m.npz"
    np.savez(path, x_train=rng.randint(0, 256, (20, 28, 28)).astype(np.uint8),
             x_test=rng.randint(0, 256, (5, 28, 28)).astype(np.uint8), y_train=np.zeros(20))
    images = load_images(cfg(name="mnist", path=str(path)))
    assert images.train.shape == (20, 1, 28, 28) and images.test.shape == (5, 1, 28, 28)


@pytest.mark.parametrize(("arrays", "message"), [
    ({"x_train": np.zeros((4, 28, 28))}, "missing x_test"),
    ({"x_train": np.full((4, 28, 28), 300), "x_test": np.zeros((2, 28, 28))}, r"0\.\.255.*found 300\.\.300"),
    ({"x_train": np.full((4, 28, 28), 0.5), "x_test": np.zeros((2, 28, 28))}, "must be integers"),
    ({"x_train": np.zeros((4, 32, 32)), "x_test": np.zeros((2, 32, 32))}, r"shape \(1, 28, 28\)"),
    ({"x_train": np.zeros((4, 5, 28, 28)), "x_test": np.zeros((2, 28, 28))}, "C = 1, 3 or 4"),
])
def test_bad_npz(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(UserError, match=message):
        load_images(cfg(name="mnist", path=str(path)))


def test_digit_levels_are_checked(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x_train=np.full((4, 8, 8), 17), x_test=np.zeros((2, 8, 8)))
    with pytest.raises(UserError, match=r"0\.\.16 for this 17-level dataset"):
        load_images(cfg(name="digits", path=str(path)))


def test_corrupt_npz(tmp_path):
    path = tmp_path / "c.npz"
    path.write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(UserError, match="cannot read"):
        load_images(cfg(name="mnist", path=str(path)))
