"""Run options on the CPU: mixed precision, channels-last, torch.compile, devices, and the
DataLoader path for images read from disk with worker processes."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from vaekit import Config, build_model, fit, runtime
from vaekit.cli import main
from vaekit.data.folder import ImageFolder
from vaekit.data.splits import load_dataset
from vaekit.options import RunOptions
from vaekit.training import Checkpoint
from vaekit.training.batches import data_loader

TINY = Config.from_flat(epochs=1, batch_size=64, hidden=(16,), latent_dim=2)


@pytest.fixture(scope="module")
def digits():
    return load_dataset(TINY, "train")


def _train(digits, config=TINY, **options):
    model = build_model(config.model, digits.data_shape, seed=config.train.seed)
    history = fit(model, digits.x, config, options=RunOptions(device="cpu", **options))
    return model, history


def test_run_options_validate():
    with pytest.raises(ValueError, match="precision must be one of"):
        RunOptions(precision="8")
    with pytest.raises(ValueError, match="num_workers"):
        RunOptions(num_workers=-1)
    with pytest.raises(ValueError, match="device must be"):
        RunOptions(device="tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_a_gpu_is_a_clear_error(capsys, tmp_path):
    assert runtime.resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ValueError, match="no CUDA device"):
        runtime.resolve_device("cuda")
    assert main(["train", "--device", "cuda", "--epochs", "1", "--runs-dir", str(tmp_path)]) == 1
    assert "no CUDA device" in capsys.readouterr().err


@pytest.mark.parametrize("precision", ["bf16", "16-mixed"])
def test_mixed_precision_runs_the_nets_low_and_the_loss_in_float32(digits, precision):
    dtypes = []
    model = build_model(TINY.model, digits.data_shape, seed=TINY.train.seed)
    model.decoder.net[0].register_forward_hook(lambda m, i, out: dtypes.append(out.dtype))
    history = fit(model, digits.x, TINY, options=RunOptions(device="cpu", precision=precision))
    assert set(dtypes) == {runtime.PRECISIONS[precision][0]}  # the network ran in low precision
    reference = _train(digits)[1]
    assert np.isfinite(history[-1]["train_loss"])
    assert history[-1]["train_loss"] == pytest.approx(reference[-1]["train_loss"], rel=0.02)
    # the float32 hooks are gone after fit: outside autocast the decoder is plain float32 again
    assert model.decoder(torch.zeros(1, 2)).dtype == torch.float32
    assert not model.decoder._forward_hooks and not model.encoder._forward_hooks


def test_grad_scaler_state_is_checkpointed_and_resumed(digits, tmp_path):
    config = TINY.replace(epochs=2)
    options = RunOptions(device="cpu", precision="16-mixed")
    straight = build_model(config.model, digits.data_shape, seed=config.train.seed)
    fit(straight, digits.x, config, options=options)
    ckpt = tmp_path / "last.safetensors"
    fit(
        build_model(config.model, digits.data_shape, seed=config.train.seed),
        digits.x,
        config.replace(epochs=1),
        hooks=[Checkpoint(ckpt)],
        options=options,
    )
    resumed = build_model(config.model, digits.data_shape, seed=config.train.seed)
    fit(resumed, digits.x, config, hooks=[Checkpoint(ckpt)], resume_from=ckpt, options=options)
    from vaekit.io import read_safetensors

    state = json.loads(read_safetensors(ckpt)[1]["state"])
    assert state["scaler"]["scale"] > 0
    for key, value in straight.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[key], value, rtol=0, atol=0)


def test_channels_last_conv_net_trains_like_the_default_layout(digits):
    config = TINY.replace(net="conv", channels=(8,))
    model, history = _train(digits, config, channels_last=True)
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    reference = _train(digits, config)[1]
    assert history[-1]["train_loss"] == pytest.approx(reference[-1]["train_loss"], rel=1e-4)


def test_channels_last_is_the_default_for_a_conv_net_on_the_cpu_and_can_be_turned_off():
    config = TINY.replace(net="conv", channels=(8, 16))
    x = torch.rand(128, 1, 16, 16, generator=torch.Generator().manual_seed(0))  # two conv layers

    def train(**options):
        model = build_model(config.model, x.shape[1:], seed=0)
        return model, fit(model, x, config, options=RunOptions(device="cpu", **options))

    def layout(model):  # a conv weight with several input channels (with one, both layouts agree)
        conv = next(c for c in model.modules() if isinstance(c, torch.nn.Conv2d) and c.in_channels > 1)
        return conv.weight.is_contiguous(memory_format=torch.channels_last)

    assert layout(train()[0])  # unset: on for a conv net on the CPU
    off, history = train(channels_last=False)
    assert not layout(off)
    assert history[-1]["train_loss"] == pytest.approx(train(channels_last=True)[1][-1]["train_loss"], rel=1e-4)
    with pytest.raises(ValueError, match="channels_last"):
        RunOptions(channels_last="yes")


@pytest.mark.parametrize("fused", [True, False])
def test_a_channels_last_run_resumes_bit_identically(tmp_path, fused):
    """The checkpoint holds contiguous tensors; on resume Adam's moments get their weight's
    channels-last layout back (the fused kernel rounds differently across layouts: at 28×28 with
    two conv layers the resumed run drifted from the third epoch), and the run ends where the
    uninterrupted one does, bit for bit."""
    config = TINY.replace(net="conv", channels=(8, 16), hidden=(32,), latent_dim=4, epochs=3, fused_optimizer=fused)
    x = torch.rand(256, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    options = RunOptions(device="cpu", channels_last=True)
    build = lambda: build_model(config.model, x.shape[1:], seed=config.train.seed)  # noqa: E731
    straight = build()
    history = fit(straight, x, config, options=options)
    ckpt = tmp_path / "last.safetensors"
    fit(build(), x, config.replace(epochs=1), hooks=[Checkpoint(ckpt)], options=options)
    resumed = build()
    again = fit(resumed, x, config, hooks=[Checkpoint(ckpt)], resume_from=ckpt, options=options)
    assert [h["train_loss"] for h in again] == [h["train_loss"] for h in history]
    for key, value in straight.state_dict().items():
        assert torch.equal(resumed.state_dict()[key], value), key


def test_compile_wraps_the_training_step(digits, monkeypatch):
    """torch.compile of the step (Dynamo traces it; the eager backend keeps the test fast on CPU)."""
    calls = []
    real = torch.compile

    def compile_eager(module, **kwargs):
        calls.append(type(module).__name__)
        return real(module, backend="eager")

    monkeypatch.setattr(torch, "compile", compile_eager)
    _, history = _train(digits, compile=True)
    assert calls == ["TrainingStep"]
    reference = _train(digits)[1]
    assert history[-1]["train_loss"] == pytest.approx(reference[-1]["train_loss"], rel=1e-5)


def _write_images(folder, n=15, size=(20, 24)):
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:03d}.{'png' if i % 2 else 'jpg'}")
    (folder / "notes.txt").write_text("not an image")


def test_image_folder_reads_crops_and_splits(tmp_path):
    _write_images(tmp_path / "faces")
    train = ImageFolder(tmp_path / "faces", "train", image_size=8)
    test = ImageFolder(tmp_path / "faces", "test", image_size=8)
    assert len(train) + len(test) == 15 and not set(train.files) & set(test.files)
    x = train[0]
    assert x.shape == (3, 8, 8) == train.data_shape and x.dtype == torch.float32
    assert 0 <= x.min() and x.max() <= 1
    grey = ImageFolder(tmp_path / "faces", "all", image_size=4, channels=1, crop=10)
    assert grey[0].shape == (1, 4, 4)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no image files"):
        ImageFolder(tmp_path / "empty", "all")
    with pytest.raises(ValueError, match="channels must be 1 or 3"):
        ImageFolder(tmp_path / "faces", channels=2)


def test_fit_streams_an_image_folder_with_workers(tmp_path):
    """A Dataset read from disk: batched by fit through a DataLoader with a worker process."""
    _write_images(tmp_path / "faces", n=20)
    images = ImageFolder(tmp_path / "faces", "all", image_size=8)
    config = Config.from_flat(
        epochs=2,
        batch_size=6,
        hidden=(16,),
        latent_dim=2,
        net="conv",
        channels=(4,),
        likelihood="gaussian",
        likelihood_scale=0.1,
    )
    model = build_model(config.model, images.data_shape, seed=config.train.seed)
    history = fit(model, images, config, options=RunOptions(device="cpu", num_workers=1))
    assert len(history) == 2 and history[-1]["step"] == 2 * 4 and np.isfinite(history[-1]["train_loss"])
    # the same batches as the in-memory tensor of the same images
    in_memory = torch.stack([images[i] for i in range(len(images))])
    reference = build_model(config.model, images.data_shape, seed=config.train.seed)
    expected = fit(reference, in_memory, config)
    assert history[-1]["train_loss"] == pytest.approx(expected[-1]["train_loss"], rel=1e-5)
    loader = data_loader(images, 6, torch.Generator(), RunOptions(num_workers=1), torch.device("cpu"))
    assert loader.num_workers == 1 and not loader.pin_memory  # pinned memory only for CUDA


def test_cli_trains_and_evaluates_an_image_folder(tmp_path, capsys):
    """``vaekit train --data image-folder --path DIR --num-workers 1`` streams the training images."""
    _write_images(tmp_path / "faces", n=30)
    args = [
        "train",
        "--data",
        "image-folder",
        "--path",
        str(tmp_path / "faces"),
        "--image-size",
        "8",
        "--net",
        "conv",
        "--channels",
        "4",
        "--hidden",
        "16",
        "--latent-dim",
        "2",
        "--epochs",
        "2",
        "--eval-num-samples",
        "5",
        "--num-workers",
        "1",
        "--batch-size",
        "8",
        "--runs-dir",
        str(tmp_path / "runs"),
        "--name",
        "f",
        "--no-progress",
    ]
    assert main(args) == 0, capsys.readouterr().err
    run = tmp_path / "runs" / "f"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["num_test_examples"] == 6 and summary["run_options"]["num_workers"] == 1
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert history[-1]["step"] == 2 * 3  # 24 train images, 2 held out for validation: 22 = 8 + 8 + 6
    assert main(["evaluate", str(run), "--num-samples", "5"]) == 0
    assert main(args[:-3] + ["--name", "g", "--binarize", "static"]) == 1
    assert "needs the data in memory" in capsys.readouterr().err
