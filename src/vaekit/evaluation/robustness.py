"""Adversarial robustness of a representation: a linear probe attacked through the frozen encoder.

Protocol (Cemgil et al., NeurIPS 2020, sec. 6; ICLR 2020, sec. 5): fit a softmax regression on
the encoder mean of clean training data for each label, then report its test accuracy on clean
inputs and on inputs perturbed by PGD that maximises the probe's cross-entropy through the
encoder, within an L∞ (or L2) ball of radius ε on [0, 1] pixels (Madry et al. 2018: random
start, step 2.5ε/num_steps). A single-step attack (FGSM) is reported beside PGD as a check
against gradient masking: PGD must not be weaker than it.

A third, label-free attack moves the representation itself: PGD maximising the encoder-mean
displacement ‖μ(x + δ) − μ(x)‖² within the ball (the divergence the smooth encoder of Cemgil et
al., ICLR 2020, sec. 3, is trained against, with the KL replaced by the distance of the means).
The probe is then read on those inputs ("latent" attack), and :func:`smoothness` turns the same
displacement into a scale-free figure: the median displacement divided by the median distance
between the codes of two test examples of different classes.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..attacks import _random_start, fgsm, pgd
from ..runtime import distributed
from ..runtime.progress import Reporter
from .probe import LinearProbe, encode_mean

ATTACKS = ("pgd", "fgsm", "latent")


def latent_attack(
    model,
    x: torch.Tensor,
    epsilon: float,
    num_steps: int = 20,
    norm: str = "linf",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The point of the ε-ball around each ``x`` that maximises ‖μ(x + δ) − μ(x)‖² (PGD, label-free).

    :func:`vaekit.attacks.pgd` (random start, step 2.5ε/num_steps, best iterate kept, pixels
    clipped to [0, 1]) on the per-example loss ‖μ(x_adv) − μ(x)‖² (squared Euclidean distance of
    the encoder means, latent units²), μ the mean of q(z|x).

    Args:
        model: a VAE-family model (``encode(x)`` returns a distribution with a ``mean``).
        x: ``(batch, *data_shape)`` clean inputs in [0, 1].
        epsilon: radius in [0, 1] pixel units; norm: "linf" or "l2".

    Returns:
        ``(batch, *data_shape)`` attacked inputs, detached.

    Raises:
        ValueError: an invalid radius / norm / step count (from :func:`pgd`).
    """
    with torch.no_grad():
        loc = model.encode(x).mean

    def loss(inputs):
        return (model.encode(inputs).mean - loc).pow(2).flatten(1).sum(1)

    return pgd(loss, x, epsilon, num_steps=num_steps, norm=norm, generator=generator)


def adversarial_accuracy(
    probe: LinearProbe,
    x: torch.Tensor,
    y: torch.Tensor,
    epsilon: float,
    attack: str = "pgd",
    num_steps: int = 20,
    norm: str = "linf",
    batch_size: int = 500,
    seed: int = 0,
    return_inputs: bool = False,
):
    """Accuracy in [0, 1] of a fitted probe on ``x`` ``(N, *data_shape)`` attacked within radius ``epsilon``.

    Args:
        probe: a fitted :class:`LinearProbe`.
        y: ``(N,)`` true labels.
        attack: "pgd" (``num_steps`` steps, random start, maximising the probe's cross-entropy),
            "fgsm" (one step of size ε on the same loss) or "latent" (:func:`latent_attack` on
            the probe's model: label-free, ``num_steps`` steps, the probe read on the result).
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
        xb, yb = x[start : start + batch_size], y[start : start + batch_size]
        if i % world != rank:  # another rank's block: draw its random start all the same, so the
            if attack in ("pgd", "latent") and epsilon > 0:  # stream stays that of one process
                _random_start(xb, epsilon, norm, generator)
            continue
        xb, yb = xb.to(p.device), yb.to(p.device)
        target = probe.class_index(yb)

        def loss(inputs):
            return F.cross_entropy(probe.decision_function(inputs), target, reduction="none")  # noqa: B023 (used in this iteration only)

        if attack == "pgd":
            adv = pgd(loss, xb, epsilon, num_steps=num_steps, norm=norm, generator=generator)
        elif attack == "latent":
            adv = latent_attack(probe.model, xb, epsilon, num_steps, norm, generator)
        else:
            adv = fgsm(loss, xb, epsilon, norm=norm)
        correct[start : start + len(xb)] = (probe.predict(adv).cpu() == yb.cpu()).float()
        if return_inputs:
            attacked[start : start + len(xb)] = adv.detach().cpu()
    # under torch.distributed each block was attacked on one rank: the sums are the results
    accuracy = distributed.all_reduce_sum(correct).sum().item() / len(x)
    return (accuracy, distributed.all_reduce_sum(attacked)) if return_inputs else accuracy


def robustness(
    model,
    train_x: torch.Tensor,
    train_labels: dict,
    test_x: torch.Tensor,
    test_labels: dict,
    epsilons=(0.0, 0.1, 0.2),
    num_steps: int = 20,
    norm: str = "linf",
    attacks=ATTACKS,
    standardize: bool = False,
    seed: int = 0,
    features: str = "mean",
) -> dict:
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
        ``{label: {"clean": acc, attack: {str(ε): acc} for each attack}}``, accuracies in [0, 1],
        plus the probes under ``"_probes"`` (not JSON; drop it before saving).
    """
    result, probes = {}, {}
    reporter = Reporter(len(test_labels) * len(attacks) * len(epsilons), "robustness", "attack")
    for name in test_labels:
        probe = LinearProbe(model, standardize=standardize, features=features, seed=seed).fit(
            train_x, train_labels[name]
        )
        probes[name] = probe
        entry = {"clean": probe.score(test_x, test_labels[name])}
        for attack in attacks:
            entry[attack] = {}
            for eps in epsilons:
                entry[attack][f"{eps:g}"] = adversarial_accuracy(
                    probe, test_x, test_labels[name], eps, attack, num_steps, norm, seed=seed
                )
                reporter.update(1, label=name, attack=attack, epsilon=f"{eps:g}")
        result[name] = entry
    reporter.close()
    result["_probes"] = probes
    return result


def _random_corner(x: torch.Tensor, epsilon: float, norm: str, generator) -> torch.Tensor:
    """Random noise of norm exactly ε: ε·(random signs) for L∞, ε·(a uniform direction) for L2."""
    if norm == "linf":
        return epsilon * (2 * torch.randint(0, 2, x.shape, generator=generator) - 1).to(x)
    direction = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    return epsilon * direction / direction.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (x.dim() - 1)))


def between_class_distance(codes: torch.Tensor, y: torch.Tensor) -> float:
    """The median Euclidean distance ‖μ_i − μ_j‖ over all pairs i < j with ``y_i ≠ y_j``
    (the middle two averaged for an even count).

    Args:
        codes: ``(N, latent_dim)`` encoder means; y: ``(N,)`` labels.

    Returns:
        The median, in latent units (0.0 when no pair has two classes).
    """
    distances = torch.cdist(codes.double(), codes.double())
    pairs = (y.view(-1, 1) != y.view(1, -1)).triu(diagonal=1)
    return torch.quantile(distances[pairs], 0.5).item() if pairs.any() else 0.0


def smoothness(
    model,
    x: torch.Tensor,
    labels: dict,
    epsilons=(0.1,),
    num_steps: int = 20,
    norm: str = "linf",
    batch_size: int = 500,
    max_pairs: int = 2000,
    seed: int = 0,
) -> dict:
    """How far the label-free latent attack moves the code, relative to how far apart classes are.

    For each ε: the median over ``x`` of ‖μ(x_adv) − μ(x)‖ with ``x_adv`` from :func:`latent_attack`
    (PGD-``num_steps`` maximising the encoder-mean displacement in the ε-ball), beside the median
    displacement under random noise of the same norm (ε·random signs for L∞, clipped to [0, 1]).
    For each label: the median distance between the codes of two examples of different classes
    (:func:`between_class_distance`, over all such pairs among the first ``max_pairs`` examples
    of a seeded permutation). The smoothness figure is their ratio: 0 for an encoder the ball
    cannot move, about 1 when the attack moves a code as far as a typical jump between classes.
    (An encoder that ignores its input moves no code and has figure 0 by this convention, even
    though its classes are at distance 0.) Without torch.distributed sharding: every process
    computes the whole figure.

    Args:
        model: a VAE-family model; x: ``(N, *data_shape)`` clean inputs in [0, 1].
        labels: label name -> ``(N,)`` integer labels of ``x``.
        epsilons: radii in [0, 1] pixel units (each > 0).

    Returns:
        ``{"median_displacement": {str(ε): d}, "median_random_displacement": {str(ε): d},
        "median_between_class_distance": {label: d}, "smoothness": {label: {str(ε): ratio}},
        "num_examples": N}``, distances in latent units (Euclidean, encoder means).

    Raises:
        ValueError: a radius ≤ 0, labels of the wrong length, or an invalid norm / step count.
    """
    if any(e <= 0 for e in epsilons):
        raise ValueError(f"smoothness needs radii > 0, got {list(epsilons)}")
    wrong = {n: len(y) for n, y in labels.items() if len(y) != len(x)}
    if wrong:
        raise ValueError(f"labels must have one value per example ({len(x)}), got lengths {wrong}")
    was_training = model.training
    model.eval()
    p = next(model.parameters())
    generator = torch.Generator().manual_seed(seed)
    moved, noise = {}, {}
    clean = torch.cat([encode_mean(model, x[i : i + batch_size]) for i in range(0, len(x), batch_size)]).cpu()
    for eps in epsilons:
        attacked, random = [], []
        for i in range(0, len(x), batch_size):
            xb, loc = x[i : i + batch_size].to(p.device), clean[i : i + batch_size]
            adv = latent_attack(model, xb, eps, num_steps, norm, generator)
            attacked.append((encode_mean(model, adv).cpu() - loc).norm(dim=1))
            rand = (xb + _random_corner(xb, eps, norm, generator)).clamp(0, 1)
            random.append((encode_mean(model, rand).cpu() - loc).norm(dim=1))
        moved[f"{eps:g}"] = torch.quantile(torch.cat(attacked).double(), 0.5).item()
        noise[f"{eps:g}"] = torch.quantile(torch.cat(random).double(), 0.5).item()
    model.train(was_training)
    pick = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:max_pairs]
    between = {n: between_class_distance(clean[pick], y.cpu()[pick]) for n, y in labels.items()}

    def ratio(d, b):
        return 0.0 if d == 0 else (d / b if b > 0 else math.inf)

    return {
        "median_displacement": moved,
        "median_random_displacement": noise,
        "median_between_class_distance": between,
        "smoothness": {n: {e: ratio(d, b) for e, d in moved.items()} for n, b in between.items()},
        "num_examples": len(x),
    }


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
