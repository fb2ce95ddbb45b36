"""Adversarial robustness of a representation: a linear probe attacked through the frozen encoder.

Protocol (Cemgil et al., NeurIPS 2020, sec. 6; ICLR 2020, sec. 5): fit a softmax regression on
the encoder mean of clean training data for each label, then report its test accuracy on clean
inputs and on inputs perturbed by PGD that maximises the probe's cross-entropy through the
encoder, within an L∞ (or L2) ball of radius ε on [0, 1] pixels (Madry et al. 2018: random
start, step 2.5ε/num_steps). A single-step attack (FGSM) is reported beside PGD as a check
against gradient masking: PGD must not be weaker than it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..attacks import _random_start, fgsm, pgd
from ..runtime import distributed
from ..runtime.progress import Reporter
from .probe import LinearProbe

ATTACKS = ("pgd", "fgsm")


def adversarial_accuracy(probe: LinearProbe, x: torch.Tensor, y: torch.Tensor, epsilon: float,
                         attack: str = "pgd", num_steps: int = 20, norm: str = "linf", batch_size: int = 500,
                         seed: int = 0, return_inputs: bool = False):
    """Accuracy in [0, 1] of a fitted probe on ``x`` ``(N, *data_shape)`` attacked within radius ``epsilon``.

    Args:
        probe: a fitted :class:`LinearProbe`.
        y: ``(N,)`` true labels.
        attack: "pgd" (``num_steps`` steps, random start) or "fgsm" (one step of size ε).
        norm: "linf" or "l2"; ε is in [0, 1] pixel units.
        seed: seeds the random starts. Under torch.distributed the blocks of ``batch_size``
            examples are shared among the ranks (round robin) and the results all-reduced; every
            rank draws every block's random start, so the accuracy equals one process's.
        return_inputs: also return the attacked inputs ``(N, *data_shape)``.

    Raises:
        ValueError: unknown attack, or an invalid radius / norm / step count (from :func:`pgd`).
    """
    if attack not in ATTACKS:
        raise ValueError(f"attack must be one of {ATTACKS}, got {attack!r}")
    generator = torch.Generator().manual_seed(seed)
    world, rank = distributed.world_size(), distributed.rank()
    p = next(probe.parameters())
    correct = torch.zeros(len(x))
    attacked = torch.zeros(x.shape, dtype=x.dtype) if return_inputs else None
    for i, start in enumerate(range(0, len(x), batch_size)):
        xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        if i % world != rank:  # another rank's block: draw its random start all the same, so the
            if attack == "pgd" and epsilon > 0:  # stream stays that of one process
                _random_start(xb, epsilon, norm, generator)
            continue
        xb, yb = xb.to(p.device), yb.to(p.device)
        target = probe.class_index(yb)

        def loss(inputs):
            return F.cross_entropy(probe.decision_function(inputs), target, reduction="none")

        if attack == "pgd":
            adv = pgd(loss, xb, epsilon, num_steps=num_steps, norm=norm, generator=generator)
        else:
            adv = fgsm(loss, xb, epsilon, norm=norm)
        correct[start:start + len(xb)] = (probe.predict(adv).cpu() == yb.cpu()).float()
        if return_inputs:
            attacked[start:start + len(xb)] = adv.detach().cpu()
    # under torch.distributed each block was attacked on one rank: the sums are the results
    accuracy = distributed.all_reduce_sum(correct).sum().item() / len(x)
    return (accuracy, distributed.all_reduce_sum(attacked)) if return_inputs else accuracy


def robustness(model, train_x: torch.Tensor, train_labels: dict, test_x: torch.Tensor, test_labels: dict,
               epsilons=(0.0, 0.1, 0.2), num_steps: int = 20, norm: str = "linf", attacks=ATTACKS,
               standardize: bool = False, seed: int = 0, features: str = "mean") -> dict:
    """Probe accuracies per label, clean and under attack, for every ε.

    Args:
        model: a trained VAE (or AE).
        train_x, test_x: ``(N, *data_shape)`` clean inputs in [0, 1].
        train_labels, test_labels: label name -> ``(N,)`` integer tensor (the same names).
        epsilons: radii in [0, 1] pixel units (0 = clean).
        attacks: subset of :data:`ATTACKS`.
        standardize: probe on standardised features (see :class:`LinearProbe`).
        features: the probe input, "mean", "sample" or "decoded" (see :class:`LinearProbe`); the
            attack always starts from the pixels.

    Returns:
        ``{label: {"clean": acc, "pgd": {str(ε): acc}, "fgsm": {str(ε): acc}}}``, accuracies in [0, 1],
        plus the probes under ``"_probes"`` (not JSON; drop it before saving).
    """
    result, probes = {}, {}
    reporter = Reporter(len(test_labels) * len(attacks) * len(epsilons), "robustness", "attack")
    for name in test_labels:
        probe = LinearProbe(model, standardize=standardize, features=features, seed=seed).fit(train_x, train_labels[name])
        probes[name] = probe
        entry = {"clean": probe.score(test_x, test_labels[name])}
        for attack in attacks:
            entry[attack] = {}
            for eps in epsilons:
                entry[attack][f"{eps:g}"] = adversarial_accuracy(probe, test_x, test_labels[name], eps, attack,
                                                                 num_steps, norm, seed=seed)
                reporter.update(1, label=name, attack=attack, epsilon=f"{eps:g}")
        result[name] = entry
    reporter.close()
    result["_probes"] = probes
    return result


def probe_labels(dataset, labels=None) -> list[str]:
    """The label names to probe on ``dataset`` (its labels, or the asked subset ``labels``).

    Raises:
        ValueError: a dataset without labels (the linear probe needs them), or unknown names.
    """
    if not dataset.labels:
        raise ValueError(f"dataset {dataset.name!r} has no labels: the linear probe needs labelled data")
    names = list(labels or dataset.labels)
    unknown = [n for n in names if n not in dataset.labels]
    if unknown:
        raise ValueError(f"labels {unknown} not in the dataset's labels {list(dataset.labels)}")
    return names
