"""Does the pseudo-inputs' initialisation explain the VampPrior gap to pythae in the zoo? The zoo's
VampPrior arm (``vaekit benchmark zoo``: Fashion-MNIST, MLP 256-256, latent 16, K = 50, 2 epochs) with
vaekit's pseudo-inputs started at 0.05 ± 0.01 (Tomczak & Welling 2018, sec. 5, the paper's init; vaekit's
default is 0.5 ± 0.01) over 10 seeds, pythae's VAMP trained beside each seed from the same initial
networks. Compare with the default-init arm of ``benchmarks/results/zoo-vae-seeds`` (the same seeds).

    OMP_NUM_THREADS=1 python benchmarks/zoo_vampprior_init.py   # -> benchmarks/results/zoo-vampprior-init/
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from vaekit.benchmarks import zoo

OUT = Path("benchmarks/results/zoo-vampprior-init")


def main() -> None:
    torch.set_num_threads(1)
    zoo.SETTINGS["vampprior"] = {"options": {"num_components": 50, "init_mean": 0.05}}
    fid = Path("benchmarks/results/zoo/fid_net.safetensors")
    OUT.mkdir(parents=True, exist_ok=True)
    if fid.is_file() and not (OUT / fid.name).is_file():
        shutil.copy(fid, OUT / fid.name)
    zoo.run_benchmark(
        OUT, models=["vampprior"], seeds=tuple(range(10)), epochs=2, num_test=1000, num_samples=100,
        command="OMP_NUM_THREADS=1 python benchmarks/zoo_vampprior_init.py",
    )


if __name__ == "__main__":
    main()
