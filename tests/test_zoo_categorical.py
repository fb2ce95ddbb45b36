"""Categorical VAE (Jang et al. 2017) and JointVAE (Dupont 2018): the discrete KL against its formula and
the Monte Carlo KL of one-hot draws, Gumbel-max draws against the class probabilities, the IS
log-likelihood against the exact sum over all 9 codes of a 2 × 3 latent (and, for the JointVAE, against
the sum over codes of a quadrature over the 1-D Gaussian part), the annealing schedule of sec. 4 as
training advances it, the two capacity terms of eq. 7 with the discrete clip at N log K, the CLI."""

import json
import math

import pytest
import torch
from torch.distributions import kl_divergence

from vaekit.config import Config
from vaekit.models import build_model
from vaekit.models.categorical import GumbelSoftmaxCategorical, UniformCategorical, annealed_temperature
from vaekit.objectives import build_objective
from vaekit.objectives.elbo import linear_capacity
from vaekit.objectives.gumbel import AnnealedELBO, JointCapacity


def posterior(shape=(3, 2, 4), hard=False, seed=0, spread=2.0):
    g = torch.Generator().manual_seed(seed)
    logits = spread * torch.randn(*shape, generator=g, dtype=torch.float64)
    return GumbelSoftmaxCategorical(logits, 1.0, hard)


def make(model, latent_dim, seed=0, **options):
    config = Config.from_flat(
        model=model, latent_dim=latent_dim, hidden=(16,), binarize="none", options=options or None, seed=seed
    )
    return build_model(config.model, (1, 8, 8), seed=seed), config


def sharpen(model, factor=6.0):
    """Scale the encoder's output layer so q(c|x) is far from uniform (a meaningful proposal)."""
    with torch.no_grad():
        model.encoder.head.linear.weight.mul_(factor)
        model.encoder.head.linear.bias.normal_(0, 2.0, generator=torch.Generator().manual_seed(1))
    return model.eval()


def test_the_kl_to_the_uniform_prior_is_the_discrete_formula_and_the_monte_carlo_kl():
    torch.manual_seed(0)
    q = posterior()
    prior = UniformCategorical(2, 4, torch.zeros((), dtype=torch.float64))
    exact = kl_divergence(q, prior)
    p = q.probs
    torch.testing.assert_close(exact, (p * (p * 4).log()).sum((-2, -1)))  # Σ_n Σ_k q log(K q)
    c = q.sample((20000,))
    monte_carlo = (q.log_prob(c) - prior.log_prob(c)).mean(0)
    torch.testing.assert_close(monte_carlo, exact, atol=0.03, rtol=0)
    torch.testing.assert_close(prior.log_prob(c[:5]), torch.full((5, 3), -2 * math.log(4), dtype=torch.float64))


def test_draws_relaxed_one_hot_and_straight_through_follow_the_class_probabilities():
    torch.manual_seed(0)
    relaxed = posterior().rsample((1000,)).unflatten(-1, (2, 4))
    torch.testing.assert_close(relaxed.sum(-1), torch.ones(1000, 3, 2, dtype=torch.float64))
    assert (relaxed.max(-1).values < 0.999).any()  # on the simplex, not only at its corners
    logits = torch.randn(3, 2, 4, dtype=torch.float64, requires_grad=True)
    q = GumbelSoftmaxCategorical(logits, 0.5, hard=True)
    hard = q.rsample((20000,)).unflatten(-1, (2, 4))
    assert set(hard.unique().tolist()) == {0.0, 1.0} and (hard.sum(-1) == 1).all()
    torch.testing.assert_close(hard.mean(0), q.probs, atol=0.015, rtol=0)  # Gumbel-max: exact draws
    (hard * torch.arange(4.0, dtype=torch.float64)).sum().backward()
    assert logits.grad.abs().sum() > 0  # the relaxed draw's gradient passes straight through
    torch.testing.assert_close(q.sample((20000,)).unflatten(-1, (2, 4)).mean(0), q.probs, atol=0.015, rtol=0)


def test_the_annealing_schedule_is_sec_4s_and_training_advances_it():
    assert float(annealed_temperature(0)) == 1.0
    assert float(annealed_temperature(499)) == 1.0  # held for N = 500 steps
    assert math.isclose(float(annealed_temperature(500)), math.exp(-1e-4 * 500))
    assert math.isclose(float(annealed_temperature(2300, anneal_rate=1e-4)), math.exp(-1e-4 * 2000))
    assert float(annealed_temperature(10**6)) == 0.5  # the floor
    assert float(annealed_temperature(10**6, temperature=0.67, anneal_rate=0.0)) == 0.67

    from vaekit.training import fit

    options = dict(num_categories=3, anneal_rate=0.05, anneal_interval=2)
    model, config = make("categorical", 6, **options)
    config = config.replace(epochs=2, batch_size=16)
    x = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    fit(model, x, config, val=x[:16])  # validation (eval mode) must not count as training steps
    assert int(model.schedule_step) == 8
    assert math.isclose(float(model.temperature), math.exp(-0.05 * 8))
    model.train()
    q = model.encode(x[:2])
    assert not q.hard and float(q.temperature) == pytest.approx(math.exp(-0.4))
    model.eval()
    AnnealedELBO()(model, x[:4])
    assert int(model.schedule_step) == 8 and model.encode(x[:2]).hard


def test_the_is_log_likelihood_is_the_exact_sum_over_the_nine_codes():
    from vaekit.evaluation import log_likelihood
    from vaekit.objectives import log_weights

    model = sharpen(make("categorical", 6, num_variables=2, num_categories=3)[0], factor=3.0)
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(2)).round()
    codes = torch.cartesian_prod(torch.arange(3), torch.arange(3))  # all 9 codes
    c = torch.nn.functional.one_hot(codes, 3).flatten(1).float()[:, None].expand(9, 3, 6)
    with torch.no_grad():
        q = model.encode(x)
        assert q.probs.max() > 0.8  # the proposal differs from the prior
        log_joint = model.decode(c).log_prob(x) - 2 * math.log(3)  # log p(x, c), (9, 3)
        exact = log_joint.logsumexp(0)
        # E_q[w] = Σ_c q(c|x) p(x, c)/q(c|x) = p(x): the weights of the one place vaekit forms them
        torch.testing.assert_close((q.log_prob(c) + log_weights(model, x, q, c)).logsumexp(0), exact)
        torch.manual_seed(0)
        estimate = log_likelihood(model, x, num_samples=20000)
    torch.testing.assert_close(estimate, exact, atol=0.05, rtol=0)


def test_the_jointvae_is_log_likelihood_is_the_sum_over_codes_of_the_gaussian_integral():
    from vaekit.evaluation import log_likelihood

    model = sharpen(make("jointvae", 3)[0], factor=2.0)  # D = 1, one variable of K = 2
    assert (model.continuous_dim, model.num_variables, model.num_categories) == (1, 1, 2)
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(2)).round()
    z = torch.linspace(-9, 9, 3601)
    with torch.no_grad():
        terms = []
        for k in range(2):
            code = torch.cat([z[:, None], torch.nn.functional.one_hot(torch.tensor(k), 2).expand(len(z), 2)], 1)
            log_px = model.decode(code[:, None].expand(len(z), 2, 3)).log_prob(x)  # (Z, 2)
            log_density = log_px - 0.5 * z[:, None].square() - 0.5 * math.log(2 * math.pi) - math.log(2)
            terms.append(torch.logsumexp(log_density, 0) + math.log(z[1] - z[0]))  # Riemann sum of p(x, z, c)
        exact = torch.stack(terms).logsumexp(0)
        torch.manual_seed(0)
        estimate = log_likelihood(model, x, num_samples=4000)
    torch.testing.assert_close(estimate, exact, atol=0.03, rtol=0)


def test_the_jointvae_loss_is_eq_7_with_linear_capacities_and_the_discrete_clip():
    assert linear_capacity(5.0, 100, 0) == 0.0 and linear_capacity(5.0, 100, 40) == 2.0
    assert linear_capacity(5.0, 100, 1000) == 5.0
    options = dict(gamma=3.0, continuous_capacity=4.0, discrete_capacity=8.0, capacity_steps=100)
    model, config = make("jointvae", 8, num_variables=2, num_categories=3, **options)  # D = 2
    objective = build_objective(config)
    assert objective == JointCapacity(3.0, 4.0, 8.0, 100)
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    for step, c_c in ((20, 1.6), (100, 2 * math.log(3))):  # C_c = min(8·t/T, N log K)
        model.schedule_step.fill_(step)
        assert objective.capacities(model) == pytest.approx((4.0 * step / 100, c_c))
        torch.manual_seed(0)
        out = objective(model, x)
        torch.manual_seed(0)
        q = model.encode(x)
        z = q.rsample()
        log_px = model.decode(z).log_prob(x)
        (qz, qc), (pz, pc) = q.parts, model.prior().parts
        kl_z, kl_c = kl_divergence(qz, pz), kl_divergence(qc, pc)
        expected = -log_px.mean() + 3.0 * ((kl_z.mean() - 4.0 * step / 100).abs() + (kl_c.mean() - c_c).abs())
        torch.testing.assert_close(out.loss, expected)
        torch.testing.assert_close(out.kl, (kl_z + kl_c).detach())
        assert int(model.schedule_step) == step + 1  # the training-mode step was counted


def test_sizes_that_do_not_fill_the_code_are_refused():
    with pytest.raises(ValueError, match="--latent-dim 200"):
        make("categorical", 8, num_variables=20, num_categories=10)
    with pytest.raises(ValueError, match="num_categories must be >= 2"):
        make("categorical", 8, num_categories=1)
    with pytest.raises(ValueError, match="no continuous part"):
        make("jointvae", 10, num_categories=10)
    with pytest.raises(ValueError, match="min_temperature"):
        make("categorical", 8, min_temperature=0)
    model, _ = make("categorical", 200, num_variables=20, num_categories=10)
    assert (model.num_variables, model.num_categories) == (20, 10) and model.prior().sample((3,)).sum(-1).eq(20).all()


@pytest.mark.parametrize("name", ["categorical", "jointvae"])
def test_it_trains_from_the_cli(tmp_path, name):
    from vaekit import io
    from vaekit.cli import main

    args = ["train", "--model", name, "--epochs", "1", "--latent-dim", "6", "--hidden", "16"]
    args += ["--eval-num-samples", "8", "--runs-dir", str(tmp_path), "--name", "run", "--no-progress"]
    code = main([*args, "--threads", "1", "--options", '{"num_categories": 3}'])
    assert code in (0, None)
    model = io.load(tmp_path / "run")
    assert int(model.schedule_step) > 0  # the step count (the schedules) is saved with the weights
    draws = model.sample(4) if name == "categorical" else None
    assert draws is None or draws.shape == (4, 1, 8, 8)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert math.isfinite(summary["test"]["log_likelihood"]) and summary["test"]["kl"] >= 0


def test_a_resumed_run_continues_the_schedules_bit_for_bit(tmp_path):
    from vaekit.training import Checkpoint, fit

    class Interrupt(Exception):
        pass

    class StopAfterTwo:
        def epoch_end(self, loop):
            if loop.epoch == 2:
                raise Interrupt

    x = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(0))

    def run(**kwargs):
        model, config = make("categorical", 6, num_categories=3, anneal_rate=0.1, anneal_interval=3)
        fit(model, x, config.replace(epochs=4, batch_size=16), **kwargs)
        return model

    full = run()
    ckpt = tmp_path / "last.safetensors"
    with pytest.raises(Interrupt):
        run(hooks=[Checkpoint(ckpt), StopAfterTwo()])
    resumed = run(hooks=[Checkpoint(ckpt)], resume_from=ckpt)
    assert int(resumed.schedule_step) == int(full.schedule_step) == 16
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
