"""The budget experiment's ladder (benchmarks/disentanglement_budget.py): a longer budget started from
the finished shorter run is the run trained from scratch for the longer budget, bit for bit."""

import importlib.util
from pathlib import Path

import torch
from safetensors.torch import load_file

from vaekit import io
from vaekit.benchmarks.sweeps.spec import SweepSpec

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "disentanglement_budget.py"


def _script():
    spec = importlib.util.spec_from_file_location("disentanglement_budget", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tiny(epochs, seeds):
    base = {
        "data": "dsprites-synthetic",
        "image_size": 16,
        "grid_step": 8,
        "net": "mlp",
        "hidden": [16],
        "latent_dim": 3,
        "binarize": "none",
        "batch_size": 64,
        "eval_num_samples": 2,
        "kl_diagnostic_points": 50,
        "epochs": epochs,
    }
    evaluate = {"disentanglement": {"seed": 0, "metrics": ["beta_vae", "mig"], "num_train": 100, "num_eval": 50}}
    return SweepSpec(base, {"vae": {}, "beta-vae": {"beta": 4.0}}, tuple(seeds), evaluate)


def test_extended_run_equals_run_from_scratch(tmp_path):
    torch.set_num_threads(1)
    budget = _script()
    lines = []
    budget.run(tmp_path / "ladder", (1, 3), (0,), log=lines.append, spec_of=_tiny)
    budget.run(tmp_path / "scratch", (3,), (0,), log=lines.append, spec_of=_tiny)
    for model in ("vae", "beta-vae"):
        extended = tmp_path / "ladder" / "e3" / "runs" / f"{model}-seed0"
        scratch = tmp_path / "scratch" / "e3" / "runs" / f"{model}-seed0"
        assert io.read_json(extended / "summary.json")["epochs_trained"] == 3
        a, b = load_file(extended / io.WEIGHTS), load_file(scratch / io.WEIGHTS)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        ours, theirs = (
            io.read_json(p / "sweep-disentanglement.json")["result"]["headline"] for p in (extended, scratch)
        )
        assert ours == theirs
        history = io.read_json_lines(extended / io.METRICS)
        assert [h["epoch"] for h in history] == [1, 2, 3]
    assert len(lines) == 6 and all("BetaVAE" in line for line in lines)
    results = budget.collect(tmp_path / "ladder", (1, 3))
    assert (
        set(results) == {"1", "3"}
        and results["3"]["beta-vae"]["per_seed"]["0"]["steps"] == 3 * results["1"]["vae"]["per_seed"]["0"]["steps"]
    )
