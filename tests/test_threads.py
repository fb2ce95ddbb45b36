"""The thread policy: override order (option > OMP_NUM_THREADS > policy), the rule, and that
``fit``, ``vaekit train`` and ``vaekit evaluate`` apply and record it; progress lines in logs."""

import json

import pytest
import torch

from vaekit import Config, build_model, fit, runtime
from vaekit.cli import main
from vaekit.options import RunOptions
from vaekit.runtime import choose_threads, idle_cores


@pytest.fixture(autouse=True)
def keep_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def small():
    return build_model(Config().model, (1, 8, 8), True, seed=0)


def large():
    return build_model(Config.from_flat(net="conv").model, (1, 28, 28), True, seed=0)


def test_override_order():
    env = {"OMP_NUM_THREADS": "3"}
    assert choose_threads(small(), threads=2, environ=env) == runtime.ThreadChoice(2, "threads")  # option first
    assert choose_threads(small(), environ=env) == runtime.ThreadChoice(3, "OMP_NUM_THREADS")  # then the environment
    policy = choose_threads(small(), environ={})  # then the policy
    assert (policy.threads, policy.source) == (1, "policy")
    assert choose_threads(small(), environ={"OMP_NUM_THREADS": ""}).source == "policy"  # empty = unset


def test_policy_one_thread_small_idle_cores_large(monkeypatch):
    monkeypatch.setattr(runtime.threads, "available_cores", lambda: 4)
    assert small_flops() < runtime.THREAD_FLOPS_THRESHOLD < large_flops()
    assert choose_threads(small(), 64, environ={}, load=0.0).threads == 1
    assert choose_threads(large(), 64, environ={}, load=0.0).threads == 4  # idle machine: every core
    assert choose_threads(large(), 64, environ={}, load=2.0).threads == 3  # one core busy elsewhere
    assert choose_threads(large(), 64, environ={}, load=12.0).threads == 1  # a loaded machine: one
    assert idle_cores(2, 0.5) == 2 and idle_cores(2, 1.6) == 1


def small_flops():
    return runtime.flops_per_step(small(), 64)


def large_flops():
    return runtime.flops_per_step(large(), 64)


def test_flops_per_step_of_an_mlp():
    model = build_model(Config.from_flat(net="mlp", hidden=(10,), latent_dim=2).model, (5,), False, seed=0)
    # encoder 5->10->2*2, decoder 2->10->5: 2 FLOPs per weight per example, x3 for the backward
    weights = 5 * 10 + 10 * 4 + 2 * 10 + 10 * 5
    assert runtime.flops_per_step(model, 8) == pytest.approx(3 * 8 * 2 * weights, rel=0.05)


def test_bad_threads_option():
    with pytest.raises(ValueError, match="threads must be an integer >= 1"):
        RunOptions(threads=0)


def test_fit_applies_the_option():
    torch.set_num_threads(2)
    x = torch.rand(32, 1, 8, 8)
    fit(small(), x, Config.from_flat(epochs=1, kl_diagnostic_points=0), options=RunOptions(threads=1))
    assert torch.get_num_threads() == 1


def test_train_records_threads_and_logs_progress_lines(tmp_path, capsys, monkeypatch):
    """``vaekit train > log.txt 2>&1``: stderr is not a terminal, so progress comes as plain lines;
    the run records the thread choice; --quiet silences progress."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    common = [
        "train",
        "--epochs",
        "2",
        "--runs-dir",
        str(tmp_path),
        "--eval-num-samples",
        "10",
        "--kl-diagnostic-points",
        "0",
    ]
    assert main(common + ["--name", "a", "--threads", "1"]) == 0
    err = capsys.readouterr().err
    assert "train: epoch 1/2 loss" in err and "train: epoch 2/2" in err and " elbo " in err
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    # the test evaluation shows its progress too, in decoded samples: K = 10 per test example
    evaluation = [line for line in err.splitlines() if line.startswith("test log-likelihood: decoded sample ")]
    assert (
        evaluation
        and evaluation[-1].split()[4] == f"{10 * summary['num_test_examples']}/{10 * summary['num_test_examples']}"
    )
    env = json.loads((tmp_path / "a" / "environment.json").read_text())
    assert summary["threads"]["source"] == "threads" and env["torch_threads"] == 1
    assert env["threads_source"] == "threads"
    assert main(common + ["--name", "b", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "train: epoch" not in captured.err and "decoded sample" not in captured.err and "run folder" in captured.out
    assert json.loads((tmp_path / "b" / "summary.json").read_text())["threads"]["source"] == "OMP_NUM_THREADS"
    torch.set_num_threads(2)
    assert main(["evaluate", str(tmp_path / "a"), "--num-samples", "5", "--threads", "1"]) == 0
    assert torch.get_num_threads() == 1  # vaekit evaluate applies the option too


def test_flop_count_is_not_seen_by_the_callers_hooks():
    """The policy's probe pass runs on a private copy: a user's forward hooks see only real calls."""
    from vaekit import Config, build_model
    from vaekit.runtime import flops_per_step

    model = build_model(Config.from_flat(latent_dim=2, hidden=(16,)).model, (1, 8, 8))
    calls = []
    model.decoder.register_forward_hook(lambda *_: calls.append(1))
    assert flops_per_step(model, 64) == 3 * 64 * 2 * (64 * 16 + 16 * 4 + 2 * 16 + 16 * 64)
    assert calls == [] and model.decoder._forward_hooks
