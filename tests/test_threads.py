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
    return build_model(Config.from_flat(hidden=(32,)).model, (1, 8, 8), True, seed=0)


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
    assert choose_threads(small(), 64, environ={}, running=0).threads == 1
    assert choose_threads(large(), 64, environ={}, running=0).threads == 4  # idle machine: every core
    assert choose_threads(large(), 64, environ={}, running=1).threads == 3  # one thread runs elsewhere
    assert choose_threads(large(), 64, environ={}, running=12).threads == 1  # a loaded machine: one
    assert idle_cores(2, 0) == 2 and idle_cores(2, 1) == 1 and idle_cores(2, 5) == 1  # at least one


def test_the_threshold_sits_between_the_digits_mlps_batch_64_and_128():
    """Where a second idle core began to pay (benchmarks/results/threads-sizes.json): the main job's
    batch of 64 stays on one thread, batch 128 gets the idle cores."""
    mlp = build_model(Config().model, (1, 8, 8), True, seed=0)
    assert runtime.flops_per_step(mlp, 64) < runtime.THREAD_FLOPS_THRESHOLD < runtime.flops_per_step(mlp, 128)


def test_running_elsewhere_reads_the_runnable_threads_less_this_processes(tmp_path):
    (tmp_path / "loadavg").write_text("0.52 1.69 1.89 5/456 12345\n")
    tasks = tmp_path / "task"
    for tid, state in ((1, "R"), (2, "S"), (3, "R")):
        (tasks / str(tid)).mkdir(parents=True)
        (tasks / str(tid) / "stat").write_text(f"{tid} (python (x) y) {state} 1 2 3\n")  # a name with ")" in it
    assert runtime.running_elsewhere(str(tmp_path / "loadavg"), str(tasks)) == 3  # 5 runnable, 2 of them ours
    assert runtime.running_elsewhere(str(tmp_path / "missing"), str(tasks)) == 0
    (tmp_path / "loadavg").write_text("garbage\n")
    assert runtime.running_elsewhere(str(tmp_path / "loadavg"), str(tasks)) == 0
    assert runtime.running_elsewhere() >= 0  # this machine's


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def run_steps(guard, clock, seconds_per_step, steps):
    """``steps`` steps of ``seconds_per_step``; the thread counts the guard set."""
    lowered = []
    for _ in range(steps):
        clock.now += seconds_per_step
        if (n := guard.step()) is not None:
            lowered.append(n)
    return lowered


def test_thread_guard_lowers_the_count_when_steps_slow_down(monkeypatch):
    monkeypatch.setattr(runtime.threads, "available_cores", lambda: 4)
    monkeypatch.setattr(runtime.threads, "running_elsewhere", lambda: 2)
    torch.set_num_threads(4)
    clock = FakeClock()
    guard = runtime.ThreadGuard(block_s=1 / 8, slowdown=2.0, patience=3, clock=clock)
    fast, slow = 1 / 64, 1 / 16  # seconds per step (binary fractions: exact block ends)
    assert run_steps(guard, clock, fast, 80) == []  # steady: 10 blocks of 8 steps
    assert run_steps(guard, clock, slow, 4) == []  # 2 blocks 4x slower: fewer than 3 in a row
    assert run_steps(guard, clock, fast, 16) == []  # back to normal: the count of slow blocks restarts
    assert run_steps(guard, clock, slow, 4) == []  # 2 slow blocks (2 steps each)
    assert run_steps(guard, clock, slow, 2) == [2]  # the third: to the 2 cores the others leave free
    assert torch.get_num_threads() == 2
    # the guard starts over at the new count: its first blocks set the new pace
    assert run_steps(guard, clock, slow, 40) == []
    monkeypatch.setattr(runtime.threads, "running_elsewhere", lambda: 0)
    assert run_steps(guard, clock, 1 / 4, 3) == [1]  # slower again: at most one fewer than now
    assert torch.get_num_threads() == 1
    assert run_steps(guard, clock, 1.0, 10) == []  # at 1 thread nothing more to lower


def test_thread_guard_does_not_count_the_time_between_epochs():
    torch.set_num_threads(2)
    clock = FakeClock()
    guard = runtime.ThreadGuard(block_s=1 / 8, slowdown=2.0, patience=1, clock=clock)
    for _ in range(5):
        assert run_steps(guard, clock, 1 / 64, 20) == []  # 2.5 blocks: the half block is cut short
        clock.now += 5.0  # validation, hooks, a checkpoint
        guard.restart()
    assert torch.get_num_threads() == 2


def test_fit_records_a_reduction_and_keeps_training(monkeypatch, tmp_path):
    """A run started on 2 threads by the policy whose steps slow down (another job): the guard in
    fit's loop lowers the count, the run finishes and summary.json/environment.json record it."""
    clock = FakeClock()

    class SlowingGuard(runtime.ThreadGuard):  # steps take 8 ms, from step 40 on 62 ms
        def __init__(self):
            super().__init__(block_s=1 / 16, clock=clock)
            self.steps = 0

        def step(self):
            self.steps += 1
            clock.now += 1 / 128 if self.steps < 40 else 1 / 16
            return super().step()

    monkeypatch.setattr(runtime.threads, "ThreadGuard", SlowingGuard)
    monkeypatch.setattr(runtime.threads, "running_elsewhere", lambda: 1)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(runtime.threads, "idle_cores", lambda **_: 2)
    monkeypatch.setattr(runtime.threads, "THREAD_FLOPS_THRESHOLD", 0)  # the policy's threads for any size
    config = Config.from_flat(epochs=4, batch_size=16, kl_diagnostic_points=0, hidden=(256, 256))
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--epochs",
                "4",
                "--batch-size",
                "16",
                "--kl-diagnostic-points",
                "0",
                "--eval-num-samples",
                "2",
                "--runs-dir",
                str(tmp_path),
                "--name",
                "run",
                "--quiet",
            ]
        )
        == 0
    )
    summary = json.loads((run / "summary.json").read_text())
    at = summary["threads"]["reductions"][0][0]  # the third slow block of one step ends at step 42
    assert summary["threads"]["threads"] == 2 and summary["threads"]["source"] == "policy"
    assert summary["threads"]["reductions"] == [[at, 1]] and 40 <= at <= 45
    assert json.loads((run / "environment.json").read_text())["thread_reductions"] == [[at, 1]]
    assert torch.get_num_threads() == 1
    x = torch.rand(2000, 1, 8, 8)
    fit(build_model(config.model, (1, 8, 8), True, seed=0), x, config, options=RunOptions(threads=2))
    assert torch.get_num_threads() == 2  # a count the user set is kept, however slow the steps


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
    evaluation = json.loads((tmp_path / "a" / "evaluation.json").read_text())
    assert evaluation["threads"] == {"threads": 1, "source": "threads", "flops_per_step": None}


def test_flop_count_is_not_seen_by_the_callers_hooks():
    """The policy's probe pass runs on a private copy: a user's forward hooks see only real calls."""
    from vaekit import Config, build_model
    from vaekit.runtime import flops_per_step

    model = build_model(Config.from_flat(latent_dim=2, hidden=(16,)).model, (1, 8, 8))
    calls = []
    model.decoder.register_forward_hook(lambda *_: calls.append(1))
    assert flops_per_step(model, 64) == 3 * 64 * 2 * (64 * 16 + 16 * 4 + 2 * 16 + 16 * 64)
    assert calls == [] and model.decoder._forward_hooks


def test_one_thread_holds_for_the_runs_a_worker_starts(monkeypatch):
    """Sweep and benchmark workers share the cores: one thread there, whatever a model's size."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(runtime.threads, "idle_cores", lambda **_: 2)
    assert choose_threads(large(), 64).threads == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "4")  # restored after the test; one_thread overwrites it
    runtime.one_thread()
    assert torch.get_num_threads() == 1
    assert choose_threads(large(), 64) == runtime.ThreadChoice(1, "OMP_NUM_THREADS")


def test_guarded_lowers_the_threads_over_a_modules_calls(monkeypatch):
    """vaekit evaluate's guard: one decoder call = one step; hook removed on leaving; a count the
    user set is not guarded."""
    clock = FakeClock()
    real = runtime.ThreadGuard
    monkeypatch.setattr(runtime.threads, "ThreadGuard", lambda: real(block_s=1 / 8, clock=clock))
    monkeypatch.setattr(runtime.threads, "available_cores", lambda: 2)
    monkeypatch.setattr(runtime.threads, "running_elsewhere", lambda: 1)
    torch.set_num_threads(2)
    module, x = torch.nn.Identity(), torch.zeros(1)
    with runtime.guarded(module, runtime.ThreadChoice(2, "policy")) as reductions:
        for seconds in [1 / 64] * 32 + [1 / 8] * 3:  # 4 blocks of 8 calls, then 3 blocks 8x slower
            clock.now += seconds
            module(x)
    assert reductions == [(35, 1)] and torch.get_num_threads() == 1
    assert not module._forward_hooks
    torch.set_num_threads(2)
    with runtime.guarded(module, runtime.ThreadChoice(2, "threads")) as reductions:
        assert not module._forward_hooks
    assert reductions == [] and torch.get_num_threads() == 2


@pytest.mark.skipif(runtime.available_cores() < 2, reason="needs 2 cores to run on 2 threads")
def test_the_thread_count_changes_no_number():
    """The policy and its guard change the thread count of a run, even mid-run: on this machine's
    BLAS changes no weight of the MLP, bit for bit, but it does change the last bits of a small
    channels-last conv net's (the weight gradients' reductions are split by thread): so a run's
    numbers can depend on the load its policy saw (pass --threads for runs that must be
    reproducible on any load), and a resume keeps the interrupted run's count (the next test)."""
    changed = []
    for flat, shape in ((dict(hidden=(256, 256)), (1, 8, 8)), (dict(net="conv", channels=(8, 16)), (1, 28, 28))):
        config = Config.from_flat(**flat, epochs=1, batch_size=64, kl_diagnostic_points=0)
        x = torch.rand(256, *shape, generator=torch.Generator().manual_seed(0))
        weights = []
        for threads in (1, 2, 1):
            model = build_model(config.model, shape, True, seed=0)
            fit(model, x, config, options=RunOptions(threads=threads))
            weights.append(model.state_dict())
        assert all(torch.equal(weights[0][k], weights[2][k]) for k in weights[0])  # the same count: the same bits
        changed.append(not all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0]))
    assert changed == [False, True]


@pytest.mark.skipif(runtime.available_cores() < 2, reason="needs 2 cores to run on 2 threads")
def test_a_resume_goes_on_with_the_interrupted_runs_thread_count(monkeypatch, tmp_path):
    """The policy chose 2 threads at the start; the resume starts on a busy machine (the policy
    would say 1): it goes on with the checkpoint's 2, and ends bit-identical to the run that was
    not interrupted (a conv net, whose bits depend on the count: the test above)."""
    from vaekit.training.hooks import Checkpoint

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(runtime.threads, "THREAD_FLOPS_THRESHOLD", 0)
    config = Config.from_flat(net="conv", channels=(8, 16), epochs=2, batch_size=64, kl_diagnostic_points=0)
    x = torch.rand(256, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    monkeypatch.setattr(runtime.threads, "idle_cores", lambda **_: 2)
    whole = build_model(config.model, (1, 28, 28), True, seed=0)
    fit(whole, x, config)
    first = build_model(config.model, (1, 28, 28), True, seed=0)
    path = tmp_path / "checkpoint.safetensors"
    fit(first, x, config.replace(epochs=1), hooks=[Checkpoint(path)])
    monkeypatch.setattr(runtime.threads, "idle_cores", lambda **_: 1)  # busy now
    resumed = build_model(config.model, (1, 28, 28), True, seed=0)
    torch.set_num_threads(1)
    fit(resumed, x, config, resume_from=path)
    assert torch.get_num_threads() == 2
    assert all(torch.equal(v, resumed.state_dict()[k]) for k, v in whole.state_dict().items())
