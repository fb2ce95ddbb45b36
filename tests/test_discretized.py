"""The discretized logistic likelihood of 8-bit pixels (Salimans et al. 2017, eq. 2): a proper
distribution over the 256 levels, the closed form per bin, draws on the grid with the right
frequencies, a refusal of data off the grid, and a run on real MNIST grey levels from the CLI."""

import json
import math

import pytest
import torch

from vaekit.cli import main
from vaekit.discretized import DiscretizedLogisticDistribution, on_grid
from vaekit.distributions import build_likelihood

LEVELS = torch.arange(256, dtype=torch.float64) / 255


@pytest.mark.parametrize("loc,scale", [(0.3, 0.05), (0.0, 0.001), (1.2, 0.2), (-0.4, 0.02), (0.5, 0.0011), (0.77, 3.0)])
def test_the_256_probabilities_sum_to_one(loc, scale):
    d = DiscretizedLogisticDistribution(torch.full((256,), loc, dtype=torch.float64), torch.tensor(scale).double())
    probs = d.log_prob(LEVELS).exp()
    assert probs.sum().item() == pytest.approx(1.0, abs=1e-5) and (probs >= 0).all()


def test_each_bin_is_the_logistic_mass_of_its_interval():
    """P(k/255) = F((k + ½)/255) − F((k − ½)/255) inside, F(½/255) and 1 − F(1 − ½/255) at the edges, F
    the logistic CDF (checked in float64 against the plain formula)."""
    loc, scale = 0.41, 0.07
    d = DiscretizedLogisticDistribution(torch.full((256,), loc, dtype=torch.float64), torch.tensor(scale).double())

    def cdf(t):
        return torch.sigmoid((t - loc) / scale)

    half = 0.5 / 255
    expected = cdf(LEVELS + half) - cdf(LEVELS - half)
    edges = torch.tensor([half, 1 - half], dtype=torch.float64)
    expected[0], expected[-1] = cdf(edges[0]), 1 - cdf(edges[1])
    torch.testing.assert_close(d.log_prob(LEVELS).exp(), expected, rtol=1e-6, atol=1e-9)


def test_a_bin_whose_mass_underflows_gets_the_density_at_its_centre():
    """Far in the tail (mass < 1e-5) log P is log(density × 1/255), finite and below the in-range values."""
    d = DiscretizedLogisticDistribution(torch.tensor([0.1]), torch.tensor([0.002]))
    tail, near = d.log_prob(torch.tensor([200 / 255])), d.log_prob(torch.tensor([26 / 255]))
    assert torch.isfinite(tail).all() and tail < -100 and near > tail


def test_draws_lie_on_the_grid_with_the_bin_probabilities():
    torch.manual_seed(0)
    x = DiscretizedLogisticDistribution(torch.full((200_000,), 0.02), torch.tensor(0.01)).sample()
    assert on_grid(x)
    one = DiscretizedLogisticDistribution(torch.tensor([0.02]), torch.tensor(0.01))
    for k in (0, 5, 10):
        freq = (x == k / 255).double().mean().item()
        prob = one.log_prob(torch.tensor([k / 255])).exp().item()
        assert freq == pytest.approx(prob, abs=0.005)


def test_the_head_learns_one_scale_per_pixel_and_refuses_data_off_the_grid():
    head = build_likelihood("discretized-logistic", (1, 4, 4))
    assert head.scale.shape == (1, 4, 4) and head.scale.min().item() == pytest.approx(0.0635, abs=1e-3)
    p = head(torch.zeros(2, 1, 4, 4))
    x = torch.randint(0, 256, (2, 1, 4, 4)) / 255
    log_p = p.log_prob(x)
    assert log_p.shape == (2,) and (log_p < 0).all()
    log_p.sum().backward()
    assert head.raw_scale.grad is not None
    head.check_support(x)
    with pytest.raises(ValueError, match="8-bit"):
        head.check_support(torch.full((2, 1, 4, 4), 0.5))  # 127.5 / 255 is between two levels


def test_trains_on_mnist_grey_levels_from_the_cli_and_refuses_the_digits(tmp_path, capsys):
    """Real MNIST (mnist-5k) at its 256 grey levels, no binarization: the IS log-likelihood is a
    log-probability of the 8-bit image (< 0 nats), already above the uniform distribution's
    −784 log 256 = −4,347 nats after one epoch. The digits (16 levels, k/16) are off the grid: one line."""
    args = ["train", "--data", "mnist-5k", "--likelihood", "discretized-logistic", "--epochs", "1", "--latent-dim", "4"]
    args += ["--hidden", "32", "--eval-num-samples", "4", "--runs-dir", str(tmp_path), "--name", "r", "--no-progress"]
    assert main(args) == 0
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["binarize"] == "none"
    assert -784 * math.log(256) < summary["test"]["log_likelihood"] < 0
    code = main(["train", "--likelihood", "discretized-logistic", "--epochs", "1", "--runs-dir", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and "8-bit" in err[0] and "Traceback" not in err[0]
