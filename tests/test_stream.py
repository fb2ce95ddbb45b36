"""``--data npy-stream``: a memory-mapped .npy streamed through DataLoader workers trains exactly as
the same data in memory; bad files are one line naming them (issue 30)."""

import numpy as np
import pytest
import torch

from vaekit import Config, RunOptions, build_model, fit
from vaekit.cli import main
from vaekit.data.stream import NpyStream


@pytest.fixture()
def images(tmp_path):
    x = (np.random.default_rng(0).random((300, 8, 8)) * 255).astype(np.uint8)
    np.save(tmp_path / "x.npy", x)
    return tmp_path / "x.npy", x


@pytest.mark.parametrize("workers", [0, 2])
# on a machine (or CPU affinity) with one core torch warns that 2 workers exceed its suggestion: not this test's subject
@pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")
def test_a_streamed_npy_trains_as_the_same_data_in_memory(images, workers):
    path, x = images
    config = Config.from_flat(
        data="npy-stream", hidden=[16], latent_dim=2, epochs=2, batch_size=32, kl_diagnostic_points=0
    )
    stream = NpyStream(path, "all")
    assert stream.data_shape == (1, 8, 8) and stream.unit_interval and len(stream) == 300
    assert isinstance(stream.array, np.memmap)  # nothing read into memory up front
    memory = torch.from_numpy(x.astype(np.float32))[:, None] * (1 / 255)
    torch.testing.assert_close(torch.stack(stream.__getitems__([5, 1, 299])), memory[[5, 1, 299]], rtol=0, atol=0)
    runs = []
    for data, options in ((memory, RunOptions(device="cpu")), (stream, RunOptions(device="cpu", num_workers=workers))):
        model = build_model(config.model, (1, 8, 8), unit_interval=True, seed=0)
        history = fit(model, data, config, options=options)
        runs.append((history, model.state_dict()))
    assert [h["train_loss"] for h in runs[0][0]] == [h["train_loss"] for h in runs[1][0]]
    for key, value in runs[0][1].items():
        torch.testing.assert_close(runs[1][1][key], value, rtol=0, atol=0)


def test_vaekit_train_streams_an_npy_file(images, tmp_path, capsys):
    path, _ = images
    code = main(
        [
            "train",
            "--data",
            "npy-stream",
            "--path",
            str(path),
            "--epochs",
            "1",
            "--hidden",
            "16",
            "--latent-dim",
            "2",
            "--eval-num-samples",
            "5",
            "--no-progress",
            "--num-workers",
            "1",
            "--runs-dir",
            str(tmp_path / "runs"),
            "--name",
            "s",
            "--kl-diagnostic-points",
            "0",
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert (tmp_path / "runs" / "s" / "model.safetensors").is_file()


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros((5, 4, 8, 8)), "shape (5, 4, 8, 8); expected (N, D) rows, (N, H, W) grey images or (N, C, H, W)"),
        (np.zeros((1, 8)), "has 1 row(s); the 80/20 train/test split needs at least 2"),
        (np.array([[0.0, np.nan], [1.0, 2.0]]), "row 0 holds NaN or Inf values"),
        (np.zeros((5, 0)), "shape (5, 0)"),
    ],
)
def test_bad_npy_stream_files_are_one_line(tmp_path, capsys, array, message):
    path = tmp_path / "bad.npy"
    np.save(path, array)
    code = main(
        [
            "train",
            "--data",
            "npy-stream",
            "--path",
            str(path),
            "--epochs",
            "1",
            "--runs-dir",
            str(tmp_path / "runs"),
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and message in err[0] and str(path) in err[0], err
