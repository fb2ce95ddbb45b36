"""Reference representations for the disentanglement metrics: what a score means next to raw
pixels, linear projections and an encoder that never trained.

Higgins et al. 2017 ("β-VAE: Learning Basic Visual Concepts with a Constrained Variational
Framework", ICLR, sec. 4 and fig. 6) put the BetaVAE score of their models beside four such
baselines on dSprites: the flattened image itself (45.75 %), PCA (84.9 %) and ICA (42.03 %) with as
many components as the models' latent size, and the VAE's encoder at its random initialisation
(44.14 %). Each baseline here returns the codes of every cell of a factor grid, the table that
:func:`~vaekit.evaluation.disentanglement.common.grid_representation` serves to every metric, so
the metrics run on exactly the points a trained model's codes are scored on.

A baseline is ``codes(dataset, train_x, latent_dim, seed, model_config) -> (G, D) float64``:

- ``raw-pixels``: the flattened image, D = pixels (deterministic: one seed is all there is).
- ``pca``: ``sklearn.decomposition.PCA(latent_dim, svd_solver="full")`` fitted on the pixels of
  ``train_x`` that vary (deterministic: the full SVD, signs fixed by scikit-learn's ``svd_flip``).
- ``ica``: ``sklearn.decomposition.FastICA(latent_dim, whiten="unit-variance", random_state=seed)``
  fitted on the pixels of ``train_x`` that vary (random: the unmixing matrix starts from a seeded draw).
- ``untrained-vae``: encoder means of :func:`vaekit.models.build_model` ``(model_config, seed=seed)``
  without any training step (random: the weight initialisation).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable

import numpy as np
import torch

from .common import grid_codes


def _flat(images) -> np.ndarray:
    array = images.numpy() if torch.is_tensor(images) else np.asarray(images)
    return array.reshape(len(array), -1).astype(np.float64)


def _grid_images(dataset) -> np.ndarray:
    if getattr(dataset, "grid_images", None) is None:
        raise ValueError(
            f"the disentanglement baselines need a dataset with a factor grid (dsprites, "
            f"dsprites-synthetic); got {getattr(dataset, 'name', type(dataset).__name__)!r}"
        )
    return _flat(dataset.grid_images)


def raw_pixels(dataset, train_x, latent_dim: int, seed: int, model_config=None) -> np.ndarray:
    """The flattened grid images: ``(G, C·H·W)`` in [0, 1] (Higgins et al. 2017's "raw pixels")."""
    return _grid_images(dataset)


def _fit_transform(estimator, dataset, train_x) -> np.ndarray:
    """``estimator`` fitted on the training images' pixels that vary (a pixel constant over the
    training set is in no component; FastICA's unit-variance whitening divides by zero on it),
    then applied to the same pixels of every grid image."""
    train = _flat(train_x)
    if len(train) < 2:
        raise ValueError(f"fitting a baseline needs at least 2 training images, got {len(train)}")
    varying = train.std(axis=0) > 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # FastICA's ConvergenceWarning: reported by the score, not fatal
        estimator.fit(train[:, varying])
    return estimator.transform(_grid_images(dataset)[:, varying]).astype(np.float64)


def pca(dataset, train_x, latent_dim: int, seed: int, model_config=None) -> np.ndarray:
    """Projections of the grid images on the first ``latent_dim`` principal components of ``train_x``."""
    from sklearn.decomposition import PCA

    return _fit_transform(PCA(latent_dim, svd_solver="full"), dataset, train_x)


def ica(dataset, train_x, latent_dim: int, seed: int, model_config=None) -> np.ndarray:
    """The ``latent_dim`` independent components (FastICA, Hyvärinen & Oja 2000) of ``train_x``, applied to the grid."""
    from sklearn.decomposition import FastICA

    return _fit_transform(
        FastICA(latent_dim, whiten="unit-variance", random_state=seed, max_iter=1000), dataset, train_x
    )


def untrained_vae(dataset, train_x, latent_dim: int, seed: int, model_config=None) -> np.ndarray:
    """Encoder means of the model ``model_config`` describes, initialised with ``seed`` and never trained."""
    from ...models import build_model

    if model_config is None:
        raise ValueError("the untrained-vae baseline needs the model's ModelConfig (model_config=...)")
    if model_config.latent_dim != latent_dim:
        raise ValueError(
            f"model_config.latent_dim is {model_config.latent_dim}, the baselines' latent_dim {latent_dim}"
        )
    model = build_model(model_config, tuple(dataset.x.shape[1:]), True, seed=seed)
    return grid_codes(model, dataset)


@dataclasses.dataclass(frozen=True)
class Baseline:
    """A baseline representation: its codes function, whether ``seed`` changes it, and its source."""

    codes: Callable[..., np.ndarray]
    random: bool
    description: str


#: name -> Baseline (the rows the disentanglement benchmark puts under the trained models).
BASELINES: dict[str, Baseline] = {
    "raw-pixels": Baseline(raw_pixels, False, "the flattened image (Higgins et al. 2017, fig. 6)"),
    "pca": Baseline(
        pca,
        False,
        "PCA, latent_dim components fitted on the training images' pixels that vary (scikit-learn, full SVD)",
    ),
    "ica": Baseline(
        ica, True, "FastICA, latent_dim components fitted on the training images' pixels that vary (scikit-learn)"
    ),
    "untrained-vae": Baseline(untrained_vae, True, "the benchmark's VAE encoder at its initialisation, no training"),
}

#: Higgins et al. 2017, fig. 6 (the table of BetaVAE-metric accuracies on dSprites, 64×64, full
#: grid; quoted by the project's seed 003): representation -> accuracy in [0, 1].
PUBLISHED_BETA_VAE_SCORE = {
    "raw-pixels": 0.4575,
    "pca": 0.849,
    "ica": 0.4203,
    "dc-ign": 0.993,
    "infogan": 0.735,
    "untrained-vae": 0.4414,
    "vae": 0.6158,
    "beta-vae": 0.9923,
}


def baseline_codes(name: str, dataset, train_x, latent_dim: int, seed: int = 0, model_config=None) -> np.ndarray:
    """Codes of every cell of ``dataset``'s factor grid under baseline ``name``.

    Args:
        name: a key of :data:`BASELINES`.
        dataset: a :class:`~vaekit.data.factors.FactorDataset` (its ``grid_images``, one per cell).
        train_x: ``(N, C, H, W)`` training images in [0, 1], what PCA and ICA are fitted on.
        latent_dim: components of PCA / ICA (the models' latent size).
        seed: ICA's ``random_state`` / the untrained encoder's initialisation seed (ignored by the
            deterministic baselines).
        model_config: the :class:`~vaekit.config.ModelConfig` of the untrained encoder.

    Returns:
        float64 ``(G, D)`` in grid order (D = pixels for ``raw-pixels``, ``latent_dim`` otherwise).

    Raises:
        ValueError: an unknown name, a dataset without a factor grid, a latent_dim below 1.
    """
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; choose from {', '.join(BASELINES)}")
    if not isinstance(latent_dim, (int, np.integer)) or latent_dim < 1:
        raise ValueError(f"latent_dim must be a positive integer, got {latent_dim!r}")
    return BASELINES[name].codes(dataset, train_x, int(latent_dim), int(seed), model_config)


__all__ = [
    "BASELINES",
    "PUBLISHED_BETA_VAE_SCORE",
    "Baseline",
    "baseline_codes",
    "ica",
    "pca",
    "raw_pixels",
    "untrained_vae",
]
