"""A new model is one file plus one registry entry: this file defines a VAE with a Student-t prior
entirely here, registers it, and runs the whole contract suite (tests/contract.py) and a CLI
training run on it, with no other file of vaekit touched.

The prior p(z) = Π_d t_5(z_d; 0, √(3/5)) (unit variance) has no closed-form KL from a Gaussian
posterior registered in torch, so it also exercises the Monte Carlo KL and the general (non-fused)
importance weights.
"""

import json

import pytest
import torch
from torch.distributions import Independent, StudentT

import contract
from vaekit.models import VAE
from vaekit.registry import MODELS, ModelEntry, register_model, unregister_model


class StudentTVAE(VAE):
    """VAE with a factorised Student-t prior (5 degrees of freedom) of unit variance."""

    def __init__(
        self, encoder, decoder, likelihood, latent_dim, data_shape=None, noise_std=0.0, config=None, df: float = 5.0
    ):
        super().__init__(encoder, decoder, likelihood, latent_dim, data_shape, noise_std, config)
        self.df = float(df)

    def extra_config(self):
        return {"df": self.df}

    def prior(self):
        loc = self.prior_loc
        scale = ((self.df - 2) / self.df) ** 0.5
        return Independent(StudentT(self.df, loc, torch.full_like(loc, scale)), 1)


NAME = "student-t-vae"


@pytest.fixture(autouse=True)
def registered():
    register_model(NAME, ModelEntry(StudentTVAE, "elbo", "VAE with a Student-t prior (a test's own model)"))
    yield
    unregister_model(NAME)


@pytest.mark.parametrize("check", contract.CHECKS, ids=lambda c: c.__name__)
def test_the_whole_contract_holds_for_a_model_defined_here(check, tmp_path):
    for model_name, likelihood, shape_key in contract.cases([NAME]):
        check(model_name, likelihood, shape_key, tmp_path)


def test_its_kl_is_the_monte_carlo_estimate_and_its_samples_come_from_its_prior():
    from vaekit.distributions import MC_KL_SAMPLES, kl_or_estimate
    from vaekit.objectives import kl_to_prior

    model, shape, _ = contract.make(NAME, ("bernoulli", 1.0), "mlp")
    q = model.encode(contract.batch(shape))
    with pytest.raises(NotImplementedError):
        torch.distributions.kl_divergence(q, model.prior())
    z = q.rsample((20000,))
    estimate = kl_to_prior(model, q, z)
    exact_mc = (q.log_prob(z) - model.prior().log_prob(z)).mean(0)
    torch.testing.assert_close(estimate, exact_mc)
    assert kl_or_estimate(q, model.prior()).shape == (4,) and MC_KL_SAMPLES >= 1
    # the prior's draws have variance 1
    torch.manual_seed(0)
    draws = model.prior().sample((20000,))
    assert abs(draws.var().item() - 1.0) < 0.1


def test_it_trains_from_the_cli_and_loads(tmp_path):
    from vaekit import io
    from vaekit.cli import main

    assert NAME in MODELS
    code = main(
        [
            "train",
            "--model",
            NAME,
            "--epochs",
            "1",
            "--latent-dim",
            "2",
            "--hidden",
            "16",
            "--eval-num-samples",
            "8",
            "--runs-dir",
            str(tmp_path),
            "--name",
            "run",
            "--no-progress",
            "--threads",
            "1",
        ]
    )
    assert code in (0, None)
    run = tmp_path / "run"
    assert json.loads((run / "config.json").read_text())["config"]["model"]["name"] == NAME
    model = io.load(run)
    assert isinstance(model, StudentTVAE)
    summary = json.loads((run / "summary.json").read_text())
    assert "log_likelihood" in json.dumps(summary)
