"""Adam whose fused step skips torch.optim's per-step Python (issue 32): the same kernel, the same
state, the same numbers as ``torch.optim.Adam(..., fused=True)``."""

from __future__ import annotations

import sys

import torch
from torch.optim import optimizer as _HOOKS  # torch's registries of step hooks for every optimizer

#: torch's fused kernel (a private name: without it, torch's step runs)
_FUSED_ADAM = getattr(torch, "_fused_adam_", None)
#: torch's Adam step without the hook wrapper torch puts around every optimizer class's step
#: (LeanAdam's own step gets that wrapper: hooks and the profiler's name run once, as for torch's Adam)
_ADAM_STEP = torch.optim.Adam.step
if getattr(_ADAM_STEP, "hooked", False):  # an Adam was built before this import: torch wrapped its step
    _ADAM_STEP = _ADAM_STEP.__wrapped__  # type: ignore[attr-defined]


def _unguarded(method):
    """torch's ``method`` without the compiler guard torch puts on it (``torch._disable_dynamo``),
    while torch._dynamo is not imported; with it imported, torch's guarded method.

    The guard's first call imports torch._dynamo (about 2 s and 800 modules on a 2-core CPU, issue
    32): every ``torch.optim`` constructor pays it through ``add_param_group``. Without torch._dynamo
    in the process nothing can be compiling, so the guard has nothing to guard.
    """
    plain = getattr(method, "__wrapped__", method)

    def call(self, *args, **kwargs):
        return (method if "torch._dynamo" in sys.modules else plain)(self, *args, **kwargs)

    call.__name__, call.__qualname__, call.__doc__ = method.__name__, method.__qualname__, method.__doc__
    return call


class LeanAdam(torch.optim.Adam):
    """``torch.optim.Adam(params, fused=True, ...)`` (Kingma & Ba 2015, algorithm 1; torch's fused
    kernel ``torch._fused_adam_``) with a lean :meth:`step` and :meth:`zero_grad`.

    torch's step spends most of a small model's optimizer time in Python around the kernel (the
    grad-mode switch, the fallback checks, rebuilding and regrouping the state lists by device and
    dtype, and a zero_grad behind a compiler guard). In the plain case (one parameter group, float
    learning rate, no AMSGrad / maximize / capturable / differentiable / decoupled weight decay, no
    grad scaler, one device and dtype, dense real gradients) :meth:`step` initialises a new
    parameter's state with torch's own ``Adam._init_group`` and makes the same two calls torch makes
    (``torch._foreach_add_`` on the step counts, then ``torch._fused_adam_`` with the same arguments)
    and nothing else; in any other case it is torch's step. ``add_param_group`` (hence the
    constructor), ``state_dict`` and ``load_state_dict`` are torch's without their compiler guard
    while torch._dynamo is not imported (:func:`_unguarded`): the lean path never imports it. Step
    hooks and the profiler's record-function run around either, once, as torch runs them around
    every optimizer's step. Parameters, state and ``state_dict`` are therefore bit-identical to
    torch's fused Adam's (``tests/test_lean_adam.py``), and a checkpoint of either loads into the other.

    Args: as :class:`torch.optim.Adam` (``fused`` is always True).

    Raises:
        RuntimeError: (torch's) no fused kernel for the parameters' device or dtype.
    """

    def __init__(self, params, **settings):
        super().__init__(params, fused=True, **settings)

    def _plain_group(self) -> dict | None:
        """The one parameter group if the lean step applies to it, else None."""
        if (
            len(self.param_groups) != 1
            or getattr(self, "grad_scale", None) is not None
            or getattr(self, "found_inf", None) is not None
        ):
            return None
        group = self.param_groups[0]
        if (
            group["amsgrad"]
            or group["maximize"]
            or group["capturable"]
            or group["differentiable"]
            or group.get("decoupled_weight_decay", False)
            or not isinstance(group["lr"], float)
            or not isinstance(group["betas"][0], float)
            or not isinstance(group["betas"][1], float)
        ):
            return None
        return group

    def step(self, closure=None):
        """One Adam step (see the class docstring); ``closure``: as torch's (then torch's step runs).

        torch wraps every optimizer class's step to run the step hooks and to name the step for the
        profiler; that wrapper costs about 40 µs a step (a fifth of the digits MLP's optimizer step).
        This step runs inside torch's wrapper only when something watches it (:func:`_watched`: a
        step hook, global or this optimizer's, or the profiler on), so hooks and profiles see what
        they see with torch's Adam.
        """
        if closure is not None or _watched(self):
            return _WATCHED_STEP(self, closure)
        return self._step()

    step.hooked = True  # type: ignore[attr-defined]  # torch's constructor would wrap it: _WATCHED_STEP is that wrapper

    @torch.no_grad()
    def _step(self, closure=None):
        """The step itself: the lean path in the plain case, else torch's Adam step."""
        group = None if closure is not None or _FUSED_ADAM is None else self._plain_group()
        if group is None:
            return _ADAM_STEP(self, closure)
        params = [p for p in group["params"] if p.grad is not None]
        if not params:
            return None
        first = params[0]
        if any(
            p.grad.is_sparse or p.is_complex() or p.device != first.device or p.dtype != first.dtype for p in params
        ):
            return _ADAM_STEP(self)  # sparse, complex and mixed cases are torch's
        if any(not self.state.get(p) for p in params):  # a first step: the state torch's way
            self._init_group(group, [], [], [], [], [], [])
        states = [self.state[p] for p in params]
        steps = [s["step"] for s in states]
        torch._foreach_add_(steps, 1)
        beta1, beta2 = group["betas"]
        _FUSED_ADAM(
            params,
            [p.grad for p in params],
            [s["exp_avg"] for s in states],
            [s["exp_avg_sq"] for s in states],
            [],
            steps,
            amsgrad=False,
            lr=group["lr"],
            beta1=beta1,
            beta2=beta2,
            weight_decay=group["weight_decay"],
            eps=group["eps"],
            maximize=False,
            grad_scale=None,
            found_inf=None,
        )
        return None

    add_param_group = _unguarded(torch.optim.Optimizer.add_param_group)
    state_dict = _unguarded(torch.optim.Optimizer.state_dict)
    load_state_dict = _unguarded(torch.optim.Optimizer.load_state_dict)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop every gradient (``set_to_none``, torch's default), else torch's zeroing."""
        if not set_to_none:
            return super().zero_grad(set_to_none)
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None
        return None


def _watched(optimizer: torch.optim.Optimizer) -> bool:
    """Whether anything watches ``optimizer``'s steps: a step hook (registered for every optimizer or
    for this one) or torch's profiler."""
    return bool(
        _HOOKS._global_optimizer_pre_hooks
        or _HOOKS._global_optimizer_post_hooks
        or optimizer._optimizer_step_pre_hooks
        or optimizer._optimizer_step_post_hooks
        or torch.autograd._profiler_enabled()
    )


#: LeanAdam's step inside torch's hook-and-profiler wrapper, the one torch puts around every optimizer's step
_WATCHED_STEP = torch.optim.Optimizer.profile_hook_step(LeanAdam._step)
