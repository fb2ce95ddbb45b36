"""The pythae comparison measures like with like: same networks, same objective, same estimator."""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("pythae")

from vaekit import Config, build_model  # noqa: E402
from vaekit.evaluation import log_likelihood  # noqa: E402

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location("compare_pythae", BENCH / "compare_pythae.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def setup(bench):
    config = Config.from_flat(binarize="static", hidden=(32,), latent_dim=4)
    x = bench.digits(config)[1][:20]
    return config, x, build_model(config.model, tuple(x.shape[1:]), seed=config.train.seed).eval()


def test_pythae_wrapper_computes_the_same_elbo_terms(bench, setup):
    _, x, model = setup
    pmodel = bench.to_pythae(model).eval()
    with torch.no_grad():
        out = pmodel.encoder(x)
        mu, log_var = out.embedding, out.log_covariance
        recon = pmodel.decoder(mu)["reconstruction"]
        _, recon_loss, kl = pmodel.loss_function(recon, x, mu, log_var, mu)
        q = model.encode(x)
        torch.testing.assert_close(mu, q.mean)
        assert recon_loss.item() == pytest.approx(-model.decode(q.mean).log_prob(x).mean().item(), rel=1e-4)
        assert kl.item() == pytest.approx(torch.distributions.kl_divergence(q, model.prior()).mean().item(), rel=1e-4)
    back = bench.from_pythae(pmodel, model)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(back.state_dict()[key], value)


def test_pythae_get_nll_agrees_with_vaekit_log_likelihood(bench, setup):
    _, x, model = setup
    torch.manual_seed(0)
    with torch.no_grad():
        theirs = bench.to_pythae(model).eval().get_nll(x, n_samples=500, batch_size=100)
    ours = log_likelihood(model, x, 500).mean().item()
    assert theirs == pytest.approx(ours, abs=0.1)  # get_nll returns mean log p(x), despite its name
