"""The run report as a person sees it (rendered in headless Chromium), and TensorBoard tracking.

The Chromium tests need the ``chromium`` binary (Debian package ``chromium``) and are skipped,
saying so, when it is absent. Screenshots are written to ``test-artifacts/`` (gitignored).
"""

import html
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vaekit import io
from vaekit.config import Config
from vaekit.reporting import report, tracking
from vaekit.reporting.outputs import write_outputs
from vaekit.run import train

torch.set_num_threads(1)
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

#: Injected into a copy of the page: records, after load, whether every image decoded.
IMAGE_CHECK = """<script>
window.addEventListener('load', function () {
  var out = document.createElement('pre');
  out.id = 'image-check';
  out.textContent = JSON.stringify(Array.from(document.images).map(function (img) {
    return {alt: img.alt, ok: img.complete && img.naturalWidth > 0, width: img.naturalWidth};
  }));
  document.body.appendChild(out);
});
</script>
"""


def chromium(page: Path, tmp_path: Path, *args: str) -> str:
    """Run headless Chromium on a local page with a fresh profile; returns stdout."""
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    done = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args, page.resolve().as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def image_status(page: Path, tmp_path: Path) -> list[dict]:
    """Load a copy of ``page`` with :data:`IMAGE_CHECK` injected and read the result from the DOM."""
    probe = tmp_path / f"probe-{page.name}"
    probe.write_text(page.read_text().replace("</body>", IMAGE_CHECK + "</body>"))
    dom = chromium(probe, tmp_path, "--virtual-time-budget=10000", "--dump-dom")
    found = re.search(r'<pre id="image-check">(.*?)</pre>', dom, re.S)
    assert found, "the image check did not run"
    return json.loads(html.unescape(found.group(1)))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A tiny VAE on the digits (latent_dim 3: principal grid), with an extra evaluation result."""
    folder = tmp_path_factory.mktemp("runs") / "vae-digits"
    config = Config.from_flat(model="vae", latent_dim=3, hidden=(64,), epochs=3, eval_num_samples=10)
    train(config, folder, progress=False, outputs=[write_outputs])
    io.write_json(folder / "evaluation-k50.json", {"test": {"log_likelihood": -31.25}, "num_samples": 50})
    report.write_report(folder)
    return folder


def test_report_is_self_contained_and_lists_everything(run_dir):
    page = (run_dir / "report.html").read_text()
    pngs = sorted(p.name for p in run_dir.glob("*.png"))
    assert {
        "loss_curves.png",
        "reconstructions.png",
        "samples.png",
        "principal_grid.png",
        "traversals.png",
        "latent_scatter.png",
        "interpolation.png",
        "iterated.png",
    } <= set(pngs)
    assert page.count('src="data:image/png;base64,') == len(pngs)
    assert not re.search(r'(src|href)="(https?:|file:|/)', page)  # nothing outside the file
    for text in (
        "evaluation-k50.json",
        "-31.25",
        "log_likelihood",
        "nats per example",
        "torch",
        "python",
        "training_time_s",
        "latent_dim",
    ):
        assert text in page, text


@needs_chromium
def test_report_renders_in_chromium(run_dir, tmp_path):
    statuses = image_status(run_dir / "report.html", tmp_path)
    assert len(statuses) == len(list(run_dir.glob("*.png")))
    assert all(s["ok"] for s in statuses), [s for s in statuses if not s["ok"]]
    dom = chromium(run_dir / "report.html", tmp_path, "--dump-dom")
    table = re.search(r'<table id="metrics-table".*?</table>', dom, re.S)
    assert table, "no metrics table in the rendered page"
    for metric in ("elbo", "log_likelihood", "kl", "mse_per_pixel", "active_units"):
        assert f"<td>{metric}</td>" in table.group(0), metric
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    shot.unlink(missing_ok=True)
    chromium(run_dir / "report.html", tmp_path, f"--screenshot={shot}", "--window-size=1200,2000")
    assert shot.is_file() and shot.stat().st_size > 20_000


@needs_chromium
def test_image_check_catches_a_broken_image(run_dir, tmp_path):
    broken = tmp_path / "broken.html"
    broken.write_text(
        (run_dir / "report.html")
        .read_text()
        .replace("</body>", '<img alt="broken" src="data:image/png;base64,AAAA"></body>')
    )
    statuses = image_status(broken, tmp_path)
    assert [s["alt"] for s in statuses if not s["ok"]] == ["broken"]


@needs_chromium
def test_comparison_page_renders(run_dir, tmp_path):
    other = tmp_path / "ae-digits"
    train(
        Config.from_flat(model="ae", latent_dim=2, hidden=(32,), epochs=2, eval_num_samples=5),
        other,
        progress=False,
        outputs=[write_outputs],
    )
    out = report.write_comparison([run_dir, other], tmp_path / "comparison.html")
    statuses = image_status(out, tmp_path)
    assert len(statuses) == 2 and all(s["ok"] for s in statuses)
    dom = chromium(out, tmp_path, "--dump-dom")
    assert '<table id="metrics-table"' in dom and "vae-digits" in dom and "ae-digits" in dom
    ARTIFACTS.mkdir(exist_ok=True)
    chromium(out, tmp_path, f"--screenshot={ARTIFACTS / 'comparison.png'}", "--window-size=1200,1400")


def test_report_of_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        report.write_report(tmp_path)
    with pytest.raises(ValueError, match="at least two"):
        report.write_comparison([tmp_path], tmp_path / "c.html")


# ---------------------------------------------------------------- experiment tracking


def test_tensorboard_logger_writes_scalars_and_images(tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard is not installed (pip install tensorboard)")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    folder = tmp_path / "tb"
    config = Config.from_flat(model="cvae", latent_dim=2, hidden=(32,), epochs=2, eval_num_samples=5)
    train(config, folder, progress=False, tracker=tracking.build_logger("tensorboard"), outputs=[write_outputs])
    assert len((folder / "metrics.jsonl").read_text().splitlines()) == 2
    events = EventAccumulator(str(folder / "tensorboard"), size_guidance={"images": 0}).Reload()
    tags = events.Tags()
    assert {"train/loss", "train/elbo", "val/elbo", "beta"} <= set(tags["scalars"])
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2]
    assert {"reconstructions", "samples"} <= set(tags["images"])
    assert len(events.Images("samples")) == 2


def test_tensorboard_missing_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    config = Config.from_flat(model="vae", latent_dim=2, hidden=(16,), epochs=1, eval_num_samples=2)
    with pytest.raises(ImportError, match="pip install tensorboard"):
        train(config, tmp_path / "run", progress=False, tracker=tracking.build_logger("tensorboard"))
    assert not (tmp_path / "run").exists()  # failed before writing anything
