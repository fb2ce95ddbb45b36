"""Latent samplers (vaekit.evaluation.samplers): each fitted sampler recovers the distribution of
known codes, the prior sampler is the model's prior, and ``vaekit sample --sampler`` runs them."""

import numpy as np
import pytest
import torch

import contract
from vaekit.evaluation.samplers import SAMPLERS, fit_sampler, generate, training_codes


class Codes(torch.nn.Module):
    """A 'model' whose codes are its inputs (transform = identity), to fit samplers on known codes."""

    latent_dim, conditional = 2, False

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))

    def transform(self, x):
        return x


def mixture(n=3000, seed=0):
    g = torch.Generator().manual_seed(seed)
    k = torch.rand(n, generator=g) < 0.3
    z = torch.randn(n, 2, generator=g) * torch.tensor([0.3, 0.6])
    return z + torch.where(k[:, None], torch.tensor([2.0, -1.0]), torch.tensor([-1.0, 1.0]))


def test_the_gmm_sampler_recovers_a_known_mixture():
    codes = mixture()
    sampler = fit_sampler("gmm", Codes(), codes, num_components=2)
    z = sampler.sample(20000, torch.Generator().manual_seed(1))
    assert z.shape == (20000, 2)
    torch.testing.assert_close(z.mean(0), codes.mean(0), atol=0.05, rtol=0)
    torch.testing.assert_close(torch.cov(z.T), torch.cov(codes.T), atol=0.06, rtol=0)
    assert (z[:, 0] > 0.5).float().mean().item() == pytest.approx(0.3, abs=0.02)
    # the same generator seed, the same draws
    torch.testing.assert_close(
        sampler.sample(5, torch.Generator().manual_seed(3)), sampler.sample(5, torch.Generator().manual_seed(3))
    )


def test_the_maf_learns_a_standard_normal_to_within_a_tenth_of_a_nat():
    g = torch.Generator().manual_seed(0)
    codes = torch.randn(2000, 2, generator=g) * 2 + 1
    sampler = fit_sampler("maf", Codes(), codes, epochs=20)
    test = torch.randn(2000, 2, generator=g) * 2 + 1
    exact = torch.distributions.Normal(1.0, 2.0).log_prob(test).sum(-1)
    assert (sampler.score_samples(test).mean() - exact.mean()).abs().item() < 0.1
    z = sampler.sample(4000, torch.Generator().manual_seed(1))
    torch.testing.assert_close(z.mean(0), torch.ones(2), atol=0.15, rtol=0)


def test_the_two_stage_vae_reproduces_the_codes_moments():
    codes = mixture(2000)
    sampler = fit_sampler("two-stage", Codes(), codes, hidden=(32, 32), epochs=100)
    z = sampler.sample(4000, torch.Generator().manual_seed(1))
    torch.testing.assert_close(z.mean(0), codes.mean(0), atol=0.15, rtol=0)
    torch.testing.assert_close(z.std(0), codes.std(0), atol=0.2, rtol=0)


def test_prior_and_normal_samplers():
    model, shape, _ = contract.make("vampprior", ("bernoulli", 1.0), "mlp")
    model.eval()
    a = generate(model, fit_sampler("prior", model), 6, torch.Generator().manual_seed(0))
    b = model.sample(6, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a, b)
    z = fit_sampler("normal", model, temperature=0.5).sample(20000, torch.Generator().manual_seed(0))
    assert z.std().item() == pytest.approx(0.5, abs=0.01)
    assert training_codes(model, contract.batch(shape, 10)).shape == (10, 3)


def test_bad_sampler_requests_are_refused():
    model, _, _ = contract.make("vae", ("bernoulli", 1.0), "mlp")
    with pytest.raises(ValueError, match="unknown sampler"):
        fit_sampler("flowy", model)
    with pytest.raises(ValueError, match="training data"):
        fit_sampler("gmm", model)
    cvae, _, _ = contract.make("cvae", ("bernoulli", 1.0), "mlp")
    with pytest.raises(ValueError, match="unconditional"):
        fit_sampler("gmm", cvae.model if hasattr(cvae, "model") else cvae, torch.rand(20, 1, 8, 8))
    assert set(SAMPLERS) == {"prior", "normal", "gmm", "two-stage", "maf"}


def test_cli_samples_with_each_sampler(tmp_path, capsys):
    from vaekit.cli import main

    assert main(
        [
            "train",
            "--model",
            "vae",
            "--epochs",
            "1",
            "--latent-dim",
            "2",
            "--hidden",
            "16",
            "--runs-dir",
            str(tmp_path),
            "--name",
            "run",
            "--no-progress",
            "--threads",
            "1",
            "--eval-num-samples",
            "4",
        ]
    ) in (0, None)
    run = tmp_path / "run"
    for name in ("normal", "gmm", "maf"):
        assert main(["sample", str(run), "--sampler", name, "--n", "5", "--output", str(tmp_path / f"{name}.npy")]) in (
            0,
            None,
        )
        x = np.load(tmp_path / f"{name}.npy")
        assert x.shape == (5, 1, 8, 8) and np.isfinite(x).all()
    assert main(["sample", str(run), "--sampler", "nope"]) not in (0, None)
    assert main(["sample", str(run), "--sampler", "gmm", "--temperature", "0.5"]) not in (0, None)
    err = capsys.readouterr().err
    assert "unknown --sampler 'nope'" in err and "Traceback" not in err
