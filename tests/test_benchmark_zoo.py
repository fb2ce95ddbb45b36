"""``vaekit benchmark zoo``: two models, one epoch, on the digits (pythae's arm only where it imports)."""

import math

import pytest

from vaekit import Config
from vaekit.benchmarks import pythae_adapter, zoo

pytestmark = pytest.mark.slow  # trains 2 models (and pythae's two) and an FID feature net

TINY = dict(data="digits", train_size=None, hidden=[32], latent_dim=4, batch_size=64)


def test_zoo_runs_resumes_and_reports(tmp_path):
    out = tmp_path / "zoo"
    results = zoo.run_benchmark(out, models=["vae", "wae"], seeds=(0,), epochs=1, num_test=100, num_samples=5, **TINY)
    vae, wae = results["models"]["vae"], results["models"]["wae"]
    ours = vae["per_seed"]["0"]["vaekit"]
    assert ours["log_likelihood"] < 0 and math.isfinite(ours["log_likelihood"])  # Bernoulli: log p(x) < 0
    assert "log_likelihood" not in wae["per_seed"]["0"]["vaekit"]  # a WAE has no likelihood
    for row in (vae, wae):
        metrics = row["per_seed"]["0"]["vaekit"]
        assert metrics["fid.prior"] > 0 and metrics["fid.gmm"] > 0 and metrics["epoch_time_s"] > 0
        assert 0 <= metrics["active_units"] <= 4 and 0 < metrics["mse_per_pixel"] < 1
    theirs = vae["per_seed"]["0"]["pythae"]
    if pythae_adapter.available() is None:
        assert math.isfinite(theirs["log_likelihood"]) and theirs["epoch_time_s"] > 0
        assert "throughput_ratio" in vae["aggregate"]
        text = (out / "results.md").read_text()
        assert "| vae | pythae | 1 |" in text
        # the goal's metric paired by seed (same initial networks): vaekit − pythae, > 0 is vaekit better
        paired = vae["aggregate"]["paired_difference"]
        assert paired["metric"] == "log_likelihood" and paired["n"] == 1
        assert paired["mean"] == pytest.approx(ours["log_likelihood"] - theirs["log_likelihood"])
        assert "paired by seed" in text and "| vae | IS log-lik. |" in text
    else:
        assert "skipped" in theirs
    assert (out / "samples.png").stat().st_size > 0
    # resumable: a second call reuses the trained runs and the cached evaluations
    weights = out / "runs" / "vae-seed0" / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    again = zoo.run_benchmark(out, models=["vae", "wae"], seeds=(0,), epochs=1, num_test=100, num_samples=5, **TINY)
    assert weights.stat().st_mtime_ns == stamp
    assert again["models"]["vae"]["per_seed"] == results["models"]["vae"]["per_seed"]


def test_zoo_arms_and_their_configs():
    arms = zoo.arms()
    assert {"vae", "beta-vae", "iwae", "vampprior", "wae"} <= set(arms)
    assert "cvae" not in arms and "cvae" in zoo.skipped()  # needs labels
    for name in ("vae", "beta-vae", "iwae", "betatc", "vampprior"):
        config = Config.from_flat(**{**zoo.BASE, **arms[name]})
        assert zoo.arm_of(config) == name
    with pytest.raises(ValueError, match="unknown zoo model"):
        zoo.arms(["no-such-model"])
    assert set(pythae_adapter.PYTHAE) <= set(arms)  # every pythae mapping names a zoo arm
    # pythae models this adapter does not train are named as such, not as missing from pythae
    assert set(pythae_adapter.NOT_WIRED) <= set(arms) and not set(pythae_adapter.NOT_WIRED) & set(pythae_adapter.PYTHAE)


def test_the_zoo_adds_its_evaluation_to_the_sweep_engine():
    from vaekit.benchmarks.sweeps.points import EVALUATIONS

    assert EVALUATIONS["zoo"] is zoo.evaluate_run


@pytest.mark.parametrize("parameterization", ["free", "linear"])
def test_pythaes_vamp_pseudo_inputs_reach_the_vaekit_holder(parameterization):
    """The zoo measures pythae's VAMP with vaekit's estimators: the holder sees pythae's pseudo-inputs
    hardtanh(W e_k + b) exactly, whether it keeps them free or as the same linear layer (issue 27)."""
    import torch

    from vaekit.models import build_model

    if pythae_adapter.available() is not None:
        pytest.skip(pythae_adapter.available())
    options = {"num_components": 6, "parameterization": parameterization}
    config = Config.from_flat(model="vampprior", net="mlp", hidden=(8,), latent_dim=2, options=options)
    model = build_model(config.model, (1, 8, 8), seed=0)
    pmodel = pythae_adapter.to_pythae("vampprior", model)
    with torch.no_grad():
        for p in pmodel.pseudo_inputs.parameters():
            p.add_(0.3 * torch.randn_like(p))  # trained pseudo-inputs differ from any init
        theirs = pmodel.pseudo_inputs(pmodel.idle_input).reshape(-1, 1, 8, 8)
    holder = pythae_adapter.from_pythae("vampprior", pmodel, model)
    torch.testing.assert_close(holder.components(), theirs[: holder.num_components])


def _flat(embedding):
    """pythae's embedding as a (batch, d) code; a VQ-VAE's (batch, D_e, 1, G) map in vaekit's group order."""
    return embedding.permute(0, 2, 3, 1).reshape(len(embedding), -1) if embedding.dim() == 4 else embedding


def _code(model, arm, x):
    """What pythae's encoder returns as its embedding, computed by the vaekit model: the code before
    quantization (VQ-VAE), μ on the ball (Poincaré), the posterior mean (else)."""
    if arm == "vqvae":
        return model._encoder_output(x)
    q = model.encode(x)
    return q.loc if arm == "poincare" else q.mean


@pytest.mark.parametrize("arm", ["aae", "vaegan", "vqvae", "poincare"])
def test_pythaes_adversarial_quantized_and_hyperbolic_models_train_on_vaekits_nets(arm):
    """The four models the adapter once left out (issue 27): pythae's model runs around vaekit's own
    encoder, decoder and discriminator (same initial weights), trains with pythae's trainer, and comes
    back into a vaekit holder that computes what pythae's trained networks compute."""
    import torch

    from vaekit.models import build_model

    if pythae_adapter.available() is not None:
        pytest.skip(pythae_adapter.available())
    options = {"embedding_dim": 2} if arm == "vqvae" else None  # two groups of two
    config = Config.from_flat(model=arm, net="mlp", hidden=(16,), latent_dim=4, options=options)
    model = build_model(config.model, (1, 8, 8), seed=0).eval()
    x = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(0)).bernoulli()
    pmodel = pythae_adapter.to_pythae(arm, model).eval()
    with torch.no_grad():
        torch.testing.assert_close(_flat(pmodel.encoder(x).embedding), _code(model, arm, x))
        if arm in ("aae", "vaegan"):  # vaekit's discriminator on codes / images, pythae's probability
            inputs = (model.encode(x).mean if arm == "aae" else x).flatten(1)
            torch.testing.assert_close(
                pmodel.discriminator(inputs).embedding.squeeze(-1),
                torch.sigmoid(model.discriminator(inputs)).squeeze(-1),
            )
    assert pythae_adapter.train_pythae(arm, pmodel, x[:48], x[48:], epochs=1, batch_size=16, lr=1e-2, seed=0) > 0
    pmodel.eval()
    holder = pythae_adapter.from_pythae(arm, pmodel, model, train_x=x, epochs=2, batch_size=16)
    with torch.no_grad():
        z = _flat(pmodel.encoder(x).embedding)
        assert not torch.allclose(z, _code(model, arm, x))  # trained: not the initial networks
        torch.testing.assert_close(_code(holder, arm, x), z)
        if arm == "vqvae":
            codebook = pmodel.quantizer.embeddings
            torch.testing.assert_close(holder.codebook, getattr(codebook, "weight", codebook))
            draws = holder.prior().sample((5,))  # the fitted code prior draws codebook vectors
            assert (torch.cdist(draws.reshape(-1, 2), holder.codebook).min(-1).values < 1e-5).all()
        else:
            torch.testing.assert_close(torch.sigmoid(holder.decoder(z)), pmodel.decoder(z).reconstruction)
        if arm in ("aae", "vaegan"):
            inputs = (z if arm == "aae" else x).flatten(1)
            torch.testing.assert_close(
                pmodel.discriminator(inputs).embedding.squeeze(-1),
                torch.sigmoid(holder.discriminator(inputs)).squeeze(-1),
            )
