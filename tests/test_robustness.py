"""AVAE / smooth encoders: the coupling term, the attack, the losses, the data and the evaluation."""

import json
import math

import numpy as np
import pytest
import torch
from torch.distributions import Normal, kl_divergence

from vaekit import Config, build_model, data, fit, io
from vaekit.attacks import pgd
from vaekit.cli import main
from vaekit.data import color
from vaekit.data.mnist import write_idx
from vaekit.distributions import Deterministic, coupling_kl, diagonal_normal
from vaekit.evaluation.consistency import consistency, iterate
from vaekit.evaluation.fid import fid, fit_feature_net, frechet_distance
from vaekit.evaluation.probe import LinearProbe
from vaekit.evaluation.robustness import adversarial_accuracy
from vaekit.objectives import ELBO, build_objective
from vaekit.objectives.coupling import smooth_point

torch.set_num_threads(1)
TINY = dict(
    data="color-digits", hidden=(32,), latent_dim=4, likelihood="gaussian", likelihood_scale=0.1, eval_num_samples=5
)


def _rand_q(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return diagonal_normal(torch.randn(*shape, generator=g), torch.rand(*shape, generator=g) + 0.2)


# ---------------------------------------------------------------- coupling term


@pytest.mark.parametrize("rho", [0.0, 0.5, 0.975])
def test_coupling_matches_monte_carlo(rho):
    q, q_prime = _rand_q(3, 4, seed=1), _rand_q(3, 4, seed=2)
    z = q.sample((200_000,))  # (S, 3, 4)
    target = Normal(rho * z, math.sqrt(1 - rho**2))
    mc = kl_divergence(Normal(q_prime.mean, q_prime.stddev), target).sum(-1).mean(0)
    exact = coupling_kl(q, q_prime, rho)
    assert exact.shape == (3,)
    torch.testing.assert_close(exact, mc, rtol=2e-2, atol=2e-2)


def test_coupling_zero_at_the_coupled_conditional_and_errors():
    z = torch.randn(5, 3)
    rho = 0.9
    matched = diagonal_normal(rho * z, torch.full_like(z, math.sqrt(1 - rho**2)))
    torch.testing.assert_close(coupling_kl(Deterministic(z), matched, rho), torch.zeros(5), atol=1e-5, rtol=0)
    assert (coupling_kl(_rand_q(5, 3), _rand_q(5, 3, seed=3), rho) > 0).all()
    with pytest.raises(ValueError, match="rho must be in"):
        coupling_kl(matched, matched, 1.0)
    with pytest.raises(ValueError, match="event shape"):
        coupling_kl(_rand_q(5, 3), _rand_q(5, 4), 0.5)


# ---------------------------------------------------------------- attack


def _quadratic(x):
    return (x - 0.3).pow(2).flatten(1).sum(1)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_stays_in_ball_and_pixel_range(norm):
    x = torch.rand(16, 3, 8, 8)
    eps = 0.1 if norm == "linf" else 1.0
    adv = pgd(_quadratic, x, eps, num_steps=7, norm=norm, generator=torch.Generator().manual_seed(0))
    delta = (adv - x).flatten(1)
    bound = delta.abs().max(1).values if norm == "linf" else delta.norm(dim=1)
    assert (bound <= eps + 1e-6).all()
    assert adv.min() >= 0 and adv.max() <= 1
    assert (_quadratic(adv) >= _quadratic(x)).all()
    assert not adv.requires_grad


def test_pgd_finds_the_maximiser_and_validates():
    x = torch.full((4, 10), 0.5)
    adv = pgd(lambda v: (v * torch.linspace(-1, 1, 10)).sum(1), x, 0.2, num_steps=10)
    torch.testing.assert_close(adv[0], 0.5 + 0.2 * torch.linspace(-1, 1, 10).sign())
    assert torch.equal(pgd(_quadratic, x, 0.0), x)
    for bad, match in [({"epsilon": -1}, "epsilon"), ({"num_steps": 0}, "num_steps"), ({"norm": "l1"}, "norm")]:
        kwargs = {"epsilon": 0.1, **bad}
        with pytest.raises(ValueError, match=match):
            pgd(_quadratic, x, **kwargs)
    with pytest.raises(ValueError, match="one value per example"):
        pgd(lambda v: v.sum(), x, 0.1)


# ---------------------------------------------------------------- losses


def _grads(model, loss):
    model.zero_grad()
    loss.backward()
    return {n: p.grad.clone() if p.grad is not None else None for n, p in model.named_parameters()}


@pytest.mark.parametrize("name", ["avae", "se", "se-avae"])
def test_coupling_losses_add_only_encoder_gradients(name):
    """x̃ = g(z) and x_b are constants: the decoder's gradient equals the VAE's (same z)."""
    config = Config.from_flat(model=name, **TINY)
    model = build_model(config.model, (3, 8, 8), seed=config.train.seed)
    x = torch.rand(8, 3, 8, 8)
    torch.manual_seed(0)
    vae = _grads(model, ELBO()(model, x).loss)
    torch.manual_seed(0)
    out = build_objective(config)(model, x)
    assert torch.isfinite(out.loss) and (out.coupling > 0).all()
    for key in ("elbo", "reconstruction", "kl"):
        assert getattr(out, key).shape == (8,)
    coupled = _grads(model, out.loss)
    for n in vae:
        if n.startswith("decoder"):
            torch.testing.assert_close(coupled[n], vae[n])
    assert any(not torch.allclose(coupled[n], vae[n]) for n in vae if n.startswith("encoder"))


def test_smooth_point_is_in_the_ball_and_increases_the_coupling():
    config = Config.from_flat(model="se", epsilon=0.1, num_steps=5, **TINY)
    model = build_model(config.model, (3, 8, 8), seed=config.train.seed)
    x = torch.rand(32, 3, 8, 8)
    q = model.encode(x)
    xb = smooth_point(model, x, q, config.objective.rho, config.objective.epsilon, config.objective.num_steps)
    assert (xb - x).abs().max() <= 0.1 + 1e-6 and xb.min() >= 0 and xb.max() <= 1
    noise = (x + 0.1 * (2 * torch.rand_like(x) - 1)).clamp(0, 1)
    with torch.no_grad():
        assert coupling_kl(q, model.encode(xb), 0.975).mean() > coupling_kl(q, model.encode(noise), 0.975).mean()


def test_self_supervised_loss_uses_no_data_and_leaves_the_decoder():
    config = Config.from_flat(model="avae-ss", init="unused", **TINY)
    model = build_model(config.model, (3, 8, 8), seed=config.train.seed)
    zeros, noise = torch.zeros(8, 3, 8, 8), torch.rand(8, 3, 8, 8)
    torch.manual_seed(0)
    objective = build_objective(config)
    a = objective(model, zeros)
    torch.manual_seed(0)
    b = objective(model, noise)
    torch.testing.assert_close(a.loss, b.loss)
    grads = _grads(model, b.loss)
    assert all(g is None for n, g in grads.items() if n.startswith("decoder"))
    assert any(g is not None and g.abs().sum() > 0 for n, g in grads.items() if n.startswith("encoder"))


def test_config_validation():
    for bad, match in [
        ({"rho": 1.0}, "rho"),
        ({"epsilon": -0.1}, "epsilon"),
        ({"num_steps": 0}, "num_steps"),
        ({"model": "avae-ss"}, "--init"),
    ]:
        with pytest.raises(ValueError, match=match):
            Config.from_flat(**bad)
    assert Config.from_json("configs/avae-official.json").model.likelihood_scale == pytest.approx(math.sqrt(0.5))


# ---------------------------------------------------------------- data


def test_color_digits():
    grey, ds = data.load("digits", "test"), data.load("color-digits", "test")
    assert ds.x.shape == (7 * len(grey), 3, 8, 8) and set(ds.labels) == {"digit", "color"}
    assert torch.equal(ds.labels["color"][:7], torch.arange(7))
    assert torch.equal(ds.labels["digit"][:14], grey.labels["digit"][:2].repeat_interleave(7))
    for c in range(7):
        torch.testing.assert_close(ds.x[c], grey.x[0] * color.COLORS[c].view(3, 1, 1))
    assert len(data.load("color-digits", "train")) == 7 * 1437


def test_color_mnist_from_idx_files(tmp_path):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 5), ("t10k", 3)):
        write_idx(tmp_path / "mnist" / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(tmp_path / "mnist" / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, n, dtype=np.uint8))
    ds = data.load("color-mnist-full", "test", data_dir=tmp_path, download=False)
    assert ds.x.shape == (21, 3, 28, 28) and ds.labels["color"].max() == 6


def test_celeba_folder(tmp_path):
    from PIL import Image

    names = ["Smiling", "Male"]
    rows = [f"{i:06d}.jpg " + " ".join(("1" if (i + j) % 2 else "-1") for j in range(2)) for i in range(1, 6)]
    (tmp_path / "list_attr_celeba.txt").write_text("5\n" + " ".join(names) + "\n" + "\n".join(rows) + "\n")
    (tmp_path / "list_eval_partition.txt").write_text(
        "".join(f"{i:06d}.jpg {0 if i < 4 else 2}\n" for i in range(1, 6))
    )
    (tmp_path / "img_align_celeba").mkdir()
    for i in range(1, 6):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (218, 178, 3), dtype=np.uint8)).save(
            tmp_path / "img_align_celeba" / f"{i:06d}.jpg"
        )
    train, test = data.load("celeba", "train", path=tmp_path), data.load("celeba", "test", path=tmp_path)
    assert train.x.shape == (3, 3, 64, 64) and test.x.shape == (2, 3, 64, 64)
    assert 0 <= train.x.min() and train.x.max() <= 1
    assert train.labels["Smiling"].tolist() == [1, 0, 1] and test.labels["Male"].tolist() == [1, 0]
    model = build_model(Config.from_json("configs/avae-celeba.json").model, train.data_shape)
    assert model.encode(train.x).mean.shape == (3, 64)
    (tmp_path / "img_align_celeba" / "000005.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="missing"):
        data.load("celeba", "test", path=tmp_path)
    with pytest.raises(FileNotFoundError, match="list_attr_celeba"):
        data.load("celeba", "test", path=tmp_path / "nowhere")


# ---------------------------------------------------------------- evaluation on a trained model


@pytest.fixture(scope="module")
def trained():
    train, test = data.load("color-digits", "train"), data.load("color-digits", "test")
    sub = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:3000]
    train = train.subset(sub)
    config = Config.from_flat(**{**TINY, "hidden": (64,), "latent_dim": 8, "epochs": 4, "lr": 3e-3})
    model = build_model(config.model, train.data_shape, seed=config.train.seed)
    fit(model, train.x, config)
    test = test.subset(torch.arange(0, len(test), 5))
    return model, train, test


def test_probe_attack_is_real(trained):
    model, train, test = trained
    probe = LinearProbe(model).fit(train.x, train.labels["color"])
    y = test.labels["color"]
    clean = probe.score(test.x, y)
    assert clean > 0.9
    single = adversarial_accuracy(probe, test.x, y, 0.1, attack="fgsm")
    multi, adv = adversarial_accuracy(probe, test.x, y, 0.1, num_steps=20, return_inputs=True)
    assert multi <= single <= clean
    assert (adv - test.x).abs().max() <= 0.1 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    accs = [adversarial_accuracy(probe, test.x, y, eps, num_steps=20) for eps in (0.05, 0.2, 0.5)]
    assert accs[0] >= accs[1] >= accs[2] and accs[2] <= 1 / 7  # falls to chance or below: no gradient masking
    assert adversarial_accuracy(probe, test.x, y, 0.0) == pytest.approx(clean)
    l2 = adversarial_accuracy(probe, test.x, y, 0.5, norm="l2")
    assert l2 <= clean


def test_probe_standardisation_is_folded_into_the_layer(trained):
    model, train, test = trained
    from sklearn.linear_model import LogisticRegression

    from vaekit.evaluation.probe import encode_mean

    probe = LinearProbe(model, standardize=True).fit(train.x, train.labels["digit"])
    f_train, f_test = encode_mean(model, train.x).double().numpy(), encode_mean(model, test.x).double().numpy()
    m, s = f_train.mean(0), f_train.std(0) + 1e-8
    ref = LogisticRegression(max_iter=1000).fit((f_train - m) / s, train.labels["digit"].numpy())
    agree = (probe.predict(test.x).numpy() == ref.predict((f_test - m) / s)).mean()
    assert agree > 0.99


def test_consistency_and_fid(trained):
    model, train, test = trained
    its = iterate(model, test.x[:10], 3)
    assert its.shape == (4, 10, 3, 8, 8) and torch.equal(its[0], test.x[:10])
    probe = LinearProbe(model).fit(train.x, train.labels["color"])
    scores = consistency(model, probe, test.x, test.labels["color"], 3)
    assert len(scores) == 4 and scores[0] == pytest.approx(probe.score(test.x, test.labels["color"]))
    net = fit_feature_net(train.x[:500], {k: v[:500] for k, v in train.labels.items()}, epochs=1)
    assert fid(net, test.x, test.x) == pytest.approx(0.0, abs=1e-3)
    assert fid(net, test.x, model.sample(len(test.x))) > fid(net, test.x, train.x[: len(test.x)])


def test_frechet_distance_closed_form():
    mu1, mu2 = np.array([0.0, 1.0]), np.array([1.0, 3.0])
    s1, s2 = np.diag([1.0, 4.0]), np.diag([9.0, 1.0])
    expected = 1 + 4 + (1 - 3) ** 2 + (2 - 1) ** 2  # |m1-m2|² + Σ (σ1 − σ2)²
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected)
    with pytest.raises(ValueError, match="shapes"):
        frechet_distance(mu1, s1, np.zeros(3), np.eye(3))


# ---------------------------------------------------------------- end to end


def test_cli_train_refine_and_evaluate(tmp_path, capsys):
    flags = [
        "--data",
        "color-digits",
        "--hidden",
        "16",
        "--latent-dim",
        "4",
        "--likelihood",
        "gaussian",
        "--likelihood-scale",
        "0.1",
        "--epochs",
        "1",
        "--eval-num-samples",
        "2",
        "--runs-dir",
        str(tmp_path),
        "--no-progress",
    ]
    assert main(["train", *flags, "--model", "vae", "--name", "vae"]) == 0
    assert main(["train", *flags, "--model", "avae-ss", "--init", str(tmp_path / "vae"), "--name", "ss"]) == 0
    vae, ss = io.load(tmp_path / "vae"), io.load(tmp_path / "ss")
    for name, p in vae.decoder.state_dict().items():
        assert torch.equal(p, ss.decoder.state_dict()[name])  # AVAE-SS refines the encoder only
    assert not torch.equal(vae.encoder.head.linear.weight, ss.encoder.head.linear.weight)
    assert (
        main(
            [
                "evaluate",
                "robustness",
                str(tmp_path / "ss"),
                "--max-test",
                "40",
                "--num-steps",
                "3",
                "--epsilons",
                "0",
                "0.1",
                "--consistency-steps",
                "2",
                "--fid-epochs",
                "1",
            ]
        )
        == 0
    )
    result = json.loads((tmp_path / "ss" / "robustness.json").read_text())
    assert set(result["probe"]) == {"digit", "color"} and len(result["consistency"]["digit"]) == 3
    assert set(result["probe"]["digit"]) == {"clean", "pgd", "fgsm", "latent"}
    assert set(result["smoothness"]["smoothness"]) == {"digit", "color"} and result["smoothness"]["num_examples"] == 40
    assert "smoothness (median latent move" in capsys.readouterr().out
    assert (
        main(
            [
                "evaluate",
                "robustness",
                str(tmp_path / "ss"),
                "--max-test",
                "40",
                "--num-steps",
                "2",
                "--epsilons",
                "0",
                "0.1",
                "--attacks",
                "latent",
                "--no-smoothness",
                "--consistency-steps",
                "0",
                "--fid-epochs",
                "0",
                "--output",
                str(tmp_path / "latent.json"),
            ]
        )
        == 0
    )
    only = json.loads((tmp_path / "latent.json").read_text())
    assert set(only["probe"]["color"]) == {"clean", "latent"} and "smoothness" not in only
    assert "latent PGD-2" in capsys.readouterr().out
    assert result["mse_per_example"] == pytest.approx(192 * result["mse_per_pixel"], rel=1e-4) and "fid" in result
    assert main(["train", *flags, "--model", "avae-ss", "--name", "bad"]) == 1
    assert "--init" in capsys.readouterr().err


@pytest.mark.slow
def test_benchmark_writes_table_and_figures(tmp_path):
    from vaekit.benchmarks.robustness import run_benchmark

    report = run_benchmark(
        out_dir=tmp_path,
        rows=("VAE", "AVAE", "SE 5 steps, ε 0.1", "AVAE SS"),
        epsilons=(0, 0.1),
        num_steps=2,
        max_test=40,
        epochs=1,
        train_size=1000,  # of 10,059 training images: the rows, probes and FID feature net on a tenth
        hidden=(16,),
        latent_dim=4,
        log=lambda _: None,
    )
    assert list(report["table"]) == ["VAE", "AVAE", "SE 5 steps, ε 0.1", "AVAE SS"]
    assert report["table"]["VAE"][-3] == 1.0
    for name in ("results.json", "results.md", "accuracy_bars.png", "accuracy_vs_epsilon.png", "consistency.png"):
        assert (tmp_path / name).is_file()
    assert "| AVAE |" in (tmp_path / "results.md").read_text()


def test_study_trains_pairs_and_reuses_runs(tmp_path):
    from vaekit.benchmarks.robustness_study import run_study

    kwargs = dict(
        out_dir=tmp_path,
        variants=("base", "ρ = 0.9", "2× epochs"),
        epsilons=(0, 0.1),
        num_steps=2,
        max_test=40,
        epochs=1,
        train_size=1000,  # of 10,059 training images
        hidden=(16,),
        latent_dim=4,
    )
    messages = []
    report = run_study(log=messages.append, **kwargs)
    assert [(r["variant"], r["model"], r["probe"]) for r in report["rows"][:2]] == [
        ("base", "vae", "raw"),
        ("base", "vae", "standardised"),
    ]
    # the VAE ignores ρ (its base run is reused); "2× epochs" trains both models for twice the base epochs
    assert len(report["rows"]) == 12 and sum("training" in m for m in messages) == 5
    assert (tmp_path / "study.md").is_file()
    messages.clear()
    again = run_study(log=messages.append, **kwargs)
    assert all("reusing" in m for m in messages) and again["rows"] == report["rows"]


def test_evaluate_robustness_needs_labels(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((50, 1, 8, 8)).astype(np.float32))
    assert (
        main(
            [
                "train",
                "--data",
                "array",
                "--path",
                str(tmp_path / "x.npy"),
                "--hidden",
                "8",
                "--latent-dim",
                "2",
                "--epochs",
                "1",
                "--eval-num-samples",
                "2",
                "--runs-dir",
                str(tmp_path),
                "--name",
                "r",
                "--no-progress",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["evaluate", "robustness", str(tmp_path / "r")]) == 1
    assert "no labels" in capsys.readouterr().err
