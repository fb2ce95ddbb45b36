"""Anomaly detection: scores (An & Cho 2015), AnomalyDetector (scikit-learn contract), `vaekit score`,
the breast-cancer table and feature standardisation of tabular runs."""

import json
import re

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler

from vaekit import AnomalyDetector, Config, build_model, data
from vaekit.cli import main
from vaekit.data.scaling import Standardizer, wants_standardization
from vaekit.detectors.anomaly import load_detector
from vaekit.evaluation import anomaly as scores_module
from vaekit.evaluation.anomaly import SCORES, reconstruction_probability, score_samples

torch.set_num_threads(1)
TINY = {"latent_dim": 2, "hidden": (32, 32), "epochs": 15, "batch_size": 32, "random_state": 0}


def normal_data(n=300, d=5, seed=0):
    """Correlated Gaussian rows in their own units (mean 3, features of different scales)."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) * np.arange(1, d + 1) + 3


@pytest.fixture(scope="module")
def fitted():
    x = normal_data()
    return AnomalyDetector(fpr=0.1, **TINY).fit(x), x


# ---------------------------------------------------------------- data and scaling


def test_breast_cancer_dataset():
    train, test = data.load("breast-cancer", "train"), data.load("breast-cancer", "test")
    assert (len(train), len(test)) == (455, 114)
    assert train.data_shape == (30,) and not train.unit_interval and not train.is_image
    for ds in (train, test):
        assert set(ds.labels) == {"malignant"} and set(ds.labels["malignant"].tolist()) == {0, 1}
    assert int(train.labels["malignant"].sum() + test.labels["malignant"].sum()) == 212  # WDBC: 212 malignant
    rows = {tuple(r) for r in train.x.tolist()}
    assert not rows & {tuple(r) for r in test.x.tolist()}


def test_standardizer_round_trip():
    x = torch.from_numpy(normal_data()).float()
    scaler = Standardizer.fit(x)
    z = scaler.transform(x)
    assert torch.allclose(z.mean(0), torch.zeros(5), atol=1e-5) and torch.allclose(
        z.std(0, unbiased=False), torch.ones(5), atol=1e-4
    )
    again = Standardizer.from_dict(scaler.to_dict())
    assert np.array_equal(again.mean, scaler.mean) and np.array_equal(again.scale, scaler.scale)
    assert torch.allclose(again.inverse_transform(z), x, atol=1e-4)
    with pytest.raises(ValueError, match="fitted on 5 features"):
        scaler.transform(x[:, :3])
    assert wants_standardization("auto", (5,), "gaussian") and not wants_standardization("auto", (5,), "bernoulli")
    assert not wants_standardization("auto", (1, 8, 8), "gaussian")
    with pytest.raises(ValueError, match="tabular"):
        wants_standardization("yes", (1, 8, 8), "gaussian")


def test_auto_keeps_tabular_data_bounded_in_the_unit_interval():
    """Issue 21: under standardize="auto", rows whose every value lies in [0, 1] (flat digits / 16) are
    modelled as they are, like images (fixed likelihood scale 0.1); one value outside and they are standardised."""
    bounded = np.random.default_rng(0).uniform(size=(200, 6))
    bounded[0, 0], bounded[1, 1] = 0.0, 1.0  # the bounds themselves are inside
    assert not wants_standardization("auto", (6,), "gaussian", bounded)
    assert wants_standardization("auto", (6,), "gaussian")  # the bound is checked only when the data are given
    for outside in (1.0 + 1e-6, -1e-6):
        shifted = bounded.copy()
        shifted[5, 2] = outside
        assert wants_standardization("auto", (6,), "gaussian", shifted)
    assert wants_standardization("yes", (6,), "gaussian", bounded) and not wants_standardization(
        "no", (6,), "gaussian", bounded * 5
    )
    fast = dict(TINY, epochs=1)
    kept = AnomalyDetector(**fast).fit(bounded)
    assert kept.scaler_ is None and kept.config_.model.likelihood_scale == 0.1
    images = AnomalyDetector(**fast).fit(bounded.reshape(200, 1, 2, 3))  # the same values as images: the same model
    assert images.config_.model.likelihood_scale == 0.1
    np.testing.assert_allclose(
        kept.score_samples(bounded[:20]), images.score_samples(bounded[:20].reshape(20, 1, 2, 3)), rtol=1e-5
    )
    scaled = AnomalyDetector(**fast).fit(bounded * 2)
    assert scaled.scaler_ is not None and scaled.config_.model.likelihood_scale == "learned"
    assert AnomalyDetector(standardize="yes", **fast).fit(bounded).scaler_ is not None


# ---------------------------------------------------------------- scores


def test_reconstruction_probability_is_log_mean_of_likelihoods():
    """An & Cho (2015, Alg. 4): log (1/L) sum_l p(x|z_l) with z_l = loc + scale * eps_l, the same eps_l for
    every row (common random numbers); >= the mean log-likelihood (Jensen)."""
    config = Config.from_flat(likelihood="gaussian", likelihood_scale="learned", latent_dim=3, hidden=(16,))
    model = build_model(config.model, (4,), unit_interval=False, seed=config.train.seed).eval()
    x = torch.randn(7, 4)
    noise = torch.randn(10, 3)
    rp = reconstruction_probability(model, x, num_samples=10, noise=noise)
    with torch.no_grad():
        q = model.encode(x)
        z = q.mean + q.stddev * noise[:, None, :]  # (10, 7, 3)
        log_px = model.decode(z).log_prob(x)
    expected = torch.log(torch.exp(log_px.double()).mean(0)).float()
    assert rp.shape == (7,)
    assert torch.allclose(rp, expected, atol=1e-4)
    assert (rp >= log_px.mean(0) - 1e-5).all()
    one_row = reconstruction_probability(model, x[3:4], num_samples=10, noise=noise)
    assert torch.allclose(one_row, rp[3:4], atol=1e-6)  # same draws for a row alone
    with pytest.raises(ValueError, match="noise must be"):
        reconstruction_probability(model, x, num_samples=10, noise=torch.randn(5, 3))


def test_all_scores_match_the_single_score_functions():
    config = Config.from_flat(likelihood="gaussian", likelihood_scale="learned", latent_dim=3, hidden=(16,))
    model = build_model(config.model, (4,), unit_interval=False, seed=config.train.seed).eval()
    x, noise = torch.randn(9, 4), torch.randn(6, 3)
    table = scores_module.all_scores(model, x, 6, noise)
    for i, (name, spec) in enumerate(SCORES.items()):
        assert torch.allclose(table[:, i], spec.sign * spec.fn(model, x, 6, noise), atol=1e-5), name


def test_ae_reconstruction_probability_is_deterministic_likelihood():
    model = build_model(
        Config.from_flat(model="ae", likelihood="gaussian", hidden=(16,)).model, (4,), unit_interval=False
    ).eval()
    x = torch.randn(5, 4)
    with torch.no_grad():
        expected = model.decode(model.encode(x).mean).log_prob(x)
    assert torch.allclose(reconstruction_probability(model, x, 10), expected, atol=1e-5)
    with pytest.raises(ValueError, match="needs a VAE"):
        score_samples(model, x, "log_likelihood")


def test_scores_have_documented_signs(fitted):
    detector, x = fitted
    far = x[:20] + 40 * x.std(0)
    model, xs = detector.model_, detector.scaler_.transform(torch.from_numpy(x).float())
    fs = detector.scaler_.transform(torch.from_numpy(far).float())
    for name, spec in SCORES.items():
        near_raw, far_raw = spec.fn(model, xs[:20], 10), spec.fn(model, fs, 10)
        assert near_raw.shape == (20,)
        # likelihood scores: a training point is more probable; reconstruction error: it is smaller
        assert (spec.sign * near_raw).min() > (spec.sign * far_raw).max(), name
        detector.set_params(score_type=name)
        assert detector.score_samples(x[:20]).min() > detector.score_samples(far).max(), name
    detector.set_params(score_type="reconstruction_probability")
    assert (scores_module.reconstruction_error(model, fs) > 0).all()


def test_scores_are_seeded_and_leave_global_rng_alone(fitted):
    detector, x = fitted
    state = torch.get_rng_state()
    a, b = detector.score_samples(x), detector.score_samples(x)
    assert np.array_equal(a, b) and torch.equal(state, torch.get_rng_state())


# ---------------------------------------------------------------- detector contract


def test_predict_is_the_conformal_decision(fitted):
    detector, x = fitted
    flags = detector.predict(x)
    assert set(np.unique(flags)) == {-1, 1}
    np.testing.assert_allclose(detector.decision_function(x), detector.score_samples(x) - detector.offset_)
    assert np.array_equal(flags == -1, detector.pvalues(x) <= detector.fpr)
    assert detector.n_features_in_ == 5 and detector.scaler_ is not None
    assert len(detector.calibration_scores_) == 60  # 20 % of 300 rows held out


def test_save_load_identical_scores(fitted, tmp_path):
    detector, x = fitted
    detector.save(tmp_path / "det")
    loaded = AnomalyDetector.load(tmp_path / "det")
    assert np.array_equal(loaded.score_samples(x), detector.score_samples(x))
    assert loaded.offset_ == detector.offset_ and loaded.get_params() == detector.get_params()
    assert not list(tmp_path.glob("det/*.pkl")) and (tmp_path / "det" / "detector.json").is_file()
    assert np.array_equal(load_detector(tmp_path / "det").predict(x), detector.predict(x))
    assert np.array_equal(loaded.pvalues(x), detector.pvalues(x))
    with pytest.raises(ValueError, match="fitted with score_type"):
        load_detector(tmp_path / "det", score_type="elbo")


def test_clone_get_set_params_and_pipeline():
    detector = AnomalyDetector(
        score_type="elbo", fpr=0.2, latent_dim=2, hidden=(8,), epochs=2, model_options={"beta": 2.0}
    )
    copy = clone(detector)
    assert copy.get_params() == detector.get_params() and copy is not detector
    assert detector.get_params()["hidden"] is detector.hidden  # stored verbatim
    copy.set_params(epochs=1, model_options={"weight_decay": 1e-4})
    assert detector.get_params()["model_options"] == {"beta": 2.0}
    with pytest.raises(ValueError, match="Invalid parameter 'latentdim'"):
        copy.set_params(latentdim=3)
    x = normal_data(80)
    pipe = Pipeline([("scale", MinMaxScaler()), ("detect", copy)]).fit(x)
    assert pipe.predict(x).shape == (80,) and pipe.score_samples(x).shape == (80,)
    assert hasattr(copy, "offset_") and not hasattr(clone(copy), "offset_")


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.array([[1.0, 2.0], [np.nan, 1.0], [1.0, np.inf]]), "Input X contains"),
        (np.ones(5), "Expected 2D array"),
        (np.array([["a", "b"], ["c", "d"]]), "could not convert"),
        (np.zeros((0, 3)), "0 sample"),
    ],
)
def test_fit_rejects_bad_data(bad, match):
    with pytest.raises(ValueError, match=match):
        AnomalyDetector(epochs=1).fit(bad)


def test_bad_parameters_and_feature_count(fitted):
    x = normal_data(40)
    with pytest.raises(ValueError, match="unknown or reserved key.*path"):
        AnomalyDetector(epochs=1, model_options={"path": "x.csv"}).fit(x)
    with pytest.raises(ValueError, match="The 'fpr' parameter of AnomalyDetector must be a float in the range"):
        AnomalyDetector(fpr=1.5, epochs=1).fit(x)
    with pytest.raises(ValueError, match="The 'score_type' parameter"):
        AnomalyDetector(score_type="mahalanobis", epochs=1).fit(x)
    with pytest.raises(ValueError, match="X has 3 features, but AnomalyDetector is expecting 5 features"):
        fitted[0].score_samples(x[:, :3])
    with pytest.raises(ValueError, match="needs data in"):
        AnomalyDetector(likelihood="bernoulli", epochs=1).fit(x)


def test_image_detector_without_scaler():
    digits = data.load("digits", "train")
    x = digits.x[:120]
    detector = AnomalyDetector(latent_dim=2, hidden=(32,), epochs=1, random_state=0).fit(x)
    assert detector.scaler_ is None and detector.n_features_in_ == 64 and detector.data_shape_ == (1, 8, 8)
    assert detector.config_.model.likelihood_scale == 0.1  # "auto" on [0, 1] images
    flat = detector.score_samples(x.flatten(1).numpy())
    assert np.array_equal(flat, detector.score_samples(x)) and np.isfinite(flat).all()
    with pytest.raises(ValueError, match="fitted on examples of shape"):
        detector.score_samples(x.reshape(len(x), 1, 4, 16))


# ---------------------------------------------------------------- command line


def write_csv(path, x, header=True):
    names = ",".join(f"f{j}" for j in range(x.shape[1]))
    np.savetxt(path, x, delimiter=",", header=names if header else "", comments="")
    return path


@pytest.fixture(scope="module")
def tabular_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    x = normal_data(250)
    write_csv(folder / "normal.csv", x)
    argv = [
        "train",
        "--data",
        "array",
        "--path",
        str(folder / "normal.csv"),
        "--likelihood",
        "gaussian",
        "--likelihood-scale",
        "learned",
        "--latent-dim",
        "2",
        "--hidden",
        "32",
        "32",
        "--epochs",
        "10",
        "--batch-size",
        "32",
        "--eval-num-samples",
        "5",
        "--runs-dir",
        str(folder / "runs"),
        "--name",
        "t",
        "--no-progress",
    ]
    assert main(argv) == 0
    return folder, folder / "runs" / "t", x


def test_train_stores_scaler_and_score_applies_it(tabular_run, capsys):
    folder, run, x = tabular_run
    scaler = Standardizer.from_dict(json.loads((run / "scaler.json").read_text()))
    train = data.load("array", "train", path=folder / "normal.csv")
    np.testing.assert_allclose(scaler.mean, train.x.double().mean(0).numpy(), rtol=1e-6)
    rows = np.vstack([x[:10], x[:10] + 50 * x.std(0)])
    write_csv(folder / "new.csv", rows, header=False)
    capsys.readouterr()
    assert (
        main(
            ["score", str(run), "--input", str(folder / "new.csv"), "--output", str(folder / "s.csv"), "--no-progress"]
        )
        == 0
    )
    assert "20 rows" in capsys.readouterr().out
    table = np.genfromtxt(folder / "s.csv", delimiter=",", names=True)
    assert table.dtype.names == ("index", "score", "pvalue", "outlier") and len(table) == 20
    detector = AnomalyDetector.from_run(run)
    np.testing.assert_allclose(table["score"], detector.score_samples(rows), rtol=1e-6)
    assert (table["outlier"][10:] == 1).all() and table["score"][:10].min() > table["score"][10:].max()
    assert np.array_equal(table["outlier"] == 1, table["pvalue"] <= 0.05)
    assert len(detector.calibration_scores_) == 20  # the run's validation split: 10 % of its 200 training rows


@pytest.mark.filterwarnings("default::UserWarning")  # shown, not raised: the CLI prints it
def test_score_warns_in_one_line_when_the_calibration_rows_cannot_reach_fpr(tabular_run, capsys):
    """20 calibration rows cannot give a p-value <= 0.01: one line says so, no file or source line."""
    folder, run, x = tabular_run
    write_csv(folder / "few.csv", x[:5], header=False)
    capsys.readouterr()
    assert (
        main(
            [
                "score",
                str(run),
                "--input",
                str(folder / "few.csv"),
                "--output",
                str(folder / "few-scores.csv"),
                "--fpr",
                "0.01",
                "--no-progress",
            ]
        )
        == 0
    )
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(
        "vaekit: warning: 20 calibration rows cannot reach fpr=0.01"
    ), err


@pytest.mark.parametrize(
    "content, match",
    [
        ("f0,f1,f2,f3,f4\n1,2,3,4,5\n1,2,nan,4,5\n1,2,3,4,inf\n", "rows 1, 2"),
        ("f0,f1,f2\n1,2,3\n", r"missing column\(s\) 'f3', 'f4'"),
        ("f0,f1,f2,f3,f4\n1,2,3,4,5\n1,x,3,4,5\n", "column 'f1', row 1 .* holds 'x'"),
        ("", "is empty"),
    ],
)
def test_score_bad_input_one_line(tabular_run, tmp_path, capsys, content, match):
    _, run, _ = tabular_run
    (tmp_path / "bad.csv").write_text(content)
    capsys.readouterr()
    assert main(["score", str(run), "--input", str(tmp_path / "bad.csv"), "--no-progress"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("vaekit: error:")
    assert re.search(match, err), err
    assert not (run / "scores.csv").exists()


# ---------------------------------------------------------------- benchmark


def test_benchmark_metrics_against_known_values():
    from vaekit.benchmarks.anomaly import metrics
    from vaekit.benchmarks.anomaly_report import t_interval

    is_anomaly = np.array([0, 0, 1, 1], dtype=bool)
    perfect = metrics(is_anomaly, np.array([2.0, 1.0, -1.0, -2.0]))  # normality: anomalies score low
    assert perfect["auroc"] == 1.0 and perfect["ap"] == 1.0 and perfect["tpr"][-1] == 1.0
    assert metrics(is_anomaly, np.array([-2.0, -1.0, 1.0, 2.0]))["auroc"] == 0.0
    # t-interval of (1, 2, 3): t_{0.975, 2} * 1 / sqrt(3) = 4.3027 / 1.7321
    assert t_interval([1.0, 2.0, 3.0]) == pytest.approx(2.4841, abs=1e-4) and t_interval([1.0]) is None
    from vaekit.benchmarks.anomaly_report import paired_differences

    results = {
        "digits": {
            "flow: MAF log-density": {"seeds": [0, 1, 2], "seed_mean_auroc": [0.90, 0.92, 0.94]},
            "vae: reconstruction_probability": {"seeds": [0, 1], "seed_mean_auroc": [0.95, 0.95]},
        }
    }
    # paired on the seeds both finished: differences -0.05 and -0.03 -> mean -0.04, t_{0.975,1} * 0.01414 / sqrt(2)
    assert (
        paired_differences(results)
        == "- digits: flow: MAF log-density − vae: reconstruction_probability: -0.040 ± 0.127 (2 seeds)"
    )


def test_benchmark_command_writes_table_json_and_figure_and_resumes(tmp_path, capsys):
    out = tmp_path / "bench"
    argv = [
        "benchmark",
        "anomaly",
        "--datasets",
        "digits",
        "breast-cancer",
        "--classes",
        "7",
        "--seeds",
        "0",
        "1",
        "--epochs",
        "1",
        "--output-dir",
        str(out),
        "--no-progress",
    ]
    assert main(argv + ["--shard", "0/2"]) == 0
    first = sorted(p.name for p in (out / "parts").iterdir())
    assert len(first) == 8  # 16 units (2 seeds x 2 tasks x 4 families), every 2nd one
    assert main(argv + ["--shard", "1/2"]) == 0
    parts = sorted((out / "parts").iterdir())
    assert len(parts) == 16
    stamps = {p.name: p.stat().st_mtime_ns for p in parts}
    assert main(argv) == 0  # resumes: nothing left to run, no part rewritten
    assert stamps == {p.name: p.stat().st_mtime_ns for p in (out / "parts").iterdir()}
    printed = capsys.readouterr().out
    assert "flow: MAF log-density" in printed and "flow: NSF log-density" in printed
    record = json.loads((out / "anomaly.json").read_text())
    assert record["units_finished"] == record["units"] == 16
    methods = record["results"]["digits"]
    assert {
        "vae: reconstruction_probability",
        "vae: log_likelihood",
        "flow: MAF log-density",
        "IsolationForest",
        "LocalOutlierFactor",
        "OneClassSVM",
        "PCA reconstruction error",
    } <= set(methods)
    for name in ("vae: reconstruction_probability", "flow: NSF log-density"):
        entry = methods[name]
        assert entry["seeds"] == [0, 1] and entry["ci95"] is not None and 0 <= entry["test_fpr"] <= 1
        assert entry["mean_auroc"] == pytest.approx(np.mean(entry["tasks"]["7"]["auroc_seeds"]))
    table = (out / "anomaly.md").read_text()
    assert "| vae: reconstruction_probability |" in table and "vaekit benchmark anomaly" in table and " ± " in table
    assert (out / "roc.png").stat().st_size > 1000
    assert main(["benchmark", "anomaly", "--datasets", "cifar", "--output-dir", str(out)]) == 1
    assert main(["benchmark", "anomaly", "--shard", "2/2", "--output-dir", str(out)]) == 1


def test_score_threshold_without_training_data(tabular_run, tmp_path, capsys):
    import shutil

    _, run, x = tabular_run
    moved = tmp_path / "moved"
    shutil.copytree(run, moved)
    record = json.loads((moved / "config.json").read_text())
    record["config"]["data"]["path"] = str(tmp_path / "gone.csv")
    (moved / "config.json").write_text(json.dumps(record))
    data_record = json.loads((moved / "data.json").read_text())  # the recorded file is gone too
    data_record["path"] = str(tmp_path / "gone.csv")
    (moved / "data.json").write_text(json.dumps(data_record))
    write_csv(tmp_path / "new.csv", x[:8])
    capsys.readouterr()
    assert main(["score", str(moved), "--input", str(tmp_path / "new.csv"), "--no-progress"]) == 1
    assert "give a threshold" in capsys.readouterr().err
    assert main(["score", str(moved), "--input", str(tmp_path / "new.csv"), "--threshold", "1e9", "--no-progress"]) == 0
    table = np.genfromtxt(moved / "scores.csv", delimiter=",", names=True)
    assert (table["outlier"] == 1).all() and len(table) == 8


def test_benchmark_one_class_mnist_tasks_use_the_real_subset():
    """mnist: each digit in turn is the normal class, trained on its 400 training images of mnist-5k,
    scored on the whole 1,000-image test split (100 normal, 900 anomalous)."""
    from vaekit.benchmarks.anomaly import TASKS, Args

    tasks = TASKS["mnist"](Args(datasets=("mnist",), classes=(0, 7), train_size=1000))
    test = data.load("mnist-5k", "test")
    assert [t.name for t in tasks] == ["0", "7"]
    for task in tasks:
        k = int(task.name)
        assert task.train.shape == (400, 1, 28, 28) and torch.equal(task.test, test.x)
        assert task.is_anomaly.sum() == 900 and not task.is_anomaly[test.labels["digit"].numpy() == k].any()
    assert len(TASKS["mnist"](Args(datasets=("mnist",), classes=(3,), train_size=50))[0].train) == 50
    from vaekit.benchmarks.anomaly import units

    every = units(Args(datasets=("mnist",), classes=(0, 7)))
    assert len(every) == 2 * 4 * 3 and every[-1][2] == "nsf" and {u[1] for u in every} == {"0", "7"}
