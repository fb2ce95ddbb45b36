"""Pieces of the AVAE study: --aux-sample, the probe input setting, coloured Fashion-MNIST, the seeds benchmark."""

import json
from pathlib import Path

import pytest
import torch

from vaekit.config import Config
from vaekit.evaluation.probe import LinearProbe
from vaekit.models import build_model
from vaekit.objectives import build_objective


def _config(**changes):
    return Config.from_flat(
        model="avae",
        latent_dim=3,
        hidden=(16,),
        likelihood="gaussian",
        likelihood_scale=0.3,
        decoder_activation="sigmoid",
        **changes,
    )


def _model(**changes):
    return build_model(_config(**changes).model, (3, 4, 4), True)


def test_aux_sample_encodes_a_draw_of_p_x_given_z_not_the_mean():
    torch.manual_seed(0)
    x = torch.rand(8, 3, 4, 4)
    for aux_sample in (False, True):
        model = _model(aux_sample=aux_sample)
        objective = build_objective(_config(aux_sample=aux_sample))
        assert objective.aux == ("sample" if aux_sample else "mean")
        seen = []
        encode = model.encode
        model.encode = lambda inputs: seen.append(inputs.detach()) or encode(inputs)  # noqa: B023 (called in this iteration)
        torch.manual_seed(1)
        objective(model, x)
        torch.manual_seed(1)
        q = encode(x)
        means = model.decode(q.rsample((1,))).mean.reshape(-1, 3, 4, 4)
        # seen[0] is x itself; seen[1] the coupling input x̃
        assert torch.allclose(seen[1], means, atol=1e-6) == (not aux_sample)
        if aux_sample:  # a Gaussian draw around the mean with the likelihood's scale
            assert 0.2 < (seen[1] - means).std().item() < 0.4


@pytest.mark.parametrize("features", ["mean", "sample", "decoded"])
def test_probe_input_setting_and_attack_through_the_whole_chain(features):
    torch.manual_seed(0)
    model = _model().eval()
    x, y = torch.rand(60, 3, 4, 4), torch.arange(60) % 3
    probe = LinearProbe(model, features=features).fit(x, y)
    width = {"mean": 3, "sample": 3, "decoded": 48}[features]
    assert probe.linear.in_features == width
    xa = x[:5].clone().requires_grad_(True)
    probe.decision_function(xa).sum().backward()
    assert xa.grad.abs().sum() > 0  # the gradient reaches the pixels
    a, b = probe.featurize(x[:5]), probe.featurize(x[:5])
    assert torch.equal(a, b) == (features != "sample")  # samples are fresh draws
    with pytest.raises(ValueError, match="probe features"):
        LinearProbe(model, features="logits")


def test_color_fashion_mnist_one_corner_colour_per_image():
    from vaekit.data import load
    from vaekit.data.color import COLORS

    root = "/usr/share/datasets"
    if not Path(root, "fashion-mnist").is_dir():
        pytest.skip("Fashion-MNIST files not installed (Debian dataset-fashion-mnist)")
    test = load("color-fashion-mnist", "test", data_dir=root)
    grey = load("fashion-mnist", "test", data_dir=root)
    assert test.x.shape == (10000, 3, 28, 28) and set(test.labels) == {"item", "color"}
    assert torch.equal(test.labels["item"], grey.labels["item"])
    counts = torch.bincount(test.labels["color"], minlength=7)
    assert counts.min() > 1200  # every corner used, about 1/7 each
    i = 5
    assert torch.equal(test.x[i], grey.x[i][0] * COLORS[test.labels["color"][i]].view(3, 1, 1))


def test_seeds_benchmark_collects_todays_schema_with_intervals(tmp_path):
    from vaekit.benchmarks import robustness_seeds as rs
    from vaekit.benchmarks.sweeps.engine import run_sweep
    from vaekit.benchmarks.sweeps.spec import SweepSpec

    base = {
        "data": "color-digits",
        "epochs": 1,
        "hidden": [16],
        "latent_dim": 4,
        "likelihood": "gaussian",
        "likelihood_scale": 0.1,
        "decoder_activation": "sigmoid",
        "eval_num_samples": 2,
        "kl_diagnostic_points": 0,
        "batch_size": 512,
    }
    evaluate = {
        "robustness": {
            "epsilons": [0, 0.1],
            "num_steps": 2,
            "features": ["mean", "decoded"],
            "attacks": ["pgd", "latent"],
            "smoothness": True,
            "max_test": 50,
            "max_train": 300,
            "seed": 0,
        }
    }
    spec = SweepSpec(
        base, {"VAE": {"model": "vae"}, "AVAE (sampled)": {"model": "avae", "aux_sample": True}}, (0, 1), evaluate
    )
    run_sweep(spec, tmp_path, log=lambda *_: None)
    results = rs.collect(tmp_path, spec)
    row = results["AVAE (sampled)"]
    seeds = [row["per_seed"][s]["probe"]["digit"]["pgd"]["0.1"] for s in ("0", "1")]
    assert row["probe"]["digit"]["pgd"]["0.1"] == pytest.approx(sum(seeds) / 2)  # today's schema: the mean
    stats = row["aggregate"]["probe_decoded"]["color"]["clean"]
    assert stats["n"] == 2 and stats["ci95_low"] <= stats["mean"] <= stats["ci95_high"]
    latent = [row["per_seed"][s]["probe"]["digit"]["latent"]["0.1"] for s in ("0", "1")]
    assert row["probe"]["digit"]["latent"]["0.1"] == pytest.approx(sum(latent) / 2)
    ratio = row["aggregate"]["smoothness"]["smoothness"]["digit"]["0.1"]
    assert ratio["n"] == 2 and ratio["mean"] > 0
    md = rs.markdown(results, epsilons=(0, 0.1))
    assert "reconstruction g(μ(x))" in md and "AVAE (sampled)" in md
    assert "label-free latent PGD-20" in md and "digit smoothness ε=0.1" in md
    assert rs.figure(results, tmp_path / "f.png").is_file()
    json.dumps(results)


def test_seeds_benchmark_on_color_fashion_mnist_uses_a_fixed_training_subset():
    from vaekit.benchmarks import robustness_seeds as rs

    spec = rs.spec("color-fashion-mnist", data_dir="/usr/share/datasets")
    points = spec.points()
    assert len(points) == 12 and {p.settings["train_size"] for p in points} == {20000}
    assert {p.settings["data_dir"] for p in points} == {"/usr/share/datasets"}
    scales = {p.arm: p.settings["likelihood_scale"] for p in points}
    assert scales == {
        "VAE std 0.05": 0.05,
        "VAE std 0.707": 0.5**0.5,
        "AVAE std 0.707": 0.5**0.5,
        "SE ε 0.1 std 0.707": 0.5**0.5,
    }
    assert spec.evaluate["robustness"]["attacks"] == ["pgd", "fgsm", "latent"]
    old = rs.spec("color-fashion-mnist", arm_names=["AVAE (sampled)"], train_size=5000)
    assert old.arms["AVAE (sampled)"] == {"model": "avae", "aux_sample": True}
    assert {p.settings["train_size"] for p in old.points()} == {5000}
    with pytest.raises(ValueError, match="unknown arms"):
        rs.spec("color-fashion-mnist", arm_names=["VAE std 1"])
    assert "a different dataset" in rs.paper_markdown("color-fashion-mnist")
    assert "a different dataset" not in rs.paper_markdown("color-digits")


def test_seeds_benchmark_on_color_mnist_reads_the_real_subset_offline():
    """color-mnist: the AVAE paper's ColorMNIST from mnist-5k (no data_dir, no training subset), the
    official scale, 100 epochs; its table sits beside the paper's rows as the same dataset."""
    from vaekit.benchmarks import robustness_seeds as rs
    from vaekit.config import Config

    points = rs.spec("color-mnist").points()
    assert len(points) == 12 and all(p.settings.get("train_size") is None for p in points)
    assert {p.settings["epochs"] for p in points} == {100} and {p.settings["data"] for p in points} == {"color-mnist"}
    assert {p.arm: p.settings["likelihood_scale"] for p in points}["AVAE std 0.707"] == 0.5**0.5
    Config.from_flat(**{k: tuple(v) if isinstance(v, list) else v for k, v in points[0].settings.items()})
    assert "a different dataset" not in rs.paper_markdown("color-mnist")


def test_verdict_study_changes_one_official_setting_per_arm(capsys):
    """The verdict sweep: each arm differs from the benchmark's AVAE in the named setting only
    (the official code's ρ, latent size, learning rate, steps, colouring), the all-colours arms at
    about the benchmark's number of Adam steps; PGD on the two probe inputs."""
    from vaekit.benchmarks import robustness_seeds as rs
    from vaekit.benchmarks import robustness_verdict as rv
    from vaekit.cli import main

    sweep = rs.spec("color-mnist", arm_specs=rv.ARMS, evaluation=rv.EVALUATION)
    points = sweep.points()
    assert len(points) == 3 * len(rv.ARMS)
    settings = {p.arm: p.settings for p in points if p.seed == 0}
    reference = settings["AVAE (benchmark)"]
    assert reference["model"] == "avae" and reference["likelihood_scale"] == 0.5**0.5
    changed = {
        arm: {k for k in s if s[k] != reference[k] and k != "model"}
        for arm, s in settings.items()
        if arm.startswith("AVAE")
    }
    assert changed["AVAE ρ 0.8"] == {"rho"} and settings["AVAE ρ 0.8"]["rho"] == 0.8
    assert changed["AVAE latent 32"] == {"latent_dim"} and changed["AVAE lr 1e-4"] == {"lr"}
    assert changed["AVAE 4× steps"] == {"epochs"} and changed["AVAE x̃ sampled"] == {"aux_sample"}
    assert changed["AVAE all 7 colours"] == {"data", "epochs"}

    def steps(s):
        return s["epochs"] * (28000 if s["data"] == "color-mnist-all" else 4000) // s["batch_size"]

    assert abs(steps(settings["AVAE all 7 colours"]) / steps(reference) - 1) < 0.1
    assert steps(settings["AVAE official code"]) == pytest.approx(4 * steps(reference), rel=0.1)
    assert settings["SE all 7 colours"]["model"] == "se"
    evaluation = sweep.evaluate["robustness"]
    assert evaluation["features"] == ["mean", "decoded"] and evaluation["attacks"] == ["pgd"]
    assert evaluation["epsilons"] == [0.0, 0.05, 0.1, 0.2]
    assert "official code" in rv.PREAMBLE or "official code" in (rv.__doc__ or "")
    code = main(["benchmark", "robustness-seeds", "--verdict", "--data", "color-digits"])
    err = capsys.readouterr().err
    assert code != 0 and "--data color-mnist" in err and "Traceback" not in err
