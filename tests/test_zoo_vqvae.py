"""VQ-VAE (van den Oord et al. 2017): nearest-code quantisation, the EMA codebook update of
appendix A.1, the straight-through gradient, a causal code prior, and CLI training + sampling."""

import numpy as np
import pytest
import torch

from vaekit.config import Config
from vaekit.models import build_model
from vaekit.models.vqvae import CodePrior


def model(**options):
    config = Config.from_flat(
        model="vqvae", latent_dim=4, hidden=(16,), options={"num_codes": 5, "embedding_dim": 2, **options}
    )
    return build_model(config.model, (1, 8, 8))


def test_quantisation_picks_the_nearest_code_and_passes_the_gradient_straight_through():
    from scipy.spatial.distance import cdist

    m = model()
    z_e = torch.randn(6, 4, requires_grad=True)
    codes, z_q = m.quantize(z_e)
    expected = cdist(z_e.detach().reshape(-1, 2).numpy(), m.codebook.numpy()).argmin(-1)
    assert codes.shape == (6, 2) and np.array_equal(codes.reshape(-1).numpy(), expected)
    torch.testing.assert_close(z_q, m.codebook[codes].reshape(6, 4))
    straight = z_e + (z_q - z_e).detach()
    torch.testing.assert_close(straight, z_q)
    (grad,) = torch.autograd.grad((straight * torch.arange(4.0)).sum(), z_e)
    torch.testing.assert_close(grad, torch.arange(4.0).expand(6, 4))


def test_the_ema_update_is_appendix_a1():
    m = model(decay=0.9)
    before_size, before_sum = m.cluster_size.clone(), m.embed_sum.clone()
    z_e = torch.randn(3, 4)
    codes, _ = m.quantize(z_e)
    m.update_codebook(z_e, codes)
    flat, idx = z_e.reshape(-1, 2), codes.reshape(-1)
    counts = torch.bincount(idx, minlength=5).float()
    sums = torch.zeros(5, 2).index_add_(0, idx, flat)
    torch.testing.assert_close(m.cluster_size, 0.9 * before_size + 0.1 * counts)
    torch.testing.assert_close(m.embed_sum, 0.9 * before_sum + 0.1 * sums)
    n = m.cluster_size.sum()
    torch.testing.assert_close(m.codebook, m.embed_sum / ((m.cluster_size + 1e-5) / (n + 5e-5) * n)[:, None])


def test_the_code_prior_is_causal():
    prior = CodePrior(7)
    codes = torch.randint(7, (4, 6))
    changed = codes.clone()
    changed[:, 3] = (codes[:, 3] + 1) % 7
    a, b = prior(codes), prior(changed)
    torch.testing.assert_close(a[:, :, :4], b[:, :, :4])  # position g sees only k_<g
    assert not torch.allclose(a[:, :, 4:], b[:, :, 4:])


@pytest.mark.parametrize("options", [{"num_codes": 1}, {"embedding_dim": 3}, {"decay": 1.0}])
def test_bad_options_are_refused(options):
    with pytest.raises(ValueError):
        model(**options)


def test_it_trains_from_the_cli_and_samples_codebook_points(tmp_path):
    from vaekit import io
    from vaekit.cli import main

    assert main(
        [
            "train",
            "--model",
            "vqvae",
            "--epochs",
            "2",
            "--latent-dim",
            "4",
            "--hidden",
            "32",
            "--options",
            '{"num_codes": 16, "embedding_dim": 2}',
            "--runs-dir",
            str(tmp_path),
            "--name",
            "run",
            "--no-progress",
            "--threads",
            "1",
        ]
    ) in (0, None)
    m = io.load(tmp_path / "run")
    z = m.prior().sample((50,))
    assert z.shape == (50, 4)
    points = z.reshape(-1, 2)
    assert (points[:, None] - m.codebook[None]).abs().sum(-1).min(-1).values.max() == 0  # each draw is a code
    assert main(["sample", str(tmp_path / "run"), "--n", "9", "--output", str(tmp_path / "s.npy")]) in (0, None)
    assert np.isfinite(np.load(tmp_path / "s.npy")).all()
