"""The training loop: reproducibility, resume, early stopping, warm-up, divergence, DataLoader path."""

import copy
import dataclasses
import functools

import pytest
import torch

import vaekit
from vaekit import data, io
from vaekit.config import Config
from vaekit.evaluation.kl import KLDiagnostics
from vaekit.models import build_model
from vaekit.objectives import ELBO, BetaTC, build_objective, elbo_terms
from vaekit.training import Checkpoint
from vaekit.training.checkpoint import load_checkpoint
from vaekit.training.loop import TrainingDiverged, fit, validate, warmup_at
from vaekit.training.optimizer import build_optimizer, optimizer_kind

CONFIG = Config.from_flat(latent_dim=2, hidden=(16,), epochs=4, batch_size=128, seed=1)


@pytest.fixture(scope="module")
def digits():
    return data.load("digits").x[:400]


def weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def train(x, config=CONFIG, **kwargs):
    model = build_model(config.model, x.shape[1:], seed=config.train.seed)
    history = fit(model, x, config, **kwargs)
    return model, history


def test_same_seed_same_numbers(digits):
    a, ha = train(digits)
    b, hb = train(digits)
    assert_same_weights(weights(a), weights(b))
    assert [h["train_loss"] for h in ha] == [h["train_loss"] for h in hb]
    c, _ = train(digits, CONFIG.replace(seed=2))
    assert not torch.equal(a.decoder.net[0].weight, c.decoder.net[0].weight)


@pytest.mark.parametrize("fused", [True, False])
def test_resume_reaches_the_uninterrupted_end_state(digits, tmp_path, fused):
    config = CONFIG.replace(fused_optimizer=fused)
    train = functools.partial(globals()["train"], config=config)
    full, history = train(digits, val=digits[:50])

    class Interrupt(Exception):
        pass

    class StopAfterTwo:  # a hook that interrupts the run after the checkpoint of epoch 2
        def epoch_end(self, loop):
            if loop.epoch == 2:
                raise Interrupt

    ckpt = tmp_path / "last.safetensors"
    with pytest.raises(Interrupt):
        train(digits, val=digits[:50], hooks=[Checkpoint(ckpt), StopAfterTwo()])
    resumed, resumed_history = train(digits, val=digits[:50], hooks=[Checkpoint(ckpt)], resume_from=ckpt)
    assert_same_weights(weights(full), weights(resumed))
    assert [h["train_loss"] for h in history] == [h["train_loss"] for h in resumed_history]
    state, _ = load_checkpoint(ckpt, resumed, build_optimizer(resumed, config.train))
    assert state["optimizer"] == ("fused" if fused else "foreach")


def test_fused_optimizer_is_the_default_and_can_be_turned_off(digits):
    """The fused Adam step by default (CPU has it), foreach with fused_optimizer=False; the two
    compute the same Adam up to rounding (same losses to 1e-4 after 4 epochs), and a run folder
    written before the setting existed resumes with the foreach step it was trained with."""
    model = build_model(CONFIG.model, digits.shape[1:], seed=0)
    assert CONFIG.train.fused_optimizer
    assert optimizer_kind(build_optimizer(model, CONFIG.train)) == "fused"
    assert optimizer_kind(build_optimizer(model, CONFIG.replace(fused_optimizer=False).train)) == "foreach"
    _, fused = train(digits)
    _, foreach = train(digits, CONFIG.replace(fused_optimizer=False))
    assert [h["train_loss"] for h in fused] == pytest.approx([h["train_loss"] for h in foreach], rel=1e-4)
    with pytest.raises(TypeError, match="fused_optimizer"):
        CONFIG.replace(fused_optimizer="yes")


def test_a_run_folder_from_before_the_setting_loads_with_the_foreach_step(tmp_path):
    record = io.model_record(build_model(CONFIG.model, (1, 8, 8)), CONFIG)
    del record["config"]["train"]["fused_optimizer"]
    io.write_json(tmp_path / io.CONFIG, record)
    assert io.load_config(tmp_path) == CONFIG.replace(fused_optimizer=False)
    assert Config.from_dict(record["config"]) == CONFIG  # a user's config file: the default


def test_early_stopping_restores_the_best_weights(digits):
    config = CONFIG.replace(epochs=30, patience=2, lr=3e-2)
    val = digits[:60]
    model, history = train(digits, config, val=val)
    assert len(history) < 30
    best = min(h["val_loss"] for h in history)
    assert history[-1]["val_loss"] > best  # it stopped after epochs without improvement
    torch.manual_seed(0)
    again = validate(model, val, build_objective(config))["loss"]
    assert again == pytest.approx(best, abs=1.0)  # the best weights are back (1-sample MC noise)


def test_kl_warmup_schedule():
    config = CONFIG.replace(beta=4.0, warmup_epochs=10, epochs=30)
    assert warmup_at(config.train, 0) == 0
    assert warmup_at(config.train, 5) == pytest.approx(0.5)
    assert warmup_at(config.train, 25) == 1.0
    assert warmup_at(CONFIG.train, 0) == 1.0
    assert build_objective(config) == ELBO(beta=4.0, num_samples=1)  # the objective owns β; the loop only w


def test_beta_vae_trains_exactly_as_a_hand_written_loop_on_elbo_terms(digits):
    """The loop supplies only the warm-up factor w; the β-VAE loss is −(reconstruction − w·β·KL)
    from :func:`elbo_terms`, as before objectives owned β: the same losses and bit-identical
    weights as a hand-written loop (same seeds, shuffling, Adam), also with the loop's own
    bookkeeping (schedule, metrics) in between the steps."""
    config = CONFIG.replace(beta=4.0, warmup_epochs=2, epochs=3, batch_size=96, binarize="none")
    t, x = config.train, digits
    model = build_model(config.model, x.shape[1:], seed=config.train.seed)
    reference = copy.deepcopy(model)
    history = fit(model, x, config)

    torch.manual_seed(t.seed)
    shuffle = torch.Generator().manual_seed(t.seed)
    optimizer = torch.optim.Adam(reference.parameters(), lr=t.lr, fused=True)  # the default step
    reference.train()
    for epoch in range(t.epochs):
        order, total, seen = torch.randperm(len(x), generator=shuffle), 0.0, 0
        for start in range(0, len(x), t.batch_size):
            xb = x[order[start : start + t.batch_size]]
            w = min(1.0, (epoch + seen / len(x)) / t.warmup_epochs)
            terms = elbo_terms(reference, xb)
            loss = -(terms["reconstruction"] - t.beta * w * terms["kl"]).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total, seen = total + loss.item() * len(xb), seen + len(xb)
        assert history[epoch]["train_loss"] == pytest.approx(total / seen, rel=1e-6)
        assert history[epoch]["beta"] == t.beta * w
    assert_same_weights(weights(model), weights(reference))


def test_validation_and_early_stopping_score_the_trained_objective(digits):
    """val_loss is the loss of the objective being trained (not the plain ELBO); the val ELBO
    metrics stay the ELBO of the validation data."""

    @dataclasses.dataclass(frozen=True)
    class Shifted:  # the ELBO loss plus 100 nats: recognisable in val_loss
        def __call__(self, model, x, warmup=1.0):
            out = ELBO()(model, x, warmup)
            return dataclasses.replace(out, loss=out.loss + 100.0)

    val = digits[:60]
    _, history = train(digits, CONFIG.replace(epochs=2), val=val, objective=Shifted())
    for h in history:
        assert h["val_loss"] == pytest.approx(100.0 - h["val_elbo"], rel=1e-5)
        assert h["train_loss"] == pytest.approx(100.0 - h["train_elbo"], rel=1e-5)

    config = CONFIG.replace(model="betatc", beta=6.0, epochs=1)
    model, history = train(digits, config, val=val)
    objective = build_objective(config, dataset_size=len(digits))
    assert objective == BetaTC(1.0, 6.0, 1.0, "mws", len(digits))
    torch.manual_seed(0)
    metrics = validate(model, val, objective)
    torch.manual_seed(0)
    expected = objective(model.eval(), val)  # one batch: the β-TCVAE loss, z drawn as in validate
    assert metrics["loss"] == pytest.approx(expected.loss.item(), rel=1e-6)
    assert metrics["elbo"] == pytest.approx(expected.elbo.mean().item(), rel=1e-6)
    assert metrics["loss"] != pytest.approx(-metrics["elbo"], rel=1e-3)  # not the plain ELBO


def test_divergence_names_the_step_and_keeps_the_last_good_checkpoint(digits, tmp_path):
    ckpt = tmp_path / "last.safetensors"

    class Poison:  # NaN weights after the checkpoint of epoch 1
        def epoch_end(self, loop):
            if loop.epoch == 1:
                with torch.no_grad():
                    model.decoder.net[0].weight.fill_(float("nan"))

    model = build_model(CONFIG.model, digits.shape[1:], seed=CONFIG.train.seed)
    with pytest.raises(TrainingDiverged, match=r"at step 4 \(epoch 2\)"):
        fit(model, digits, CONFIG, hooks=[Checkpoint(ckpt), Poison()])
    fresh = build_model(CONFIG.model, digits.shape[1:], seed=CONFIG.train.seed)
    state, _ = load_checkpoint(ckpt, fresh, torch.optim.Adam(fresh.parameters()))
    assert state["epoch"] == 1
    assert all(torch.isfinite(p).all() for p in fresh.parameters())


def test_weights_that_turn_non_finite_on_an_epochs_last_step_stop_training(digits):
    """The loss of every step is finite, but the last step of epoch 1 leaves an Inf weight: the
    end-of-epoch check (one norm over all weights, then each weight) names it."""
    steps = -(-len(digits) // CONFIG.train.batch_size)
    calls = []

    def poison_last_step(model, x, **schedule):
        out = ELBO()(model, x, **schedule)
        calls.append(1)
        if len(calls) == steps:
            with torch.no_grad():
                model.decoder.net[0].bias[0] = float("inf")
        return out

    model = build_model(CONFIG.model, digits.shape[1:], seed=CONFIG.train.seed)
    with pytest.raises(TrainingDiverged, match=r"the weights decoder\.net\.0\.bias became NaN/Inf in epoch 1"):
        fit(model, digits, CONFIG, objective=poison_last_step)


def test_dataloader_path_trains(digits):
    """Batches from a DataLoader are all used (7 steps of 64 per epoch over 400 examples) and train:
    the epoch loss falls every epoch (about 0.5 nats per epoch here; fit seeds the loader's shuffle,
    so the run is deterministic), and the model's ELBO on the data rises."""
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(digits), batch_size=64, shuffle=True)
    model = build_model(CONFIG.model, digits.shape[1:], seed=CONFIG.train.seed)
    torch.manual_seed(0)
    x = torch.bernoulli(digits)
    before = vaekit.elbo(model, x).mean().item()
    history = fit(model, loader, CONFIG.replace(epochs=5))
    losses = [epoch["train_loss"] for epoch in history]
    assert len(history) == 5 and history[-1]["step"] == 5 * 7
    assert all(later < earlier for earlier, later in zip(losses, losses[1:])), losses
    assert losses[-1] < losses[0] - 1.5, losses
    assert vaekit.elbo(model, x).mean().item() > before + 2


def test_iwae_objective_trains(digits):
    _, history = train(digits, CONFIG.replace(objective="iwae", num_samples=5, epochs=3))
    assert history[-1]["train_loss"] < history[0]["train_loss"]


def test_denoising_ae_adds_noise_only_in_training(digits):
    model = build_model(Config.from_flat(model="ae", noise_std=0.5, latent_dim=2, hidden=(8,)).model, digits.shape[1:])
    x = digits[:4]
    model.train()
    assert not torch.equal(model.corrupt(x), x)
    model.eval()
    assert torch.equal(model.corrupt(x), x)


def test_kl_diagnostics_hook_logs_the_decomposition(digits):
    _, history = train(digits, CONFIG.replace(epochs=1), val=digits[:50], hooks=[KLDiagnostics(digits[:50], 50)])
    assert {"val_kl_mi", "val_kl_tc", "val_kl_dimwise", "val_kl_per_dim"} <= history[0].keys()
    _, history = train(digits, CONFIG.replace(epochs=1), val=digits[:50])
    assert not any(key.startswith("val_kl_") for key in history[0])


def test_run_logs_kl_diagnostics_unless_switched_off(tmp_path):
    from vaekit import run

    config = Config.from_flat(latent_dim=2, hidden=(16,), epochs=1, eval_num_samples=5)
    run.train(config, tmp_path / "a", progress=False)
    run.train(config.replace(kl_diagnostic_points=0), tmp_path / "b", progress=False)
    assert "val_kl_mi" in io.read_json_lines(tmp_path / "a" / "metrics.jsonl")[0]
    assert not any(k.startswith("val_kl_") for k in io.read_json_lines(tmp_path / "b" / "metrics.jsonl")[0])
