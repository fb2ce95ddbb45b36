"""vaekit against pythae (Chadebec et al., NeurIPS 2022 Datasets & Benchmarks) in one process.

Same data, same networks (pythae's VAE is given vaekit's encoder and decoder bodies, copied
with the same initial weights), same batch size, optimizer (Adam) and learning rate. Measures:

1. training throughput (training examples per second, validation each epoch included in both)
   of each library's own training loop: ``vaekit.fit`` and pythae's ``BaseTrainer.train``; and,
   to separate the loop from the model code, both models' losses in one hand-written loop;
2. the importance-sampled log-likelihood with K samples on the digits test split, pythae's
   ``VAE.get_nll`` against ``vaekit.evaluation.log_likelihood`` on the same trained networks:
   the two estimates, the Monte Carlo spread of vaekit's (repeated draws), and importance
   samples per second;
3. the test ELBO after the same number of epochs (both trained networks measured by one
   estimator, vaekit's ``elbo`` averaged over 10 draws of z), over several seeds.

Cases: an MLP VAE on the 8x8 digits, and a convolutional VAE on the digits resized to 28x28.
Data are binarized once (static) because pythae has no dynamic binarization; the likelihood is
Bernoulli (vaekit: logits; pythae: "bce" on sigmoid outputs).

    pip install ".[bench]"      # pythae
    python benchmarks/compare_pythae.py --output benchmarks/results/compare_pythae.json

Every figure is a ratio measured in this one run; the JSON records machine, command and date.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import logging
import statistics
import sys
import tempfile
from pathlib import Path

import torch

from vaekit import VAE, Config, build_model, fit
from vaekit.evaluation import log_likelihood
from vaekit.objectives import build_objective, elbo
from vaekit.data.splits import split_validation

try:
    import pythae
    from pythae.data.datasets import BaseDataset
    from pythae.models import VAE as PythaeVAE
    from pythae.models import VAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder
    from pythae.trainers import BaseTrainer, BaseTrainerConfig
except ImportError as error:  # the script still runs its vaekit half and says why pythae is missing
    pythae, PYTHAE_ERROR = None, f"{type(error).__name__}: {error}"
else:
    PYTHAE_ERROR = None

    class Encoder(BaseEncoder):
        """A vaekit encoder body, (loc, scale), in pythae's interface (embedding, log-variance)."""

        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            loc, scale = self.net(x)
            return ModelOutput(embedding=loc, log_covariance=2 * scale.log())

    class Decoder(BaseDecoder):
        """A vaekit decoder body (Bernoulli logits) in pythae's interface (probabilities)."""

        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, z):
            return ModelOutput(reconstruction=torch.sigmoid(self.net(z)))

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Clock, digits, machine  # noqa: E402

CASES = {
    "mlp-digits-8x8": dict(side=8, config=dict(net="mlp", hidden=(256, 256))),
    "conv-digits-28x28": dict(side=28, config=dict(net="conv", channels=(32, 64), hidden=(256,))),
}


def to_pythae(model: VAE):
    """pythae's VAE around (copies of) ``model``'s encoder and decoder bodies, same weights."""
    config = VAEConfig(input_dim=model.data_shape, latent_dim=model.latent_dim, reconstruction_loss="bce")
    return PythaeVAE(config, encoder=Encoder(copy.deepcopy(model.encoder)), decoder=Decoder(copy.deepcopy(model.decoder)))


def from_pythae(pmodel, like: VAE) -> VAE:
    """A vaekit VAE holding the networks pythae trained (to measure both with one estimator)."""
    model = copy.deepcopy(like)
    model.encoder.load_state_dict(pmodel.encoder.net.state_dict())
    model.decoder.load_state_dict(pmodel.decoder.net.state_dict())
    return model.eval()


def train_pythae(pmodel, train, val, config, out_dir) -> Clock:
    """Train with pythae's BaseTrainer (validation every epoch), timed."""
    trainer_config = BaseTrainerConfig(
        output_dir=str(out_dir), per_device_train_batch_size=config.train.batch_size,
        per_device_eval_batch_size=config.train.batch_size, num_epochs=config.train.epochs, learning_rate=config.train.lr,
        optimizer_cls="Adam", no_cuda=not torch.cuda.is_available(), seed=config.train.seed)
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet), Clock() as clock:
        trainer = BaseTrainer(pmodel, BaseDataset(train, torch.zeros(len(train))),
                              BaseDataset(val, torch.zeros(len(val))), trainer_config)
        trainer.train()
    return clock


def train_vaekit(model, train, val, config) -> Clock:
    """Train with ``vaekit.fit`` (validation every epoch), timed."""
    with Clock() as clock:
        fit(model, train, config, val=val)
    return clock


def same_loop(loss, params, train, config) -> Clock:
    """``loss(xb)`` in one minimal loop (Adam, shuffled slices, no validation), timed."""
    optimizer = torch.optim.Adam(params, lr=config.train.lr)
    generator = torch.Generator().manual_seed(config.train.seed)
    with Clock() as clock:
        for _ in range(config.train.epochs):
            order = torch.randperm(len(train), generator=generator)
            for i in range(0, len(train), config.train.batch_size):
                value = loss(train[order[i:i + config.train.batch_size]])
                optimizer.zero_grad(set_to_none=True)
                value.backward()
                optimizer.step()
    return clock


@torch.no_grad()
def test_elbo(model, x) -> float:
    """Mean test ELBO, nats per example: vaekit's estimator, 10 draws of z per example."""
    torch.manual_seed(0)
    return elbo(model.eval(), x, num_samples=10).mean().item()


def throughput(model, train, val, config, rounds: int) -> dict:
    """Examples per second of both libraries' loops and of both models in one loop, over
    ``rounds`` interleaved rounds (the order alternates); ratios are medians of per-round ratios."""
    loss_fn = build_objective(config)
    contenders = {
        "vaekit_fit": lambda: train_vaekit(copy.deepcopy(model), train, val, config),
        "vaekit_same_loop": lambda: (lambda m: same_loop(lambda xb: loss_fn(m, xb).loss,
                                                         m.parameters(), train, config))(copy.deepcopy(model).train()),
    }
    if pythae:
        def pythae_fit():
            with tempfile.TemporaryDirectory() as tmp:
                return train_pythae(to_pythae(model), train, val, config, tmp)
        contenders["pythae_fit"] = pythae_fit
        contenders["pythae_same_loop"] = lambda: (lambda m: same_loop(lambda xb: m({"data": xb}).loss, m.parameters(),
                                                                      train, config))(to_pythae(model).train())
    for run in contenders.values():  # untimed warm-up
        run()
    clocks = {name: [] for name in contenders}
    for r in range(rounds):
        for name in (list(contenders) if r % 2 == 0 else list(reversed(contenders))):
            clocks[name].append(contenders[name]())
    n = len(train) * config.train.epochs
    out = {f"{name}_examples_per_s": {"cpu": n / min(c.cpu for c in cs), "wall": n / min(c.wall for c in cs)}
           for name, cs in clocks.items()}
    if pythae:
        for kind in ("fit", "same_loop"):
            a, b = clocks[f"vaekit_{kind}"], clocks[f"pythae_{kind}"]
            out[f"{kind}_ratio"] = {"cpu": statistics.median(y.cpu / x.cpu for x, y in zip(a, b)),
                                    "wall": statistics.median(y.wall / x.wall for x, y in zip(a, b))}
    print(json.dumps({"throughput": out}), flush=True)
    return out


def run_case(name: str, case: dict, args) -> dict:
    config = Config.from_flat(binarize="static", latent_dim=args.latent_dim, batch_size=args.batch_size, lr=args.lr,
                    epochs=args.epochs, **case["config"])
    train_all, test = digits(config, case["side"])
    result = {"case": name, "data_shape": list(test.shape[1:]), "seeds": []}
    for seed in range(args.seeds):
        cfg = config.replace(seed=seed)
        train, val = split_validation(train_all, cfg)
        result["num_train"], result["num_val"], result["num_test"] = len(train), len(val), len(test)
        model = build_model(cfg.model, tuple(test.shape[1:]), seed=cfg.train.seed)
        if seed == 0:
            result["throughput"] = throughput(model, train, val, cfg.replace(epochs=args.throughput_epochs),
                                              args.rounds)
        pmodel = to_pythae(model) if pythae else None
        run = {"seed": seed}
        train_vaekit(model, train, val, cfg)
        run["vaekit_test_elbo"] = test_elbo(model, test)
        if pythae:
            with tempfile.TemporaryDirectory() as tmp:
                train_pythae(pmodel, train, val, cfg, tmp)
            run["pythae_test_elbo"] = test_elbo(from_pythae(pmodel.cpu(), model), test)
        result["seeds"].append(run)
        print(json.dumps({"case": name, **run}), flush=True)
        if seed == 0 and case["side"] == 8 and args.nll_samples:
            result["log_likelihood"] = compare_nll(model, test, args)
    elbos = {key: [r[key] for r in result["seeds"] if key in r] for key in ("vaekit_test_elbo", "pythae_test_elbo")}
    result["test_elbo"] = {key: {"mean": statistics.mean(v), "std": statistics.stdev(v) if len(v) > 1 else 0.0}
                           for key, v in elbos.items() if v}
    return result


def compare_nll(model, test, args) -> dict:
    """log p(x) on the test split with K importance samples: pythae's get_nll vs vaekit.

    vaekit's estimate is repeated with 3 seeds (its spread is the Monte Carlo error of the mean);
    speeds are importance samples (examples x K) per second of CPU and of wall time.
    """
    k, out = args.nll_samples, {"num_samples": args.nll_samples, "num_examples": len(test)}
    estimates, clocks = [], []
    for repeat in range(3):
        torch.manual_seed(100 + repeat)
        with Clock() as clock:
            estimates.append(log_likelihood(model, test, k).mean().item())
        clocks.append(clock)
    n = len(test) * k
    speed = {"cpu": n / min(c.cpu for c in clocks), "wall": n / min(c.wall for c in clocks)}
    out["vaekit"] = {"estimates": estimates, "mc_std": statistics.stdev(estimates), "samples_per_s": speed}
    if pythae:
        pmodel = to_pythae(model).eval()
        torch.manual_seed(100)
        with Clock() as clock, torch.no_grad():  # get_nll builds graphs otherwise; no_grad only helps it
            value = pmodel.get_nll(test, n_samples=k, batch_size=100)
        # get_nll returns the mean log p(x) (negative), despite its name
        out["pythae"] = {"estimate": float(value), "samples_per_s": {"cpu": n / clock.cpu, "wall": n / clock.wall}}
        out["difference"] = out["pythae"]["estimate"] - statistics.mean(estimates)
        out["speedup"] = {kind: speed[kind] / out["pythae"]["samples_per_s"][kind] for kind in speed}
    print(json.dumps({"log_likelihood": out}), flush=True)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=20, help="epochs of the test-ELBO comparison")
    parser.add_argument("--seeds", type=int, default=3, help="seeds of the test-ELBO comparison")
    parser.add_argument("--throughput-epochs", type=int, default=3, help="epochs per timed round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--latent-dim", type=int, default=8)
    parser.add_argument("--nll-samples", type=int, default=1000, help="K of the log-likelihood comparison (0 = skip)")
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--output", default=None, help="JSON file for the results")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for name in [n for n in logging.root.manager.loggerDict if n.startswith("pythae")]:
        logging.getLogger(name).setLevel(logging.ERROR)  # pythae logs every epoch to stdout
    report = {"machine": machine(), "pythae": getattr(pythae, "__version__", None), "pythae_error": PYTHAE_ERROR,
              "settings": vars(args), "cases": [run_case(name, CASES[name], args) for name in args.cases]}
    if PYTHAE_ERROR:
        print(f"pythae is not importable ({PYTHAE_ERROR}); only vaekit was measured", file=sys.stderr)
    text = json.dumps(report, indent=2)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
