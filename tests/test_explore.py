"""Latent-space exploration: interpolation, traversals, KL order, manifold grids, iterated
reconstruction and embeddings, on tiny models and on the digits."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from vaekit import VAE, build_model, explore
from vaekit.config import Config
from vaekit.distributions import build_likelihood
from vaekit.models import CVAE

torch.set_num_threads(1)
SHAPE = (1, 8, 8)


def tiny(model="vae", latent_dim=4, **extra):
    config = Config.from_flat(model=model, latent_dim=latent_dim, hidden=(32,), seed=0)
    return build_model(config.model, SHAPE, **extra, seed=config.train.seed).eval()


@pytest.fixture(scope="module")
def x():
    return torch.rand(12, *SHAPE, generator=torch.Generator().manual_seed(0))


# ---------------------------------------------------------------- interpolation


def test_lerp_and_slerp_endpoints_and_norm():
    g = torch.Generator().manual_seed(1)
    z0, z1 = torch.randn(6, generator=g), torch.randn(6, generator=g)
    t = torch.linspace(0, 1, 7)
    for fn in (explore.lerp, explore.slerp):
        path = fn(z0, z1, t)
        assert path.shape == (7, 6)
        torch.testing.assert_close(path[0], z0)
        torch.testing.assert_close(path[-1], z1)
    # slerp between orthogonal unit vectors stays on the unit circle, at the angle t·π/2
    e0, e1 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    path = explore.slerp(e0, e1, t)
    torch.testing.assert_close(path.norm(dim=-1), torch.ones(7))
    torch.testing.assert_close(torch.atan2(path[:, 1], path[:, 0]), t * math.pi / 2)
    # parallel codes fall back to the straight line (no division by sin 0)
    torch.testing.assert_close(explore.slerp(e0, 2 * e0, t), explore.lerp(e0, 2 * e0, t))


@pytest.mark.parametrize("method", ["linear", "spherical"])
@pytest.mark.parametrize("model", ["ae", "vae", "cvae"])
def test_interpolation_endpoints_are_reconstructions(model, method, x):
    m = tiny(model, num_classes=10) if model == "cvae" else tiny(model)
    c = torch.tensor([3, 7]) if model == "cvae" else None
    strip = explore.interpolate(m, x[:2], 6, method, c)
    assert strip.shape == (6, *SHAPE)
    recon = m.reconstruct(x[:2], c) if model == "cvae" else m.reconstruct(x[:2])
    torch.testing.assert_close(strip[0], recon[0])
    torch.testing.assert_close(strip[-1], recon[1])
    assert not torch.allclose(strip[2], strip[0])


def test_interpolate_rejects_bad_arguments(x):
    m = tiny()
    with pytest.raises(ValueError, match="two inputs"):
        explore.interpolate(m, x[:3])
    with pytest.raises(ValueError, match="unknown interpolation 'cubic'"):
        explore.interpolate(m, x[:2], method="cubic")
    with pytest.raises(ValueError, match="conditional"):
        explore.interpolate(tiny("cvae", num_classes=10), x[:2])


# ---------------------------------------------------------------- traversals and KL order


class FixedEncoder(nn.Module):
    """q(z|x) = N(loc, diag(scale²)) with the same loc and scale for every x."""

    def __init__(self, loc, scale):
        super().__init__()
        self.loc, self.scale = nn.Parameter(torch.tensor(loc)), torch.tensor(scale)

    def forward(self, x):
        n = len(x)
        return self.loc.expand(n, -1), self.scale.expand(n, -1)


def test_traversal_order_follows_kl(x):
    """KL(N(μ, σ²) ‖ N(0, 1)) = ½(σ² + μ² − 1 − log σ²) per dimension, in closed form."""
    loc, scale = [0.0, 0.5, 0.0, 2.0], [1.0, 0.1, 0.5, 0.3]
    expected = [0.5 * (s * s + m * m - 1 - math.log(s * s)) for m, s in zip(loc, scale)]
    decoder = nn.Sequential(nn.Linear(4, 64), nn.Unflatten(1, SHAPE))
    model = VAE(FixedEncoder(loc, scale), decoder, build_likelihood("bernoulli", SHAPE), 4, SHAPE).eval()
    dims, scores = explore.kl_order(model, x)
    torch.testing.assert_close(scores, torch.tensor(expected), rtol=1e-5, atol=1e-6)
    assert dims == sorted(range(4), key=lambda d: -expected[d]) == [3, 1, 2, 0]


def test_kl_order_of_an_ae_ranks_code_variance(x):
    m = tiny("ae")
    dims, scores = explore.kl_order(m, x)
    torch.testing.assert_close(scores, m.transform(x).var(0))
    assert scores[dims].diff().le(0).all()


def test_traverse_varies_one_dimension_at_a_time(x):
    m = tiny()
    z = m.transform(x[:1])[0]
    values = torch.linspace(-3, 3, 5)
    images = explore.traverse(m, z, [2, 0], values)
    assert images.shape == (2, 5, *SHAPE)
    for row, d in enumerate([2, 0]):
        codes = z.repeat(5, 1)
        codes[:, d] = values
        torch.testing.assert_close(images[row], m.decode(codes).mean)
    with pytest.raises(ValueError, match="dims must lie in"):
        explore.traverse(m, z, [4], values)
    with pytest.raises(ValueError, match="one code of shape"):
        explore.traverse(m, z[None], [0], values)


# ---------------------------------------------------------------- grids, iterate, embed


def test_iterate_chains_reconstructions(x):
    m = tiny("ae")
    steps = explore.iterate(m, x[:3], 3)
    assert steps.shape == (4, 3, *SHAPE)
    torch.testing.assert_close(steps[0], x[:3])
    torch.testing.assert_close(steps[2], m.reconstruct(m.reconstruct(x[:3])))


def test_principal_codes_lie_on_the_data_plane():
    g = torch.Generator().manual_seed(0)
    plane = torch.tensor([[1.0, 0, 0, 1], [0, 1.0, 1, 0]]) / math.sqrt(2)
    codes = torch.randn(200, 2, generator=g) * torch.tensor([3.0, 1.0]) @ plane + torch.tensor([1.0, 2, 3, 4])
    grid = explore.principal_codes(codes, 5)
    assert grid.shape == (25, 4)
    torch.testing.assert_close(grid[12], codes.mean(0), atol=1e-4, rtol=0)  # the centre is the mean
    residual = (grid - codes.mean(0)) - (grid - codes.mean(0)) @ plane.T @ plane
    assert residual.abs().max() < 1e-4  # every grid code lies in the plane of the data
    spread = (grid - codes.mean(0)) @ plane.T
    assert spread[:, 0].abs().max() > 2 * spread[:, 1].abs().max()  # first direction = larger variance


def test_manifold_grids(x):
    two = tiny(latent_dim=2)
    assert explore.manifold(two, n=4).shape == (16, *SHAPE)
    torch.testing.assert_close(explore.manifold(two, n=3), two.decode(explore.quantile_grid(3)).mean)
    assert explore.manifold(tiny(), x, n=4).shape == (16, *SHAPE)
    with pytest.raises(ValueError, match="latent grid needs"):
        explore.manifold(tiny(), n=4)


def test_embed_and_project(x):
    m = tiny()
    codes = explore.embed(m, x, batch_size=5)
    torch.testing.assert_close(codes, m.transform(x))
    assert explore.project(codes, "pca").shape == (12, 2)
    assert explore.project(codes, "tsne").shape == (12, 2)
    np.testing.assert_allclose(explore.project(codes[:, :1], "pca")[:, 1], 0)
    with pytest.raises(ValueError, match="unknown projection 'umap'"):
        explore.project(codes, "umap")


@pytest.mark.parametrize("shape", [(200, 8), (50, 3), (7, 12)])
def test_pca_matches_scikit_learn_up_to_sign(shape):
    """explore.pca (a torch SVD, no scikit-learn import) gives scikit-learn's PCA: the same mean,
    explained variances and directions up to the sign of each, hence the same 2-D projection up
    to the sign of each column; ``project`` and the principal grid use it."""
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(0)
    codes = rng.normal(size=shape) @ rng.normal(size=(shape[1], shape[1])) + rng.normal(size=shape[1])
    reference = PCA(2).fit(codes)
    mean, components, variance = explore.pca(codes, 2)
    np.testing.assert_allclose(mean.numpy(), reference.mean_, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(variance.numpy(), reference.explained_variance_, rtol=1e-8)
    signs = np.sign(np.sum(components.numpy() * reference.components_, axis=1))
    assert set(signs) <= {-1.0, 1.0}
    np.testing.assert_allclose(components.numpy() * signs[:, None], reference.components_, atol=1e-8)
    np.testing.assert_allclose(explore.project(codes, "pca") * signs, reference.transform(codes), atol=1e-8)
    with pytest.raises(ValueError, match="n_components"):
        explore.pca(codes, shape[1] + 1)


def test_figures_import_neither_scikit_learn_nor_scipy_stats(tmp_path):
    """The run's figures (latent scatter by PCA, principal grid over Gaussian quantiles) are drawn
    without importing scikit-learn or scipy.stats (seconds of a short run's wall time)."""
    import subprocess
    import sys

    code = (
        "import sys, torch; from vaekit.reporting import gallery; from vaekit.config import ModelConfig; "
        "from vaekit.models import build_model; torch.manual_seed(0); "
        "m = build_model(ModelConfig(latent_dim=3, hidden=(8,)), (1, 8, 8)); "
        f"gallery.write_figures(m, torch.rand(20, 1, 8, 8), {str(tmp_path)!r}); "
        "print(sorted(k for k in ('sklearn', 'scipy.stats') if k in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert (tmp_path / "latent_scatter.png").is_file() and (tmp_path / "principal_grid.png").is_file()


def test_read_image_resizes_and_scales(tmp_path):
    from PIL import Image

    array = np.zeros((16, 16, 3), dtype=np.uint8)
    array[:, 8:] = 255
    Image.fromarray(array).save(tmp_path / "half.png")
    image = explore.read_image(tmp_path / "half.png", SHAPE)
    assert image.shape == SHAPE and image.min() >= 0 and image.max() <= 1
    assert image[0, :, :3].max() < 0.1 and image[0, :, 5:].min() > 0.9
    with pytest.raises(FileNotFoundError):
        explore.read_image(tmp_path / "missing.png", SHAPE)
    with pytest.raises(ValueError, match="image files need"):
        explore.read_image(tmp_path / "half.png", (30,))


def test_class_grid_holds_style_fixed():
    m = tiny("cvae", num_classes=10)
    g = torch.Generator().manual_seed(0)
    grid = explore.class_grid(m, 3, generator=g)
    assert grid.shape == (10, 3, *SHAPE)
    z = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    for k in (0, 9):
        torch.testing.assert_close(grid[k], m.decode(z, k).mean)
    assert isinstance(m, CVAE)
    with pytest.raises(ValueError, match="conditional"):
        explore.class_grid(tiny())
