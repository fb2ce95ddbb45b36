"""Latent-space exploration: embeddings, interpolation, traversals, manifold grids, iterated
encode-decode. Plain tensor functions of a trained model; figures live in :mod:`vaekit.reporting.plots`.

Every function takes any model of :data:`vaekit.models.MODELS`; for a conditional one (CVAE)
pass the condition ``c`` (class indices, see :meth:`vaekit.models.CVAE.one_hot`), which fixes
p(x|z, c) and q(z|x, c). Images are decoder means g(z), ``(…, *data_shape)``, in the data's
units ([0, 1] pixels for images).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..distributions import kl_per_dim, sample_prior
from ..models import condition


def _device(model) -> dict:
    p = next(model.parameters())
    return {"device": p.device, "dtype": p.dtype}


@torch.no_grad()
def embed(model, x: torch.Tensor, c=None, batch_size: int = 500) -> torch.Tensor:
    """Encoder means E_q[z|x] (``transform``) of ``x`` ``(N, *data_shape)``, in batches: ``(N, latent_dim)``.

    ``c``: ``(N,)`` class indices for a conditional model (ignored otherwise).
    """
    out = []
    for start in range(0, len(x), batch_size):
        cb = c[start : start + batch_size] if torch.is_tensor(c) and c.dim() else c
        out.append(condition(model, cb).transform(x[start : start + batch_size].to(_device(model)["device"])))
    return torch.cat(out).cpu() if out else torch.empty(0, model.latent_dim)


def project(codes, method: str = "pca", seed: int = 0) -> np.ndarray:
    """2-D view of latent codes ``(N, latent_dim)`` for a scatter plot: ``(N, 2)``.

    ``method``: "pca" (:func:`pca`, the two principal directions) or "tsne" (scikit-learn
    t-SNE, van der Maaten & Hinton 2008, perplexity min(30, (N−1)/3), PCA initialisation).
    Codes with at most 2 dimensions are returned as they are (padded with zeros to 2 columns).

    Raises:
        ValueError: an unknown method, or fewer than 3 codes for t-SNE.
    """
    if method not in PROJECTIONS:
        raise ValueError(f"unknown projection {method!r}; choose one of: {', '.join(PROJECTIONS)}")
    codes = np.asarray(codes, dtype=np.float64)
    if codes.shape[1] <= 2:
        return np.pad(codes, ((0, 0), (0, 2 - codes.shape[1])))
    return PROJECTIONS[method](codes, seed)


def _tsne(codes: np.ndarray, seed: int) -> np.ndarray:
    if len(codes) < 4:
        raise ValueError(f"t-SNE needs at least 4 codes, got {len(codes)}")
    perplexity = min(30.0, (len(codes) - 1) / 3)
    from sklearn.manifold import TSNE

    return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(codes)


def pca(codes, n_components: int = 2) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Principal component analysis of ``codes`` ``(N, D)`` by an exact SVD of the centred data,
    in float64 (Jolliffe 2002, sec. 1.1 and 3.5): what scikit-learn's ``PCA(n_components)``
    computes, without importing scikit-learn (seconds, against milliseconds for a few thousand codes).

    Returns:
        ``(mean (D,), components (n_components, D), explained_variance (n_components,))``: the
        principal directions as unit rows, each signed so that its largest-magnitude entry is
        positive (scikit-learn's ``svd_flip`` on the components), and the variances along them
        (divisor N − 1), as ``PCA.mean_``, ``components_`` and ``explained_variance_``.

    Raises:
        ValueError: ``codes`` not 2-D, or n_components not in [1, min(N, D)].
    """
    x = torch.as_tensor(np.asarray(codes) if not torch.is_tensor(codes) else codes).detach().cpu().double()
    if x.dim() != 2 or not 1 <= n_components <= min(x.shape):
        raise ValueError(
            f"pca needs (N, D) codes and 1 <= n_components <= min(N, D), got {tuple(x.shape)} and {n_components}"
        )
    mean = x.mean(0)
    _, singular, vh = torch.linalg.svd(x - mean, full_matrices=False)
    components = vh[:n_components]
    largest = components.abs().argmax(1)
    components = components * components.gather(1, largest[:, None]).sign()
    return mean, components, singular[:n_components] ** 2 / max(len(x) - 1, 1)


def _pca_project(codes: np.ndarray, seed: int) -> np.ndarray:
    mean, components, _ = pca(codes, 2)
    return ((torch.from_numpy(codes) - mean) @ components.T).numpy()


#: name -> (codes (N, D), seed) -> (N, 2)
PROJECTIONS = {
    "pca": _pca_project,
    "tsne": _tsne,
}


def lerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Linear interpolation (1−t) z0 + t z1: z0, z1 ``(..., D)``, t ``(num_steps,)`` -> ``(num_steps, ..., D)``."""
    t = t.reshape(-1, *([1] * z0.dim())).to(z0)
    return (1 - t) * z0 + t * z1


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation (Shoemake 1985; for VAE latents White 2016, "Sampling generative
    networks", sec. 2.1): sin((1−t)ω)/sin ω · z0 + sin(tω)/sin ω · z1 with ω the angle between
    z0 and z1. Falls back to :func:`lerp` where the codes are (anti)parallel (sin ω < 1e-6).

    z0, z1 ``(..., D)``, t ``(num_steps,)`` -> ``(num_steps, ..., D)``; equals z0 at t=0, z1 at t=1.
    """
    t = t.reshape(-1, *([1] * z0.dim())).to(z0)
    cos = torch.nn.functional.cosine_similarity(z0, z1, dim=-1).clamp(-1, 1).unsqueeze(-1)
    omega = torch.arccos(cos)
    sin = torch.sin(omega)
    safe = sin.abs() > 1e-6
    sin = torch.where(safe, sin, torch.ones_like(sin))
    spherical = (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / sin
    return torch.where(safe, spherical, lerp(z0, z1, t))


#: name -> (z0, z1, t) -> path (num_steps, ..., D)
INTERPOLATIONS = {"linear": lerp, "spherical": slerp}


@torch.no_grad()
def interpolate(model, x: torch.Tensor, num_steps: int = 8, method: str = "linear", c=None) -> torch.Tensor:
    """Decoded path between the codes of two inputs: ``(num_steps, *data_shape)``.

    The endpoints are encoded to their means μ(x0), μ(x1), joined by ``method`` ("linear" or
    "spherical") and decoded with the decoder mean, so the first and last images are the
    reconstructions g(μ(x0)), g(μ(x1)). For a conditional model, ``c`` ``(2,)`` holds the two
    classes and the one-hot condition is interpolated linearly along the path.

    Args:
        x: ``(2, *data_shape)``, the two endpoints.

    Raises:
        ValueError: not two inputs, num_steps < 2, or an unknown method.
    """
    if len(x) != 2:
        raise ValueError(f"interpolate needs two inputs x (2, *data_shape), got {len(x)}")
    if num_steps < 2:
        raise ValueError(f"num_steps must be >= 2, got {num_steps}")
    if method not in INTERPOLATIONS:
        raise ValueError(f"unknown interpolation {method!r}; choose one of: {', '.join(INTERPOLATIONS)}")
    t = torch.linspace(0, 1, num_steps)
    z = embed(model, x, c).to(**_device(model))
    path = INTERPOLATIONS[method](z[0], z[1], t)
    if model.conditional:
        onehot = model.one_hot(c, 2)
        return model.decode(path, lerp(onehot[0], onehot[1], t)).mean
    return model.decode(path).mean


def kl_order(model, x: torch.Tensor, c=None, batch_size: int = 500) -> tuple[list[int], torch.Tensor]:
    """Latent dimensions sorted by how much they carry, most first, and the score of each.

    For a stochastic encoder the score is the mean KL(q(z_d|x) ‖ N(0, 1)) over ``x`` (nats per
    example per dimension; Burda et al. 2015 and Higgins et al. 2017 sort traversals this way);
    for a deterministic AE (no KL) the variance of the code over ``x``.

    Returns:
        ``(dims, scores)``: dims a permutation of range(latent_dim), scores ``(latent_dim,)`` in dims' original order.
    """
    scores = None
    if model.stochastic:
        total = torch.zeros(model.latent_dim)
        with torch.no_grad():
            for start in range(0, len(x), batch_size):
                cb = c[start : start + batch_size] if torch.is_tensor(c) and c.dim() else c
                q = condition(model, cb).encode(x[start : start + batch_size].to(_device(model)["device"]))
                per_dim = kl_per_dim(q, model.prior())
                if per_dim is None:  # a prior with dependent dimensions: no per-dimension KL
                    break
                total += per_dim.sum(0).cpu()
            else:
                scores = total / len(x)
    if scores is None:  # an AE, or no per-dimension KL: the variance of the code over x
        scores = embed(model, x, c, batch_size).var(0)
    return torch.argsort(scores, descending=True, stable=True).tolist(), scores


@torch.no_grad()
def traverse(model, z: torch.Tensor, dims, values, c=None) -> torch.Tensor:
    """Latent traversals: decode ``z`` with one dimension at a time set to each of ``values``.

    Args:
        z: ``(latent_dim,)`` the code held fixed (e.g. an encoder mean).
        dims: the dimensions to vary, in the order of the output rows.
        values: ``(num_values,)`` the values z_d takes (absolute, e.g. linspace(−3, 3, 9) in
            prior standard deviations).
        c: one class for a conditional model.

    Returns:
        ``(len(dims), num_values, *data_shape)`` decoder means; row i varies ``dims[i]``.

    Raises:
        ValueError: z of the wrong shape or a dimension out of range.
    """
    z = torch.as_tensor(z).to(**_device(model))
    values = torch.as_tensor(values).to(z)
    dims = [int(d) for d in dims]
    if z.shape != (model.latent_dim,):
        raise ValueError(f"z must be one code of shape ({model.latent_dim},), got {tuple(z.shape)}")
    if any(not 0 <= d < model.latent_dim for d in dims):
        raise ValueError(f"dims must lie in [0, {model.latent_dim}), got {dims}")
    codes = z.repeat(len(dims), len(values), 1)  # (rows, num_values, latent_dim)
    rows = torch.arange(len(dims))
    codes[rows, :, torch.tensor(dims, dtype=torch.long)] = values
    flat = codes.reshape(-1, model.latent_dim)
    images = condition(model, c).decode(flat).mean
    return images.reshape(len(dims), len(values), *images.shape[1:])


@torch.no_grad()
def iterate(model, x: torch.Tensor, num_steps: int = 5, c=None) -> torch.Tensor:
    """Iterated encode-decode x, g(μ(x)), g(μ(g(μ(x)))), …: ``(num_steps + 1, batch, *data_shape)``.

    Shows what the model keeps of an input and where repeated reconstruction drifts (towards
    the model's attractors). Works for any model, deterministic or not (means throughout).
    """
    view = condition(model, c)
    steps = [x.to(_device(model)["device"])]
    for _ in range(num_steps):
        steps.append(view.reconstruct(steps[-1]))
    return torch.stack(steps)


def quantile_grid(n: int = 15) -> torch.Tensor:
    """An ``n`` x ``n`` grid of standard-normal quantiles Φ⁻¹(0.05 … 0.95), ``(n*n, 2)``, rows top to
    bottom = decreasing second coordinate (Kingma & Welling 2013, fig. 4)."""
    q = torch.special.ndtri(torch.linspace(0.05, 0.95, n, dtype=torch.float64)).float()
    return torch.stack(torch.meshgrid(q, q.flip(0), indexing="xy"), -1).reshape(-1, 2)


def principal_codes(codes: torch.Tensor, n: int = 15) -> torch.Tensor:
    """Codes on the plane of the two principal directions of ``codes`` ``(N, latent_dim)``:
    mean + a₁ v₁ + a₂ v₂ with (a₁, a₂) the :func:`quantile_grid` scaled by each direction's standard
    deviation. Returns ``(n*n, latent_dim)``.

    Raises:
        ValueError: fewer than 2 latent dimensions or fewer than 3 codes.
    """
    codes = torch.as_tensor(codes, dtype=torch.float32)
    if codes.dim() != 2 or codes.shape[1] < 2 or len(codes) < 3:
        raise ValueError(f"principal_codes needs (N >= 3, latent_dim >= 2) codes, got {tuple(codes.shape)}")
    mean, directions, variance = (v.float() for v in pca(codes, 2))  # directions (2, latent_dim)
    return mean + (quantile_grid(n) * variance.sqrt()) @ directions


@torch.no_grad()
def manifold(model, x: torch.Tensor | None = None, n: int = 15, c=None, labels=None) -> torch.Tensor:
    """Decoded latent grid ``(n*n, *data_shape)`` (row-major, ``n`` columns).

    latent_dim = 2: the Gaussian quantile grid of z (Kingma & Welling 2013, fig. 4). Larger
    latents: the grid over the two principal directions of the encoder means of ``x``
    (:func:`principal_codes`); ``labels`` ``(N,)`` are x's conditions for a CVAE. ``c``: the
    class to decode with (conditional models).

    Raises:
        ValueError: latent_dim > 2 without data ``x``, or latent_dim = 1.
    """
    if model.latent_dim == 2:
        codes = quantile_grid(n)
    elif model.latent_dim > 2 and x is not None:
        codes = principal_codes(embed(model, x, labels), n)
    else:
        raise ValueError(
            f"a latent grid needs latent_dim = 2, or latent_dim > 2 and data x; "
            f"got latent_dim={model.latent_dim}{'' if x is not None else ' and no x'}"
        )
    return condition(model, c).decode(codes.to(**_device(model))).mean


@torch.no_grad()
def class_grid(
    model, num_samples: int = 8, temperature: float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Conditional samples, one row per class from the same latent draws (style fixed, class varied;
    Sohn et al. 2015, fig. 3): ``(num_classes, num_samples, *data_shape)`` decoder means.

    Raises:
        ValueError: a model that is not conditional.
    """
    if not model.conditional:
        raise ValueError(f"class_grid needs a conditional model (cvae), got {type(model).__name__}")
    z = sample_prior(model.prior(), num_samples, temperature, generator)
    z = z.to(**_device(model)).expand(model.num_classes, num_samples, model.latent_dim)
    classes = torch.arange(model.num_classes).repeat_interleave(num_samples)
    images = model.decode(z.reshape(-1, model.latent_dim), classes).mean
    return images.reshape(model.num_classes, num_samples, *images.shape[1:])


def read_image(path, data_shape) -> torch.Tensor:
    """An image file as one example of ``data_shape`` ``(C, H, W)``: converted to grey (C = 1) or
    RGB (C = 3), resized to H x W (bilinear), scaled to [0, 1]. Returns ``(C, H, W)`` float32.

    Raises:
        FileNotFoundError: no such file. ValueError: data that are not 1- or 3-channel images.
    """
    from PIL import Image  # matplotlib's dependency

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file {path} not found")
    if len(data_shape) != 3 or data_shape[0] not in (1, 3):
        raise ValueError(
            f"image files need a model of 1- or 3-channel images, this one has examples of shape {tuple(data_shape)}"
        )
    c, h, w = data_shape
    image = Image.open(path).convert("L" if c == 1 else "RGB").resize((w, h), Image.BILINEAR)
    array = np.asarray(image, dtype=np.float32) / 255.0
    return torch.from_numpy(array.reshape(h, w, c)).permute(2, 0, 1).contiguous()
