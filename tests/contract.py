"""The contract every registered model obeys, as plain functions over (model name, likelihood,
data shape): shapes, gradients, save/load, seeding, the likelihood bounds. ``tests/test_contract.py``
runs them over the registry; a model defined anywhere (``tests/test_custom_model.py`` defines one
inside its test file) runs the same functions after :func:`vaekit.registry.register_model`.
"""

import itertools

import torch

from vaekit import io
from vaekit.config import Config
from vaekit.discretized import quantize
from vaekit.distributions import LIKELIHOODS as LIKELIHOOD_NAMES
from vaekit.distributions import StandardNormal, build_likelihood
from vaekit.models import MODELS, build_model
from vaekit.objectives import build_objective, elbo, iwae_bound


def _scales(name):
    """The Gaussian with a fixed and a learned scale; a head with parameters of its own (the discretized
    logistic's scales) as "learned", so models that refuse learned heads (MS-SSIM) skip it; else 1.0."""
    if name == "gaussian":
        return (0.3, "learned")
    return ("learned",) if any(True for _ in build_likelihood(name, (1,)).parameters()) else (1.0,)


#: every registered likelihood with the scales above
LIKELIHOODS = [(name, scale) for name in LIKELIHOOD_NAMES for scale in _scales(name)]
SHAPES = {"mlp": (1, 8, 8), "conv": (3, 28, 28), "tabular": (5,)}


def cases(names):
    """(model, likelihood, shape) triples of the contract for the model ``names``, less those the
    model refuses (:meth:`vaekit.models.AE.refuses`: e.g. the MS-SSIM VAE takes images only)."""
    return [(m, lk, s) for m, lk, s in itertools.product(sorted(names), LIKELIHOODS, SHAPES) if takes(m, lk, s)]


def takes(model_name, likelihood, shape_key):
    """Whether the model can be built for the contract's ``likelihood`` and shape ``shape_key``."""
    return MODELS[model_name].load().refuses(SHAPES[shape_key], likelihood[1]) is None


def model_shapes(names):
    """(model, shape) pairs of the contract (Bernoulli head) for the model ``names``."""
    return [(m, s) for m, s in itertools.product(sorted(names), SHAPES) if takes(m, ("bernoulli", 1.0), s)]


#: options that keep the contract's models small (each model's own settings)
SMALL_OPTIONS = {"num_components": 3}


def conditioned(model):
    """A conditional model (CVAE) with its class fixed (to 1), so it has the unconditional API."""
    return model.condition(1) if model.conditional else model


def make(model, likelihood, shape_key, seed=0):
    name, scale = likelihood
    config = Config.from_flat(
        model=model,
        likelihood=name,
        likelihood_scale=scale,
        latent_dim=3,
        hidden=(16,),
        channels=(4, 8),
        net="conv" if shape_key == "conv" else "mlp",
        seed=seed,
        binarize="none",
        init="a-trained-vae-run" if model == "avae-ss" else None,
        options=small_options(model),
    )
    shape = SHAPES[shape_key]
    return conditioned(build_model(config.model, shape, unit_interval=True, seed=config.train.seed)), shape, config


def batch(shape, n=4, seed=0):
    """``n`` examples in [0, 1] on the 8-bit grid (every likelihood's support, the discretized logistic's too)."""
    return quantize(torch.rand(n, *shape, generator=torch.Generator().manual_seed(seed)))


def check_shapes_and_gradients(model_name, likelihood, shape_key, tmp_path=None):
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


def check_save_load_round_trip(model_name, likelihood, shape_key, tmp_path):
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


def check_seeding_reproduces(model_name, likelihood, shape_key, tmp_path=None):
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


def small_options(model_name):
    """The subset of :data:`SMALL_OPTIONS` the model's class takes (None if none)."""
    import inspect

    taken = inspect.signature(MODELS[model_name].load().__init__).parameters
    options = {k: v for k, v in SMALL_OPTIONS.items() if k in taken}
    return options or None


def check_likelihood_bounds(model_name, likelihood, shape_key, tmp_path=None):
    """A model with a likelihood: the IS log-likelihood of the evaluation path (fused where the prior
    is N(0, I)) is finite, ``(batch,)``, and agrees with the generic IWAE bound through
    ``log_importance_weights`` at the same K (two estimators of one log p(x)), and on average lies
    above the ELBO (Burda et al. 2015, Theorem 1). An AE has none."""
    from vaekit.evaluation import log_likelihood

    if not MODELS[model_name].tractable_likelihood:
        return
    model, shape, _ = make(model_name, likelihood, shape_key)
    model.eval()
    x = batch(shape)
    with torch.no_grad():
        torch.manual_seed(0)
        ll = log_likelihood(model, x, num_samples=512)
        torch.manual_seed(1)
        generic = iwae_bound(model, x, num_samples=512)
        torch.manual_seed(2)
        low = elbo(model, x, num_samples=512)
    assert ll.shape == (4,) and torch.isfinite(ll).all()
    # the fused path exists for the N(0, I) prior only; other priors take the general path in both (and are
    # checked against brute force in tests/test_prior_likelihood.py: random narrow posteriors under a
    # spread-out learned prior make both estimates too noisy to compare here)
    if type(model.prior()) is StandardNormal:
        assert (ll - generic).abs().mean() <= 0.01 * ll.abs().mean() + 0.3, (
            ll,
            generic,
        )  # Monte Carlo noise at K = 512
    assert ll.mean() >= low.mean() - 0.02 * ll.abs().mean(), (ll, low)


#: every check of the contract, in order
CHECKS = [check_shapes_and_gradients, check_save_load_round_trip, check_seeding_reproduces, check_likelihood_bounds]
