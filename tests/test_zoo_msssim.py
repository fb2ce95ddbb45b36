"""MS-SSIM VAE: its score is torchmetrics' MS-SSIM (0 for a perfect reconstruction), the scales fit
the image size, non-images and learned scales are refused, and it trains from the CLI on the digits."""

import json

import pytest
import torch

import contract
from vaekit.config import Config
from vaekit.models import build_model
from vaekit.models.msssim import BETAS, MSSSIMVAE, MSSSIMScore, scales_for


@pytest.mark.parametrize(
    "size,expected", [((8, 8), (2, 7)), ((28, 28), (4, 3)), ((64, 64), (5, 3)), ((200, 200), (5, 11))]
)
def test_the_scales_fit_the_image_size(size, expected):
    assert scales_for(*size) == expected


def test_the_score_is_torchmetrics_ms_ssim_and_zero_for_a_perfect_reconstruction():
    from torchmetrics.functional.image import multiscale_structural_similarity_index_measure as ms_ssim

    g = torch.Generator().manual_seed(0)
    x, m = torch.rand(3, 1, 28, 28, generator=g), torch.rand(2, 3, 1, 28, 28, generator=g)
    score = MSSSIMScore(m, 10.0, 4, 3)
    assert score.log_prob(x).shape == (2, 3)
    betas = torch.tensor(BETAS[:4])
    expected = ms_ssim(
        m[1],
        x,
        sigma=2 / 7,
        kernel_size=3,
        betas=tuple((betas / betas.sum()).tolist()),
        data_range=1.0,
        reduction="none",
        normalize="simple",
    )
    torch.testing.assert_close(score.log_prob(x)[1], -10.0 * (1 - expected))
    torch.testing.assert_close(MSSSIMScore(x, 10.0, 4, 3).log_prob(x), torch.zeros(3), atol=1e-5, rtol=0)


def test_non_images_and_learned_scales_are_refused():
    assert MSSSIMVAE.refuses((5,), 1.0) and MSSSIMVAE.refuses((1, 8, 8), "learned")
    assert MSSSIMVAE.refuses((1, 8, 8), 0.3) is None
    for likelihood_scale, shape in ((1.0, (5,)), ("learned", (1, 8, 8))):
        config = Config.from_flat(
            model="msssim-vae", likelihood="gaussian", likelihood_scale=likelihood_scale, latent_dim=2, hidden=(8,)
        )
        with pytest.raises(ValueError, match="MS-SSIM"):
            build_model(config.model, shape)
    assert ("msssim-vae", ("bernoulli", 1.0), "tabular") not in contract.cases(["msssim-vae"])


def test_it_trains_from_the_cli_and_its_reconstructions_improve(tmp_path):
    from vaekit import data, io
    from vaekit.cli import main

    x = data.load("digits", split="test").x[:64]
    before = build_model(Config.from_flat(model="msssim-vae", latent_dim=4, hidden=(64,)).model, (1, 8, 8))
    assert main(
        [
            "train",
            "--model",
            "msssim-vae",
            "--epochs",
            "5",
            "--latent-dim",
            "4",
            "--hidden",
            "64",
            "--runs-dir",
            str(tmp_path),
            "--name",
            "run",
            "--no-progress",
            "--threads",
            "1",
        ]
    ) in (0, None)
    after = io.load(tmp_path / "run")
    with torch.no_grad():
        scores = [m.decode(m.transform(x)).log_prob(x).mean().item() for m in (before.eval(), after.eval())]
    assert scores[1] > scores[0] + 5, scores  # −w(1 − MS-SSIM), w = 64 pixels
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert "log_likelihood" not in json.dumps(summary["test"])
