"""RAE-L2 and RAE-GP (Ghosh et al. 2020): the loss terms, the decoder's gradient penalty against the
exact Jacobian norm of a linear decoder, and training + ex-post GMM sampling from the CLI."""

import json

import numpy as np
import pytest
import torch

import contract
from vaekit.config import Config
from vaekit.objectives import build_objective
from vaekit.objectives.rae_terms import RAELoss, decoder_l2, jacobian_norm


class Linear(torch.nn.Module):
    """A decoder g(z) = W z + b exposed as ``decode(z).mean``."""

    def __init__(self, w):
        super().__init__()
        self.decoder = torch.nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            self.decoder.weight.copy_(w)

    def decode(self, z):
        return torch.distributions.Normal(self.decoder(z), 1.0)


def test_the_gradient_penalty_is_unbiased_for_the_jacobian_frobenius_norm():
    torch.manual_seed(0)
    w = torch.randn(6, 3, dtype=torch.float64)
    model = Linear(w).double()
    z = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    draws = torch.stack([jacobian_norm(model, z) for _ in range(4000)])
    assert draws.shape == (4000, 5)
    exact = w.square().sum().item()
    se = draws.std().item() / np.sqrt(draws.numel())
    assert abs(draws.mean().item() - exact) < 4 * se
    # it trains: the penalty's gradient reaches the decoder weights (d/dW E‖Wᵀv‖² = 2W)
    (grad,) = torch.autograd.grad(jacobian_norm(model, z).mean(), model.decoder.weight)
    assert grad.abs().sum() > 0


def test_the_rae_loss_is_reconstruction_plus_code_plus_decoder_penalty():
    for name, regulariser in (("rae-l2", "l2"), ("rae-gp", "gp")):
        config = Config.from_flat(model=name, options={"embedding_weight": 0.5, "reg_weight": 0.1})
        assert build_objective(config) == RAELoss(0.5, 0.1, regulariser)
    model, shape, _ = contract.make("rae-l2", ("bernoulli", 1.0), "mlp")
    x = contract.batch(shape)
    out = RAELoss(0.5, 0.1, "l2")(model, x)
    z = model.encode(x).mean
    expected = (0.25 * z.square().sum(-1) - model.decode(z).log_prob(x)).mean() + 0.1 * sum(
        p.square().sum() for p in model.decoder.parameters()
    )
    torch.testing.assert_close(out.loss, expected)
    torch.testing.assert_close(decoder_l2(model), sum(p.square().sum() for p in model.decoder.parameters()))
    with pytest.raises(ValueError, match="regulariser"):
        RAELoss(1.0, 1.0, "l1")


@pytest.mark.parametrize("options", [{"embedding_weight": 0}, {"reg_weight": -1.0}])
def test_bad_options_are_refused(options):
    from vaekit.models import build_model

    with pytest.raises(ValueError):
        build_model(Config.from_flat(model="rae-gp", options=options, latent_dim=2, hidden=(8,)).model, (1, 8, 8))


def test_rae_gp_trains_from_the_cli_and_samples_from_its_ex_post_mixture(tmp_path):
    from vaekit import io
    from vaekit.cli import main

    code = main(
        [
            "train",
            "--model",
            "rae-gp",
            "--epochs",
            "2",
            "--latent-dim",
            "3",
            "--hidden",
            "32",
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
    model = io.load(run)
    assert type(model).__name__ == "RAEGP" and model.default_sampler == "gmm"
    summary = json.loads((run / "summary.json").read_text())
    assert "log_likelihood" not in json.dumps(summary["test"])  # no likelihood bound for an RAE
    assert main(["sample", str(run), "--n", "7", "--output", str(tmp_path / "s.npy")]) in (0, None)
    x = np.load(tmp_path / "s.npy")
    assert x.shape == (7, 1, 8, 8) and np.isfinite(x).all()
