"""Experiment tracking against the real trackers: an MLflow run read back with MlflowClient, and a
W&B offline run read back from its transaction log, both compared with metrics.jsonl."""

import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vaekit import io
from vaekit._version import __version__
from vaekit.cli import main
from vaekit.config import Config
from vaekit.io import RunFolder
from vaekit.reporting import tracking
from vaekit.reporting.outputs import write_outputs
from vaekit.reporting.tracking import STATE, Logger, numeric_items, param_value
from vaekit.run import train


def train_tracked(config, folder, logger):
    """A run as ``vaekit train --logger LOGGER`` makes it: the tracker, figures and report."""
    return train(config, folder, progress=False, tracker=tracking.build_logger(logger), outputs=[write_outputs])


CONFIG = Config.from_flat(latent_dim=2, hidden=(16,), epochs=2, eval_num_samples=5)
FILES = {
    "report.html",
    "summary.json",
    "model.safetensors",
    "config.json",
    "metrics.jsonl",
    "loss_curves.png",
    "samples.png",
    "reconstructions.png",
}


def jsonl(run_dir) -> list[dict]:
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def expected_series(history: list[dict]) -> dict[str, list[tuple[int, float]]]:
    """metric name -> [(epoch, value), ...] as a tracker should hold it."""
    series: dict[str, list] = {}
    for entry in history:
        for key, value in numeric_items(entry):
            series.setdefault(key, []).append((entry["epoch"], value))
    return series


def state(run_dir) -> dict:
    return json.loads((Path(run_dir) / STATE).read_text())


# ---------------------------------------------------------------- MLflow


@pytest.fixture(scope="module")
def mlflow_runs(tmp_path_factory):
    """One runs folder (and so one embedded MLflow store: creating its tables is the slow part)."""
    pytest.importorskip("mlflow", reason="mlflow is not installed (pip install 'vaekit[mlflow]')")
    return tmp_path_factory.mktemp("mlflow") / "runs"


def client_of(runs_dir):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{Path(runs_dir).resolve() / 'mlflow.db'}")


def metric_series(client, run_id, keys) -> dict[str, list[tuple[int, float]]]:
    return {key: sorted((m.step, m.value) for m in client.get_metric_history(run_id, key)) for key in keys}


def test_mlflow_run_read_back_matches_the_run_folder(mlflow_runs, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    run_dir = mlflow_runs / "a"
    summary = train_tracked(CONFIG, run_dir, "mlflow")
    assert (mlflow_runs / "mlflow.db").is_file()  # embedded store beside the run folders
    run_id = state(run_dir)["mlflow"]["run_id"]
    assert summary["tracking"]["run_id"] == run_id
    client = client_of(mlflow_runs)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "a"
    assert client.get_experiment(run.info.experiment_id).name == "vaekit"
    # parameters: the whole config, as saved in config.json, under the flat names (the flags)
    saved = io.load_config(run_dir).to_flat()
    assert run.data.params == {k: param_value(v) for k, v in saved.items()} and "latent_dim" in saved
    assert {
        "model": "vae",
        "data": "digits",
        "vaekit_version": __version__,
        "data_shape": "[1, 8, 8]",
    }.items() <= run.data.tags.items()
    # metrics: every numeric entry of every epoch of metrics.jsonl, step = epoch, exact values
    expected = expected_series(jsonl(run_dir))
    assert {"train_loss", "val_elbo", "val_kl_per_dim/1", "beta"} <= set(expected)
    assert metric_series(client, run_id, expected) == expected
    test = json.loads((run_dir / "summary.json").read_text())["test"]
    assert client.get_metric_history(run_id, "test_elbo")[0].value == test["elbo"]
    assert client.get_metric_history(run_id, "test_log_likelihood")[0].step == 2
    # artifacts: the run folder's files, byte for byte
    names = {a.path for a in client.list_artifacts(run_id)}
    assert FILES <= names and "checkpoint" not in names
    local = client.download_artifacts(run_id, "model.safetensors", str(mlflow_runs.parent / "download"))
    assert Path(local).read_bytes() == (run_dir / "model.safetensors").read_bytes()


def test_mlflow_resume_continues_the_same_run(mlflow_runs, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run_dir = mlflow_runs / "resumed"
    train_tracked(CONFIG.replace(epochs=1), run_dir, "mlflow")
    run_id = state(run_dir)["mlflow"]["run_id"]
    assert tracking.stored_logger(run_dir) == "mlflow"
    train_tracked(None, RunFolder(run_dir, resume=True, epochs=3), tracking.stored_logger(run_dir))  # the run's own
    assert state(run_dir)["mlflow"] == {**state(run_dir)["mlflow"], "run_id": run_id, "last_epoch": 3}
    client = client_of(mlflow_runs)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["epochs"] == "1" and run.data.tags["resumed.epochs"] == "3"  # params are immutable
    expected = expected_series(jsonl(run_dir))
    assert [step for step, _ in expected["train_loss"]] == [1, 2, 3]
    assert metric_series(client, run_id, expected) == expected  # no epoch twice, none missing
    named = [r for r in client.search_runs([run.info.experiment_id]) if r.info.run_name == "resumed"]
    assert len(named) == 1
    # a store that lost the run: resuming starts a new MLflow run holding every epoch
    saved = state(run_dir)
    saved["mlflow"]["run_id"] = "0" * 32
    (run_dir / STATE).write_text(json.dumps(saved))
    train_tracked(None, run_dir, "mlflow")
    new_id = state(run_dir)["mlflow"]["run_id"]
    assert new_id != run_id and metric_series(client, new_id, expected) == expected


def test_mlflow_cli_honours_the_tracking_uri(mlflow_runs, tmp_path, monkeypatch, capsys):
    """MLFLOW_TRACKING_URI wins over the embedded store: the run lands in the store it names."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{mlflow_runs.resolve() / 'mlflow.db'}")
    code = main(
        [
            "train",
            "--runs-dir",
            str(tmp_path / "elsewhere"),
            "--name",
            "env",
            "--epochs",
            "1",
            "--latent-dim",
            "2",
            "--hidden",
            "16",
            "--eval-num-samples",
            "5",
            "--no-progress",
            "--logger",
            "mlflow",
        ]
    )
    assert code == 0
    assert "tracked: logger mlflow" in capsys.readouterr().out
    assert not (tmp_path / "elsewhere" / "mlflow.db").exists()
    run = client_of(mlflow_runs).get_run(state(tmp_path / "elsewhere" / "env")["mlflow"]["run_id"])
    assert run.data.tags["run_dir"] == str((tmp_path / "elsewhere" / "env").resolve())
    assert run.data.params["epochs"] == "1"


# ---------------------------------------------------------------- Weights & Biases (offline)


def wandb_records(path):
    """Records of a W&B transaction log (``run-<id>.wandb``): a 7-byte header (":W&B", magic,
    version), then LevelDB-log blocks of 32 KiB, each record = CRC32 (4 bytes), length (2),
    type (1: full, 2: first, 3: middle, 4: last) and a piece of a protobuf ``Record``."""
    from wandb.proto import wandb_internal_pb2 as pb

    raw = Path(path).read_bytes()
    assert raw[:4] == b":W&B"
    pos, block, pieces = 7, 32768, b""
    while pos + 7 <= len(raw):
        left = block - pos % block
        if left < 7:  # a block's tail too short for a record header is padding
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", raw[pos : pos + 7])
        if length == 0 and kind == 0:
            pos += left
            continue
        if pos + 7 + length > len(raw):  # still being written
            return
        pieces += raw[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(pieces)
            pieces = b""
            yield record


def wait_for_exit_records(run_dir, timeout: float = 120.0) -> None:
    """Wait until every session's log holds its exit record: wandb's service process writes the
    log asynchronously and may still be writing when ``run.finish()`` has returned."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        logs = sorted(Path(run_dir).glob("wandb/offline-run-*/run-*.wandb"))
        if logs and all(any(r.WhichOneof("record_type") == "exit" for r in wandb_records(p)) for p in logs):
            return
        time.sleep(0.5)


def wandb_history(run_dir) -> tuple[dict[str, list[tuple[int, float]]], dict, list]:
    """(metric series, summary, records) of every offline run file of a run folder."""
    series: dict[str, list] = {}
    summary, records = {}, []
    for path in sorted(Path(run_dir).glob("wandb/offline-run-*/run-*.wandb")):
        for record in wandb_records(path):
            records.append(record)
            kind = record.WhichOneof("record_type")
            if kind == "history":
                row = {
                    item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item
                }
                for key, value in row.items():
                    if not key.startswith("_"):
                        series.setdefault(key, []).append((row["_step"], float(value)))
            elif kind == "summary":
                summary.update({item.key: json.loads(item.value_json) for item in record.summary.update if item.key})
    return series, summary, records


@pytest.fixture
def wandb_offline(monkeypatch):
    pytest.importorskip("wandb", reason="wandb is not installed (pip install 'vaekit[wandb]')")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_PROJECT", raising=False)


def test_wandb_offline_run_holds_the_metrics(tmp_path, wandb_offline):
    run_dir = tmp_path / "w"
    train_tracked(CONFIG.replace(epochs=1), run_dir, "wandb")
    run_id = state(run_dir)["wandb"]["id"]
    train_tracked(None, RunFolder(run_dir, resume=True, epochs=2), "wandb")  # same W&B run
    assert state(run_dir)["wandb"]["id"] == run_id and state(run_dir)["wandb"]["last_epoch"] == 2
    assert len(list(run_dir.glob(f"wandb/offline-run-*-{run_id}*"))) == 2  # two sessions of one run id
    wait_for_exit_records(run_dir)
    series, summary, records = wandb_history(run_dir)
    expected = expected_series(jsonl(run_dir))
    assert [step for step, _ in expected["train_loss"]] == [1, 2]
    assert {key: series.get(key) for key in expected} == expected
    test = json.loads((run_dir / "summary.json").read_text())["test"]
    assert summary["test_elbo"] == test["elbo"]
    runs_ = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert {r.run_id for r in runs_} == {run_id}
    assert {"vae", "digits", f"vaekit-{__version__}"} <= set(runs_[0].tags)
    config = {item.key: json.loads(item.value_json) for item in runs_[0].config.update}
    assert config["latent_dim"] == 2 and config["hidden"] == [16]
    artifacts = [r.artifact for r in records if r.WhichOneof("record_type") == "artifact"]
    assert artifacts and FILES <= {c.path for c in artifacts[-1].manifest.contents}


# ---------------------------------------------------------------- errors and the API


@pytest.mark.parametrize("name,package", [("mlflow", "mlflow"), ("wandb", "wandb")])
def test_missing_extra_is_one_line_naming_the_pip_command(tmp_path, monkeypatch, capsys, name, package):
    monkeypatch.setitem(sys.modules, package, None)
    code = main(["train", "--runs-dir", str(tmp_path), "--name", "r", "--epochs", "1", "--logger", name])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1
    assert f"pip install 'vaekit[{name}]'" in err
    assert not (tmp_path / "r").exists()  # refused before anything was written


def test_a_logger_instance_from_the_api(tmp_path):
    class Recorder(Logger):
        name = "recorder"

        def __init__(self):
            super().__init__()
            self.calls = []

        def log(self, metrics):
            self.calls.append(("log", metrics["epoch"]))

        def finish(self, summary):
            self.calls.append(("finish", sorted(p.name for p in self.run.run_dir.iterdir())))

        def close(self, status="FINISHED"):
            self.calls.append(("close", status))

    recorder = Recorder()
    train_tracked(CONFIG, tmp_path / "r", recorder)
    assert recorder.calls[:2] == [("log", 1), ("log", 2)] and recorder.calls[-1] == ("close", "FINISHED")
    assert {"report.html", "summary.json", "model.safetensors"} <= set(recorder.calls[2][1])
    assert state(tmp_path / "r") == {"recorder": {"last_epoch": 2}}

    class Broken(Recorder):
        def log(self, metrics):
            raise KeyboardInterrupt

    broken = Broken()
    with pytest.raises(KeyboardInterrupt):
        train_tracked(CONFIG, tmp_path / "b", broken)
    assert broken.calls == [("close", "KILLED")]
    with pytest.raises(ValueError, match="unknown logger 'neptune'; choose one of: jsonl, tensorboard, mlflow, wandb"):
        train_tracked(CONFIG, tmp_path / "n", "neptune")


def test_trackers_are_imported_only_when_chosen():
    code = (
        "import sys, vaekit, vaekit.cli, vaekit.run, vaekit.reporting.outputs, vaekit.benchmarks.sweeps.engine, vaekit.reporting.mlflow_logger, vaekit.reporting.wandb_logger; "
        "print(sorted(m for m in ('mlflow', 'wandb') if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src"), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
