"""Data-parallel training: sharding, two gloo processes on the digits, rank-0 writes, resume.

The two-process tests start real process groups (gloo on the CPU) with torch.multiprocessing;
each worker runs several scenarios in one group to keep start-up costs low.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from vaekit import Config, build_model, fit, run
from vaekit.data.splits import load_dataset, prepare, split_validation
from vaekit.options import RunOptions
from vaekit.reporting.outputs import write_outputs
from vaekit.runtime import distributed
from vaekit.training import Checkpoint

SRC = str(Path(__file__).resolve().parents[1] / "src")
WORLD = 2
TINY = dict(hidden=(16,), latent_dim=2, lr=3e-3, seed=3)


# --- sharding, one process ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "n,batch_size,world", [(10, 3, 1), (1293, 64, 2), (13, 2, 3), (9, 4, 2), (129, 64, 2), (5, 100, 4)]
)
def test_shards_are_disjoint_and_cover_the_epoch(n, batch_size, world):
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    parts = [list(distributed.shard(order, batch_size, r, world)) for r in range(world)]
    steps = {len(p) for p in parts}
    assert len(steps) == 1  # every rank takes the same number of steps
    seen = torch.cat([index for p in parts for index, _ in p])
    assert sorted(seen.tolist()) == list(range(n))  # disjoint and covering
    for step in range(steps.pop()):
        sizes = [len(parts[r][step][0]) for r in range(world)]
        assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1
        assert {parts[r][step][1] for r in range(world)} == {sum(sizes)}  # the global batch size
        # the parts of one global batch are consecutive slices of the permutation
        assert torch.equal(
            torch.cat([parts[r][step][0] for r in range(world)]),
            order[sum(s[1] for s in parts[0][:step]) :][: sum(sizes)],
        )


def test_one_process_shard_is_plain_batching():
    order = torch.randperm(100)
    batches = [index for index, _ in distributed.shard(order, 32, 0, 1)]
    assert [b.tolist() for b in batches] == [order[s : s + 32].tolist() for s in range(0, 100, 32)]


def test_shard_errors():
    with pytest.raises(ValueError, match="cannot be shared by 4 processes"):
        list(distributed.shard(torch.arange(3), 2, 0, 4))
    with pytest.raises(ValueError, match="rank must be in"):
        list(distributed.shard(torch.arange(10), 2, 2, 2))


def test_single_process_helpers_are_no_ops():
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
    t = torch.arange(3.0)
    assert distributed.all_reduce_sum(t) is t and distributed.all_gather(t)[0] is t
    assert distributed.broadcast_text("hello") == "hello"
    assert distributed.on_main(lambda: 7) == 7


def test_batch_sampler_matches_the_tensor_path():
    """A Dataset goes through a DataLoader with ShardBatchSampler: same batches as a tensor."""
    x = torch.rand(23, 3)
    tensor_gen, loader_gen = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    from vaekit.training.batches import _batches, data_loader

    loader = data_loader(torch.utils.data.TensorDataset(x), 5, loader_gen, RunOptions(), torch.device("cpu"))
    for _ in range(2):  # two epochs: the generator advances identically
        a = [(b, n) for b, _, n in _batches(x, 5, tensor_gen)]
        b = [(b, n) for b, _, n in _batches(loader, 5, loader_gen)]
        assert len(a) == len(b) == 5
        for (xa, na), (xb, nb) in zip(a, b):
            assert torch.equal(xa, xb) and na == nb


# --- two gloo processes ------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _digits(config):
    ds = load_dataset(config, "train")
    train, val = split_validation(prepare(ds.x, config, training=True), config)
    return ds, train, prepare(val, config)


def _save(model, path):
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))


def _worker(rank: int, port: int, out: str):
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank)
    )
    torch.set_num_threads(1)
    from vaekit import io
    from vaekit.runtime import files

    out = Path(out)
    cpu = RunOptions(device="cpu")  # gloo on the CPU, also on a machine with a GPU (a forked child cannot use CUDA)
    with distributed.process_group("cpu"):
        assert distributed.world_size() == WORLD
        # 0. the helpers: a string from rank 0, and a failure on rank 0 stops every rank
        assert distributed.broadcast_text("runs/é-1" if rank == 0 else None) == "runs/é-1"
        failures = []
        try:
            distributed.on_main(lambda: 1 / 0)
        except Exception as e:  # rank 0 re-raises its own error, the others a RuntimeError
            failures.append(type(e).__name__)
        (out / f"on_main{rank}.json").write_text(json.dumps(failures))
        # 1. a run folder: record which rank writes files and which examples each rank sees
        written, seen = [], []
        real_write, real_shard = io.atomic_write, distributed.shard

        def recording_write(path, data):
            written.append(str(path))
            real_write(path, data)

        def recording_shard(order, batch_size, r, w):
            for index, size in real_shard(order, batch_size, r, w):
                seen.append(index.detach().clone())
                yield index, size

        # every file write goes through runtime.files.atomic_write (io re-exports it as io.atomic_write)
        io.atomic_write = files.atomic_write = recording_write
        distributed.shard = recording_shard
        config = Config.from_flat(epochs=2, batch_size=32, eval_num_samples=20, **TINY)
        summary = run.train(config, out / "run", progress=False, options=cpu, outputs=[write_outputs])
        io.atomic_write = files.atomic_write = real_write
        distributed.shard = real_shard
        (out / f"writes{rank}.json").write_text(json.dumps(written))
        (out / f"summary{rank}.json").write_text(json.dumps(summary))
        steps_per_epoch = len(seen) // 2
        save_file({"epoch1": torch.cat(seen[:steps_per_epoch])}, str(out / f"shard{rank}.safetensors"))

        # 2. a deterministic AE on grey values: DDP with batch B per rank == one process with B * WORLD
        ae = Config.from_flat(model="ae", binarize="none", epochs=2, batch_size=32, **TINY)
        ds, x, val = _digits(ae)
        model = build_model(ae.model, ds.data_shape, seed=ae.train.seed)
        history = fit(model, x, ae, val=val, options=cpu)
        if rank == 0:
            _save(model, out / "ae_ddp.safetensors")
            (out / "ae_history.json").write_text(json.dumps(history))

        # 3. resume under DDP: 1 epoch + resume to 2 == 2 epochs straight (VAE, dynamic binarization)
        vae = Config.from_flat(epochs=2, batch_size=32, **TINY)
        ds, x, val = _digits(vae)
        straight = build_model(vae.model, ds.data_shape, seed=vae.train.seed)
        fit(straight, x, vae, val=val, options=cpu)
        ckpt = out / "ckpt.safetensors"
        first = build_model(vae.model, ds.data_shape, seed=vae.train.seed)
        fit(first, x, vae.replace(epochs=1), val=val, hooks=[Checkpoint(ckpt)], options=cpu)
        resumed = build_model(vae.model, ds.data_shape, seed=vae.train.seed)
        fit(resumed, x, vae, val=val, hooks=[Checkpoint(ckpt)], resume_from=ckpt, options=cpu)
        for name, m in (("straight", straight), ("resumed", resumed)):
            _save(m, out / f"{name}{rank}.safetensors")

        # 4. a conditional model: the labels are sharded with their examples
        cvae = Config.from_flat(model="cvae", epochs=1, batch_size=32, **TINY)
        ds, x, val = _digits(cvae)
        y_train, y_val = split_validation(ds.labels["digit"], cvae)
        model = build_model(cvae.model, ds.data_shape, num_classes=10, seed=cvae.train.seed)
        fit(model, x, cvae, val=val, labels=y_train, val_labels=y_val, options=cpu)
        _save(model, out / f"cvae{rank}.safetensors")

        # 5. a conv net, channels-last by default on the CPU: DDP == one process with the global batch
        conv = Config.from_flat(
            model="ae", net="conv", channels=(4, 8), binarize="none", epochs=2, batch_size=32, **TINY
        )
        ds, x, val = _digits(conv)
        model = build_model(conv.model, ds.data_shape, seed=conv.train.seed)
        fit(model, x, conv, val=val, options=cpu)
        weight = next(p for p in model.parameters() if p.dim() == 4)
        (out / f"conv_layout{rank}.json").write_text(
            json.dumps(weight.is_contiguous(memory_format=torch.channels_last))
        )
        _save(model, out / f"conv{rank}.safetensors")


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    mp.start_processes(_worker, args=(_free_port(), str(out)), nprocs=WORLD, join=True, start_method="fork")
    return out


def test_two_processes_train_and_only_rank0_writes(two_process_run):
    out = two_process_run
    summary = json.loads((out / "summary0.json").read_text())
    assert summary["world_size"] == WORLD and summary["epochs_trained"] == 2
    assert json.loads((out / "summary1.json").read_text()) == {}
    assert json.loads((out / "writes1.json").read_text()) == []
    written = {Path(p).name for p in json.loads((out / "writes0.json").read_text())}
    assert {"config.json", "metrics.jsonl", "last.safetensors", "summary.json"} <= written
    history = [json.loads(line) for line in (out / "run" / "metrics.jsonl").read_text().splitlines()]
    n_train = len(_digits(Config.from_flat(**TINY))[1])
    assert history[-1]["step"] == 2 * -(-n_train // (32 * WORLD))  # global batches of 64


def test_rank0_failure_stops_every_rank(two_process_run):
    assert json.loads((two_process_run / "on_main0.json").read_text()) == ["ZeroDivisionError"]
    assert json.loads((two_process_run / "on_main1.json").read_text()) == ["RuntimeError"]


def test_conditional_model_trains_under_ddp(two_process_run):
    ranks = [load_file(str(two_process_run / f"cvae{r}.safetensors")) for r in range(WORLD)]
    for key in ranks[0]:
        torch.testing.assert_close(ranks[0][key], ranks[1][key], rtol=0, atol=0)


def test_two_process_shards_are_disjoint_and_cover_the_epoch(two_process_run):
    parts = [load_file(str(two_process_run / f"shard{r}.safetensors"))["epoch1"] for r in range(WORLD)]
    n_train = len(_digits(Config.from_flat(**TINY))[1])
    assert abs(len(parts[0]) - len(parts[1])) <= 1
    assert sorted(torch.cat(parts).tolist()) == list(range(n_train))


def test_two_processes_equal_one_process_with_the_global_batch(two_process_run):
    ae = Config.from_flat(model="ae", binarize="none", epochs=2, batch_size=32 * WORLD, **TINY)
    ds, x, val = _digits(ae)
    model = build_model(ae.model, ds.data_shape, seed=ae.train.seed)
    history = fit(model, x, ae, val=val, options=RunOptions(device="cpu"))
    ddp = load_file(str(two_process_run / "ae_ddp.safetensors"))
    for key, value in model.state_dict().items():
        torch.testing.assert_close(ddp[key], value, rtol=1e-4, atol=1e-5)
    ddp_history = json.loads((two_process_run / "ae_history.json").read_text())
    for a, b in zip(history, ddp_history):
        assert a["step"] == b["step"]
        for key in ("train_loss", "val_loss", "val_reconstruction"):
            assert a[key] == pytest.approx(b[key], rel=1e-4)


def test_a_channels_last_conv_net_under_ddp_equals_one_process(two_process_run):
    """DDP with the CPU's channels-last default for conv nets: the replicas stay identical, the
    weights are channels-last, and two processes of batch B equal one of 2B."""
    ranks = [load_file(str(two_process_run / f"conv{r}.safetensors")) for r in range(WORLD)]
    for key in ranks[0]:
        torch.testing.assert_close(ranks[0][key], ranks[1][key], rtol=0, atol=0)
    assert all(json.loads((two_process_run / f"conv_layout{r}.json").read_text()) for r in range(WORLD))
    conv = Config.from_flat(
        model="ae", net="conv", channels=(4, 8), binarize="none", epochs=2, batch_size=32 * WORLD, **TINY
    )
    ds, x, val = _digits(conv)
    model = build_model(conv.model, ds.data_shape, seed=conv.train.seed)
    fit(model, x, conv, val=val, options=RunOptions(device="cpu"))
    for key, value in model.state_dict().items():
        torch.testing.assert_close(ranks[0][key], value, rtol=1e-4, atol=1e-5)


def test_resume_under_ddp_equals_an_uninterrupted_run(two_process_run):
    for rank in range(WORLD):
        straight = load_file(str(two_process_run / f"straight{rank}.safetensors"))
        resumed = load_file(str(two_process_run / f"resumed{rank}.safetensors"))
        for key in straight:
            torch.testing.assert_close(resumed[key], straight[key], rtol=0, atol=0)
    ranks = [load_file(str(two_process_run / f"straight{r}.safetensors")) for r in range(WORLD)]
    for key in ranks[0]:  # DDP keeps the replicas identical
        torch.testing.assert_close(ranks[0][key], ranks[1][key], rtol=0, atol=0)


@pytest.mark.slow
def test_torchrun_cli(tmp_path):
    """``python -m torch.distributed.run --nproc_per_node 2 -m vaekit train`` end to end, then --resume."""
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    launch = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--standalone",
        "-m",
        "vaekit",
        "train",
    ]
    args = [
        "--epochs",
        "1",
        "--hidden",
        "16",
        "--latent-dim",
        "2",
        "--eval-num-samples",
        "10",
        "--no-progress",
        "--device",
        "cpu",
        "--runs-dir",
        str(tmp_path),
        "--name",
        "ddp",
    ]
    done = subprocess.run(launch + args, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("run folder:") == 1  # rank 0 alone prints
    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["epochs_trained"] == 1
    resumed = subprocess.run(
        launch + ["--resume", str(tmp_path / "ddp"), "--no-progress", "--device", "cpu"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
