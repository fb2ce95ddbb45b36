"""torchrun across two nodes on localhost (issue 30): two ``torchrun --nnodes 2 --nproc-per-node 1``
launchers meet through a c10d rendezvous and train one run that matches a one-node run with the
same global batch; after one node is SIGKILLed mid-run, ``--resume`` on two nodes finishes it,
again matching the one-node run. Every launcher runs in its own process group, killed at the end."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

SRC = str(Path(__file__).parents[1] / "src")
EPOCHS, BATCH = 8, 8  # per process; the global batch of two nodes is 16 (small: epochs last long enough to kill one)
#: a deterministic AE on grey values: the only randomness is the shuffling, identical on every rank
ARGS = [
    "--model",
    "ae",
    "--binarize",
    "none",
    "--hidden",
    "16",
    "--latent-dim",
    "2",
    "--kl-diagnostic-points",
    "0",
    "--no-progress",
    "--device",
    "cpu",
    "--threads",
    "1",
]
TIMEOUT = 240  # seconds per launch


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env():
    # a node whose peer was killed fails its next collective after 20 s (vaekit.runtime.distributed.TIMEOUT_ENV)
    return {
        **os.environ,
        "PYTHONPATH": SRC,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "VAEKIT_DISTRIBUTED_TIMEOUT": "20",
    }


def _launch(nodes: int, train_args: list[str], log: Path, port: int, rdzv_id: str) -> subprocess.Popen:
    rendezvous = (
        ["--standalone"]
        if nodes == 1
        else ["--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", rdzv_id]
    )
    argv = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        str(nodes),
        "--nproc-per-node",
        "1",
        "--max-restarts",
        "0",
        *rendezvous,
        "-m",
        "vaekit",
        "train",
        *train_args,
    ]
    with open(log, "w") as handle:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(argv, env=_env(), stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)


def _two_nodes(train_args, tmp_path, tag):
    port, rdzv_id = _port(), f"{tag}-{uuid.uuid4().hex[:6]}"
    return [_launch(2, train_args, tmp_path / f"{tag}-node{n}.log", port, rdzv_id) for n in range(2)]


def _finish(procs, tmp_path, tag):
    for n, p in enumerate(procs):
        p.wait(TIMEOUT)
        log = tmp_path / (f"{tag}-node{n}.log" if len(procs) > 1 else f"{tag}.log")
        assert p.returncode == 0, log.read_text()[-3000:]


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (from /proc): torchrun's workers may run in their own process group."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def _kill_node(p: subprocess.Popen) -> None:
    """SIGKILL a node: its launcher and every process under it, at once."""
    for pid in _tree(p.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    p.wait(30)


def _kill(procs):
    for p in procs:
        if p.poll() is None:
            _kill_node(p)


def _history(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _assert_same_training(run, reference):
    got, want = _history(run), _history(reference)
    assert [h["step"] for h in got] == [h["step"] for h in want]  # the same global batches in both
    for a, b in zip(got, want):
        for key in ("train_loss", "val_loss"):
            assert a[key] == pytest.approx(b[key], rel=1e-4), (a["epoch"], key)
    weights, ref = load_file(str(run / "model.safetensors")), load_file(str(reference / "model.safetensors"))
    for key in ref:
        torch.testing.assert_close(weights[key], ref[key], rtol=1e-3, atol=1e-4, msg=key)


@pytest.fixture(scope="module")
def one_node(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("one-node")
    procs = [
        _launch(
            1,
            [*ARGS, "--epochs", str(EPOCHS), "--batch-size", str(2 * BATCH), "--runs-dir", str(tmp), "--name", "one"],
            tmp / "one.log",
            0,
            "",
        )
    ]
    try:
        _finish(procs, tmp, "one")
    finally:
        _kill(procs)
    return tmp / "one"


@pytest.mark.slow
def test_two_nodes_match_one_node_with_the_same_global_batch(one_node, tmp_path):
    procs = _two_nodes(
        [*ARGS, "--epochs", str(EPOCHS), "--batch-size", str(BATCH), "--runs-dir", str(tmp_path), "--name", "two"],
        tmp_path,
        "two",
    )
    try:
        _finish(procs, tmp_path, "two")
    finally:
        _kill(procs)
    logs = [(tmp_path / f"two-node{n}.log").read_text() for n in range(2)]
    assert sum(log.count("run folder:") for log in logs) == 1  # rank 0 alone writes and prints
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["epochs_trained"] == EPOCHS
    _assert_same_training(tmp_path / "two", one_node)


@pytest.mark.slow
def test_resume_after_one_node_is_killed(one_node, tmp_path):
    run = tmp_path / "killed"
    procs = _two_nodes(
        [*ARGS, "--epochs", str(EPOCHS), "--batch-size", str(BATCH), "--runs-dir", str(tmp_path), "--name", "killed"],
        tmp_path,
        "first",
    )
    try:
        deadline = time.monotonic() + TIMEOUT
        while not (run / "checkpoint" / "last.safetensors").is_file():  # the first epoch is checkpointed
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "no epoch finished"
            time.sleep(0.02)
        _kill_node(procs[1])  # one node dies mid-run: its launcher and its worker
        try:  # the other node stops with an error: its peer is gone (a 20 s collective timeout) ...
            procs[0].wait(120)
            assert procs[0].returncode != 0
        except subprocess.TimeoutExpired:  # ... or its launcher waits for the dead node: stopped, as an operator would
            pass
    finally:
        _kill(procs)
    assert not (run / "summary.json").exists()  # killed mid-run
    assert 1 <= len(_history(run)) < EPOCHS
    procs = _two_nodes(["--resume", str(run), "--no-progress", "--device", "cpu", "--threads", "1"], tmp_path, "resume")
    try:
        _finish(procs, tmp_path, "resume")
    finally:
        _kill(procs)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["epochs_trained"] == EPOCHS
    _assert_same_training(run, one_node)  # the resumed two-node run is the uninterrupted one-node run
