"""The conditional VAE: model contract, training with labels, evaluation of log p(x|c), and
conditional samples that a classifier trained on the real digits recognises as the requested class."""

import math

import pytest
import torch
from sklearn.linear_model import LogisticRegression

from vaekit import build_model, data, fit, io
from vaekit.config import Config
from vaekit.data.splits import condition_labels, resolve_condition
from vaekit.evaluation import evaluate, evaluate_conditional
from vaekit.models import CVAE, condition
from vaekit.training import Checkpoint

torch.set_num_threads(1)
SHAPE = (1, 8, 8)


def tiny(**changes):
    config = Config.from_flat(model="cvae", latent_dim=3, hidden=(32,), **changes)
    return build_model(config.model, SHAPE, num_classes=10, seed=config.train.seed).eval(), config


@pytest.fixture(scope="module")
def digits():
    return data.load("digits", "train"), data.load("digits", "test")


@pytest.fixture(scope="module")
def trained(digits):
    """A CVAE trained on the digits train split (about 10 s on one core)."""
    train, _ = digits
    config = Config.from_flat(model="cvae", latent_dim=4, hidden=(128,), epochs=20, seed=0)
    model = build_model(config.model, train.data_shape, num_classes=10, seed=config.train.seed)
    history = fit(model, train.x, config, labels=train.labels["digit"])
    return model, history


def test_conditional_samples_show_the_requested_class(digits, trained):
    """Sohn et al. 2015 judge CVAE samples by eye; we measure: a logistic regression trained on the
    real digits (≈ 97 % test accuracy) labels samples of class k as k. Chance is 10 %."""
    train, test = digits
    classifier = LogisticRegression(max_iter=2000).fit(train.x.flatten(1).numpy(), train.labels["digit"].numpy())
    assert classifier.score(test.x.flatten(1).numpy(), test.labels["digit"].numpy()) > 0.9
    model, _ = trained
    requested = torch.arange(10).repeat_interleave(30)
    samples = model.sample(len(requested), generator=torch.Generator().manual_seed(1), labels=requested)
    predicted = torch.from_numpy(classifier.predict(samples.flatten(1).numpy()))
    agreement = (predicted == requested).float().mean().item()
    assert agreement > 0.8, f"only {agreement:.0%} of the conditional samples were classified as requested"
    per_class = [(predicted[requested == k] == k).float().mean().item() for k in range(10)]
    assert min(per_class) > 0.5, per_class
    # the label, not the draws, decides the class: shifting the requested labels shifts the predictions
    shifted = model.sample(len(requested), generator=torch.Generator().manual_seed(1), labels=(requested + 1) % 10)
    moved = torch.from_numpy(classifier.predict(shifted.flatten(1).numpy()))
    assert (moved == (requested + 1) % 10).float().mean() > 0.8
    assert (moved == requested).float().mean() < 0.2


def test_training_improves_and_conditioning_helps(digits, trained):
    """Knowing the class helps: the CVAE's bound on log p(x|c) beats an equal VAE's bound on
    log p(x) on the same test set (log p(x|c) = log p(x) + log p(c|x) − log p(c), and p(c|x) ≈ 1 here)."""
    train, test = digits
    model, history = trained
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    config = Config.from_flat(model="vae", latent_dim=4, hidden=(128,), epochs=20, seed=0)
    vae = build_model(config.model, train.data_shape, seed=config.train.seed)
    fit(vae, train.x, config)
    x, c = test.x, test.labels["digit"]
    torch.manual_seed(0)
    cvae_elbo = evaluate_conditional(model, x, c, num_samples=10)["elbo"]
    vae_elbo = evaluate(vae, x, num_samples=10)["elbo"]
    assert cvae_elbo > vae_elbo


def test_save_load_round_trip(tmp_path):
    model, _ = tiny()
    io.save(model, tmp_path / "m")
    loaded = io.load(tmp_path / "m")
    assert isinstance(loaded, CVAE) and loaded.num_classes == 10
    x, c = torch.rand(4, *SHAPE), torch.tensor([0, 1, 2, 9])
    torch.testing.assert_close(loaded.reconstruct(x, c), model.reconstruct(x, c))


def test_condition_formats_and_errors():
    model, _ = tiny()
    x = torch.rand(3, *SHAPE)
    onehot = torch.nn.functional.one_hot(torch.tensor([4, 4, 4]), 10).float()
    torch.testing.assert_close(model.transform(x, 4), model.transform(x, onehot))
    torch.testing.assert_close(model.transform(x, torch.tensor(4)), model.transform(x, torch.tensor([4, 4, 4])))
    with pytest.raises(ValueError, match=r"class indices must lie in \[0, 10\)"):
        model.transform(x, torch.tensor([0, 1, 10]))
    with pytest.raises(ValueError, match=r"class indices c must be \(batch=3,\)"):
        model.transform(x, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"class weights c must be \(batch=3, 10\)"):
        model.transform(x, torch.zeros(3, 9))
    with pytest.raises(TypeError, match="condition c must be"):
        model.transform(x, "three")
    with pytest.raises(ValueError, match="conditional: pass the class labels"):
        condition(model)
    with pytest.raises(ValueError, match="num_classes >= 2"):
        build_model(model.config, SHAPE, num_classes=1)


def test_fit_needs_labels():
    model, config = tiny(epochs=1)
    with pytest.raises(ValueError, match="conditional: pass labels="):
        fit(model, torch.rand(8, *SHAPE), config)


def test_fit_with_a_dataloader_takes_labels_from_batches():
    """The condition comes from each batch's second entry: the same batches give the same loss
    (fit is seeded), the same images with other labels give another loss and other weights."""
    torch.manual_seed(0)
    x, c = torch.rand(8, *SHAPE), torch.arange(8) % 10

    def run(labels):
        model, config = tiny(epochs=1, batch_size=4)
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, labels), batch_size=4)
        history = fit(model, loader, config)
        assert len(history) == 1 and history[0]["step"] == 2 and math.isfinite(history[0]["train_loss"])
        return history[0]["train_loss"], torch.cat([p.detach().flatten() for p in model.parameters()])

    loss, weights = run(c)
    again, same_weights = run(c.clone())
    other, other_weights = run((c + 5) % 10)
    assert again == loss and torch.equal(same_weights, weights)
    assert other != loss and not torch.equal(other_weights, weights)


def test_condition_on_resolution(digits):
    train, _ = digits
    config = Config.from_flat(model="cvae")
    assert resolve_condition(config, train).data.condition_on == "digit"
    assert torch.equal(condition_labels(config, train), train.labels["digit"])
    assert condition_labels(Config.from_flat(model="vae"), train) is None
    with pytest.raises(ValueError, match="--condition-on 'colour'"):
        resolve_condition(Config.from_flat(model="cvae", condition_on="colour"), train)
    with pytest.raises(ValueError, match="needs labelled data"):
        resolve_condition(config, data.Dataset("nolabels", torch.rand(4, 3)))
    with pytest.raises(ValueError, match="--condition-on needs a conditional model"):
        Config.from_flat(model="vae", condition_on="digit")


def test_evaluate_conditional_combines_classes_exactly():
    """Per-class evaluation weighted by class size equals the average over all examples."""
    model, _ = tiny()
    x, c = (
        torch.rand(10, *SHAPE, generator=torch.Generator().manual_seed(0)),
        torch.tensor([0, 0, 1, 2, 2, 2, 5, 5, 5, 5]),
    )
    result = evaluate_conditional(model, x, c, num_samples=4)
    direct = (model.reconstruct(x, c) - x).pow(2).flatten(1).sum(1).mean().item()
    assert result["mse_per_example"] == pytest.approx(direct, rel=1e-5)
    assert len(result["kl_per_dim"]) == 3 and sum(result["kl_per_dim"]) == pytest.approx(result["kl"], rel=1e-5)
    with pytest.raises(ValueError, match="one label per example"):
        evaluate_conditional(model, x, c[:3])


def test_resumed_training_equals_uninterrupted(tmp_path):
    """Labels are shuffled with x by the same seeded index, so a resumed CVAE run ends where an
    uninterrupted one does."""
    x, c = torch.rand(40, *SHAPE, generator=torch.Generator().manual_seed(0)), torch.arange(40) % 10
    config = Config.from_flat(model="cvae", latent_dim=3, hidden=(16,), epochs=4, batch_size=8, seed=3)
    full = build_model(config.model, SHAPE, num_classes=10, seed=config.train.seed)
    fit(full, x, config, val=x[:8], labels=c, val_labels=c[:8])
    part = build_model(config.model, SHAPE, num_classes=10, seed=config.train.seed)
    ckpt = tmp_path / "last.safetensors"
    fit(part, x, config.replace(epochs=2), val=x[:8], labels=c, val_labels=c[:8], hooks=[Checkpoint(ckpt)])
    resumed = build_model(config.model, SHAPE, num_classes=10, seed=config.train.seed)
    fit(resumed, x, config, val=x[:8], labels=c, val_labels=c[:8], hooks=[Checkpoint(ckpt)], resume_from=ckpt)
    for key, value in full.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[key], value)
