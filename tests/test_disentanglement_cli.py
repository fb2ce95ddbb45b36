"""End to end from the CLI: train on dsprites-synthetic, then `vaekit evaluate disentanglement`."""

import json

import pytest

from vaekit.benchmarks.disentanglement import benchmark_configs, spec
from vaekit.cli import COMMANDS, main


@pytest.fixture
def toy_dci(monkeypatch):
    """DCI's gradient-boosted classifiers with 5 trees instead of 100 (most of the time of a toy run): the
    end-to-end tests here check what the CLI and the benchmark do with the scores, not their values
    (tests/test_disentanglement_metrics.py checks those)."""
    import functools

    from sklearn.ensemble import GradientBoostingClassifier

    from vaekit.evaluation.disentanglement import dci

    monkeypatch.setattr(
        dci, "GradientBoostingClassifier", functools.partial(GradientBoostingClassifier, n_estimators=5)
    )


@pytest.mark.slow
def test_train_then_evaluate_disentanglement(tmp_path, capsys, toy_dci):
    runs = str(tmp_path)
    assert (
        main(
            [
                "train",
                "--data",
                "dsprites-synthetic",
                "--image-size",
                "16",
                "--grid-step",
                "8",
                "--model",
                "betatc",
                "--beta",
                "6",
                "--latent-dim",
                "4",
                "--hidden",
                "64",
                "--epochs",
                "1",
                "--eval-num-samples",
                "2",
                "--runs-dir",
                runs,
                "--name",
                "tc",
                "--no-progress",
            ]
        )
        == 0
    )
    history = [json.loads(line) for line in (tmp_path / "tc" / "metrics.jsonl").read_text().splitlines()]
    assert {"val_kl_mi", "val_kl_tc", "val_kl_dimwise", "val_kl_per_dim"} <= set(history[-1])
    assert (
        main(
            [
                "evaluate",
                "disentanglement",
                f"{runs}/tc",
                "--num-train",
                "300",
                "--num-eval",
                "100",
                "--dci-num-train",
                "100",
            ]
        )
        == 0
    )
    report = json.loads((tmp_path / "tc" / "disentanglement.json").read_text())
    assert set(report["metrics"]) == {"beta_vae", "factor_vae", "mig", "dci", "sap"}
    assert report["metrics"]["dci"]["arguments"]["num_train"] == 100
    assert 0 <= report["headline"]["mig.mig"] <= 1 and len(report["kl"]["kl_per_dim"]) == 4
    for name in ("traversals.png", "kl_per_dim.png", "factor_response.png"):
        assert (tmp_path / "tc" / name).stat().st_size > 0
    assert "mig.mig" in capsys.readouterr().out


def test_evaluate_disentanglement_needs_factors(tmp_path, capsys):
    assert (
        main(
            [
                "train",
                "--epochs",
                "1",
                "--hidden",
                "16",
                "--latent-dim",
                "2",
                "--eval-num-samples",
                "2",
                "--runs-dir",
                str(tmp_path),
                "--name",
                "d",
                "--no-progress",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["evaluate", "disentanglement", str(tmp_path / "d")]) == 1
    assert "ground-truth factors" in capsys.readouterr().err


def test_benchmark_configs_share_everything_but_the_objective():
    configs = benchmark_configs()
    assert "benchmark disentanglement" in COMMANDS and "evaluate disentanglement" in COMMANDS
    assert {k: configs[k].train.beta for k in ("vae", "beta-vae", "beta-tcvae", "capacity-vae")} == {
        "vae": 1.0,
        "beta-vae": 4.0,
        "beta-tcvae": 6.0,
        "capacity-vae": 2.6,
    }
    assert [configs[k].model.name for k in ("factor-vae", "dip-vae-i", "dip-vae-ii")] == [
        "factorvae",
        "dip-vae-i",
        "dip-vae-ii",
    ]
    assert configs["beta-tcvae"].model.name == "betatc" and configs["capacity-vae"].objective.capacity_max == 25.0
    assert {c.model.net for c in configs.values()} == {"conv"} and configs["vae"].data.image_size == 32
    shared = {k for k in configs["vae"].to_flat() if k not in ("model", "beta", "capacity_max", "capacity_steps")}
    assert all(c.to_flat()[k] == configs["vae"].to_flat()[k] for c in configs.values() for k in shared)
    sweep = spec(seeds=(0, 1, 2, 3, 4))
    assert len(sweep.points()) == 5 * len(configs) and sweep.arms["vae"] == {}
    assert sweep.arms["beta-tcvae"] == {"model": "betatc", "beta": 6.0}


@pytest.mark.slow
def test_benchmark_over_seeds_resumes_and_reports_distributions(tmp_path, monkeypatch, capsys, toy_dci):
    """The benchmark end to end at a toy scale: 2 models x 2 seeds, then a rerun that trains nothing."""
    from vaekit.benchmarks import disentanglement as bench

    monkeypatch.setitem(
        bench.SCALES,
        "default",
        {
            "image_size": 16,
            "grid_step": 8,
            "epochs": 1,
            "batch_size": 64,
            "lr": 1e-3,
            "net": "mlp",
            "hidden": (32,),
            "dci": {"num_train": 100, "num_test": 50},
        },
    )
    args = [
        "benchmark",
        "disentanglement",
        "--models",
        "vae",
        "beta-tcvae",
        "--baselines",
        "--seeds",
        "0",
        "1",
        "--jobs",
        "1",
        "--output",
        str(tmp_path),
    ]  # no baselines: tests/test_disentanglement_baselines.py
    assert main(args) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    row = results["models"]["beta-tcvae"]
    assert row["seeds"] == [0, 1] and set(row["per_seed"]) == {"0", "1"}
    mig = row["aggregate"]["mig.mig"]
    assert mig["n"] == 2 and mig["ci95_low"] <= mig["mean"] <= mig["ci95_high"] and len(mig["values"]) == 2
    assert row["per_seed"]["0"]["mig.mig"] != row["per_seed"]["1"]["mig.mig"]  # the seed moves the score
    assert (tmp_path / "per_seed.png").stat().st_size > 0 and "| beta-tcvae | 2 |" in (
        tmp_path / "results.md"
    ).read_text()
    effect = results["model_effect"]["mig.mig"]
    assert 0 <= effect["eta_squared"] <= 1 and 0 <= effect["p"] <= 1 and effect["runs"] == 4
    stamp = (tmp_path / "runs" / "vae-seed0" / "model.safetensors").stat().st_mtime_ns
    capsys.readouterr()
    assert main(args) == 0  # resumed: every point is finished, nothing is trained again
    assert (tmp_path / "runs" / "vae-seed0" / "model.safetensors").stat().st_mtime_ns == stamp


def test_capacity_gamma_scales_the_papers_setting_by_pixels_and_anneal_steps():
    """Issue 21: γ = 1000 (Burgess et al. 2018: 64×64, C → 25 over 100,000 steps) scaled by pixels/4096 and
    min(1, steps/100,000); the CPU benchmark's 32×32 with a 2,080-step anneal gets 5.2, and uses half of it
    (2.6: 5.2 still collapsed 1 seed of 5), above the 1 that pins KL to C (the β = 1 VAE's natural KL, 10.5
    nats, is below C = 25) and far below the γ = 1000 that collapsed every seed."""
    from vaekit.benchmarks.disentanglement import CAPACITY_PAPER, SAFETY, capacity_gamma

    assert capacity_gamma(CAPACITY_PAPER["pixels"], CAPACITY_PAPER["steps"]) == 1000.0
    assert capacity_gamma(32 * 32, 100_000) == 250.0 and capacity_gamma(64 * 64, 50_000) == 500.0
    assert capacity_gamma(64 * 64, 400_000) == 1000.0  # longer anneals keep the paper's γ
    config = benchmark_configs()["capacity-vae"]
    train, objective = config.train, config.objective
    assert objective.capacity_steps == 2080 and objective.capacity_max == 25.0 and train.beta == 2.6
    assert train.beta == round(SAFETY * capacity_gamma(32 * 32, objective.capacity_steps), 2) and 1 < train.beta < 1000
    assert benchmark_configs(full=True)["capacity-vae"].train.beta == 1000.0
    with pytest.raises(ValueError, match="positive"):
        capacity_gamma(0, 10)


def test_rerunning_one_model_keeps_the_others_committed_rows(tmp_path):
    from vaekit.benchmarks.disentanglement import kept_rows

    sweep = spec()
    row = {"changes": sweep.arms["beta-vae"], "seeds": list(sweep.seeds), "aggregate": {}}
    stale = {"changes": {"beta": 1000.0, "capacity_max": 25.0, "capacity_steps": 2080}, "seeds": list(sweep.seeds)}
    (tmp_path / "results.json").write_text(
        json.dumps(
            {"config": sweep.base, "date": "d", "command": "c", "models": {"beta-vae": row, "capacity-vae": stale}}
        )
    )
    kept = kept_rows(tmp_path / "results.json", sweep, {"vae": {}})
    assert list(kept) == ["beta-vae"] and kept["beta-vae"]["kept_from"] == "d: `c`"  # the changed model is dropped
    assert kept_rows(tmp_path / "results.json", sweep, {"beta-vae": {}}) == {}  # a new row replaces the old one
    assert kept_rows(tmp_path / "results.json", spec(epochs=3), {}) == {}  # other shared settings: nothing kept
    assert kept_rows(tmp_path / "missing.json", sweep, {}) == {}


def test_rows_from_before_the_later_settings_are_kept_and_trained_with_their_adam_step(tmp_path):
    """An earlier results.json without ``options`` / ``fused_optimizer`` (the committed 2026-12-02 rows)
    means no options and the foreach Adam step, which the benchmark still trains with."""
    from vaekit.benchmarks.disentanglement import LATER_SETTINGS, benchmark_configs, kept_rows

    sweep = spec()
    assert sweep.base["fused_optimizer"] is False and benchmark_configs()["factor-vae"].train.fused_optimizer is False
    row = {"changes": sweep.arms["vae"], "seeds": list(sweep.seeds), "aggregate": {}}
    old = {k: v for k, v in sweep.base.items() if k not in LATER_SETTINGS}
    for config, kept in ((old, ["vae"]), ({**old, "fused_optimizer": True}, [])):
        (tmp_path / "results.json").write_text(json.dumps({"config": config, "models": {"vae": row}}))
        assert list(kept_rows(tmp_path / "results.json", sweep, {})) == kept


def test_model_effect_is_the_between_model_share_of_the_spread():
    from vaekit.benchmarks.disentanglement import model_effect

    def row(values):
        return {"aggregate": {"mig.mig": {"values": values, "n": len(values)}}}

    apart = model_effect({"a": row([0.10, 0.11, 0.12]), "b": row([0.90, 0.91, 0.92])})["mig.mig"]
    assert apart["eta_squared"] > 0.99 and apart["p"] < 1e-5
    mixed = model_effect({"a": row([0.1, 0.9, 0.5]), "b": row([0.9, 0.1, 0.5])})["mig.mig"]
    assert mixed["eta_squared"] == pytest.approx(0.0) and mixed["p"] == pytest.approx(1.0)

    from vaekit.benchmarks.disentanglement import _active

    collapsed = {"aggregate": {"active_units": {"values": [0, 0, 0], "n": 3}}}
    assert not _active(collapsed) and _active({"aggregate": {"active_units": {"values": [0, 2, 0], "n": 3}}})


def test_full_scale_configs_build():
    from vaekit import build_model

    configs = benchmark_configs(full=True)
    assert {c.data.image_size for c in configs.values()} == {64} and configs["vae"].model.net == "conv"
    assert configs["capacity-vae"].objective.capacity_steps > 100_000
    model = build_model(configs["beta-tcvae"].model, (1, 64, 64), seed=configs["beta-tcvae"].train.seed)
    assert model.transform(__import__("torch").zeros(2, 1, 64, 64)).shape == (2, 10)
