"""Sharded evaluation: under torch.distributed the importance-sampled log-likelihood, the test
metrics of a run (``evaluate``) and the PGD accuracy are split among 2 gloo processes and
gathered, equal to one process's result."""

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from vaekit import Config, build_model
from vaekit.evaluation import evaluate, log_likelihood
from vaekit.evaluation.probe import LinearProbe
from vaekit.evaluation.robustness import adversarial_accuracy
from vaekit.runtime import distributed

WORLD = 2


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _setup():
    model = build_model(Config.from_flat(likelihood="bernoulli", latent_dim=4).model, (1, 8, 8), True, seed=0).eval()
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(70, 1, 8, 8, generator=g) > 0.5).float()  # 5 blocks of 15, each split between the ranks
    y = torch.randint(0, 3, (70,), generator=g)
    probe = LinearProbe(model).fit(x, y)
    return model, x, y, probe


def _results(model, x, y, probe) -> dict:
    torch.manual_seed(4)  # every rank in the same RNG state, as evaluate() ensures by seeding
    ll = log_likelihood(model, x, 50, batch_size=15)
    torch.manual_seed(123 + distributed.rank())  # evaluate seeds its own draws: the global state must not matter
    metrics = evaluate(model, x, num_samples=50, batch_size=15, seed=2)
    acc, adv = adversarial_accuracy(probe, x, y, 0.2, num_steps=3, batch_size=15, seed=1, return_inputs=True)
    latent = adversarial_accuracy(probe, x, y, 0.2, attack="latent", num_steps=3, batch_size=15, seed=1)
    return {
        "ll": ll,
        "evaluate_ll": torch.tensor(metrics["log_likelihood"]),
        "acc": torch.tensor(acc),
        "adv": adv,
        "latent": torch.tensor(latent),
    }


def _worker(rank: int, port: int, out: str):
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank)
    )
    torch.set_num_threads(1)
    model, x, y, probe = _setup()
    with distributed.process_group("cpu"):
        assert distributed.world_size() == WORLD
        calls = []
        hook = model.decoder.register_forward_hook(lambda m, i, o: calls.append(len(i[0])))
        result = _results(model, x, y, probe)
        hook.remove()
        result["decoded"] = torch.tensor(sum(calls))
    torch.save(result, Path(out) / f"rank{rank}.pt")


def test_sharded_evaluation_equals_one_process(tmp_path):
    mp.start_processes(_worker, args=(_port(), str(tmp_path)), nprocs=WORLD, join=True, start_method="fork")
    model, x, y, probe = _setup()
    single = _results(model, x, y, probe)
    for rank in range(WORLD):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        for key in ("ll", "evaluate_ll", "acc", "adv", "latent"):
            torch.testing.assert_close(got[key], single[key], atol=1e-6, rtol=0, msg=f"{key} on rank {rank}")
    # the work was shared: each rank decoded about half the samples of log_likelihood and of evaluate
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True)["decoded"].item() for r in range(WORLD)]
    assert all(r < 2 * 70 * 50 for r in ranks) and sum(ranks) >= 2 * 70 * 50  # split, and all done


# --- issue 30: sharding at the level of the test set (distributed.map_blocks) ----------------------

_FITTED = {}  # fitted in the parent before the workers fork, so every rank holds the same objects


def _fit_all():
    from vaekit.detectors.anomaly import AnomalyDetector
    from vaekit.detectors.ood import OODDetector

    model, x, y, probe = _setup()
    flat = x.reshape(len(x), -1).numpy()
    anomaly = AnomalyDetector(latent_dim=2, epochs=1, hidden=[16], random_state=0, fpr=0.2).fit(flat)
    ood = OODDetector(
        score_type="likelihood_ratio",
        background="pixel",
        num_samples=20,
        model_options={"epochs": 1, "hidden": [16], "latent_dim": 2},
    ).fit(x.numpy())
    _FITTED.update(model=model, x=x, flat=flat, anomaly=anomaly, ood=ood)


def _sharded_results() -> dict:
    from vaekit.evaluation.likelihood import log_likelihood

    f = _FITTED
    return {
        "ll": distributed.map_blocks(lambda xb: log_likelihood(f["model"], xb, 30), f["x"], 15, seed=3),
        "anomaly": torch.as_tensor(distributed.map_blocks(f["anomaly"].score_samples, f["flat"], 15)),
        "ood": torch.as_tensor(distributed.map_blocks(f["ood"].score_samples, f["x"].numpy(), 15, seed=5)),
    }


def _map_worker(rank: int, port: int, out: str):
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank)
    )
    torch.set_num_threads(1)
    with distributed.process_group("cpu"):
        calls = []
        hook = _FITTED["model"].decoder.register_forward_hook(lambda m, i, o: calls.append(i[0].numel()))
        result = _sharded_results()
        hook.remove()
        result["decoded"] = torch.tensor(sum(calls))
    torch.save(result, Path(out) / f"map{rank}.pt")


def test_test_set_sharding_of_likelihood_anomaly_and_ood_scores_equals_one_process(tmp_path):
    _fit_all()
    mp.start_processes(_map_worker, args=(_port(), str(tmp_path)), nprocs=WORLD, join=True, start_method="fork")
    calls = []
    hook = _FITTED["model"].decoder.register_forward_hook(lambda m, i, o: calls.append(i[0].numel()))
    single = _sharded_results()
    hook.remove()
    assert single["ll"].shape == (70,) and single["anomaly"].shape == (70,) and single["ood"].shape == (70,)
    for rank in range(WORLD):
        got = torch.load(tmp_path / f"map{rank}.pt", weights_only=True)
        for key in ("ll", "anomaly", "ood"):
            torch.testing.assert_close(got[key], single[key], atol=0, rtol=0, msg=f"{key} on rank {rank}")
    # the log-likelihood's decoding was split: each rank did about half of the one process's
    ranks = [torch.load(tmp_path / f"map{r}.pt", weights_only=True)["decoded"].item() for r in range(WORLD)]
    assert all(0 < r < 0.75 * sum(calls) for r in ranks)


def test_map_blocks_in_one_process_is_blockwise():
    x = torch.arange(10.0)[:, None]
    out = distributed.map_blocks(lambda xb: xb.sum(1) * 2, x, 3)
    assert torch.equal(out, torch.arange(10.0, dtype=torch.float64) * 2)
    with pytest.raises(ValueError, match="block_size"):
        distributed.map_blocks(lambda xb: xb, x, 0)


@pytest.mark.slow
def test_score_and_ood_under_torchrun_equal_one_process(tmp_path):
    """``torchrun --nproc-per-node 2 -m vaekit score|ood`` writes the file one process writes, byte for byte."""
    import subprocess
    import sys

    import numpy as np

    from vaekit.cli import main

    src = str(Path(__file__).parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    vaekit = [sys.executable, "-m", "vaekit"]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "vaekit"]
    train = [
        "train",
        "--epochs",
        "1",
        "--latent-dim",
        "2",
        "--hidden",
        "16",
        "--eval-num-samples",
        "5",
        "--no-progress",
        "--runs-dir",
        str(tmp_path),
        "--name",
        "r",
    ]
    assert main(train) == 0  # in this process: the runs under test are the scoring ones
    rows = tmp_path / "rows.csv"
    np.savetxt(rows, (np.random.default_rng(1).random((150, 64)) > 0.5).astype(float), delimiter=",", fmt="%g")
    commands = (["score"], ["ood", "--score", "likelihood_ratio", "--background", "pixel", "--num-samples", "20"])

    processes = []

    def launch(launcher, tag, command):
        out = tmp_path / f"{command[0]}-{tag}.csv"
        argv = launcher + [command[0], str(tmp_path / "r"), "--input", str(rows), "--output", str(out)]
        argv += ["--no-progress", *command[1:]]
        processes.append(subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        return out, processes[-1]

    def finish(started):
        out, process = started
        stdout, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr[-2000:]
        assert stdout.count("written:") == 1  # rank 0 alone writes and prints
        return out.read_bytes()

    # the one-process runs side by side (a core each), then each torchrun run on both cores
    try:
        single = [launch(vaekit, "one", command) for command in commands]
        single = [finish(started) for started in single]
        for command, expected in zip(commands, single):
            assert finish(launch(torchrun, "two", command)) == expected, command[0]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.communicate()
