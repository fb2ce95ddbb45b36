"""The contract every model x likelihood x network obeys: shapes, gradients, save/load, seeding.

The cases come from the registries (:data:`vaekit.models.MODELS`, :data:`vaekit.distributions.LIKELIHOODS`),
so a new model or likelihood is checked without touching this file; torch.distributions argument
validation is on for the whole module.
"""

import itertools

import pytest
import torch

from vaekit import io
from vaekit.config import Config
from vaekit.models import MODELS, build_model
from vaekit.distributions import LIKELIHOODS as LIKELIHOOD_NAMES
from vaekit.objectives import build_objective

#: every registered likelihood; the Gaussian with a fixed and with a learned scale
LIKELIHOODS = [(name, scale) for name in LIKELIHOOD_NAMES for scale in ((0.3, "learned") if name == "gaussian" else (1.0,))]
SHAPES = {"mlp": (1, 8, 8), "conv": (3, 28, 28), "tabular": (5,)}
CASES = list(itertools.product(sorted(MODELS), LIKELIHOODS, SHAPES))


@pytest.fixture(autouse=True)
def validate_distribution_arguments():
    """Run every contract check with torch.distributions argument validation on."""
    before = torch.distributions.Distribution._validate_args
    torch.distributions.Distribution.set_default_validate_args(True)
    yield
    torch.distributions.Distribution.set_default_validate_args(before)


def conditioned(model):
    """A conditional model (CVAE) with its class fixed (to 1), so it has the unconditional API."""
    return model.given(1) if model.conditional else model


def make(model, likelihood, shape_key, seed=0):
    name, scale = likelihood
    config = Config.from_flat(model=model, likelihood=name, likelihood_scale=scale, latent_dim=3, hidden=(16,),
                    channels=(4, 8), net="conv" if shape_key == "conv" else "mlp", seed=seed, binarize="none",
                    init="a-trained-vae-run" if model == "avae-ss" else None)
    shape = SHAPES[shape_key]
    return conditioned(build_model(config.model, shape, unit_interval=True, seed=config.train.seed)), shape, config


def batch(shape, n=4, seed=0):
    return torch.rand(n, *shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("model_name,likelihood,shape_key", CASES)
def test_shapes_and_gradients(model_name, likelihood, shape_key):
    model, shape, config = make(model_name, likelihood, shape_key)
    x = batch(shape)
    q = model.encode(x)
    assert q.mean.shape == (4, 3)
    z = q.rsample((2,))
    assert z.shape == (2, 4, 3)
    p = model.decode(z)
    assert p.log_prob(x).shape == (2, 4)
    assert model.transform(x).shape == (4, 3)
    assert model.reconstruct(x).shape == x.shape
    assert model.sample(5).shape == (5, *shape)
    out = build_objective(config)(model, x)
    assert out.loss.shape == () and torch.isfinite(out.loss)
    for key, value in out.per_example().items():
        assert value.shape == (4,), key
    out.loss.backward()
    # AVAE-SS refines the encoder of a trained VAE: its decoder and likelihood stay as trained.
    frozen = ("decoder.", "likelihood.") if model_name == "avae-ss" else ()
    for name, param in model.named_parameters():
        if name.startswith(frozen):
            assert param.grad is None or param.grad.abs().sum() == 0, f"a gradient reaches frozen {name}"
        else:
            assert param.grad is not None and param.grad.abs().sum() > 0, f"no gradient reaches {name}"


@pytest.mark.parametrize("model_name,likelihood,shape_key", CASES)
def test_save_load_round_trip(tmp_path, model_name, likelihood, shape_key):
    model, shape, _ = make(model_name, likelihood, shape_key)
    with torch.no_grad():  # move the learned scale off its initial value so the test can see it
        for p in model.likelihood.parameters():
            p.add_(0.1)
    io.save(model, tmp_path / "m")
    loaded = conditioned(io.load(tmp_path / "m"))
    model.eval()
    x = batch(shape)
    torch.testing.assert_close(loaded.transform(x), model.transform(x), rtol=0, atol=0)
    z = torch.randn(3, 3)
    torch.testing.assert_close(loaded.decode(z).log_prob(x[:3]), model.decode(z).log_prob(x[:3]), rtol=0, atol=0)


@pytest.mark.parametrize("model_name,shape_key", list(itertools.product(sorted(MODELS), SHAPES)))
def test_seeding_reproduces(model_name, shape_key):
    a, shape, config = make(model_name, ("bernoulli", 1.0), shape_key, seed=3)
    b, _, _ = make(model_name, ("bernoulli", 1.0), shape_key, seed=3)
    c, _, _ = make(model_name, ("bernoulli", 1.0), shape_key, seed=4)
    x = batch(shape)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    assert any(not torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters()))
    torch.manual_seed(0)
    la = build_objective(config)(a, x).loss
    torch.manual_seed(0)
    lb = build_objective(config)(b, x).loss
    assert torch.equal(la, lb)


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
