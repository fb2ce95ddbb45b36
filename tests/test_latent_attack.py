"""The three attacks of ``vaekit evaluate robustness`` and the smoothness figure (issue 21)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.distributions import Independent, Normal

from vaekit.attacks import fgsm, pgd
from vaekit.evaluation.robustness import adversarial_accuracy, between_class_distance, latent_attack, smoothness


class Encoder(nn.Module):
    """A stand-in model: ``encode(x)`` is N(f(x), I) for a given code function f."""

    def __init__(self, code):
        super().__init__()
        self.code = code
        self.anchor = nn.Parameter(torch.zeros(1))  # so the model has a device

    def encode(self, x):
        loc = self.code(x) + 0 * self.anchor
        return Independent(Normal(loc, torch.ones_like(loc)), 1)


def two_classes(n: int = 60):
    """Pixels near 0.25 (class 0) or 0.75 (class 1), shape (n, 1, 4, 4), away from the [0, 1] edges."""
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 2
    x = 0.25 + 0.5 * y.view(-1, 1, 1, 1).float() + 0.05 * (torch.rand(n, 1, 4, 4, generator=g) - 0.5)
    return x, y


W = torch.randn(16, 3, generator=torch.Generator().manual_seed(1))


def linear(x):
    return x.flatten(1) @ W


def test_fgsm_is_one_step_of_size_epsilon_from_the_centre():
    x, _ = two_classes(8)
    w = torch.randn(16, generator=torch.Generator().manual_seed(2))

    def loss(inputs):
        return torch.tanh(inputs.flatten(1) @ w)  # a non-linear loss: the gradient depends on the point

    x_grad = x.clone().requires_grad_(True)
    grad = torch.autograd.grad(loss(x_grad).sum(), x_grad)[0]
    expected = (x + 0.1 * grad.sign()).clamp(0, 1)
    assert torch.allclose(fgsm(loss, x, 0.1), expected)
    one_step = pgd(loss, x, 0.1, num_steps=1, step_size=0.1, random_start=False)
    assert torch.allclose(fgsm(loss, x, 0.1), one_step)


def test_latent_attack_moves_the_code_more_than_random_noise_of_the_same_norm():
    x, y = two_classes()
    model = Encoder(linear)
    adv = latent_attack(model, x, 0.05, num_steps=10, generator=torch.Generator().manual_seed(0))
    assert (adv - x).abs().max() <= 0.05 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    moved = (linear(adv) - linear(x)).norm(dim=1)
    # the L∞ maximiser of ‖W^T δ‖ for a linear code: at least the best corner ε·sign(W v) of any
    # column direction, here checked against a random corner of the cube (the same L∞ norm)
    noise = 0.05 * (2 * torch.randint(0, 2, x.shape, generator=torch.Generator().manual_seed(3)) - 1)
    random = (linear(x + noise) - linear(x)).norm(dim=1)
    assert (moved >= random).all() and moved.median() > 2 * random.median()
    report = smoothness(model, x, {"class": y}, epsilons=(0.05,), num_steps=10)
    assert report["median_displacement"]["0.05"] > 2 * report["median_random_displacement"]["0.05"]
    assert report["median_displacement"]["0.05"] == pytest.approx(moved.median().item(), rel=0.05)


def test_latent_attack_on_a_probe_is_label_free_and_not_weaker_than_clean():
    from vaekit.evaluation.probe import LinearProbe

    x, y = two_classes(200)
    model = Encoder(linear)
    probe = LinearProbe(model).fit(x, y)
    clean = probe.score(x, y)
    assert clean == 1.0
    # pixels 0.25 vs 0.75: an ε of 0.3 lets the attack swap the classes' codes
    attacked = adversarial_accuracy(probe, x, y, 0.3, attack="latent", num_steps=10)
    assert attacked < clean
    flipped = adversarial_accuracy(probe, x, 1 - y, 0.3, attack="latent", num_steps=10)  # labels unused
    assert attacked + flipped == pytest.approx(1.0)


def test_smoothness_of_an_encoder_that_ignores_its_input_is_zero():
    x, y = two_classes()
    # the code reads only the class (pixels rounded to 0 or 1): no ε = 0.1 change moves it
    rounded = Encoder(lambda t: torch.round(t.flatten(1)[:, :2]))
    report = smoothness(rounded, x, {"class": y}, epsilons=(0.1,), num_steps=5)
    assert report["median_displacement"]["0.1"] == 0 and report["median_between_class_distance"]["class"] > 1
    assert report["smoothness"]["class"]["0.1"] == 0
    constant = Encoder(lambda t: 0 * t.flatten(1)[:, :2] + 1.0)
    assert smoothness(constant, x, {"class": y}, epsilons=(0.1,), num_steps=5)["smoothness"]["class"]["0.1"] == 0
    moving = smoothness(Encoder(linear), x, {"class": y}, epsilons=(0.1,), num_steps=5)
    expected = moving["median_displacement"]["0.1"] / moving["median_between_class_distance"]["class"]
    assert moving["smoothness"]["class"]["0.1"] == pytest.approx(expected) and expected > 0
    with pytest.raises(ValueError, match="radii > 0"):
        smoothness(rounded, x, {"class": y}, epsilons=(0.0,))
    with pytest.raises(ValueError, match="one value per example"):
        smoothness(rounded, x, {"class": y[:3]})


def test_between_class_distance_is_the_median_over_pairs_of_different_classes():
    codes = torch.tensor([[0.0], [1.0], [3.0], [7.0]])
    y = torch.tensor([0, 0, 1, 1])
    # pairs of different classes: |0-3|, |0-7|, |1-3|, |1-7| = 3, 7, 2, 6 -> median 4.5
    assert between_class_distance(codes, y) == pytest.approx(4.5)
    assert between_class_distance(codes, torch.zeros(4, dtype=torch.long)) == 0.0
