"""VAE-GAN (Larsen et al. 2016): each loss term reaches only the networks sec. 2.2 / Algorithm 1 train
with it, γ weighs L_llike for the decoder only, the feature likelihood's closed form, options, and
training and sampling from the CLI."""

import math

import pytest
import torch

import contract
from vaekit.config import Config
from vaekit.models import MODELS, build_model
from vaekit.objectives import build_objective
from vaekit.objectives.vaegan_terms import VAEGANLoss, scale_gradient

GROUPS = ("encoder.", "decoder.", "discriminator.")


def reached(model, term):
    """{group: whether the gradient of ``term`` reaches any of its parameters}."""
    names, params = zip(*model.named_parameters())
    grads = torch.autograd.grad(term, params, retain_graph=True, allow_unused=True)
    return {
        group: any(g is not None and g.abs().sum() > 0 for n, g in zip(names, grads) if n.startswith(group))
        for group in GROUPS
    }


def test_each_term_reaches_only_the_networks_the_paper_trains_with_it():
    """Algorithm 1: θ_Enc on L_prior + L_llike, θ_Dec on γ L_llike − L_GAN, θ_Dis on L_GAN only."""
    model, shape, config = contract.make("vaegan", ("bernoulli", 1.0), "mlp")
    torch.manual_seed(0)
    parts = build_objective(config).parts(model, contract.batch(shape, n=8))
    assert reached(model, parts.kl.sum()) == {"encoder.": True, "decoder.": False, "discriminator.": False}
    assert reached(model, parts.feature_log_prob.sum()) == {"encoder.": True, "decoder.": True, "discriminator.": False}
    assert reached(model, parts.generator.sum()) == {"encoder.": False, "decoder.": True, "discriminator.": False}
    assert reached(model, parts.discriminator) == {"encoder.": False, "decoder.": False, "discriminator.": True}


def test_gamma_weighs_the_feature_likelihood_for_the_decoder_only():
    """The same batch and draws at γ = 1 and γ = 4: the loss's gradient on the encoder is the same,
    on the decoder its L_llike part is 4 times larger, on Dis the same (L_llike never reaches it)."""
    x = contract.batch(contract.SHAPES["mlp"], n=8)
    out = {}
    for gamma in (1.0, 4.0):
        model, _, _ = contract.make("vaegan", ("bernoulli", 1.0), "mlp")
        torch.manual_seed(0)
        parts = VAEGANLoss(gamma).parts(model, x)
        llike = (-gamma * parts.feature_log_prob).mean()
        names, params = zip(*model.named_parameters())
        out[gamma] = dict(zip(names, torch.autograd.grad(llike, params, allow_unused=True)))
    for name, g in out[1.0].items():
        if name.startswith("encoder."):
            torch.testing.assert_close(out[4.0][name], g)
        elif name.startswith("decoder."):
            torch.testing.assert_close(out[4.0][name], 4.0 * g)
        else:
            assert g is None and out[4.0][name] is None


def test_scale_gradient_keeps_the_value_and_scales_the_gradient():
    t = torch.randn(5, requires_grad=True)
    s = scale_gradient(t, 0.25)
    assert torch.equal(s, t)
    (g,) = torch.autograd.grad(s.sum(), t)
    torch.testing.assert_close(g, torch.full_like(t, 0.25))


def test_the_feature_likelihood_is_a_gaussian_on_the_discriminator_features():
    """decode(z).log_prob(x) = log N(Dis_l(x) | Dis_l(g(z)), σ² I) written out, and the objective's ELBO
    is that minus the KL (eq. 5-6)."""
    model, shape, config = contract.make("vaegan", ("bernoulli", 1.0), "mlp")
    x, z = contract.batch(shape), torch.randn(4, 3)
    with torch.no_grad():
        f_x, f_g = model.features(x), model.features(model.generate(z))
        k, s = f_x.shape[-1], model.feature_scale
        expected = -0.5 * ((f_x - f_g) / s).pow(2).sum(-1) - k * math.log(s) - 0.5 * k * math.log(2 * math.pi)
        torch.testing.assert_close(model.decode(z).log_prob(x), expected)
        assert model.decode(z).mean.shape == (4, *shape)
        torch.manual_seed(0)
        terms = build_objective(config)(model, x)
        torch.manual_seed(0)
        q = model.encode(x)
        zq = q.rsample()
        torch.testing.assert_close(terms.reconstruction, model.decode(zq).log_prob(x))
        torch.testing.assert_close(terms.elbo, terms.reconstruction - terms.kl)


def test_options_and_registry():
    assert not MODELS["vaegan"].tractable_likelihood and MODELS["vaegan"].stochastic
    assert build_objective(Config.from_flat(model="vaegan", options={"gamma": 3.0}, beta=2.0)) == VAEGANLoss(3.0, 2.0)
    for options in ({"gamma": 0}, {"disc_hidden": [0]}, {"feature_layer": 3}, {"feature_scale": -1.0}):
        with pytest.raises(ValueError):
            build_model(Config.from_flat(model="vaegan", options=options, latent_dim=2, hidden=(8,)).model, (5,))
    assert MODELS["vaegan"].load().refuses((5,), "learned") is not None


def test_it_trains_from_the_cli_and_samples(tmp_path):
    from vaekit import io
    from vaekit.cli import main

    common = ["--no-progress", "--threads", "1"]
    args = ["train", "--model", "vaegan", "--epochs", "1", "--latent-dim", "3", "--hidden", "16"]
    assert main([*args, "--runs-dir", str(tmp_path), "--name", "run", *common]) == 0
    summary = io.read_json(tmp_path / "run" / "summary.json")
    assert math.isfinite(summary["test"]["reconstruction"]) and "log_likelihood" not in summary["test"]
    assert main(["sample", str(tmp_path / "run"), "--n", "4", "--output", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").is_file()
