"""dSprites: the procedural generator reproduces the factor grid deterministically, and the loader
of the official file maps latents_classes rows to grid cells (tested on a small file it writes)."""

import numpy as np
import pytest
import torch

from vaekit import data
from vaekit.data import dsprites
from vaekit.data.factors import grid_classes


def test_factor_grid_constants():
    assert [len(v) for v in dsprites.FACTOR_VALUES] == [3, 6, 40, 32, 32]
    assert np.allclose(dsprites.FACTOR_VALUES[1], np.linspace(0.5, 1, 6))
    assert dsprites.FACTOR_VALUES[2][-1] == pytest.approx(2 * np.pi)
    classes = grid_classes((1, 3, 6, 40, 32, 32))
    assert np.array_equal(classes[[0, 1, 12345, 737279]] @ dsprites.STRIDES, [0, 1, 12345, 737279])


def test_synthetic_grid_and_determinism():
    train = data.load("dsprites-synthetic", "train", image_size=16, grid_step=8)
    test = data.load("dsprites-synthetic", "test", image_size=16, grid_step=8)
    assert train.factor_sizes == (3, 6, 5, 4, 4) and train.factor_names == dsprites.FACTOR_NAMES
    assert train.x.shape[1:] == (1, 16, 16) and len(train) + len(test) == 3 * 6 * 5 * 4 * 4
    labels = torch.cat([torch.stack([s.labels[k] for k in train.factor_names], 1) for s in (train, test)])
    assert len(np.unique(labels.numpy(), axis=0)) == len(labels)  # every grid cell exactly once
    assert train.factor_values[2] == pytest.approx(tuple(dsprites.FACTOR_VALUES[2][::8]))
    factors = torch.stack([train.labels[k] for k in train.factor_names], 1).numpy()
    assert torch.equal(train.observations_from_factors(factors[:50]), train.x[:50])
    again = data.load("dsprites-synthetic", "train", image_size=16, grid_step=8)
    assert torch.equal(again.x, train.x) and set(np.unique(train.x.numpy())) == {0.0, 1.0}
    draws = train.sample_factors(1000, np.random.default_rng(0))
    assert draws.shape == (1000, 5) and (draws.max(0) == np.array(train.factor_sizes) - 1).all()


def test_render_follows_the_factors():
    base = np.array([0, 0.75, 0.0, 0.5, 0.5])
    rows = np.array(
        [
            base,
            [0, 1.0, 0, 0.5, 0.5],
            [0, 0.75, 0, 0.9, 0.5],
            [0, 0.75, 0, 0.5, 0.9],
            [1, 0.75, 0, 0.5, 0.5],
            [2, 0.75, 0, 0.5, 0.5],
            [0, 0.75, np.pi / 4, 0.5, 0.5],
        ]
    )
    images = dsprites.render(rows, 64).astype(float)
    ys, xs = np.mgrid[:64, :64]
    area = images.sum((1, 2))
    cx, cy = (images * xs).sum((1, 2)) / area, (images * ys).sum((1, 2)) / area
    assert area[1] > area[0]  # scale grows the sprite
    assert cx[2] > cx[0] + 10 and abs(cy[2] - cy[0]) < 1  # pos_x moves it right only
    assert cy[3] > cy[0] + 10 and abs(cx[3] - cx[0]) < 1  # pos_y moves it down only
    assert not np.array_equal(images[0], images[4]) and not np.array_equal(images[4], images[5])
    assert not np.array_equal(images[0], images[6])  # rotation changes a square
    assert np.array_equal(dsprites.render(rows, 64), dsprites.render(rows, 64))
    with pytest.raises(ValueError, match="image_size"):
        data.load("dsprites-synthetic", image_size=24)


def write_official(folder, step=8, seed=0):
    """A small file in the official format holding the cells of the grid with ``step`` (rows shuffled)."""
    kept = dsprites.grid(step)
    cells = grid_classes([len(k) for k in kept])
    classes = np.stack([kept[j][cells[:, j]] for j in range(5)], 1)
    values = np.stack([dsprites.FACTOR_VALUES[j][classes[:, j]] for j in range(5)], 1)
    images = dsprites.render(values, 64)
    order = np.random.default_rng(seed).permutation(len(images))
    latents = np.concatenate([np.zeros((len(images), 1), dtype=np.int64), classes], 1)
    np.savez_compressed(folder / dsprites.FILENAME, imgs=images[order], latents_classes=latents[order])
    return images


def test_official_file_loader(tmp_path):
    write_official(tmp_path)
    real = data.load("dsprites", "train", data_dir=str(tmp_path), grid_step=8)
    synthetic = data.load("dsprites-synthetic", "train", grid_step=8)
    assert real.factor_sizes == (3, 6, 5, 4, 4) and real.name == "dsprites"
    assert torch.equal(real.x, synthetic.x)  # rows of the file land on the right cells
    for key in real.labels:
        assert torch.equal(real.labels[key], synthetic.labels[key])
    small = data.load("dsprites", "test", data_dir=str(tmp_path), grid_step=8, image_size=32)
    assert small.x.shape[1:] == (1, 32, 32)
    with pytest.raises(ValueError, match="lacks"):
        data.load("dsprites", data_dir=str(tmp_path), grid_step=1)


def test_official_file_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"):
        data.load("dsprites", data_dir=str(tmp_path))
