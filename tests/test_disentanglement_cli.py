"""End to end from the CLI: train on dsprites-synthetic, then `vaekit evaluate disentanglement`."""

import json

import pytest

from vaekit.benchmarks.disentanglement import benchmark_configs, markdown
from vaekit.cli import COMMANDS, main


@pytest.mark.slow
def test_train_then_evaluate_disentanglement(tmp_path, capsys):
    runs = str(tmp_path)
    assert main(["train", "--data", "dsprites-synthetic", "--image-size", "16", "--grid-step", "8", "--model",
                 "betatc", "--beta", "6", "--latent-dim", "4", "--hidden", "64", "--epochs", "1",
                 "--eval-num-samples", "2", "--runs-dir", runs, "--name", "tc", "--no-progress"]) == 0
    history = [json.loads(line) for line in (tmp_path / "tc" / "metrics.jsonl").read_text().splitlines()]
    assert {"val_kl_mi", "val_kl_tc", "val_kl_dimwise", "val_kl_per_dim"} <= set(history[-1])
    assert main(["evaluate", "disentanglement", f"{runs}/tc", "--num-train", "300", "--num-eval", "100",
                 "--dci-num-train", "100"]) == 0
    report = json.loads((tmp_path / "tc" / "disentanglement.json").read_text())
    assert set(report["metrics"]) == {"beta_vae", "factor_vae", "mig", "dci", "sap"}
    assert report["metrics"]["dci"]["arguments"]["num_train"] == 100
    assert 0 <= report["headline"]["mig.mig"] <= 1 and len(report["kl"]["kl_per_dim"]) == 4
    for name in ("traversals.png", "kl_per_dim.png", "factor_response.png"):
        assert (tmp_path / "tc" / name).stat().st_size > 0
    assert "mig.mig" in capsys.readouterr().out


def test_evaluate_disentanglement_needs_factors(tmp_path, capsys):
    assert main(["train", "--epochs", "1", "--hidden", "16", "--latent-dim", "2", "--eval-num-samples", "2",
                 "--runs-dir", str(tmp_path), "--name", "d", "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["evaluate", "disentanglement", str(tmp_path / "d")]) == 1
    assert "ground-truth factors" in capsys.readouterr().err


def test_benchmark_configs_share_everything_but_the_objective():
    configs = benchmark_configs()
    assert "benchmark disentanglement" in COMMANDS and "evaluate disentanglement" in COMMANDS
    assert [c.train.beta for c in configs.values()] == [1.0, 4.0, 6.0, 1000.0]
    assert configs["beta-tcvae"].model.name == "betatc" and configs["capacity-vae"].train.capacity_max == 25.0
    shared = {k for k in configs["vae"].to_flat() if k not in ("model", "beta", "capacity_max", "capacity_steps")}
    assert all(c.to_flat()[k] == configs["vae"].to_flat()[k] for c in configs.values() for k in shared)
    row = {"config": {"beta": 4.0}, "test_elbo": -50.0, "train_s": 3.0,
           "kl": {"kl": 9.0, "kl_mi": 1.0, "kl_tc": 2.0, "kl_dimwise": 6.0},
           "headline": {k: 0.5 for k in ("beta_vae.eval_accuracy", "factor_vae.eval_accuracy", "mig.mig",
                                         "dci.disentanglement", "dci.completeness", "dci.informativeness_test",
                                         "sap.sap")}}
    table = markdown({"command": "vaekit benchmark disentanglement", "date": "d", "machine": "m",
                      "models": {"beta-vae": row}})
    assert "| beta-vae | 4 | 0.500 |" in table and "99" in table


def test_full_scale_configs_build():
    from vaekit import build_model

    configs = benchmark_configs(full=True)
    assert {c.data.image_size for c in configs.values()} == {64} and configs["vae"].model.net == "conv"
    assert configs["capacity-vae"].train.capacity_steps > 100_000
    model = build_model(configs["beta-tcvae"], (1, 64, 64))
    assert model.transform(__import__("torch").zeros(2, 1, 64, 64)).shape == (2, 10)
