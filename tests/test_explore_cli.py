"""Every generation and exploration command end to end on the digits, through ``vaekit.cli.main``,
for an unconditional VAE (latent_dim 4) and a CVAE (latent_dim 2)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vaekit import io
from vaekit.cli import COMMANDS, main

torch.set_num_threads(1)
TINY = ["--epochs", "2", "--hidden", "32", "--eval-num-samples", "5", "--no-progress"]


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs")
    assert (
        main(["train", "--model", "vae", "--latent-dim", "4", "--runs-dir", str(folder), "--name", "vae", *TINY]) == 0
    )
    assert (
        main(["train", "--model", "cvae", "--latent-dim", "2", "--runs-dir", str(folder), "--name", "cvae", *TINY]) == 0
    )
    return folder


def test_commands_registered():
    assert {"sample", "reconstruct", "manifold", "interpolate", "traverse", "iterate", "embed", "report"} <= set(
        COMMANDS
    )


def test_train_writes_figures_and_report(runs_dir):
    vae, cvae = runs_dir / "vae", runs_dir / "cvae"
    for name in (
        "report.html",
        "environment.json",
        "latent_scatter.png",
        "traversals.png",
        "interpolation.png",
        "iterated.png",
        "reconstructions.png",
        "samples.png",
        "loss_curves.png",
    ):
        assert (vae / name).is_file() and (cvae / name).is_file(), name
    assert (vae / "principal_grid.png").is_file() and (cvae / "latent_manifold.png").is_file()
    assert (cvae / "class_samples.png").is_file()
    config = io.read_json(cvae / "config.json")
    assert config["config"]["data"]["condition_on"] == "digit" and config["extra"] == {"num_classes": 10}
    summary = io.read_json(cvae / "summary.json")
    assert summary["conditioned_on"] == "digit" and np.isfinite(summary["test"]["log_likelihood"])


def test_sample_with_label_and_class_grid(runs_dir, tmp_path):
    run = str(runs_dir / "cvae")
    assert main(["sample", run, "--label", "5", "--n", "6", "--output", str(tmp_path / "five.npy")]) == 0
    assert np.load(tmp_path / "five.npy").shape == (6, 1, 8, 8)
    assert main(["sample", run, "--n", "20", "--output", str(tmp_path / "grid.npy")]) == 0
    grid = np.load(tmp_path / "grid.npy")
    assert grid.shape == (10, 2, 1, 8, 8)
    assert main(["sample", run, "--n", "20"]) == 0 and (runs_dir / "cvae" / "class-samples-20.png").is_file()
    assert (
        main(["sample", str(runs_dir / "vae"), "--n", "4", "--temperature", "0.5", "--output", str(tmp_path / "t.png")])
        == 0
    )


def test_sample_label_needs_conditional_model(runs_dir, capsys):
    assert main(["sample", str(runs_dir / "vae"), "--label", "3"]) == 1
    assert "--label needs a conditional model" in capsys.readouterr().err


@pytest.mark.parametrize("run", ["vae", "cvae"])
def test_exploration_commands(runs_dir, tmp_path, run):
    folder = str(runs_dir / run)
    out = tmp_path
    assert main(["reconstruct", folder, "--n", "5", "--output", str(out / "r.npy")]) == 0
    assert np.load(out / "r.npy").shape == (5, 1, 8, 8)
    assert main(["manifold", folder, "--n", "4", "--output", str(out / "m.npy")]) == 0
    assert np.load(out / "m.npy").shape == (4, 4, 1, 8, 8)
    assert main(["interpolate", folder, "--index", "0", "7", "--num-steps", "5", "--output", str(out / "i.npy")]) == 0
    strips = np.load(out / "i.npy")
    assert strips.shape == (2, 5, 1, 8, 8)
    np.testing.assert_allclose(strips[0, [0, -1]], strips[1, [0, -1]], atol=1e-6)  # same endpoints
    assert main(["traverse", folder, "--index", "3", "--num-values", "5", "--output", str(out / "t.npy")]) == 0
    latent_dim = 4 if run == "vae" else 2
    assert np.load(out / "t.npy").shape == (latent_dim, 5, 1, 8, 8)
    assert main(["traverse", folder, "--dims", "1", "--output", str(out / "t1.png")]) == 0
    assert main(["iterate", folder, "--index", "0", "1", "--num-steps", "3", "--output", str(out / "it.npy")]) == 0
    assert np.load(out / "it.npy").shape == (2, 4, 1, 8, 8)
    for name in ("t1.png",):
        assert (out / name).stat().st_size > 0
    assert main(["interpolate", folder]) == 0 and (runs_dir / run / "interpolation-test-0-1.png").is_file()


def test_interpolate_image_files(runs_dir, tmp_path):
    from PIL import Image

    for i, name in enumerate(("a.png", "b.png")):
        array = np.zeros((32, 32), dtype=np.uint8)
        array[:, i * 16 : (i + 1) * 16] = 255
        Image.fromarray(array).save(tmp_path / name)
    images = [str(tmp_path / "a.png"), str(tmp_path / "b.png")]
    assert main(["interpolate", str(runs_dir / "vae"), "--images", *images, "--output", str(tmp_path / "f.png")]) == 0
    assert (
        main(
            [
                "interpolate",
                str(runs_dir / "cvae"),
                "--images",
                *images,
                "--labels",
                "1",
                "7",
                "--method",
                "spherical",
                "--output",
                str(tmp_path / "g.npy"),
            ]
        )
        == 0
    )
    assert np.load(tmp_path / "g.npy").shape == (1, 10, 1, 8, 8)
    assert main(["interpolate", str(runs_dir / "cvae"), "--images", *images]) == 1


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_embed_writes_codes_labels_and_scatter(runs_dir, tmp_path, method):
    prefix = tmp_path / f"emb-{method}"
    assert main(["embed", str(runs_dir / "vae"), "--method", method, "--output", str(prefix)]) == 0
    codes = np.load(f"{prefix}.npy")
    assert codes.shape == (360, 4)
    table = np.loadtxt(f"{prefix}.csv", delimiter=",", skiprows=1)
    header = Path(f"{prefix}.csv").read_text().splitlines()[0].split(",")
    assert header == ["z0", "z1", "z2", "z3", "digit"]
    np.testing.assert_allclose(table[:, :4], codes, rtol=1e-4, atol=1e-5)
    assert sorted(np.unique(table[:, 4])) == list(range(10))
    assert (tmp_path / f"emb-{method}.png").stat().st_size > 0


def test_report_command_single_and_comparison(runs_dir, tmp_path):
    run = runs_dir / "vae"
    (run / "report.html").unlink()
    io.write_json(run / "evaluation-extra.json", {"test": {"log_likelihood": -30.5}, "num_samples": 5})
    assert main(["report", str(run)]) == 0
    html = (run / "report.html").read_text()
    assert "evaluation-extra.json" in html and "-30.5" in html and 'id="metrics-table"' in html
    assert "http://" not in html and "https://" not in html  # self-contained
    assert html.count("data:image/png;base64,") == len(list(run.glob("*.png")))
    out = tmp_path / "cmp.html"
    assert main(["report", str(run), str(runs_dir / "cvae"), "--output", str(out)]) == 0
    page = out.read_text()
    assert "log_likelihood" in page and "cvae" in page and "condition_on" in page
    assert main(["report", str(tmp_path)]) == 1


def test_evaluate_command_on_cvae(runs_dir, tmp_path):
    out = tmp_path / "ev.json"
    assert main(["evaluate", str(runs_dir / "cvae"), "--num-samples", "5", "--output", str(out)]) == 0
    assert np.isfinite(json.loads(out.read_text())["test"]["log_likelihood"])


def test_tabular_cvae_end_to_end(tmp_path, capsys):
    """A CVAE on a CSV with a label column: codes, traversal arrays and the report work; image
    figures are refused with a clear message."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 5))
    table = np.hstack([x, (x[:, :1] > 0).astype(int)])
    np.savetxt(tmp_path / "t.csv", table, delimiter=",", header="a,b,c,d,e,cls", comments="", fmt="%.5f")
    args = [
        "train",
        "--data",
        "array",
        "--path",
        str(tmp_path / "t.csv"),
        "--label-column",
        "cls",
        "--model",
        "cvae",
        "--likelihood",
        "gaussian",
        "--latent-dim",
        "2",
        "--runs-dir",
        str(tmp_path),
        "--name",
        "tab",
        *TINY,
    ]
    assert main(args) == 0
    run = tmp_path / "tab"
    assert {p.name for p in run.glob("*.png")} == {"loss_curves.png", "latent_scatter.png"}
    assert "latent_scatter.png" in (run / "report.html").read_text()
    assert main(["traverse", str(run), "--output", str(tmp_path / "t.npy")]) == 0
    assert np.load(tmp_path / "t.npy").shape == (2, 9, 5)
    assert main(["embed", str(run), "--output", str(tmp_path / "e")]) == 0
    assert (tmp_path / "e.csv").read_text().splitlines()[0] == "z0,z1,cls"
    capsys.readouterr()
    assert main(["sample", str(run), "--n", "4"]) == 1
    assert "a PNG needs image data" in capsys.readouterr().err
