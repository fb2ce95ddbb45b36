"""Issue 12: every bad input and fault the issue lists, one test each: refused in one actionable
line (what was received, what is expected, how to fix), nothing lost."""

import json
import shutil
import threading

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

@pytest.mark.parametrize("settings, flag", [
    ({"beta": float("nan")}, "beta"), ({"lr": float("inf")}, "lr"), ({"weight_decay": float("nan")}, "weight_decay"),
    ({"epochs": True}, "epochs"), ({"latent_dim": 2.0}, "latent_dim"), ({"noise_std": "0.1"}, "noise_std"),
])
def test_config_refuses_non_finite_bools_and_strings(settings, flag):
    with pytest.raises((ValueError, TypeError), match=flag):
        Config.from_flat(**settings)


@pytest.mark.parametrize("flags, named", [(["--model", "ae", "--noise-std", "nan"], "noise_std"),
                                          (["--beta", "nan"], "beta"), (["--lr", "inf"], "lr")])
def test_cli_non_finite_setting_names_its_flag(tmp_path, capsys, flags, named):
    line = error_line(*run_cli(["train", "--runs-dir", tmp_path, *flags, *TINY], capsys))
    assert named in line and "finite" in line and "--" + named.replace("_", "-") in line
    assert not any(tmp_path.iterdir())  # refused before a folder was made


@pytest.mark.parametrize("text, named", [('{"beta": "4"}', "beta"), ('{"epochs": NaN}', "NaN"),
                                         ('{"lr": Infinity}', "Infinity"), ('{"train": {"epochs": "3"}}', "epochs")])
def test_config_file_with_strings_or_nan_literals(tmp_path, capsys, text, named):
    path = tmp_path / "c.json"
    path.write_text(text)
    line = error_line(*run_cli(["train", "--config-file", path, "--runs-dir", tmp_path / "runs"], capsys))
    assert str(path) in line and named in line


# --- CLI counts and sizes -------------------------------------------------------------------------

@pytest.mark.parametrize("argv, flag", [
    (["evaluate", "{run}", "--batch-size", "-3"], "--batch-size"), (["evaluate", "{run}", "--batch-size", "0"], "--batch-size"),
    (["evaluate", "{run}", "--num-samples", "0"], "--num-samples"), (["sample", "{run}", "--n", "0"], "--n"),
    (["sample", "{run}", "--temperature", "nan"], "--temperature"), (["reconstruct", "{run}", "--n", "-5"], "--n"),
    (["manifold", "{run}", "--n", "0"], "--n"), (["interpolate", "{run}", "--num-steps", "1"], "--num-steps"),
    (["traverse", "{run}", "--num-dims", "0"], "--num-dims"), (["traverse", "{run}", "--span", "inf"], "--span"),
    (["iterate", "{run}", "--num-steps", "-1"], "--num-steps"), (["iterate", "{run}", "--index"], "--index"),
    (["embed", "{run}", "--seed", "-1"], "--seed"),
    (["evaluate", "robustness", "{run}", "--max-test", "0"], "--max-test"),
    (["evaluate", "robustness", "{run}", "--epsilons", "nan"], "--epsilons"),
    (["evaluate", "robustness", "{run}", "--fid-epochs", "-1"], "--fid-epochs"),
    (["evaluate", "disentanglement", "{run}", "--num-train", "0"], "--num-train"),
    (["score", "{run}", "--input", "x.csv", "--fpr", "2"], "--fpr"),
    (["benchmark", "robustness", "--jobs", "0"], "--jobs"), (["benchmark", "anomaly", "--classes", "11"], "classes"),
    (["benchmark", "disentanglement", "--epochs", "0"], "--epochs"),
    (["ood", "{run}", "--input", "x.csv", "--num-samples", "0"], "--num-samples"), (["sweep", "--jobs", "0"], "--jobs"),
    (["sweep", "--seeds", "-1"], "--seeds"), (["benchmark", "robustness-seeds", "--max-test", "0"], "--max-test"),
    (["benchmark", "robustness-seeds", "--train-size", "0"], "--train-size"),
    (["evaluate", "{run}", "--batch-size", "abc"], "--batch-size"), (["evaluate", "{run}", "--batch-size", "True"], "--batch-size"),
])
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
    line = error_line(*run_cli(["train", "--data", "array", "--path", path, "--runs-dir", tmp_path / "runs", *TINY],
                               capsys))
    assert str(path) in line and "not UTF-8" in line and "line 3" in line and "iconv" in line
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_one_row_csv_needs_two(tmp_path, capsys):
    path = tmp_path / "one.csv"
    path.write_text("0.1,0.2,0.3\n")
    line = error_line(*run_cli(["train", "--data", "array", "--path", path, "--runs-dir", tmp_path / "runs", *TINY],
                               capsys))
    assert str(path) in line and "1 example" in line and "at least 2" in line


def test_cvae_labels_that_are_codes_not_classes(tmp_path, capsys):
    rng = np.random.default_rng(0)
    path = tmp_path / "codes.csv"
    y = np.where(np.arange(40) % 2 == 0, 0, 10**9)
    np.savetxt(path, np.column_stack([rng.random((40, 4)), y]), delimiter=",", fmt="%.6g")
    line = error_line(*run_cli(["train", "--model", "cvae", "--data", "array", "--path", path, "--label-column", "4",
                                "--likelihood", "gaussian", "--runs-dir", tmp_path / "runs", *TINY], capsys))
    assert "1000000000" in line and "class indices 0..K-1" in line and "return_inverse" in line
    from vaekit.pipeline import class_count

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
    line = error_line(*run_cli(["train", "--lr", "1e8", "--epochs", "3", "--latent-dim", "2", "--hidden", "16",
                                "--eval-num-samples", "5", "--no-progress", "--runs-dir", tmp_path, "--name", "d"],
                               capsys))
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
    code, _, err = run_cli(["train", "--data", "image-folder", "--path", folder, "--image-size", "8",
                            "--runs-dir", tmp_path / "runs", "--name", "bad", *TINY], capsys)
    assert code != 0 and len(err.strip().splitlines()) == 1 and "broken.png" in err, err
    assert not (tmp_path / "runs" / "bad").exists()  # the name is free again


def test_run_folder_creation_is_atomic(tmp_path):
    from vaekit.pipeline import create_run_dir

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
    assert all("--resume" in str(r) for r in results if isinstance(r, Exception))


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
    from vaekit import pipeline

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "train_run", interrupted)
    code, _, err = run_cli(["train", "--resume", run, "--no-progress"], capsys)
    assert code == 130 and f"vaekit train --resume {run}" in err and len(err.strip().splitlines()) == 1


# --- one MSE, figures kept ------------------------------------------------------------------------------

def test_one_mse_definition_in_evaluate_and_robustness(run, tmp_path, capsys):
    from vaekit.evaluation import UNITS, reconstruction_mse
    from vaekit.pipeline import load_run_split

    assert run_cli(["evaluate", run, "--num-samples", "2", "--output", tmp_path / "e.json"], capsys)[0] == 0
    assert run_cli(["evaluate", "robustness", run, "--num-steps", "1", "--epsilons", "0", "--consistency-steps", "0",
                    "--fid-epochs", "0", "--output", tmp_path / "r.json"], capsys)[0] == 0
    evaluation, robustness = json.loads((tmp_path / "e.json").read_text()), json.loads((tmp_path / "r.json").read_text())
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
        assert name in line and "vaekit train wrote" in line
    assert before == {name: (run / name).read_bytes() for name in before}
    (run / "interpolation-test-0-1.png").unlink()
    (run / "iterated-test.png").unlink()


def _hashes(folder):
    import hashlib

    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_empty_npy_file(tmp_path, capsys):
    """Found by tests/test_fuzz_cli.py: an empty .npy gave an internal EOFError."""
    path = tmp_path / "empty.npy"
    path.write_bytes(b"")
    line = error_line(*run_cli(["train", "--data", "array", "--path", path, "--runs-dir", tmp_path / "runs", *TINY],
                               capsys))
    assert str(path) in line and "numpy.save" in line


def test_a_network_too_large_to_build_is_refused_before_allocating(tmp_path, capsys):
    line = error_line(*run_cli(["train", "--runs-dir", tmp_path, *TINY, "--latent-dim", "1000000000"], capsys))
    assert "parameters" in line and "GiB" in line and "lower --latent-dim" in line
    from vaekit import build_model

    with pytest.raises(ValueError, match="parameters"):
        build_model(Config.from_flat(model="cvae").model, (1, 8, 8), num_classes=10**9)
