"""Linear probe: softmax regression on a frozen model's representation, differentiable for attacks.

The probe input is a setting (``features``): the encoder mean μ(x) (the default), a sample
z ~ q(z|x), or the decoded reconstruction g(μ(x)) (the reading of the AVAE evaluation in which
latent values are "passed to the decoder" and the classifier reads its output). Whatever it reads,
the attack differentiates through the whole chain from the pixels.

The probe is fitted with scikit-learn's multinomial LogisticRegression (L-BFGS) on clean
training representations and copied into a ``torch.nn.Linear``, so an attacker can
differentiate through encoder and probe (the evaluation protocol of Cemgil et al., NeurIPS 2020,
sec. 6, and ICLR 2020, sec. 5: "a linear classifier on the representation").
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from torch import nn

FEATURES = ("mean", "sample", "decoded")


def encode_mean(model, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """The encoder mean E_q[z|x] ``(N, latent_dim)`` of ``x`` ``(N, *data_shape)``, in batches, no grad."""
    was_training = model.training
    model.eval()
    p = next(model.parameters())
    with torch.no_grad():
        out = torch.cat([model.encode(x[i : i + batch_size].to(p.device)).mean for i in range(0, len(x), batch_size)])
    model.train(was_training)
    return out


class LinearProbe(nn.Module):
    """logits = W·standardise(f(x)) + b on features f(x) of a frozen model.

    Args:
        model: a trained AE/VAE, used in eval mode and never updated (frozen).
        features: f(x): ``"mean"`` the encoder mean μ(x) ``(latent_dim,)``; ``"sample"`` one draw
            z = μ(x) + σ(x)·n, n ~ N(0, I), fresh at every call (seeded by ``seed``), so fit,
            prediction and attack see independent draws (the attack's gradient goes through the
            reparameterised draw); ``"decoded"`` the decoder mean g(μ(x)) flattened ``(D,)``.
        standardize: divide each latent coordinate by its training standard deviation (after
            centring) before the regression. Off by default: inactive latent units have a tiny
            spread across the data, and standardising amplifies exactly those noise coordinates,
            which an attacker then moves cheaply (see docs/readme/robustness.md).
        C: inverse L2 regularisation strength of the logistic regression.
        max_iter: L-BFGS iterations.
        seed: seed of the draws of ``features="sample"``.

    Raises:
        ValueError: an unknown ``features``.
    """

    def __init__(
        self,
        model,
        standardize: bool = False,
        C: float = 1.0,
        max_iter: int = 1000,
        features: str = "mean",
        seed: int = 0,
    ):
        super().__init__()
        if features not in FEATURES:
            raise ValueError(f"probe features must be one of {FEATURES}, got {features!r}")
        self.model, self.standardize, self.C, self.max_iter = model, standardize, C, max_iter
        self.features = features
        self.generator = torch.Generator().manual_seed(seed)
        self.linear: nn.Linear | None = None

    def featurize(self, x: torch.Tensor) -> torch.Tensor:
        """f(x) ``(batch, n_features)`` of ``x`` ``(batch, *data_shape)``, differentiable in ``x``."""
        q = self.model.encode(x)
        if self.features == "mean":
            return q.mean
        if self.features == "sample":
            noise = torch.randn(q.mean.shape, generator=self.generator).to(q.mean.device, q.mean.dtype)
            return q.mean + q.stddev * noise
        return self.model.decode(q.mean).mean.flatten(1)

    def fit(self, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> LinearProbe:
        """Fit on clean inputs ``x`` ``(N, *data_shape)`` with integer labels ``y`` ``(N,)``.

        Raises:
            ValueError: fewer than two classes in ``y`` or mismatching lengths.
        """
        if len(x) != len(y):
            raise ValueError(f"x has {len(x)} examples but y has {len(y)} labels")
        classes = np.unique(y.cpu().numpy())
        if len(classes) < 2:
            raise ValueError(f"a probe needs at least two classes, got {classes.tolist()}")
        self.model.eval()
        with torch.no_grad():
            p = next(self.model.parameters())
            features = (
                torch.cat([self.featurize(x[i : i + batch_size].to(p.device)) for i in range(0, len(x), batch_size)])
                .double()
                .cpu()
                .numpy()
            )
        shift, scale = np.zeros(features.shape[1]), np.ones(features.shape[1])
        if self.standardize:
            shift, scale = features.mean(0), features.std(0) + 1e-8
        clf = LogisticRegression(C=self.C, max_iter=self.max_iter)
        clf.fit((features - shift) / scale, y.cpu().numpy())
        coef, intercept = clf.coef_, clf.intercept_
        if len(classes) == 2:  # sklearn keeps one row for binary problems: logits (0, w·f + b)
            coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.concatenate([[0.0], intercept])
        # Fold the standardisation into the layer: W (f − m)/s + b = (W/s) f + (b − W m/s).
        weight = coef / scale
        bias = intercept - weight @ shift
        p = next(self.model.parameters())
        self.linear = nn.Linear(weight.shape[1], weight.shape[0]).to(p.device)
        with torch.no_grad():
            self.linear.weight.copy_(torch.as_tensor(weight, dtype=p.dtype))
            self.linear.bias.copy_(torch.as_tensor(bias, dtype=p.dtype))
        self.classes_ = torch.as_tensor(classes)
        return self

    def decision_function(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(batch, n_classes)``, differentiable with respect to ``x`` ``(batch, *data_shape)``."""
        if self.linear is None:
            raise ValueError("the probe is not fitted; call fit(x, y) first")
        return self.linear(self.featurize(x))

    forward = decision_function

    def class_index(self, y: torch.Tensor) -> torch.Tensor:
        """Positions ``(N,)`` of the labels ``y`` in ``classes_`` (the logit columns)."""
        return torch.searchsorted(self.classes_.to(y.device), y)

    def predict(self, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        """Predicted labels ``(N,)`` (values of ``classes_``), without gradients."""
        with torch.no_grad():
            index = torch.cat(
                [self.decision_function(x[i : i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)]
            )
        return self.classes_.to(index.device)[index]

    def score(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """Accuracy in [0, 1] on ``x``, ``y``."""
        return (self.predict(x).cpu() == y.cpu()).float().mean().item()
