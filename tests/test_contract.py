"""The contract every model x likelihood x network obeys: shapes, gradients, save/load, seeding,
likelihood bounds (the checks live in ``tests/contract.py``).

The cases come from the registries (:data:`vaekit.models.MODELS`, :data:`vaekit.distributions.LIKELIHOODS`),
so a new model or likelihood is checked without touching this file; torch.distributions argument
validation is on for the whole module.
"""

import pytest
import torch

from contract import (
    cases,
    check_likelihood_bounds,
    check_save_load_round_trip,
    check_seeding_reproduces,
    check_shapes_and_gradients,
    make,
    model_shapes,
)
from vaekit import io
from vaekit.config import Config
from vaekit.models import MODELS, build_model

CASES = cases(MODELS)


@pytest.fixture(autouse=True)
def validate_distribution_arguments():
    """Run every contract check with torch.distributions argument validation on."""
    before = torch.distributions.Distribution._validate_args
    torch.distributions.Distribution.set_default_validate_args(True)
    yield
    torch.distributions.Distribution.set_default_validate_args(before)


@pytest.mark.parametrize("model_name,likelihood,shape_key", CASES)
def test_shapes_and_gradients(model_name, likelihood, shape_key):
    check_shapes_and_gradients(model_name, likelihood, shape_key)


@pytest.mark.parametrize("model_name,likelihood,shape_key", CASES)
def test_save_load_round_trip(tmp_path, model_name, likelihood, shape_key):
    check_save_load_round_trip(model_name, likelihood, shape_key, tmp_path)


@pytest.mark.parametrize("model_name,shape_key", model_shapes(MODELS))
def test_seeding_reproduces(model_name, shape_key):
    check_seeding_reproduces(model_name, ("bernoulli", 1.0), shape_key)


@pytest.mark.parametrize("model_name,shape_key", model_shapes(MODELS))
def test_likelihood_bounds(model_name, shape_key):
    check_likelihood_bounds(model_name, ("bernoulli", 1.0), shape_key)


def test_custom_modules_plug_in():
    """Any encoder returning (loc, scale) and decoder returning parameters works."""
    from vaekit import VAE, Bernoulli

    class Enc(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(6, 4)

        def forward(self, x):
            loc, raw = self.lin(x).chunk(2, -1)
            return loc, torch.nn.functional.softplus(raw) + 1e-3

    model = VAE(Enc(), torch.nn.Linear(2, 6), Bernoulli(), latent_dim=2, data_shape=(6,))
    x = torch.rand(5, 6)
    from vaekit import elbo, iwae_bound

    assert elbo(model, x).shape == (5,)
    assert iwae_bound(model, x, num_samples=7).shape == (5,)
    with pytest.raises(ValueError, match="custom modules"):
        io.save(model, "/tmp/never")


def test_bad_encoder_output_and_shape_errors():
    model, shape, _ = make("vae", ("bernoulli", 1.0), "mlp")
    with pytest.raises(ValueError, match="expects"):
        model.encode(torch.rand(2, 1, 9, 9))
    with pytest.raises(TypeError):
        model.encode([[0.0]])


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (1, 64, 64), (3, 64, 64)])
def test_conv_nets_fit_standard_image_sizes(shape):
    model = build_model(Config.from_flat(net="conv", latent_dim=4, hidden=(32,), channels=(4, 4, 4, 4)).model, shape)
    x = torch.rand(2, *shape)
    assert model.transform(x).shape == (2, 4)
    assert model.reconstruct(x).shape == (2, *shape)
