"""Custom encoder/decoder classes named by import path: the contract (shapes, gradients, save -> load
exact), the trust opt-in, and a custom-network run folder used by the CLI."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import vaekit
from vaekit import io
from vaekit.cli import main
from vaekit.config import Config
from vaekit.custom_nets import CodeNotTrusted, trusting
from vaekit.objectives import build_objective

SRC = Path(__file__).resolve().parents[1] / "src"
MODULE = "vaekit_test_user_nets"
USER_NETS = textwrap.dedent('''
    """A user's own networks, as they would live in their package."""
    import math

    import torch
    from torch import nn


    class Encoder(nn.Module):
        """LayerNorm MLP: x (batch, *data_shape) [and c (batch, cond_dim)] -> (loc, scale) or loc."""

        def __init__(self, data_shape, latent_dim, width=32, stochastic=True, cond_dim=0):
            super().__init__()
            self.stochastic = stochastic
            self.body = nn.Sequential(nn.Linear(math.prod(data_shape) + cond_dim, width), nn.LayerNorm(width), nn.SiLU())
            self.head = nn.Linear(width, latent_dim * (2 if stochastic else 1))

        def forward(self, x, c=None):
            h = x.flatten(1) if c is None else torch.cat([x.flatten(1), c], -1)
            out = self.head(self.body(h))
            if not self.stochastic:
                return out
            loc, raw = out.chunk(2, -1)
            return loc, nn.functional.softplus(raw) + 1e-4


    class Decoder(nn.Module):
        """z (batch, latent_dim) [and c] -> the likelihood's parameters (batch, *data_shape)."""

        def __init__(self, data_shape, latent_dim, width=32, cond_dim=0):
            super().__init__()
            self.data_shape = tuple(data_shape)
            self.net = nn.Sequential(nn.Linear(latent_dim + cond_dim, width), nn.SiLU(),
                                     nn.Linear(width, math.prod(data_shape)))

        def forward(self, z, c=None):
            h = z if c is None else torch.cat([z, c], -1)
            return self.net(h).view(-1, *self.data_shape)


    class FlatDecoder(Decoder):
        """Forgets to reshape: (batch, prod(data_shape))."""

        def forward(self, z, c=None):
            return self.net(z)


    class NotAModule:
        def __init__(self, **kwargs):
            pass
''')


@pytest.fixture(scope="module")
def user_nets(tmp_path_factory):
    """A folder holding the user's module, on sys.path for this module's tests."""
    folder = tmp_path_factory.mktemp("user")
    (folder / f"{MODULE}.py").write_text(USER_NETS)
    sys.path.insert(0, str(folder))
    yield folder
    sys.path.remove(str(folder))
    sys.modules.pop(MODULE, None)


def spec(name, **kwargs):
    return {"target": f"{MODULE}:{name}", "kwargs": kwargs}


def custom_config(model="vae", **changes):
    return Config.from_flat(
        model=model,
        latent_dim=3,
        encoder=spec("Encoder", width=24),
        decoder=spec("Decoder", width=20),
        likelihood="gaussian",
        likelihood_scale=0.3,
        binarize="none",
        **changes,
    )


SHAPES = {"image": (1, 8, 8), "tabular": (5,)}


@pytest.mark.parametrize("model_name", ["ae", "vae", "cvae", "avae", "betatc"])
@pytest.mark.parametrize("shape_key", sorted(SHAPES))
def test_contract_shapes_gradients_and_exact_round_trip(user_nets, tmp_path, model_name, shape_key):
    shape = SHAPES[shape_key]
    extra = {"num_classes": 4} if model_name == "cvae" else {}
    config = custom_config(model_name)
    model = vaekit.build_model(config.model, shape, trust_code=True, **extra, seed=config.train.seed)
    assert type(model.encoder).__module__ == MODULE and type(model.decoder).__name__ == "Decoder"
    assert model.encoder.body[0].out_features == 24 and model.decoder.net[0].out_features == 20  # kwargs reached them
    view = model.condition(1) if model.conditional else model
    x = torch.rand(4, *shape, generator=torch.Generator().manual_seed(0))
    q = view.encode(x)
    assert q.mean.shape == (4, 3) and view.decode(q.rsample((2,))).log_prob(x).shape == (2, 4)
    assert view.transform(x).shape == (4, 3) and view.reconstruct(x).shape == x.shape
    assert view.sample(5).shape == (5, *shape)
    out = build_objective(config)(view, x)
    out.loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, f"no gradient reaches {name}"
    io.save(model, tmp_path / "m")
    assert io.load_config(tmp_path / "m").model.encoder == spec("Encoder", width=24)  # plain JSON in config.json
    loaded = io.load(tmp_path / "m", trust_code=True)
    lview = loaded.condition(1) if loaded.conditional else loaded
    model.eval()
    torch.testing.assert_close(lview.transform(x), view.transform(x), rtol=0, atol=0)
    z = torch.randn(3, 3)
    torch.testing.assert_close(lview.decode(z).log_prob(x[:3]), view.decode(z).log_prob(x[:3]), rtol=0, atol=0)


def test_same_seed_same_weights_and_one_custom_half(user_nets):
    a = vaekit.build_model(custom_config(seed=3).model, (1, 8, 8), seed=3, trust_code=True)
    b = vaekit.build_model(custom_config(seed=3).model, (1, 8, 8), seed=3, trust_code=True)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    half = vaekit.build_model(custom_config().replace(decoder=None).model, (1, 8, 8), trust_code=True)
    assert type(half.encoder).__name__ == "Encoder" and type(half.decoder).__name__ == "MLPDecoder"


def test_loading_needs_trust(user_nets, tmp_path):
    io.save(vaekit.build_model(custom_config().model, (1, 8, 8), trust_code=True), tmp_path / "m")
    sys.modules.pop(MODULE, None)
    with pytest.raises(
        CodeNotTrusted,
        match=r"config.json: this config names code to import \(encoder "
        rf"'{MODULE}:Encoder', decoder '{MODULE}:Decoder'\).*--trust-code",
    ):
        io.load(tmp_path / "m")
    assert MODULE not in sys.modules  # refused before importing anything
    with pytest.raises(CodeNotTrusted):
        vaekit.build_model(custom_config().model, (1, 8, 8))
    with trusting():
        assert io.load(tmp_path / "m").latent_dim == 3
    with trusting(), pytest.raises(CodeNotTrusted):
        io.load(tmp_path / "m", trust_code=False)  # an explicit False wins


@pytest.mark.parametrize(
    "encoder,decoder,error,match",
    [
        ({"target": "no_colon"}, None, ValueError, "must be 'module.path:ClassName'"),
        ({"target": "m:E", "kwargs": {"latent_dim": 2}}, None, ValueError, "may not set latent_dim"),
        ({"target": "m:E", "kwargs": {"w": float("nan")}}, None, ValueError, "kwargs must be JSON"),
        ({"target": "m:E", "args": [1]}, None, ValueError, "must be an object like"),
        (spec("Encoder"), spec("FlatDecoder"), ValueError, r"decoder returned \(2, 64\) .* expected \(2, 1, 8, 8\)"),
        (spec("Encoder"), spec("NotAModule"), TypeError, "expected a torch.nn.Module"),
        (spec("Encoder", depth=3), None, TypeError, "could not be built with"),
        (spec("Missing"), None, ImportError, f"{MODULE} has no attribute 'Missing'"),
        (
            {"target": "not_a_module_anywhere:E"},
            None,
            ImportError,
            "No module named 'not_a_module_anywhere'.*PYTHONPATH",
        ),
    ],
)
def test_bad_custom_networks_are_clear_errors(user_nets, encoder, decoder, error, match):
    with pytest.raises(error, match=match):
        vaekit.build_model(
            Config.from_flat(latent_dim=3, encoder=encoder, decoder=decoder).model, (1, 8, 8), trust_code=True
        )


def test_custom_network_run_folder_through_the_cli(user_nets, tmp_path, capsys):
    """Train with --config-file, then evaluate (a fresh process, user code on PYTHONPATH), sample,
    score and report the run folder; without --trust-code every loading command refuses."""
    settings = (
        custom_config()
        .replace(epochs=2, eval_num_samples=5, likelihood="bernoulli", binarize="dynamic", likelihood_scale=1.0)
        .to_flat()
    )
    (tmp_path / "custom.json").write_text(json.dumps(settings))
    train = [
        "train",
        "--config-file",
        str(tmp_path / "custom.json"),
        "--runs-dir",
        str(tmp_path),
        "--name",
        "c",
        "--no-progress",
    ]
    assert main(train) == 1
    assert "--trust-code" in capsys.readouterr().err
    assert main(train + ["--trust-code"]) == 0
    run = tmp_path / "c"
    assert {p.suffix for p in run.iterdir() if p.is_file()} <= {".json", ".jsonl", ".safetensors", ".png", ".html"}
    capsys.readouterr()

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(user_nets), str(SRC)]), "OMP_NUM_THREADS": "1"}
    evaluate = [sys.executable, "-m", "vaekit", "evaluate", str(run), "--num-samples", "5", "--trust-code"]
    done = subprocess.run(evaluate, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads((run / "evaluation.json").read_text())["test"]
    assert np.isfinite(result["log_likelihood"]) and result["log_likelihood"] < 0

    assert main(["sample", str(run), "--n", "16", "--trust-code"]) == 0 and (run / "samples-16.png").is_file()
    rows = vaekit.data.load("digits", split="test").x[:20].numpy()
    np.save(tmp_path / "rows.npy", rows)
    assert (
        main(
            [
                "score",
                str(run),
                "--input",
                str(tmp_path / "rows.npy"),
                "--num-samples",
                "2",
                "--no-progress",
                "--trust-code",
            ]
        )
        == 0
    )
    assert len((run / "scores.csv").read_text().splitlines()) == 21
    assert main(["report", str(run), "--output", str(tmp_path / "r.html")]) == 0  # JSON + figures only
    assert (tmp_path / "r.html").stat().st_size > 1000
    capsys.readouterr()
    assert main(["sample", str(run), "--n", "4"]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--trust-code" in err


def test_encoder_flag_takes_json(user_nets, tmp_path):
    assert (
        main(
            [
                "train",
                "--runs-dir",
                str(tmp_path),
                "--name",
                "f",
                "--epochs",
                "1",
                "--latent-dim",
                "2",
                "--eval-num-samples",
                "2",
                "--no-progress",
                "--trust-code",
                "--encoder",
                json.dumps(spec("Encoder", width=8)),
            ]
        )
        == 0
    )
    saved = io.load_config(tmp_path / "f").model
    assert saved.encoder == spec("Encoder", width=8) and saved.decoder is None
