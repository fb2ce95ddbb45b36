"""Does the pseudo-inputs' parameterisation explain the VampPrior gap to pythae in the zoo (issue 27)?

vaekit's VampPrior keeps the K pseudo-inputs as free parameters, as the paper and its official code do
(Tomczak & Welling 2018, sec. 3.2; the code's ``means`` layer is a bias-free linear map of the identity);
pythae's VAMP makes them a linear layer *with a bias shared by all K components* on the identity input,
left at torch's default init (uniform in ±1/√K), through the same hard tanh. Two arms, each over the zoo's
10 seeds with pythae's VAMP trained beside each seed from the same initial encoder/decoder:

- ``linear``: vaekit with ``parameterization="linear"`` (pythae's parameterisation and init);
- ``free-centred``: free parameters started at N(0, 0.115²), the marginal of pythae's init at K = 50
  (W e_k + b with W, b ~ U(±1/√50): mean 0, variance 2/(3K)), without the shared bias;
- ``free-10-epochs``: vaekit's default (free, init 0.5 ± 0.01) trained 10 epochs instead of 2, 5 seeds:
  does the gap belong to the first epochs' dynamics or stay with training?

Compare with the default arm (free, init 0.5 ± 0.01) in ``benchmarks/results/zoo-vae-seeds`` and the
paper's init (0.05 ± 0.01) in ``benchmarks/results/zoo-vampprior-init`` (the same seeds).

    OMP_NUM_THREADS=1 python benchmarks/zoo_vampprior_parameterization.py linear
    OMP_NUM_THREADS=1 python benchmarks/zoo_vampprior_parameterization.py free-centred
    OMP_NUM_THREADS=1 python benchmarks/zoo_vampprior_parameterization.py free-10-epochs
    # -> benchmarks/results/zoo-vampprior-param/<arm>/ (results.json, results.md, samples.png)
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import torch

from vaekit.benchmarks import zoo

K = 50
#: arm -> (VampPrior options, epochs, seeds)
ARMS = {
    "linear": ({"num_components": K, "parameterization": "linear"}, 2, range(10)),
    "free-centred": ({"num_components": K, "init_mean": 0.0, "init_scale": round((2 / (3 * K)) ** 0.5, 3)}, 2, range(10)),
    "free-10-epochs": ({"num_components": K}, 10, range(5)),
}


def main(arm: str) -> None:
    torch.set_num_threads(1)
    options, epochs, seeds = ARMS[arm]
    zoo.SETTINGS["vampprior"] = {"options": options}
    out = Path("benchmarks/results/zoo-vampprior-param") / arm
    fid = Path("benchmarks/results/zoo/fid_net.safetensors")
    out.mkdir(parents=True, exist_ok=True)
    if fid.is_file() and not (out / fid.name).is_file():
        shutil.copy(fid, out / fid.name)
    zoo.run_benchmark(
        out, models=["vampprior"], seeds=tuple(seeds), epochs=epochs, num_test=1000, num_samples=100,
        command=f"OMP_NUM_THREADS=1 python benchmarks/zoo_vampprior_parameterization.py {arm}",
    )


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in ARMS:
        sys.exit(f"usage: python benchmarks/zoo_vampprior_parameterization.py {{{','.join(ARMS)}}}")
    main(sys.argv[1])
