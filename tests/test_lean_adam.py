"""LeanAdam: torch's fused Adam step without torch.optim's per-step Python, the same numbers (issue 32)."""

import copy

import pytest
import torch

from vaekit.training.lean_adam import LeanAdam


def _net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))


def _train(net, optimizer, steps=25, skip_first_layer_at=()):
    x = torch.randn(32, 6, generator=torch.Generator().manual_seed(1))
    for i in range(steps):
        optimizer.zero_grad()
        net(x).square().mean().backward()
        if i in skip_first_layer_at:  # a parameter without a gradient this step
            net[0].weight.grad = None
        optimizer.step()
    return [p.detach().clone() for p in net.parameters()]


def _state(optimizer):
    s = optimizer.state_dict()
    return s["param_groups"], {k: {n: v.clone() for n, v in st.items()} for k, st in s["state"].items()}


def _same_state(a, b):
    assert a[0] == b[0]
    assert a[1].keys() == b[1].keys()
    for k in a[1]:
        for name in a[1][k]:
            assert torch.equal(a[1][k][name], b[1][k][name]), (k, name)


@pytest.mark.parametrize("settings", [{}, {"weight_decay": 0.1, "betas": (0.8, 0.95), "eps": 1e-6}])
def test_steps_parameters_and_state_equal_torchs_fused_adam_bit_for_bit(settings):
    net_a, net_b = _net(), _net()
    reference = torch.optim.Adam(net_a.parameters(), lr=1e-2, fused=True, **settings)
    lean = LeanAdam(net_b.parameters(), lr=1e-2, **settings)
    for a, b in zip(_train(net_a, reference, skip_first_layer_at=(3,)), _train(net_b, lean, skip_first_layer_at=(3,))):
        assert torch.equal(a, b)
    _same_state(_state(reference), _state(lean))
    assert lean.param_groups[0]["fused"]


def test_checkpoints_load_both_ways_and_continue_identically():
    net_a, net_b = _net(), _net()
    reference = torch.optim.Adam(net_a.parameters(), lr=1e-2, fused=True)
    _train(net_a, reference, steps=5)
    net_b.load_state_dict(net_a.state_dict())
    lean = LeanAdam(net_b.parameters(), lr=1e-2)
    lean.load_state_dict(copy.deepcopy(reference.state_dict()))
    for a, b in zip(_train(net_a, reference, steps=5), _train(net_b, lean, steps=5)):
        assert torch.equal(a, b)
    back = torch.optim.Adam(net_a.parameters(), lr=1e-2, fused=True)
    back.load_state_dict(copy.deepcopy(lean.state_dict()))
    _same_state(_state(back), _state(lean))


def test_torchs_step_runs_where_the_lean_step_does_not_apply():
    """Step hooks, a closure, several groups, AMSGrad: torch's own step (the hook fires, the closure's
    loss comes back), still the fused kernel's numbers."""
    net_a, net_b = _net(), _net()
    calls = []
    lean = LeanAdam(net_b.parameters(), lr=1e-2, amsgrad=True)
    lean.register_step_post_hook(lambda *_: calls.append(1))
    reference = torch.optim.Adam(net_a.parameters(), lr=1e-2, fused=True, amsgrad=True)
    for a, b in zip(_train(net_a, reference, steps=4), _train(net_b, lean, steps=4)):
        assert torch.equal(a, b)
    assert len(calls) == 4
    groups = LeanAdam([{"params": net_b[0].parameters()}, {"params": net_b[2].parameters(), "lr": 1e-3}], lr=1e-2)
    assert groups._plain_group() is None
    x = torch.randn(4, 6)

    def closure():
        groups.zero_grad()
        loss = net_b(x).square().mean()
        loss.backward()
        return loss

    assert torch.is_tensor(groups.step(closure))


def test_zero_grad_drops_or_zeroes_the_gradients():
    net = _net()
    lean = LeanAdam(net.parameters(), lr=1e-2)
    _train(net, lean, steps=1)
    lean.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.any() for p in net.parameters())
    lean.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_a_parameter_whose_first_gradient_comes_late_gets_torchs_state_and_numbers():
    """The lean step initialises a new parameter's state itself (torch's ``_init_group``): a parameter
    without a gradient for its first steps starts its Adam state when its gradient comes, as in torch."""
    net_a, net_b = _net(), _net()
    reference = torch.optim.Adam(net_a.parameters(), lr=1e-2, fused=True)
    lean = LeanAdam(net_b.parameters(), lr=1e-2)
    late = (0, 1, 2)
    for a, b in zip(
        _train(net_a, reference, steps=6, skip_first_layer_at=late),
        _train(net_b, lean, steps=6, skip_first_layer_at=late),
    ):
        assert torch.equal(a, b)
    _same_state(_state(reference), _state(lean))
    assert lean.state[net_b[0].weight]["step"].item() == 3


LEAN_WITHOUT_DYNAMO = """
import sys, torch
from vaekit.training.lean_adam import LeanAdam
net = torch.nn.Linear(3, 2)
optimizer = LeanAdam(net.parameters(), lr=1e-2)
for _ in range(2):
    optimizer.zero_grad()
    net(torch.ones(4, 3)).sum().backward()
    optimizer.step()
optimizer.load_state_dict(optimizer.state_dict())
assert "torch._dynamo" not in sys.modules, "LeanAdam imported torch._dynamo"
import torch._dynamo  # with the compiler imported, torch's guarded methods run: the same state
saved = optimizer.state_dict()
optimizer.load_state_dict(saved)
assert optimizer.state_dict()["state"][0]["step"].item() == 2
print("ok")
"""


@pytest.mark.slow
def test_the_lean_optimizer_does_not_import_torchs_compiler():
    """Building, stepping, saving and loading LeanAdam leaves torch._dynamo unimported (torch's own
    optimizers import it, about 2 s, in their constructor): a fresh process shows it."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", LEAN_WITHOUT_DYNAMO], capture_output=True, text=True, check=False)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_hooks_and_the_profiler_see_the_step_as_torchs_adam_lets_them():
    """The lean step skips torch's hook wrapper only while nothing watches: a global step hook, this
    optimizer's pre-hook and torch's profiler (which names the step) all see every step."""
    from torch.optim.optimizer import register_optimizer_step_post_hook

    net = _net()
    lean = LeanAdam(net.parameters(), lr=1e-2)
    _train(net, lean, steps=1)
    seen = []
    handle = register_optimizer_step_post_hook(lambda opt, *_: seen.append(("global", type(opt).__name__)))
    try:
        _train(net, lean, steps=2)
    finally:
        handle.remove()
    pre = lean.register_step_pre_hook(lambda *_: seen.append(("pre", None)))
    _train(net, lean, steps=1)
    pre.remove()
    _train(net, lean, steps=1)  # unwatched again: nothing recorded
    assert seen == [("global", "LeanAdam"), ("global", "LeanAdam"), ("pre", None)]
    with torch.profiler.profile() as prof:
        _train(net, lean, steps=1)
    assert "Optimizer.step#LeanAdam.step" in {event.name for event in prof.events()}
    assert lean.state[net[0].weight]["step"].item() == 6
