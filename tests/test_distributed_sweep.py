"""A sweep shared through a real PostgreSQL server (issue 30): two ``vaekit sweep`` workers started
separately, as on two machines, on one study; one is SIGKILLed mid-point; its point is retried
(Optuna heartbeat + grace period), nothing is lost or run twice to completion, and the report
equals a one-worker sweep's. The server is the one ``.ci/run`` starts (VAEKIT_TEST_POSTGRES_URL)
or a throw-away cluster started here (tests/postgres_server.py); without either the test skips,
saying why."""

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from postgres_server import postgres_url

SRC = str(Path(__file__).parents[1] / "src")
GRID = [
    "--grid",
    "lr=0.001,0.002",
    "--seeds",
    "0",
    "1",
    "--set",
    "data=digits",
    "--set",
    "epochs=3",
    "--set",
    "hidden=[16]",
    "--set",
    "latent_dim=2",
    "--set",
    "eval_num_samples=5",
    "--set",
    "kl_diagnostic_points=0",
    "--set",
    "batch_size=64",
]
TIMEOUT = 420  # seconds: the whole test is bounded; every process is killed at the end


@pytest.fixture(scope="module")
def server():
    with postgres_url() as (url, reason):
        if url is None:
            pytest.skip(reason)
        yield url


def _sweep(out, log, *extra):
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    argv = [sys.executable, "-m", "vaekit", "sweep", *GRID, "--out", str(out), *extra]
    with open(log, "w") as handle:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(argv, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)


def _wait_for(condition, what, deadline):
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _values(report):
    return {
        arm: {k: v for k, v in metrics.items() if k.startswith("test.")}
        for arm, seeds in report["arms"].items()
        for metrics in [seeds]
    }


def test_two_workers_on_postgresql_survive_a_killed_worker(server, tmp_path):
    deadline = time.monotonic() + TIMEOUT
    study = f"vaekit-test-{uuid.uuid4().hex[:8]}"
    shared = ["--storage", server, "--study-name", study, "--heartbeat", "1", "--grace-period", "3"]
    out = tmp_path / "shared"  # the run folders on a shared file system
    procs = []
    try:
        a = _sweep(out, tmp_path / "a.log", *shared)
        procs.append(a)
        _wait_for(lambda: ": running" in (tmp_path / "a.log").read_text(), "worker A to start a point", deadline)
        b = _sweep(out, tmp_path / "b.log", *shared)
        procs.append(b)
        # kill A mid-point: after its point has trained for a while (a checkpoint or two), before it finishes
        first = (tmp_path / "a.log").read_text().split(": running")[0].rsplit("] ", 1)[-1]
        time.sleep(1.5)
        os.killpg(a.pid, signal.SIGKILL)
        a.wait(30)
        assert a.returncode == -signal.SIGKILL
        print(f"A killed at {TIMEOUT - (deadline - time.monotonic()):.1f} s", flush=True)
        # the reference: one worker, its own SQLite study, on the core A no longer uses (checked after B)
        one = _sweep(tmp_path / "one", tmp_path / "one.log")
        procs.append(one)
        b.wait(max(1, deadline - time.monotonic()))
        assert b.returncode == 0, (tmp_path / "b.log").read_text()[-3000:]
        print(f"B done at {TIMEOUT - (deadline - time.monotonic()):.1f} s", flush=True)

        import optuna

        storage = optuna.storages.RDBStorage(server)
        try:
            trials = optuna.load_study(study_name=study, storage=storage).get_trials()
        finally:
            storage.engine.dispose()
        complete = [t.user_attrs["point"] for t in trials if t.state.name == "COMPLETE"]
        assert sorted(complete) == sorted(set(complete)) and len(complete) == 4  # each point finished once
        killed = [t for t in trials if t.state.name == "FAIL" and "duplicate_of" not in t.user_attrs]
        assert len(killed) == 1  # A's point: failed by B's stale-heartbeat check ...
        retried = [t for t in trials if t.user_attrs.get("retry_of") == killed[0].number]
        assert [t.state.name for t in retried] == ["COMPLETE"]  # ... enqueued again and finished by B
        assert killed[0].user_attrs["point"] == first.replace(" seed ", "-seed").replace("=", "-")  # A's point

        one.wait(max(1, deadline - time.monotonic()))
        assert one.returncode == 0
        shared_report = json.loads((out / "sweep-report.json").read_text())
        one_report = json.loads((tmp_path / "one" / "sweep-report.json").read_text())
        assert shared_report["failures"] == [] and shared_report["unfinished"] == []
        for arm, seeds in one_report["arms"].items():
            for seed, metrics in seeds.items():
                for key, value in metrics.items():
                    if key.startswith("test."):
                        assert shared_report["arms"][arm][seed][key] == pytest.approx(value, rel=1e-6, abs=1e-9), (
                            arm,
                            seed,
                            key,
                        )
        for arm, stats in one_report["aggregate"].items():
            assert shared_report["aggregate"][arm]["test.elbo"]["mean"] == pytest.approx(
                stats["test.elbo"]["mean"], rel=1e-6
            )
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(30)
