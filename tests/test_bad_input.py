"""Issue 12: every bad input and fault the issue lists, one test each: refused in one actionable
line (what was received, what is expected, how to fix), nothing lost."""

import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

import vaekit
from vaekit import Config, io
from vaekit.cli import main

TINY = ["--epochs", "1", "--latent-dim", "2", "--hidden", "16", "--eval-num-samples", "5", "--no-progress"]


def run_cli(args, capsys):
    code = main(list(map(str, args)))
    out, err = capsys.readouterr()
    return code, out, err


def error_line(code, out, err):
    """The one stderr line of a refused command (non-zero exit, no traceback)."""
    assert code != 0, out
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    assert main(["train", "--runs-dir", str(runs), "--name", "r", *TINY]) == 0
    return runs / "r"


# --- numbers in settings ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings, flag",
    [
        ({"beta": float("nan")}, "beta"),
        ({"lr": float("inf")}, "lr"),
        ({"weight_decay": float("nan")}, "weight_decay"),
        ({"epochs": True}, "epochs"),
        ({"latent_dim": 2.0}, "latent_dim"),
        ({"noise_std": "0.1"}, "noise_std"),
    ],
)
def test_config_refuses_non_finite_bools_and_strings(settings, flag):
    with pytest.raises((ValueError, TypeError), match=flag):
        Config.from_flat(**settings)


@pytest.mark.parametrize(
    "flags, named",
    [(["--model", "ae", "--noise-std", "nan"], "noise_std"), (["--beta", "nan"], "beta"), (["--lr", "inf"], "lr")],
)
def test_cli_non_finite_setting_names_its_flag(tmp_path, capsys, flags, named):
    line = error_line(*run_cli(["train", "--runs-dir", tmp_path, *flags, *TINY], capsys))
    assert named in line and "finite" in line and "--" + named.replace("_", "-") in line
    assert not any(tmp_path.iterdir())  # refused before a folder was made


@pytest.mark.parametrize(
    "text, named",
    [
        ('{"beta": "4"}', "beta"),
        ('{"epochs": NaN}', "NaN"),
        ('{"lr": Infinity}', "Infinity"),
        ('{"train": {"epochs": "3"}}', "epochs"),
    ],
)
def test_config_file_with_strings_or_nan_literals(tmp_path, capsys, text, named):
    path = tmp_path / "c.json"
    path.write_text(text)
    line = error_line(*run_cli(["train", "--config-file", path, "--runs-dir", tmp_path / "runs"], capsys))
    assert str(path) in line and named in line


# --- CLI counts and sizes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["evaluate", "{run}", "--batch-size", "-3"], "--batch-size"),
        (["evaluate", "{run}", "--batch-size", "0"], "--batch-size"),
        (["evaluate", "{run}", "--num-samples", "0"], "--num-samples"),
        (["sample", "{run}", "--n", "0"], "--n"),
        (["sample", "{run}", "--temperature", "nan"], "--temperature"),
        (["reconstruct", "{run}", "--n", "-5"], "--n"),
        (["manifold", "{run}", "--n", "0"], "--n"),
        (["interpolate", "{run}", "--num-steps", "1"], "--num-steps"),
        (["traverse", "{run}", "--num-dims", "0"], "--num-dims"),
        (["traverse", "{run}", "--span", "inf"], "--span"),
        (["iterate", "{run}", "--num-steps", "-1"], "--num-steps"),
        (["iterate", "{run}", "--index"], "--index"),
        (["embed", "{run}", "--seed", "-1"], "--seed"),
        (["evaluate", "robustness", "{run}", "--max-test", "0"], "--max-test"),
        (["evaluate", "robustness", "{run}", "--epsilons", "nan"], "--epsilons"),
        (["evaluate", "robustness", "{run}", "--fid-epochs", "-1"], "--fid-epochs"),
        (["evaluate", "disentanglement", "{run}", "--num-train", "0"], "--num-train"),
        (["score", "{run}", "--input", "x.csv", "--fpr", "2"], "--fpr"),
        (["benchmark", "robustness", "--jobs", "0"], "--jobs"),
        (["benchmark", "anomaly", "--classes", "11"], "classes"),
        (["benchmark", "disentanglement", "--epochs", "0"], "--epochs"),
        (["ood", "{run}", "--input", "x.csv", "--num-samples", "0"], "--num-samples"),
        (["sweep", "--jobs", "0"], "--jobs"),
        (["sweep", "--seeds", "-1"], "--seeds"),
        (["benchmark", "robustness-seeds", "--max-test", "0"], "--max-test"),
        (["benchmark", "robustness-seeds", "--train-size", "0"], "--train-size"),
        (["evaluate", "{run}", "--batch-size", "abc"], "--batch-size"),
        (["evaluate", "{run}", "--batch-size", "True"], "--batch-size"),
    ],
)
def test_every_count_and_size_flag_is_checked(run, capsys, argv, flag):
    before = _hashes(run)
    line = error_line(*run_cli([a.replace("{run}", str(run)) for a in argv], capsys))
    assert flag in line and ("must be" in line or "needs" in line or "Error parsing" in line), line
    assert _hashes(run) == before


def test_usage_errors_are_one_line_with_a_hint(capsys):
    line = error_line(*run_cli(["train", "--lattent-dim", "3"], capsys))
    assert "--lattent-dim" in line and "perhaps you meant --latent-dim" in line and "vaekit train --help" in line


# --- data files -------------------------------------------------------------------------------------


def test_non_utf8_csv_names_the_file_line_and_fix(tmp_path, capsys):
    path = tmp_path / "latin1.csv"
    path.write_bytes("a,b\n0.1,0.2\n0.3,caf\xe9\n".encode("latin-1"))
    line = error_line(
        *run_cli(["train", "--data", "array", "--path", path, "--runs-dir", tmp_path / "runs", *TINY], capsys)
    )
    assert str(path) in line and "not UTF-8" in line and "line 3" in line and "iconv" in line
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_one_row_csv_needs_two(tmp_path, capsys):
    path = tmp_path / "one.csv"
    path.write_text("0.1,0.2,0.3\n")
    line = error_line(
        *run_cli(["train", "--data", "array", "--path", path, "--runs-dir", tmp_path / "runs", *TINY], capsys)
    )
    assert str(path) in line and "1 example" in line and "at least 2" in line


def test_cvae_labels_that_are_codes_not_classes(tmp_path, capsys):
    rng = np.random.default_rng(0)
    path = tmp_path / "codes.csv"
    y = np.where(np.arange(40) % 2 == 0, 0, 10**9)
    np.savetxt(path, np.column_stack([rng.random((40, 4)), y]), delimiter=",", fmt="%.6g")
    line = error_line(
        *run_cli(
            [
                "train",
                "--model",
                "cvae",
                "--data",
                "array",
                "--path",
                path,
                "--label-column",
                "4",
                "--likelihood",
                "gaussian",
                "--runs-dir",
                tmp_path / "runs",
                *TINY,
            ],
            capsys,
        )
    )
    assert "1000000000" in line and "class indices 0..K-1" in line and "return_inverse" in line
    from vaekit.data.splits import class_count

    assert class_count(torch.tensor([0, 2, 1, 1])) == 3
    with pytest.raises(ValueError, match=">= 0"):
        class_count(torch.tensor([-1, 0, 1]))


def test_truncated_metrics_in_report(run, tmp_path, capsys):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "metrics.jsonl").write_text((run / "metrics.jsonl").read_text()[:-20])
    line = error_line(*run_cli(["report", copy], capsys))
    assert "metrics.jsonl" in line and "line 1" in line


# --- the Python API -----------------------------------------------------------------------------------


@pytest.mark.parametrize("value, message", [(5.0, r"needs data in \[0, 1\]"), (float("nan"), "NaN/Inf")])
def test_bounds_check_the_support_of_a_bernoulli_model(run, value, message):
    from vaekit.evaluation import evaluate

    model = io.load(run)
    x = torch.full((2, 1, 8, 8), value)
    for bound in (vaekit.elbo, vaekit.iwae_bound, lambda m, x: evaluate(m, x, num_samples=3)):
        with pytest.raises(ValueError, match=message):
            bound(model, x)
    assert torch.isfinite(vaekit.elbo(model, torch.bernoulli(torch.full((2, 1, 8, 8), 0.5)))).all()


@pytest.mark.parametrize("value", [5.0, float("nan")])
def test_log_likelihood_checks_the_support(run, value):
    from vaekit.evaluation import log_likelihood

    with pytest.raises(ValueError, match=r"\[0, 1\]|NaN/Inf"):
        log_likelihood(io.load(run), torch.full((2, 1, 8, 8), value), num_samples=3)


def test_io_save_onto_a_file_is_a_value_error(run, tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(ValueError, match="is a file.*pass a folder path"):
        io.save(io.load(run), target)


# --- faults: divergence, folders, interruption ----------------------------------------------------------


def test_divergence_exits_non_zero_and_says_no_checkpoint(tmp_path, capsys):
    line = error_line(
        *run_cli(
            [
                "train",
                "--lr",
                "1e8",
                "--epochs",
                "3",
                "--latent-dim",
                "2",
                "--hidden",
                "16",
                "--eval-num-samples",
                "5",
                "--no-progress",
                "--runs-dir",
                tmp_path,
                "--name",
                "d",
            ],
            capsys,
        )
    )
    assert ("became" in line or "not finite" in line) and "at step" in line and "lower --lr" in line
    if (tmp_path / "d").exists():  # an epoch completed: the checkpoint it names is really there
        assert "continue with --resume" in line and (tmp_path / "d" / "checkpoint" / "last.safetensors").is_file()
    else:
        assert "no run folder is kept" in line


def test_failed_run_before_its_first_checkpoint_leaves_no_folder(tmp_path, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    from PIL import Image

    for i in range(12):
        Image.fromarray(np.full((8, 8), 20 * i, dtype=np.uint8)).save(folder / f"{i}.png")
    (folder / "broken.png").write_bytes(b"not a png")
    code, _, err = run_cli(
        [
            "train",
            "--data",
            "image-folder",
            "--path",
            folder,
            "--image-size",
            "8",
            "--runs-dir",
            tmp_path / "runs",
            "--name",
            "bad",
            *TINY,
        ],
        capsys,
    )
    assert code != 0 and len(err.strip().splitlines()) == 1 and "broken.png" in err, err
    assert not (tmp_path / "runs" / "bad").exists()  # the name is free again


def test_run_folder_creation_is_atomic(tmp_path):
    from vaekit.io import create_run_dir

    results, start = [], threading.Barrier(8)

    def create():
        start.wait()
        try:
            results.append(create_run_dir(tmp_path, "same", Config()))
        except FileExistsError as e:
            results.append(e)

    threads = [threading.Thread(target=create) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(not isinstance(r, Exception) for r in results) == 1
    # the losers either found the folder made ("--resume" it) or its lock held while it was made
    assert all("--resume" in str(r) or "is in use by process" in str(r) for r in results if isinstance(r, Exception))


def test_resume_removes_stale_temporary_files(run, tmp_path, capsys):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    stale = [copy / ".summary.json.abc123.tmp", copy / "checkpoint" / ".last.safetensors.x.tmp"]
    for path in stale:
        path.write_text("half")
    code, _, err = run_cli(["train", "--resume", copy, "--epochs", "2", "--no-progress"], capsys)
    assert code == 0, err
    assert not any(p.exists() for p in stale) and not list(copy.rglob(".*.tmp"))


def test_ctrl_c_during_resume_names_the_resume_command(run, tmp_path, capsys, monkeypatch):
    from vaekit import run as run_module

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_module, "train", interrupted)
    code, _, err = run_cli(["train", "--resume", run, "--no-progress"], capsys)
    assert code == 130 and f"vaekit train --resume {run}" in err and len(err.strip().splitlines()) == 1


# --- one MSE, figures kept ------------------------------------------------------------------------------


def test_one_mse_definition_in_evaluate_and_robustness(run, tmp_path, capsys):
    from vaekit.evaluation import UNITS, reconstruction_mse
    from vaekit.io import load_run_split

    assert run_cli(["evaluate", run, "--num-samples", "2", "--output", tmp_path / "e.json"], capsys)[0] == 0
    assert (
        run_cli(
            [
                "evaluate",
                "robustness",
                run,
                "--num-steps",
                "1",
                "--epsilons",
                "0",
                "--consistency-steps",
                "0",
                "--fid-epochs",
                "0",
                "--output",
                tmp_path / "r.json",
            ],
            capsys,
        )[0]
        == 0
    )
    evaluation, robustness = (
        json.loads((tmp_path / "e.json").read_text()),
        json.loads((tmp_path / "r.json").read_text()),
    )
    summary = json.loads((run / "summary.json").read_text())
    model, config = io.load(run), io.load_config(run)
    direct = reconstruction_mse(model, load_run_split(run, config, "test").x)  # grey test images, not binarized
    for key in ("mse_per_pixel", "mse_per_example"):
        values = [evaluation["test"][key], robustness[key], summary["test"][key], direct[key]]
        assert max(values) - min(values) <= 1e-6 * max(values), (key, values)
        assert evaluation["units"][key] == robustness["units"][key] == summary["units"][key] == UNITS[key]
    assert "before binarization" in UNITS["mse_per_pixel"] and "[0, 1]" in UNITS["mse_per_pixel"]


def test_interpolate_and_iterate_keep_the_figures_training_wrote(run, capsys):
    before = {name: (run / name).read_bytes() for name in ("interpolation.png", "iterated.png")}
    assert run_cli(["interpolate", run, "--num-steps", "3"], capsys)[0] == 0
    assert run_cli(["iterate", run, "--num-steps", "2"], capsys)[0] == 0
    assert (run / "interpolation-test-0-1.png").is_file() and (run / "iterated-test.png").is_file()
    for name in ("interpolation.png", "iterated.png", "samples.png"):
        command = {"interpolation.png": "interpolate", "iterated.png": "iterate", "samples.png": "sample"}[name]
        line = error_line(*run_cli([command, run, "--output", run / name], capsys))
        assert name in line and "would replace" in line
    assert before == {name: (run / name).read_bytes() for name in before}
    (run / "interpolation-test-0-1.png").unlink()
    (run / "iterated-test.png").unlink()


def _hashes(folder):
    import hashlib

    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_empty_npy_file(tmp_path, capsys):
    """Found by tests/test_fuzz_cli.py: an empty .npy gave an internal EOFError."""
    path = tmp_path / "empty.npy"
    path.write_bytes(b"")
    line = error_line(
        *run_cli(["train", "--data", "array", "--path", path, "--runs-dir", tmp_path / "runs", *TINY], capsys)
    )
    assert str(path) in line and "numpy.save" in line


def test_a_network_too_large_to_build_is_refused_before_allocating(tmp_path, capsys):
    line = error_line(*run_cli(["train", "--runs-dir", tmp_path, *TINY, "--latent-dim", "1000000000"], capsys))
    assert "parameters" in line and "GiB" in line and "lower --latent-dim" in line
    from vaekit import build_model

    with pytest.raises(ValueError, match="parameters"):
        build_model(Config.from_flat(model="cvae").model, (1, 8, 8), num_classes=10**9)


# --- issue 20: nothing a user types destroys a run ------------------------------------------------


def _tiny_csv(path, rows=24, columns=3):
    np.savetxt(path, np.random.default_rng(0).random((rows, columns)), delimiter=",", fmt="%.5f")
    return path


CSV_TRAIN = ["--data", "array", "--likelihood", "gaussian", "--kl-diagnostic-points", "0", *TINY]


@pytest.mark.parametrize("name", [".", "..", "ABSOLUTE", "a/b", "../x", ""])
def test_run_names_that_leave_the_runs_folder_are_refused(tmp_path, capsys, name):
    runs = tmp_path / "runs"
    (runs / "precious").mkdir(parents=True)
    (runs / "precious" / "config.json").write_text("{}")
    (tmp_path / "beside.txt").write_text("keep")
    name = str(tmp_path / "abs") if name == "ABSOLUTE" else name
    line = error_line(*run_cli(["train", "--runs-dir", runs, "--name", name, "--overwrite", *TINY], capsys))
    assert "--name" in line and "one folder inside --runs-dir" in line
    assert (runs / "precious" / "config.json").is_file() and (tmp_path / "beside.txt").read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["beside.txt", "runs"]


def test_overwrite_replaces_only_run_folders(tmp_path, capsys):
    runs = tmp_path / "runs"
    (runs / "notes").mkdir(parents=True)
    (runs / "notes" / "thesis.tex").write_text("years of work")
    (runs / "afile").write_text("a file")
    (runs / "link").symlink_to(runs / "notes")
    for name in ("notes", "afile", "link"):
        line = error_line(*run_cli(["train", "--runs-dir", runs, "--name", name, "--overwrite", *TINY], capsys))
        assert "--overwrite replaces only run folders" in line and name in line
    assert (runs / "notes" / "thesis.tex").read_text() == "years of work" and (runs / "afile").read_text() == "a file"


@pytest.mark.parametrize(
    "command", [["score"], ["ood"], ["evaluate"], ["evaluate", "robustness"], ["sample"], ["embed"], ["report"]]
)
@pytest.mark.parametrize(
    "target",
    [
        "model.safetensors",
        "config.json",
        "checkpoint/last.safetensors",
        "metrics.jsonl",
        "summary.json",
        "../r/./model.safetensors",
    ],
)
def test_output_onto_a_file_the_run_keeps_is_refused(run, tmp_path, capsys, command, target):
    before = _hashes(run)
    extra = ["--input", _tiny_csv(tmp_path / "rows.csv", 4, 64)] if command[0] in ("score", "ood") else []
    output = str(run / target)
    if command == ["embed"]:  # a path prefix: PREFIX.npy, .csv and .png, so PREFIX.png may be a figure of the run
        output = str(run / target).rsplit("/", 1)[0] + "/loss_curves"
    line = error_line(*run_cli([*command, run, *extra, "--output", output], capsys))
    assert "would replace" in line and "a file the run" in line
    assert _hashes(run) == before


def test_every_file_training_writes_is_protected(run):
    from vaekit.cli.common import check_output

    outputs = ("evaluation.json", "robustness.json", "scores.csv", "ood-scores.csv")  # commands' own outputs
    files = [p for p in run.rglob("*") if p.is_file() and p.name not in outputs and "-test" not in p.name]
    assert {"config.json", "model.safetensors", "last.safetensors", "summary.json", "report.html"} <= {
        p.name for p in files
    }
    for path in files:
        with pytest.raises(ValueError, match="would replace"):
            check_output(path)
    check_output(run / "my-scores.csv")  # a new file in the run folder is fine
    check_output(run / "report.html", allow=("report.html",))


def _wait_for(condition, what, timeout=120):
    import time

    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_run_folder_is_held_while_it_trains_and_sigterm_names_the_resume_command(tmp_path, capsys):
    """Two real processes: `train --name same --overwrite` refuses while the first trains; SIGTERM
    stops the first as Ctrl-C does (its --resume command, its checkpoint); a dead process's lock is ignored."""
    import signal

    from test_cli import run_subprocess
    from vaekit.io import lock_path

    csv, runs = _tiny_csv(tmp_path / "t.csv", 64), tmp_path / "runs"
    args = ["train", "--runs-dir", runs, "--name", "same", "--overwrite", *CSV_TRAIN, "--path", csv]
    first = run_subprocess([*args, "--epochs", "100000"], tmp_path / "first.log")
    try:
        checkpoint, lock = runs / "same" / "checkpoint" / "last.safetensors", lock_path(runs / "same")
        _wait_for(lambda: checkpoint.exists() and lock.exists() and lock.read_text().strip(), "the first checkpoint")
        assert lock.read_text().strip() == str(first.pid)
        before = checkpoint.stat().st_mtime_ns
        line = error_line(*run_cli(args, capsys))
        assert f"in use by process {first.pid}" in line and "--name" in line
        line = error_line(*run_cli(["train", "--resume", runs / "same"], capsys))
        assert f"in use by process {first.pid}" in line
        assert checkpoint.exists() and first.poll() is None
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=60) == 128 + signal.SIGTERM
    finally:
        first.kill()
    log = [line for line in (tmp_path / "first.log").read_text().splitlines() if line.strip()]
    assert log == [f"vaekit: terminated (SIGTERM); continue it with: vaekit train --resume {runs / 'same'}"], log
    assert checkpoint.stat().st_mtime_ns >= before and not lock.exists()
    io.read_safetensors(checkpoint)  # intact
    lock.write_text(f"{first.pid}\n")  # a stale lock file: its process is dead
    code, _, err = run_cli(["train", "--resume", runs / "same", "--epochs", "1"], capsys)
    assert code == 0, err


def test_a_full_disk_names_the_file_and_the_resume_command(run, tmp_path, capsys, monkeypatch):
    import errno
    import os

    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc to tell which file is written")
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    checkpoint = copy / "checkpoint" / "last.safetensors"
    before = checkpoint.read_bytes()
    real_fsync = os.fsync

    def full_disk(fd):  # the disk fills up while the checkpoint is written
        if "last.safetensors" in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full_disk)
    line = error_line(*run_cli(["train", "--resume", copy, "--epochs", "2", "--no-progress"], capsys))
    assert str(checkpoint) in line and "No space left on device" in line
    assert f"vaekit train --resume {copy}" in line
    assert checkpoint.read_bytes() == before and not list(copy.rglob(".*.tmp"))


@pytest.mark.parametrize("value", [1e39, -3.5e38, 1e308])
def test_values_beyond_float32_are_refused_naming_rows_and_columns(run, tmp_path, capsys, value):
    x = np.random.default_rng(0).random((6, 64))
    x[4, 7] = value
    for suffix in (".npy", ".csv"):
        path = tmp_path / f"big{suffix}"
        np.save(path, x) if suffix == ".npy" else np.savetxt(path, x, delimiter=",", fmt="%.17g")
        for argv in (
            ["score", run, "--input", path, "--output", tmp_path / "s.csv", "--no-progress"],
            ["ood", run, "--input", path, "--output", tmp_path / "o.csv", "--no-progress"],
            ["train", "--data", "array", "--path", path, "--runs-dir", tmp_path / "runs", *TINY],
        ):
            line = error_line(*run_cli(argv, capsys))
            assert "beyond float32's range" in line and "rows 4" in line and "columns 7" in line, line
    assert not (tmp_path / "s.csv").exists() and not list((tmp_path / "runs").glob("*"))  # no run folder left


def test_a_non_finite_score_is_an_outlier(run, tmp_path, capsys, monkeypatch):
    from vaekit.detectors.anomaly import AnomalyDetector
    from vaekit.evaluation.conformal import conformal_pvalues, decision

    assert conformal_pvalues([1.0, 2.0, 3.0], [np.nan, np.inf, -np.inf, 2.5]).tolist() == [0.0, 0.0, 0.0, 0.75]
    assert decision([np.nan, np.inf, 5.0], 1.0).tolist() == [-np.inf, -np.inf, 4.0]
    score_samples = AnomalyDetector.score_samples

    def one_unscorable(self, X):
        scores = score_samples(self, X)
        scores[1] = np.nan  # e.g. a row whose log-likelihood overflowed
        return scores

    monkeypatch.setattr(AnomalyDetector, "score_samples", one_unscorable)
    path = _tiny_csv(tmp_path / "rows.csv", 3, 64)
    code, _, err = run_cli(["score", run, "--input", path, "--output", tmp_path / "s.csv", "--no-progress"], capsys)
    assert code == 0, err
    rows = (tmp_path / "s.csv").read_text().splitlines()
    assert rows[2].split(",")[1:] == ["nan", "0.0", "1"], rows  # index 1: score nan, p-value 0, outlier


def test_a_headerless_csv_with_one_bad_cell_in_its_first_row(tmp_path, capsys):
    from vaekit.data.array import read

    bad = tmp_path / "bad.csv"
    bad.write_text("0.1,x,0.3\n0.2,0.5,0.6\n0.3,0.1,0.2\n")
    line = error_line(*run_cli(["train", "--data", "array", "--path", bad, "--runs-dir", tmp_path, *TINY], capsys))
    assert "column '1', row 0" in line and "'x'" in line and "header" in line
    header = tmp_path / "header.csv"
    header.write_text("a,b,c\n0.2,0.5,0.6\n0.3,0.1,0.2\n")
    assert read(header)[0].shape == (2, 3)  # every cell a word: a header


def test_seed_beyond_what_numpy_and_torch_accept(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*32 - 1"):
        Config.from_flat(seed=2**70)
    assert Config.from_flat(seed=2**32 - 1).train.seed == 2**32 - 1
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"seed": 2**70}))
    line = error_line(*run_cli(["train", "--config-file", path, "--runs-dir", tmp_path, *TINY], capsys))
    assert "c.json" in line and "seed must be an integer in [0, 2**32 - 1" in line


def test_malformed_input_files_are_one_line(run, tmp_path, capsys):
    huge = tmp_path / "huge.npy"
    with open(huge, "wb") as f:  # a header claiming 10**9 rows, 48 bytes of data
        np.lib.format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False, "shape": (10**9, 64)})
        f.write(bytes(48))
    objects = tmp_path / "objects.npz"
    np.savez(objects, x=np.array([[1, 2], [3, 4]], dtype=object))
    field = tmp_path / "field.csv"
    field.write_text("0.1," + "1" * 200_000 + "\n0.2,0.3\n")
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    expected = {
        huge: "header claims an array of shape (1000000000, 64)",
        objects: "objects.npz",
        field: "line 1: field larger than field limit",
        folder: "is a folder",
    }
    for path, message in expected.items():
        for argv in (
            ["score", run, "--input", path, "--output", tmp_path / "s.csv", "--no-progress"],
            ["train", "--data", "array", "--path", path, "--runs-dir", tmp_path / "runs", *TINY],
        ):
            line = error_line(*run_cli(argv, capsys))
            assert message in line and str(path) in line, line
    assert "never unpickles" in error_line(*run_cli(["score", run, "--input", objects], capsys))


def test_ood_detector_refuses_images_of_another_shape(run):
    from vaekit.detectors.ood import OODDetector

    detector = OODDetector.from_run(run, score_type="log_likelihood", num_samples=2, cache=False)
    shape = tuple(detector.model_.data_shape)
    good = np.random.default_rng(0).random((2, *shape))
    assert detector.score_samples(good).shape == (2,)
    assert detector.score_samples(good.reshape(2, -1)).shape == (2,)  # rows of the right length are reshaped
    other = good.reshape(2, shape[0], shape[1] // 2, shape[2] * 2)  # as many features, another image shape
    with pytest.raises(
        ValueError,
        match=r"examples of shape \(1, 4, 16\), but this OODDetector was fitted on "
        r"examples of shape \(1, 8, 8\)",
    ):
        detector.score_samples(other)


# --- issue 30: outputs onto inputs, --overwrite -------------------------------------------------


@pytest.mark.parametrize("command", [["score"], ["ood"]])
def test_output_onto_the_input_file_is_refused(run, tmp_path, capsys, command):
    rows = _tiny_csv(tmp_path / "in.csv", 4, 64)
    before = rows.read_bytes()
    (tmp_path / "link.csv").symlink_to(rows)
    for output in (rows, tmp_path / "link.csv", tmp_path / "sub" / ".." / "in.csv"):
        line = error_line(*run_cli([*command, run, "--input", rows, "--output", output, "--overwrite"], capsys))
        assert line == (
            f"vaekit: error: --output {output} is the file --input {rows} that the command reads; "
            "writing there would replace its input: choose another file name"
        )
    assert rows.read_bytes() == before


def test_interpolate_output_onto_one_of_its_images_is_refused(run, tmp_path, capsys):
    from PIL import Image

    paths = [tmp_path / f"{k}.png" for k in "ab"]
    for p in paths:
        Image.new("L", (8, 8), 128).save(p)
    before = paths[1].read_bytes()
    line = error_line(*run_cli(["interpolate", run, "--images", *paths, "--output", paths[1], "--overwrite"], capsys))
    assert "is the file --images" in line and paths[1].read_bytes() == before


@pytest.mark.parametrize("command", [["score"], ["sample"], ["evaluate"], ["embed"], ["report"], ["reconstruct"]])
def test_an_existing_output_is_replaced_only_with_overwrite(run, tmp_path, capsys, command):
    extra = ["--input", _tiny_csv(tmp_path / "rows.csv", 4, 64), "--no-progress"] if command == ["score"] else []
    suffix = {"score": ".csv", "evaluate": ".json", "report": ".html", "sample": ".npy", "reconstruct": ".npy"}
    out = tmp_path / f"mine{suffix.get(command[0], '')}"
    written = Path(f"{out}.npy") if command == ["embed"] else out
    written.write_text("my own notes")
    argv = [*command, run, *extra, "--output", out]
    if command == ["evaluate"]:
        argv += ["--num-samples", "2"]
    line = error_line(*run_cli(argv, capsys))
    assert (
        line == f"vaekit: error: --output {written} exists; pass --overwrite to replace it, or choose another file name"
    )
    assert written.read_text() == "my own notes"
    code, out_text, err = run_cli([*argv, "--overwrite"], capsys)
    assert code == 0, err
    assert written.read_bytes() != b"my own notes" and not list(tmp_path.glob(".*.tmp"))


def test_an_output_that_is_a_folder_is_refused(run, tmp_path, capsys):
    line = error_line(*run_cli(["sample", run, "--output", tmp_path], capsys))
    assert line == (
        f"vaekit: error: --output {tmp_path} is a folder; pass the name of a file to write "
        "(in that folder or elsewhere)"
    )


def test_every_command_writing_a_file_takes_overwrite():
    import typing

    from vaekit.cli import COMMANDS
    from vaekit.cli.common import Output

    for key, command in COMMANDS.items():
        args_type, _ = command.load()
        hints = typing.get_type_hints(args_type, include_extras=True)
        if any(isinstance(m, Output) for h in hints.values() for m in getattr(h, "__metadata__", ())):
            assert "overwrite" in hints, key


# --- issue 30: shapes and dtypes at the API boundary -----------------------------------------------


def _fit_model():
    cfg = Config.from_flat(likelihood="bernoulli", latent_dim=2, epochs=1, hidden=[16], batch_size=25)
    return vaekit.build_model(cfg.model, (64,), seed=0), cfg


@pytest.mark.parametrize(
    "make",
    [
        lambda: np.random.default_rng(0).random((50, 64)),
        lambda: torch.randint(0, 2, (50, 64)),
        lambda: torch.rand(50, 64, dtype=torch.float64),
        lambda: np.random.default_rng(0).random((50, 64)) > 0.5,
    ],
)
def test_fit_converts_numpy_float64_integer_and_bool_examples(make):
    model, cfg = _fit_model()
    history = vaekit.fit(model, make(), cfg)
    assert len(history) == 1 and np.isfinite(history[0]["train_loss"])


@pytest.mark.parametrize(
    "x, message",
    [
        (
            np.zeros((0, 64)),
            "train has shape (0, 64); expected (N, *data_shape) with N >= 1 examples and no axis of size 0, here (N, 64)",
        ),
        (
            torch.rand(50, 32),
            "train has examples of shape (32,) but the model was built for (64,); pass train of shape (N, 64)",
        ),
        (
            np.full((50, 64), 1e300),
            "train holds values beyond torch.float32's range (|x| > 3.4e+38); rescale them first",
        ),
        (np.array([["a"] * 64] * 3), "train must hold numbers, got a NumPy array of dtype <U1"),
        (
            [[0.0] * 64] * 3,
            "train must be a tensor or NumPy array of shape (N, *data_shape), a Dataset or a DataLoader, got list",
        ),
    ],
)
def test_fit_refuses_bad_examples_before_training(x, message):
    model, cfg = _fit_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises((ValueError, TypeError)) as info:
        vaekit.fit(model, x, cfg)
    assert str(info.value).startswith(message)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # nothing trained


def test_fit_refuses_float_labels_naming_them():
    cfg = Config.from_flat(model="cvae", likelihood="bernoulli", latent_dim=2, epochs=1, hidden=[16])
    model = vaekit.build_model(cfg.model, (64,), num_classes=3, seed=0)
    with pytest.raises(TypeError, match="labels must be integer class indices"):
        vaekit.fit(model, torch.rand(10, 64), cfg, labels=torch.rand(10))
    history = vaekit.fit(model, torch.rand(10, 64), cfg, labels=np.arange(10) % 3)  # NumPy ints are fine
    assert len(history) == 1


@pytest.mark.parametrize(
    "shape, message",
    [
        ((50, 0), "data of shape (50, 0) has an axis of size 0 (no values per example)"),
        ((50, 1, 0, 8), "data of shape (50, 1, 0, 8) has an axis of size 0"),
        (
            (50, 4, 8, 8),
            "data of shape (50, 4, 8, 8) is neither (N, C, H, W) nor (N, H, W, C) images with C = 1 (grey) or 3",
        ),
        ((50, 8, 8, 2), "data of shape (50, 8, 8, 2) is neither"),
    ],
)
def test_array_files_the_figures_cannot_draw_are_refused_before_training(tmp_path, capsys, shape, message):
    path = tmp_path / "x.npy"
    np.save(path, np.random.default_rng(0).random(shape))
    line = error_line(
        *run_cli(["train", "--data", "array", "--path", path, "--runs-dir", tmp_path / "runs", *TINY], capsys)
    )
    assert line.startswith(f"vaekit: error: {path}: {message}"), line
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # no run without its report


# --- issue 30: columns by name, the training data file --------------------------------------------


@pytest.fixture(scope="module")
def tabular_run(tmp_path_factory):
    """A run trained on a CSV with a header (columns a, b, c, d and a label column y)."""
    folder = tmp_path_factory.mktemp("tabular")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4)) * [1, 10, 100, 1000]
    rows = ["a,b,c,d,y"] + [",".join(f"{v:.6g}" for v in row) + f",{i % 2}" for i, row in enumerate(x)]
    (folder / "train.csv").write_text("\n".join(rows) + "\n")
    code = main(
        [
            "train",
            "--data",
            "array",
            "--path",
            str(folder / "train.csv"),
            "--label-column",
            "y",
            "--likelihood",
            "gaussian",
            "--runs-dir",
            str(folder / "runs"),
            "--name",
            "t",
            *TINY,
        ]
    )
    assert code == 0
    return folder / "runs" / "t", x


def _scores(path):
    return [line.split(",")[1] for line in Path(path).read_text().splitlines()[1:]]


def test_csv_columns_are_matched_by_name(tabular_run, tmp_path, capsys):
    run, x = tabular_run
    record = json.loads((run / "data.json").read_text())
    assert record["columns"] == ["a", "b", "c", "d"] and record["size"] > 0 and len(record["sha256"]) == 64
    (tmp_path / "ordered.csv").write_text("a,b,c,d\n" + "\n".join(",".join(map(str, r)) for r in x[:5]) + "\n")
    (tmp_path / "shuffled.csv").write_text(
        "d,b,a,c\n" + "\n".join(f"{r[3]},{r[1]},{r[0]},{r[2]}" for r in x[:5]) + "\n"
    )
    for name in ("ordered", "shuffled"):
        code, _, err = run_cli(
            [
                "score",
                run,
                "--input",
                tmp_path / f"{name}.csv",
                "--output",
                tmp_path / f"{name}-s.csv",
                "--threshold",
                "0",
                "--no-progress",
            ],
            capsys,
        )
        assert code == 0, err
    assert _scores(tmp_path / "ordered-s.csv") == _scores(tmp_path / "shuffled-s.csv")


@pytest.mark.parametrize(
    "header, message",
    [
        ("a,b,c", "missing column(s) 'd'"),
        ("a,b,c,d,e", "column(s) the model was not trained on 'e'"),
        ("a,b,c,x", "missing column(s) 'd'; column(s) the model was not trained on 'x'"),
        ("a,b,c,c", "missing column(s) 'd'; column(s) named twice 'c'"),
    ],
)
def test_a_missing_or_extra_column_is_refused_naming_it(tabular_run, tmp_path, capsys, header, message):
    run, _ = tabular_run
    path = tmp_path / "rows.csv"
    width = len(header.split(","))
    path.write_text(header + "\n" + "\n".join(",".join(["0.5"] * width) for _ in range(3)) + "\n")
    for command in ("score", "ood"):
        line = error_line(
            *run_cli([command, run, "--input", path, "--output", tmp_path / "s.csv", "--no-progress"], capsys)
        )
        assert line == (
            f"vaekit: error: {path}: its header does not name the model's 4 training columns ({message}); "
            "the model was trained on columns a, b, c, d: give exactly those (in any order), or pass "
            "--label-column for a label column"
        )


@pytest.mark.filterwarnings("default:the data file:UserWarning")  # the CLI prints it as one line
def test_a_changed_data_file_is_reported_and_evaluated_only_when_asked(tabular_run, tmp_path, capsys):
    run, _ = tabular_run
    copy = tmp_path / "t"
    shutil.copytree(run, copy)
    data = Path(json.loads((copy / "data.json").read_text())["path"])
    original = data.read_bytes()
    try:
        data.write_bytes(original.replace(b"\n1", b"\n2", 1))  # same size, one digit changed
        line = error_line(*run_cli(["evaluate", copy, "--num-samples", "2"], capsys))
        assert line.startswith(
            f"vaekit: error: the data file {data} changed since run {copy} was trained (same size, SHA-256 "
        ) and line.endswith(
            f"recorded in {copy / 'data.json'}); restore the file the "
            "run was trained on, or pass --allow-changed-data to "
            "evaluate on it anyway"
        )
        code, out, err = run_cli(["evaluate", copy, "--num-samples", "2", "--allow-changed-data"], capsys)
        assert code == 0 and "vaekit: warning: the data file" in err, err
        assert "evaluating anyway, as asked" in err
    finally:
        data.write_bytes(original)
    assert run_cli(["evaluate", copy, "--num-samples", "2", "--overwrite"], capsys)[0] == 0


def test_a_relative_data_path_is_found_from_another_folder(tmp_path, capsys, monkeypatch):
    work = tmp_path / "project"
    work.mkdir()
    _tiny_csv(work / "rows.csv", 40, 3)
    monkeypatch.chdir(work)
    assert (
        main(
            [
                "train",
                "--data",
                "array",
                "--path",
                "rows.csv",
                "--likelihood",
                "gaussian",
                "--runs-dir",
                "runs",
                "--name",
                "rel",
                *TINY,
            ]
        )
        == 0
    )
    monkeypatch.chdir(tmp_path)  # another folder: rows.csv is not there
    code, out, err = run_cli(["evaluate", "project/runs/rel", "--num-samples", "2"], capsys)
    assert code == 0, err
    (tmp_path / "project" / "runs" / "rel" / "data.json").unlink()  # a run without the record (older runs)
    line = error_line(*run_cli(["evaluate", "project/runs/rel", "--num-samples", "2", "--overwrite"], capsys))
    assert line == (
        f"vaekit: error: the data file rows.csv (a path relative to the folder the run was trained from) of "
        f"run project/runs/rel does not exist from {tmp_path}; run the command from the folder the run was "
        "trained in, or put the file back at that path"
    )


# --- issue 30: unbounded work ------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, flag, high",
    [
        (["evaluate", "{run}", "--num-samples", "1000000000"], "--num-samples", 100000),
        (["ood", "{run}", "--input", "{rows}", "--num-samples", "1000000000"], "--num-samples", 100000),
        (["score", "{run}", "--input", "{rows}", "--num-samples", "1000000000"], "--num-samples", 100000),
        (
            ["ood", "{run}", "--input", "{rows}", "--num-posterior-samples", "1000000000"],
            "--num-posterior-samples",
            1000,
        ),
        (["ood", "{run}", "--input", "{rows}", "--regret-steps", "1000000000"], "--regret-steps", 100000),
    ],
)
def test_counts_that_multiply_work_are_bounded(run, tmp_path, capsys, argv, flag, high):
    rows = _tiny_csv(tmp_path / "rows.csv", 4, 64)
    argv = [str(a).format(run=run, rows=rows) for a in argv]
    line = error_line(*run_cli(argv, capsys))
    assert line.startswith(f"vaekit: error: {flag} must be an integer in [1, {high}], got 1000000000"), line


def test_eval_num_samples_is_bounded_before_training(tmp_path, capsys):
    line = error_line(*run_cli(["train", "--runs-dir", tmp_path, *TINY, "--eval-num-samples", "1000000000"], capsys))
    assert line == (
        "vaekit: error: eval_num_samples must be an integer in [1, 100000] (samples per example; more runs "
        "for days), got 1000000000; fix the --eval-num-samples flag or the config file"
    )
    assert not any(tmp_path.iterdir())


def test_the_cli_sample_bound_is_the_config_bound():
    from vaekit.cli.common import NUM_SAMPLES
    from vaekit.config import MAX_NUM_SAMPLES

    assert NUM_SAMPLES.high == MAX_NUM_SAMPLES


def test_anomaly_scores_beyond_the_memory_budget_are_refused_before_allocating(run, tmp_path, capsys, monkeypatch):
    from vaekit.runtime import budget

    monkeypatch.setattr(budget, "available_bytes", lambda: 2**30)  # a machine with 1 GiB free
    rows = _tiny_csv(tmp_path / "rows.csv", 4, 64)
    line = error_line(
        *run_cli(["score", run, "--input", rows, "--num-samples", "20000", "--threshold", "0", "--no-progress"], capsys)
    )
    assert line == (
        "vaekit: error: num_samples 20000 needs about 3.7 GiB of memory for the reconstruction_probability of "
        "blocks of 256 rows of 64 values, more than half of the 1.0 GiB this machine has available; use at "
        "most num_samples 2674"
    )


def test_evaluate_shows_progress_of_the_log_likelihood(run, tmp_path, capsys):
    code, out, err = run_cli(["evaluate", run, "--num-samples", "50", "--output", tmp_path / "e.json"], capsys)
    assert code == 0
    lines = [line for line in err.splitlines() if line.startswith("evaluate: decoded sample")]
    assert lines and lines[-1].startswith("evaluate: decoded sample ") and "/" in lines[-1]
    done, total = lines[-1].split()[3].split("/")
    assert done == total
    code, out, err = run_cli(
        ["evaluate", run, "--num-samples", "50", "--output", tmp_path / "f.json", "--no-progress"], capsys
    )
    assert code == 0 and "decoded sample" not in err


# --- issue 30: messages that name the file ----------------------------------------------------


def test_a_deeply_nested_config_names_the_file(run, tmp_path, capsys):
    deep = tmp_path / "deep.json"
    deep.write_text('{"a":' * 100000 + "1" + "}" * 100000)
    line = error_line(*run_cli(["train", "--config-file", deep, "--runs-dir", tmp_path / "runs"], capsys))
    assert line.startswith(
        f"vaekit: error: config file {deep} nests its JSON objects or lists too deeply to be a config"
    )
    copy = tmp_path / "r"
    shutil.copytree(run, copy)
    shutil.copy(deep, copy / "config.json")
    line = error_line(*run_cli(["evaluate", copy, "--num-samples", "2"], capsys))
    assert line == (
        f"vaekit: error: {copy / 'config.json'} nests its JSON objects or lists too deeply (thousands of "
        "levels): it is not a file vaekit wrote; restore it from a copy (or write the run again)"
    )


@pytest.mark.parametrize(
    "record, message",
    [
        (
            {"mean": [0.0, 1.0, 2.0, 3.0], "scale": [1.0, 0.0, 1.0, 0.0]},
            "a scaler record needs a finite mean and a positive finite scale for every feature; 2 feature(s) have not: "
            "1 (mean 1, scale 0), 3 (mean 3, scale 0)",
        ),
        (
            {"mean": [0.0, 1.0, 2.0, 3.0], "scale": [1.0, 1.0]},
            "a scaler record's 'mean' has 4 values but 'scale' has 2; one of each per feature",
        ),
        ({"mean": [0.0]}, "a scaler record needs 'mean' and 'scale' lists"),
    ],
)
def test_a_damaged_scaler_names_the_file_and_the_features(tabular_run, tmp_path, capsys, record, message):
    run, _ = tabular_run
    copy = tmp_path / "t"
    shutil.copytree(run, copy)
    (copy / "scaler.json").write_text(json.dumps(record))
    rows = tmp_path / "rows.csv"
    rows.write_text("a,b,c,d\n1,2,3,4\n")
    for argv in (
        ["score", copy, "--input", rows, "--threshold", "0"],
        ["sample", copy, "--output", tmp_path / "x.npy"],
    ):
        line = error_line(*run_cli(argv, capsys))
        assert line.startswith(f"vaekit: error: {copy / 'scaler.json'} is damaged: {message}"), line
        assert line.endswith("; restore it from a copy of the run, or train the run again (vaekit train writes it)")


def test_a_missing_scaler_of_a_standardised_run_is_refused(tabular_run, tmp_path, capsys):
    run, _ = tabular_run
    assert json.loads((run / "data.json").read_text())["standardized"] is True
    copy = tmp_path / "t"
    shutil.copytree(run, copy)
    (copy / "scaler.json").unlink()
    rows = tmp_path / "rows.csv"
    rows.write_text("a,b,c,d\n1,2,3,4\n")
    line = error_line(*run_cli(["score", copy, "--input", rows, "--threshold", "0"], capsys))
    assert line == (
        f"vaekit: error: {copy / 'scaler.json'} is missing, but run {copy} standardised its features in "
        "training (RUN/data.json says so), so its inputs cannot be scaled as the model expects; restore it "
        "from a copy of the run, or train the run again (vaekit train writes it)"
    )


def test_evaluate_on_a_run_still_training_names_the_process(run, capsys):
    import os

    with io.hold_run(run):  # as a vaekit train does while it trains
        line = error_line(*run_cli(["evaluate", run, "--num-samples", "2"], capsys))
    assert line == (
        f"vaekit: error: run {run} is still training (process {os.getpid()}, lock {io.lock_path(run)}): its "
        "model and summary are not final yet; wait for it to end (or stop it: kill "
        f"{os.getpid()}), then run the command again"
    )


# --- issue 30: a run folder that no longer matches what it says ----------------------------------------


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda c: c.update(format_version=99),
            "has format_version 99, which this vaekit does not know (it reads "
            "formats 1 to 2): it was written by a newer vaekit, or edited",
        ),
        (lambda c: c["config"]["model"].update(latent_dim=3), "does not describe the weights in"),
        (
            lambda c: c["config"]["model"].update(latent_dim=10**30),
            ": model.latent_dim = 1000000000000000000000000000000 is beyond any network vaekit builds",
        ),
        (
            lambda c: c.update(data_shape=[1, 8, 0]),
            ": data_shape must be a list of sizes in [1, 2147483647], got [1, 8, 0]",
        ),
    ],
)
def test_a_hand_edited_config_names_the_file_and_the_fix(run, tmp_path, capsys, edit, message):
    copy = tmp_path / "r"
    shutil.copytree(run, copy)
    record = json.loads((copy / "config.json").read_text())
    edit(record)
    (copy / "config.json").write_text(json.dumps(record))
    for argv in (["evaluate", copy, "--num-samples", "2"], ["sample", copy, "--output", tmp_path / "x.npy"]):
        line = error_line(*run_cli(argv, capsys))
        assert line.startswith(f"vaekit: error: {copy / 'config.json'}") and message in line, line
        assert "Traceback" not in line and "size mismatch" not in line and "Overflow" not in line
    if "latent_dim=3" in message or "describe" in message:
        assert "(encoder.head.linear.weight is (4, 16) in the weights but (6, 16) for the config)" in line
