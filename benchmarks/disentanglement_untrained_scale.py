"""Is the untrained encoder's low BetaVAE score a matter of code scale?

The benchmark's untrained-VAE baseline (``vaekit benchmark disentanglement``'s ``untrained-vae`` rows)
scores at or near chance (1/5) on the BetaVAE metric. Its codes vary by ~2e-3 across the grid, and the
metric's classifier is scikit-learn's ``LogisticRegression`` with its default L2 penalty (C = 1, as in
disentanglement_lib), which is not scale-invariant. This check scores the same codes with every
dimension divided by its standard deviation over the grid: a per-dimension rescaling, which changes no
information and no disentanglement, only the scale the classifier sees. Seeds 0 and 1 of the
initialisation, the benchmark's data and metric protocol (metric seed 0). Output:
benchmarks/results/disentanglement/untrained_scale.md.

    OMP_NUM_THREADS=1 python benchmarks/disentanglement_untrained_scale.py
"""

from pathlib import Path

import torch

from vaekit.benchmarks.disentanglement import benchmark_configs
from vaekit.data.splits import load_dataset
from vaekit.evaluation.disentanglement import beta_vae_score, grid_representation
from vaekit.evaluation.disentanglement.baselines import baseline_codes
from vaekit.io import atomic_write


def main() -> None:
    torch.set_num_threads(1)
    config = benchmark_configs()["vae"]
    test, train = load_dataset(config, "test"), load_dataset(config, "train")
    lines = ["Command: `OMP_NUM_THREADS=1 python benchmarks/disentanglement_untrained_scale.py`", "",
             "| init seed | code std per dimension (min – max) | BetaVAE, codes as they are | BetaVAE, each dimension / its std |",
             "|---|---|---|---|"]
    for seed in (0, 1):
        codes = baseline_codes("untrained-vae", test, train.x, config.model.latent_dim, seed, config.model)
        std = codes.std(axis=0)
        raw = beta_vae_score(test, grid_representation(test, codes))["eval_accuracy"]
        scaled = beta_vae_score(test, grid_representation(test, codes / std))["eval_accuracy"]
        lines.append(f"| {seed} | {std.min():.2e} – {std.max():.2e} | {raw:.3f} | {scaled:.3f} |")
        print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    atomic_write(Path("benchmarks/results/disentanglement/untrained_scale.md"), text)


if __name__ == "__main__":
    main()
