"""Choose the SGHMC / SWAG step size of `vaekit benchmark ood` on a validation pair, not on the test sets.

One VAE on the benchmark's 3,000 Fashion-MNIST training images (seed 0, the benchmark's settings);
for each posterior and step size l, the spread of log p(x|theta_m) over the M = 5 samples and the
AUROC of the effective sample size between 500 held-out Fashion-MNIST *training* images (not the
benchmark's test images) and the same images perturbed at Ren et al.'s mutation rate 0.2 (a
validation OOD set made from in-distribution data only: no benchmark OOD set is looked at).

    python benchmarks/ood_posterior_lr.py     # -> benchmarks/results/ood/posterior_lr.json
"""

import json
import sys
import time
from pathlib import Path

import torch

from vaekit import fit
from vaekit.data.splits import prepare
from vaekit.benchmarks.ood import MODEL, Args, datasets
from vaekit.config import Config
from vaekit.evaluation import ood
from vaekit.models import build_model
from vaekit.detectors.bayesian_vae import PosteriorSettings, fit_posterior


def main(out="benchmarks/results/ood/posterior_lr.json"):
    torch.set_num_threads(1)
    args = Args()
    data = datasets(args)["fashion-mnist"]
    config = Config.from_dict({**MODEL, "data": "array", "epochs": args.epochs[0], "seed": 0})
    model = build_model(config.model, data["train"].shape[1:], seed=config.train.seed)
    fit(model, data["train"], config)
    model.eval()
    held_out = data["reference"]
    x_in = prepare(held_out, config)
    x_out = prepare(ood.perturb(held_out, 0.2, torch.Generator().manual_seed(5)), config)
    from sklearn.metrics import roc_auc_score

    rows = []
    for kind in ("sghmc", "swag"):
        for lr in (1e-4, 3e-4, 1e-3, 3e-3):
            start = time.perf_counter()
            settings = PosteriorSettings(kind=kind, num_posterior_samples=5, epochs=args.posterior_epochs, lr=lr, seed=0)
            try:
                bvae = fit_posterior(model, data["train"], config, settings)
            except RuntimeError as e:
                rows.append({"posterior": kind, "lr": lr, "error": str(e)})
                continue
            ll_in, ll_out = bvae.log_likelihoods(x_in, 16), bvae.log_likelihoods(x_out, 16)
            ess_in, ess_out = ood.effective_sample_size(ll_in), ood.effective_sample_size(ll_out)
            y = [0] * len(ess_in) + [1] * len(ess_out)
            row = {"posterior": kind, "lr": lr, "mean_log_likelihood_in": ll_in.mean().item(),
                   "sample_std_in": ll_in.std(0).mean().item(), "sample_std_out": ll_out.std(0).mean().item(),
                   "ess_auroc": roc_auc_score(y, (-torch.cat([ess_in, ess_out])).numpy()),
                   "waic_auroc": roc_auc_score(y, (-torch.cat([ood.waic(ll_in), ood.waic(ll_out)])).numpy()),
                   "time_s": round(time.perf_counter() - start, 1)}
            rows.append(row)
            print(row, flush=True)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps({"command": "python benchmarks/ood_posterior_lr.py", "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
