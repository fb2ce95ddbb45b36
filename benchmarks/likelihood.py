"""Speed of the importance-sampled log-likelihood (``vaekit.evaluation.log_likelihood``, issue 11).

On pythae's default network (``VAEConfig`` defaults: Encoder_VAE_MLP / Decoder_AE_MLP, one hidden
layer of 512 units, latent 10, BCE on sigmoid outputs) for inputs of shape (1, 8, 8) (the digits)
and (1, 28, 28) (Fashion-MNIST test images), binarised at 0.5, untrained weights (speed does not
depend on them; both estimators see the same network): K = ``--num-samples`` importance samples
for ``--examples`` examples, one intra-op thread for everything. Timed, interleaved over
``--rounds`` rounds (the order rotates), medians reported:

- ``vaekit``: today's implementation (encode once, (K, b) draws, cache-sized decoder calls,
  fused Bernoulli log-density, closed-form log p(z) − log q(z|x));
- ``vaekit_0.2``: the previous implementation (the reference copy in tests/test_likelihood_fast.py);
- ``pythae``: ``pythae.models.VAE.get_nll(x, n_samples=K, batch_size=100)`` (pythae 0.1.2, its
  defaults), when pythae imports.

And the achieved rate of the decoder's work, 2·K·N·Σ(in·out) FLOPs over vaekit's time, as a
fraction of the machine's single-thread sgemm rate measured right after it in the same round (the
best of ``torch.mm`` at the decoder's layer shapes with cache-sized row counts and at 1024³; on a
shared machine the rate moves with the load); median over rounds; goal ≥ 0.7.

    PYTHONPATH=/tmp/pythae_pkgs python benchmarks/likelihood.py --output benchmarks/results/likelihood.json
    (pythae installed with: pip install --target /tmp/pythae_pkgs --no-deps pythae==0.1.2 imageio)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from common import machine  # noqa: E402
from test_likelihood_fast import reference_log_likelihood  # noqa: E402

from vaekit import VAE, Config  # noqa: E402
from vaekit.distributions import Bernoulli  # noqa: E402
from vaekit.evaluation import log_likelihood  # noqa: E402
from vaekit.evaluation.likelihood import decoder_rows  # noqa: E402
from vaekit.data.splits import load_dataset  # noqa: E402

try:
    from pythae.models import VAE as PythaeVAE
    from pythae.models import VAEConfig
except ImportError as error:
    PythaeVAE, PYTHAE_ERROR = None, f"{type(error).__name__}: {error}"
else:
    PYTHAE_ERROR = None


class PythaeEncoder(nn.Module):
    """pythae's encoder as a vaekit encoder: (loc, scale = exp(log_var / 2))."""

    def __init__(self, encoder):
        super().__init__()
        self.net = encoder

    def forward(self, x):
        out = self.net(x)
        return out.embedding, torch.exp(0.5 * out.log_covariance)


def networks(shape: tuple[int, ...], latent_dim: int, seed: int = 0):
    """pythae's default VAE for ``shape`` and a vaekit VAE on the very same modules (the decoder
    without its final sigmoid: vaekit's Bernoulli head takes logits)."""
    torch.manual_seed(seed)
    if PythaeVAE is None:
        from vaekit import build_model

        return None, build_model(Config.from_flat(net="mlp", hidden=(512,), latent_dim=latent_dim,
                                                  likelihood="bernoulli").model, shape, True, seed=seed)
    pmodel = PythaeVAE(VAEConfig(input_dim=shape, latent_dim=latent_dim, reconstruction_loss="bce")).eval()
    hidden, last = pmodel.decoder.layers[0], pmodel.decoder.layers[1][0]
    decoder = nn.Sequential(hidden, last, nn.Unflatten(1, shape))
    model = VAE(PythaeEncoder(pmodel.encoder), decoder, Bernoulli(event_ndim=len(shape)), latent_dim, shape).eval()
    return pmodel, model


def sgemm_rate(shapes, seconds: float = 0.5) -> dict:
    """Best GFLOP/s of ``torch.mm`` over ``shapes`` (m, k, n), each timed for about ``seconds``."""
    rates = {}
    for m, k, n in shapes:
        a, b = torch.randn(m, k), torch.randn(k, n)
        torch.mm(a, b)
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            torch.mm(a, b)
            count += 1
        rates[f"{m}x{k}x{n}"] = 2 * m * k * n * count / (time.perf_counter() - start) / 1e9
    return rates


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def run_case(name: str, shape, x: torch.Tensor, args) -> dict:
    pmodel, model = networks(shape, args.latent_dim)
    k = args.num_samples
    linears = [m for m in model.decoder.modules() if isinstance(m, nn.Linear)]
    flops = 2 * k * len(x) * sum(m.in_features * m.out_features for m in linears)
    rows = decoder_rows(model, x[0].numel(), 256)
    contenders = {
        "vaekit": lambda: log_likelihood(model, x, k).mean().item(),
        "vaekit_0.2": lambda: reference_log_likelihood(model, x, k).mean().item(),
    }
    if pmodel is not None:
        contenders["pythae"] = lambda: float(pmodel.get_nll(x, n_samples=k, batch_size=100))
    gemm_shapes = [(rows, m.in_features, m.out_features) for m in linears] + [(1024, 1024, 1024)]
    times = {c: [] for c in contenders}
    values = {c: [] for c in contenders}
    fractions, all_rates = [], []
    with torch.no_grad():
        for r in range(args.rounds):
            names = list(contenders)
            for c in names[r % len(names):] + names[:r % len(names)]:
                torch.manual_seed(r)
                t, v = timed(contenders[c])
                times[c].append(t)
                values[c].append(v)
                if c == "vaekit":  # the sgemm rate right after, under the same load
                    all_rates.append(sgemm_rate(gemm_shapes, 0.3))
                    fractions.append(flops / t / 1e9 / max(all_rates[-1].values()))
    rates = {s: statistics.median(r[s] for r in all_rates) for s in all_rates[0]}
    med = {c: statistics.median(t) for c, t in times.items()}
    out = {
        "data_shape": list(shape), "examples": len(x), "num_samples": k, "latent_dim": args.latent_dim,
        "decoder_rows_per_call": rows, "decoder_gflop": flops / 1e9,
        "median_s": {c: round(v, 4) for c, v in med.items()}, "times_s": times,
        "mean_log_likelihood": {c: statistics.mean(v) for c, v in values.items()},
        "decoder_gflops_per_s": round(flops / med["vaekit"] / 1e9, 2),
        "sgemm_gflops_per_s": {s: round(v, 2) for s, v in rates.items()},
        "fraction_of_sgemm": round(statistics.median(fractions), 3),
        "fraction_of_sgemm_per_round": [round(f, 3) for f in fractions],
        "speedup_over_vaekit_0.2": round(med["vaekit_0.2"] / med["vaekit"], 2),
    }
    if "pythae" in med:
        out["speedup_over_pythae"] = round(med["pythae"] / med["vaekit"], 2)
    print(json.dumps({name: {k2: v for k2, v in out.items() if k2 != "times_s"}}), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--latent-dim", type=int, default=10, help="pythae's VAEConfig default")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", default="benchmarks/results/likelihood.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    result = {"machine": machine(), "load_average_before": os.getloadavg(), "settings": vars(args),
              "pythae": None if PythaeVAE is None else __import__("importlib.metadata").metadata.version("pythae"), "pythae_error": PYTHAE_ERROR}
    digits = load_dataset(Config(), "test").x[:args.examples]
    fashion = load_dataset(Config.from_flat(data="fashion-mnist", data_dir="/usr/share/datasets"), "test").x[:args.examples]
    result["cases"] = {
        "digits-1x8x8": run_case("digits-1x8x8", (1, 8, 8), (digits > 0.5).float(), args),
        "fashion-mnist-1x28x28": run_case("fashion-mnist-1x28x28", (1, 28, 28), (fashion > 0.5).float(), args),
    }
    result["load_average_after"] = os.getloadavg()
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
