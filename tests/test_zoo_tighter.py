"""MIWAE, CIWAE, PIWAE (Rainforth et al. 2018, sec. 4): the closed relations with the IWAE and the
ELBO at the edge settings, PIWAE's split gradients, the ordering ELBO <= MIWAE <= IWAE_{MK} on one set
of draws, and training from the CLI."""

import json

import pytest
import torch

import contract
from vaekit.objectives import IWAE, log_weights
from vaekit.objectives.terms import forward
from vaekit.objectives.tighter import TighterBound, ciwae_bound, miwae_bound


def model_and_batch(name="miwae"):
    model, shape, _ = contract.make(name, ("bernoulli", 1.0), "mlp")
    return model, contract.batch(shape, n=6)


def loss(objective, model, x, seed=0):
    torch.manual_seed(seed)
    return objective(model, x).loss


def grads(objective, model, x, seed=0):
    model.zero_grad()
    loss(objective, model, x, seed).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}


def test_miwae_with_one_bound_is_the_iwae_and_ciwae_at_beta_0_is_the_iwae():
    model, x = model_and_batch()
    iwae = loss(IWAE(5), model, x)
    torch.testing.assert_close(loss(TighterBound("miwae", 1, 5), model, x), iwae)
    torch.testing.assert_close(loss(TighterBound("ciwae", 3, 5, elbo_weight=0.0), model, x), iwae)


def test_miwae_with_one_particle_and_ciwae_at_beta_1_are_the_monte_carlo_elbo():
    model, x = model_and_batch()
    for objective in (TighterBound("miwae", 7, 1), TighterBound("ciwae", 1, 7, elbo_weight=1.0)):
        torch.manual_seed(0)
        out = forward(model, x, 7)
        elbo = log_weights(model, x, out.q, out.z, out.log_px).mean(0)  # (1/L) Σ log w_l: the ELBO's estimate
        torch.testing.assert_close(loss(objective, model, x), -elbo.mean())


def test_the_bounds_order_on_one_set_of_draws():
    log_w = torch.randn(12, 5) * 3
    elbo = log_w.mean(0)
    miwae = miwae_bound(log_w, 3)
    iwae = torch.logsumexp(log_w, 0) - torch.log(torch.tensor(12.0))
    assert (elbo <= miwae + 1e-6).all() and (miwae <= iwae + 1e-6).all()
    # group m is draws m*K .. m*K + K - 1
    torch.testing.assert_close(
        miwae,
        torch.stack(
            [torch.logsumexp(log_w[4 * m : 4 * m + 4], 0) - torch.log(torch.tensor(4.0)) for m in range(3)]
        ).mean(0),
    )
    mid = ciwae_bound(log_w, 0.25)
    torch.testing.assert_close(mid, 0.25 * elbo + 0.75 * iwae)


def test_piwae_with_one_bound_has_the_iwae_gradients():
    model, x = model_and_batch("piwae")
    g_piwae, g_iwae = grads(TighterBound("piwae", 1, 4), model, x), grads(IWAE(4), model, x)
    for name in g_iwae:
        torch.testing.assert_close(g_piwae[name], g_iwae[name], msg=name)


def test_piwae_trains_the_decoder_on_iwae_mk_and_the_encoder_on_miwae():
    model, x = model_and_batch("piwae")
    g_piwae = grads(TighterBound("piwae", 3, 2), model, x)
    g_iwae = grads(IWAE(6), model, x)  # the same 6 draws from the same seed
    g_miwae = grads(TighterBound("miwae", 3, 2), model, x)
    for name in g_piwae:
        expected = g_miwae[name] if name.startswith("encoder.") else g_iwae[name]
        torch.testing.assert_close(g_piwae[name], expected, msg=name)
    assert any(not torch.allclose(g_iwae[n], g_miwae[n]) for n in g_piwae if n.startswith("encoder."))


def test_the_options_reach_the_objective_and_bad_ones_are_refused():
    from vaekit.config import Config
    from vaekit.objectives import build_objective

    config = Config.from_flat(model="miwae", options={"num_bounds": 2, "num_particles": 3})
    assert build_objective(config) == TighterBound("miwae", 2, 3)
    assert build_objective(Config.from_flat(model="ciwae")).kind == "ciwae"
    with pytest.raises(ValueError, match="num_bounds"):
        TighterBound("miwae", 0, 3)
    with pytest.raises(ValueError, match="elbo_weight"):
        TighterBound("ciwae", 1, 3, elbo_weight=1.5)


@pytest.mark.parametrize("name", ["miwae", "piwae", "ciwae"])
def test_it_trains_from_the_cli(name, tmp_path):
    from vaekit import io
    from vaekit.cli import main

    code = main(
        [
            "train",
            "--model",
            name,
            "--epochs",
            "1",
            "--latent-dim",
            "2",
            "--hidden",
            "16",
            "--options",
            '{"num_bounds": 2, "num_particles": 3}',
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
    model = io.load(tmp_path / "run")
    assert (model.num_bounds, model.num_particles) == (2, 3)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert "log_likelihood" in json.dumps(summary)
