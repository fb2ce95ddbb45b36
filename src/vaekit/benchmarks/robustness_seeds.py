"""The AVAE question over seeds: VAE, VAE + input noise, AVAE (x̃ = mean / x̃ sampled) and SE ε 0.1.

Cemgil et al. (NeurIPS 2020, table 2) report that the AVAE's representation keeps its digit probe
accuracy under L∞ PGD at ε = 0.1 (88.1 %) where the VAE's does not (5.8 %). This benchmark asks
which ingredient, if any, gives that robustness here, with every arm trained on >= 3 seeds by
``vaekit sweep`` (one run folder per arm and seed, resumable, ``--jobs N`` at a time):

- **VAE**, and **VAE + noise** (a denoising VAE, ``noise_std`` = the likelihood's scale, and 0.2):
  does plain input noise, which an x̃ drawn from p(x|z) amounts to, give the same?
- **AVAE (mean)**: the coupling with x̃ = g(z) (paper, eq. 9); **AVAE (sampled)**: x̃ ~ p(x|z)
  (``aux_sample``).
- **SE ε 0.1**: the smooth encoder (ICLR 2020), adversarial by construction, as a positive control.

Every run is evaluated with the linear probe read three ways (encoder mean, a sample z, the
decoded reconstruction g(μ(x))), clean and under PGD-20 through the whole chain from the pixels.
``results.json`` keeps the schema of ``vaekit benchmark robustness`` —
``results[row]["probe"][label]["pgd"][eps]`` (the mean over seeds) — with the per-seed results
under ``results[row]["per_seed"][seed]`` and the statistics under ``results[row]["aggregate"]``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from .. import io
from ..pipeline.sweep import run_sweep
from ..pipeline.sweep_report import INTERVAL, summarize
from ..pipeline.sweep_spec import SweepSpec
from .robustness import BASE, PAPER_TABLE

#: Likelihood std per dataset: the largest at which the VAE is not collapsed (see docs/robustness.md).
SCALE = {"color-digits": 0.05, "color-fashion-mnist": 0.1}
EPOCHS = {"color-digits": 20, "color-fashion-mnist": 10}
EPSILONS = (0.0, 0.05, 0.1, 0.2)
FEATURES = ("mean", "sample", "decoded")


def arms(data: str) -> dict[str, dict]:
    """Arm name -> changes to the base config."""
    scale = SCALE[data]
    out = {
        "VAE": {"model": "vae"},
        f"VAE + noise {scale:g}": {"model": "vae", "noise_std": scale},
        "VAE + noise 0.2": {"model": "vae", "noise_std": 0.2},
        "AVAE (mean)": {"model": "avae"},
        "AVAE (sampled)": {"model": "avae", "aux_sample": True},
        "SE ε 0.1": {"model": "se", "epsilon": 0.1, "num_steps": 5},
    }
    return out


def spec(data: str = "color-digits", seeds=(0, 1, 2), epochs: int | None = None, max_test: int = 1000,
         data_dir: str = "data") -> SweepSpec:
    """The sweep of this benchmark (arms × seeds, robustness evaluation of every point).

    Raises:
        ValueError: a dataset without a setting here.
    """
    if data not in SCALE:
        raise ValueError(f"benchmark robustness-seeds has settings for {sorted(SCALE)}, got {data!r}")
    base = {**BASE["color-digits"], "data": data, "likelihood_scale": SCALE[data], "epochs": epochs or EPOCHS[data]}
    base = {k: list(v) if isinstance(v, tuple) else v for k, v in base.items()}
    if data != "color-digits":
        base["data_dir"] = data_dir
    evaluate = {"robustness": {"epsilons": list(EPSILONS), "num_steps": 20, "features": list(FEATURES),
                               "max_test": max_test, "seed": 0}}
    return SweepSpec(base, arms(data), tuple(seeds), evaluate)
