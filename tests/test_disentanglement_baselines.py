"""Baseline representations of the disentanglement benchmark (raw pixels, PCA, FastICA, the
untrained encoder) and their rows in the benchmark's tables, on a tiny dSprites grid."""

import numpy as np
import pytest
import torch

from vaekit import data
from vaekit.benchmarks import disentanglement as bench
from vaekit.benchmarks import disentanglement_baselines as rows_of
from vaekit.config import Config
from vaekit.evaluation.disentanglement import beta_vae_score, factor_vae_score, grid_codes, grid_representation
from vaekit.evaluation.disentanglement.baselines import BASELINES, PUBLISHED_BETA_VAE_SCORE, baseline_codes
from vaekit.evaluation.disentanglement.common import varying_factor_batches
from vaekit.models import build_model


@pytest.fixture(scope="module")
def grid():
    torch.set_num_threads(1)
    return data.load("dsprites-synthetic", "test", image_size=16, grid_step=8)


def _config(latent_dim=3, image_size=16):
    return Config.from_flat(
        data="dsprites-synthetic",
        image_size=image_size,
        grid_step=8,
        net="mlp",
        hidden=(16,),
        latent_dim=latent_dim,
        binarize="none",
    )


def test_codes_of_each_baseline(grid):
    test = train = grid
    cells = len(test.grid_images)
    pixels = baseline_codes("raw-pixels", test, train.x, 3)
    assert pixels.shape == (cells, 256) and np.array_equal(pixels, test.grid_images.reshape(cells, -1))
    pca = baseline_codes("pca", test, train.x, 3, seed=0)
    assert pca.shape == (cells, 3) and np.array_equal(pca, baseline_codes("pca", test, train.x, 3, seed=7))
    # PCA codes of the grid: the first principal axes of the training images, as numpy's SVD finds them
    x = train.x.reshape(len(train.x), -1).double().numpy()
    _, _, vt = np.linalg.svd(x - x.mean(0), full_matrices=False)
    projected = (pixels - x.mean(0)) @ vt[:3].T
    assert np.allclose(np.abs(pca), np.abs(projected), atol=1e-6)
    ica0, ica1 = (baseline_codes("ica", test, train.x, 3, seed=s) for s in (0, 1))
    assert ica0.shape == (cells, 3) and not np.allclose(ica0, ica1)
    assert np.array_equal(ica0, baseline_codes("ica", test, train.x, 3, seed=0))
    config = _config()
    untrained = baseline_codes("untrained-vae", test, train.x, 3, seed=2, model_config=config.model)
    model = build_model(config.model, tuple(test.x.shape[1:]), True, seed=2)
    assert np.array_equal(untrained, grid_codes(model, test))
    assert not np.allclose(
        untrained, baseline_codes("untrained-vae", test, train.x, 3, seed=3, model_config=config.model)
    )


def test_bad_baseline_inputs(grid):
    test = grid
    with pytest.raises(ValueError, match="unknown baseline"):
        baseline_codes("pixels", test, test.x, 3)
    with pytest.raises(ValueError, match="latent_dim"):
        baseline_codes("pca", test, test.x, 0)
    with pytest.raises(ValueError, match="ModelConfig"):
        baseline_codes("untrained-vae", test, test.x, 3)
    with pytest.raises(ValueError, match="factor grid"):
        baseline_codes("raw-pixels", data.load("digits", "test"), test.x, 3)
    with pytest.raises(ValueError, match="unknown baseline"):
        rows_of.baseline_rows(_config(), names=("pixels",))


def test_chunked_batch_metrics_match_the_whole_batch(grid, monkeypatch):
    """The BetaVAE and FactorVAE scores look codes up CHUNK points at a time: same numbers as all at once."""
    from vaekit.evaluation.disentanglement import common

    test = grid
    codes = baseline_codes("pca", test, test.x, 3)
    rep = grid_representation(test, codes)
    whole = varying_factor_batches(test, rep, 7, 5, np.random.default_rng(0), "pairs")
    (z1, z2), k = whole
    results = {}
    for chunk in (3, 10_000):
        monkeypatch.setattr(common, "CHUNK", chunk)
        from vaekit.evaluation.disentanglement import beta_vae, factor_vae

        monkeypatch.setattr(beta_vae, "CHUNK", chunk)
        monkeypatch.setattr(factor_vae, "CHUNK", chunk)
        features, k2 = beta_vae._features(test, rep, 7, 5, np.random.default_rng(0))
        assert np.array_equal(k, k2) and np.array_equal(features, np.abs(z1 - z2).mean(axis=1))
        results[chunk] = (
            beta_vae_score(test, rep, num_train=50, num_eval=20, batch_size=4),
            factor_vae_score(test, rep, num_train=50, num_eval=20, num_variance_estimate=100),
        )
    assert results[3] == results[10_000]


def test_baseline_rows_seeds_cache_and_tables(grid, tmp_path, monkeypatch):
    """Random baselines get every seed, deterministic ones one; results are cached with their settings;
    the benchmark's table shows them beside the published numbers and in the ANOVA."""
    import functools

    from sklearn.ensemble import GradientBoostingClassifier

    from vaekit.evaluation.disentanglement import METRICS
    from vaekit.evaluation.disentanglement import dci as dci_module

    # the metrics at toy sizes (the benchmark uses the reference sizes): few points, DCI's boosted
    # classifiers with 5 trees instead of 100, and 8x8 images (64 raw-pixel codes instead of 256)
    small = {
        "beta_vae": {"num_train": 40, "num_eval": 20, "batch_size": 4},
        "factor_vae": {"num_train": 40, "num_eval": 20, "num_variance_estimate": 100},
        "mig": {"num_train": 100},
        "sap": {"num_train": 60, "num_test": 30},
    }
    real = rows_of.evaluate_disentanglement

    def evaluate(model, dataset, metrics, seed, overrides, codes):
        return real(model, dataset, metrics, seed, overrides={**small, **overrides}, codes=codes)

    monkeypatch.setattr(rows_of, "evaluate_disentanglement", evaluate)
    monkeypatch.setattr(
        dci_module, "GradientBoostingClassifier", functools.partial(GradientBoostingClassifier, n_estimators=5)
    )
    calls = []
    real_codes = rows_of.baseline_codes
    monkeypatch.setattr(rows_of, "baseline_codes", lambda *a, **k: calls.append(a[0]) or real_codes(*a, **k))
    config = _config(image_size=8)
    dci = {"num_train": 40, "num_test": 20}
    lines = []
    rows = rows_of.baseline_rows(
        config, names=("raw-pixels", "ica", "untrained-vae"), seeds=(0, 1), dci=dci, folder=tmp_path, log=lines.append
    )
    assert calls == ["raw-pixels", "ica", "untrained-vae", "ica", "untrained-vae"]  # seed 0 of every baseline first
    assert rows["raw-pixels"]["seeds"] == [0] and rows["ica"]["seeds"] == [0, 1]
    assert "dci.disentanglement" not in rows["raw-pixels"]["aggregate"] and "dci" in rows["raw-pixels"]["skipped"]
    assert set(rows["ica"]["aggregate"]) == {f"{m}.{k}" for m in METRICS for k in METRICS[m].headline}
    assert rows["untrained-vae"]["published_beta_vae_score"] == PUBLISHED_BETA_VAE_SCORE["untrained-vae"] == 0.4414
    assert all(0 <= v <= 1 for row in rows.values() for s in row["per_seed"].values() for v in s.values())
    again = rows_of.baseline_rows(
        config, names=("raw-pixels", "ica", "untrained-vae"), seeds=(0, 1), dci=dci, folder=tmp_path, log=lines.append
    )
    assert len(calls) == 5 and again == rows  # cached: nothing recomputed
    rows_of.baseline_rows(
        config, names=("ica",), seeds=(0, 1), dci={"num_train": 30, "num_test": 20}, folder=tmp_path, log=lines.append
    )
    assert len(calls) == 7  # other settings: recomputed
    names = ("raw-pixels", "ica", "pca")
    cached = rows_of.baseline_rows(config, names=names, seeds=(0, 1, 2), dci=dci, folder=tmp_path, cached_only=True)
    assert set(cached) == {"raw-pixels"} and cached["raw-pixels"] == rows["raw-pixels"]  # ica was overwritten
    cached = rows_of.baseline_rows(
        config, names=names, seeds=(0, 1, 2), dci={"num_train": 30, "num_test": 20}, folder=tmp_path, cached_only=True
    )
    assert len(calls) == 7 and set(cached) == {"ica"} and cached["ica"]["seeds"] == [0, 1]

    models = {"vae": {"seeds": [0, 1], "aggregate": {"beta_vae.eval_accuracy": bench.summarize([0.70, 0.72])}}}
    results = {
        "command": "c",
        "date": "d",
        "machine": "m",
        "models": models,
        "baselines": rows,
        "published_beta_vae_score": bench.PUBLISHED,
        "model_effect": {},
        "model_effect_with_baselines": bench.model_effect({**models, **rows}, min_seeds=1),
    }
    text = bench.markdown(results)
    assert "| raw-pixels (baseline) | 1 |" in text and "| ica (baseline) | 2 |" in text
    assert "| pca | not run | 0.8490 |" in text and "| infogan | not run | 0.7350 |" in text
    assert "DCI not run on raw pixels" in text
    effect = results["model_effect_with_baselines"]["beta_vae.eval_accuracy"]
    assert effect["models"] == 4 and effect["runs"] == 7 and 0 <= effect["eta_squared"] <= 1
    assert bench.model_effect({**models, **rows})["beta_vae.eval_accuracy"]["models"] == 3  # n >= 2: not raw pixels
    assert set(BASELINES) == {"raw-pixels", "pca", "ica", "untrained-vae"}
