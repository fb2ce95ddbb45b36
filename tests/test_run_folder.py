"""io.RunFolder, the one owner of a run folder, and vaekit.run.train, the one way to train a run:
the lock is taken once, a new run that finished no epoch leaves nothing behind, every file of the
run is written once, and the figures and report are built from the run in memory."""

import collections
import threading
from pathlib import Path

import pytest
import torch

from vaekit import io, run
from vaekit.config import Config
from vaekit.io import RunFolder
from vaekit.reporting.outputs import write_outputs
from vaekit.runtime import files

CONFIG = Config.from_flat(latent_dim=2, hidden=(16,), epochs=2, eval_num_samples=5)


def test_the_folder_is_held_for_the_whole_run(tmp_path):
    path = tmp_path / "runs" / "a"
    seen = []

    def second_owner():
        try:
            with RunFolder(path, overwrite=True):
                seen.append("entered")
        except FileExistsError as e:
            seen.append(str(e))

    with RunFolder(path) as folder:
        assert folder.is_open and folder.created and path.is_dir()
        thread = threading.Thread(target=second_owner)
        thread.start()
        thread.join()
        assert io.lock_path(path).is_file()
    assert len(seen) == 1 and "is in use by process" in seen[0]
    assert not io.lock_path(path).exists() and not folder.is_open
    with pytest.raises(FileExistsError, match="already exists; pass --resume"):
        with RunFolder(path):
            pass


def test_a_new_run_without_a_finished_epoch_is_removed_a_later_failure_kept(tmp_path):
    with pytest.raises(RuntimeError, match="boom"):
        with RunFolder(tmp_path / "new"):
            raise RuntimeError("boom")
    assert not (tmp_path / "new").exists()
    with pytest.raises(KeyboardInterrupt):
        with RunFolder(tmp_path / "started") as folder:
            folder.checkpoint.parent.mkdir()
            folder.checkpoint.write_bytes(b"x")
            raise KeyboardInterrupt
    assert (tmp_path / "started").is_dir()  # an epoch finished: --resume continues it
    with pytest.raises(ValueError, match="either resumed or overwritten"):
        RunFolder(tmp_path / "x", resume=True, overwrite=True)
    with pytest.raises(FileNotFoundError, match="not a folder"):
        with RunFolder(tmp_path / "missing", resume=True):
            pass
    assert not (tmp_path / "missing").exists()


def test_train_writes_each_file_of_the_run_once(tmp_path, monkeypatch):
    written = collections.Counter()
    real = files.atomic_write

    def counting(path, data):
        written[Path(path).name] += 1
        real(path, data)

    monkeypatch.setattr(files, "atomic_write", counting)
    summary = run.train(CONFIG, tmp_path / "a", progress=False)
    assert summary["epochs_trained"] == 2
    assert written["config.json"] == written["summary.json"] == written["model.safetensors"] == 1
    assert written["metrics.jsonl"] == 2 and written["last.safetensors"] == 2  # once per epoch
    assert io.load_config(tmp_path / "a").train.epochs == 2 and io.read_json(tmp_path / "a" / "summary.json") == summary


def test_resume_keeps_the_saved_config_and_continues_bit_identically(tmp_path):
    straight = run.train(CONFIG.replace(epochs=3), tmp_path / "straight", progress=False)
    run.train(CONFIG, tmp_path / "resumed", progress=False)
    with pytest.raises(ValueError, match="latent_dim differ"):
        run.train(CONFIG.replace(latent_dim=3), RunFolder(tmp_path / "resumed", resume=True), progress=False)
    resumed = run.train(None, RunFolder(tmp_path / "resumed", resume=True, epochs=3), progress=False)
    assert resumed["test"] == straight["test"] and resumed["epochs_trained"] == 3
    a, b = io.load(tmp_path / "straight"), io.load(tmp_path / "resumed")
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    with pytest.raises(ValueError, match="needs a config"):
        run.train(None, RunFolder(tmp_path / "other"), progress=False)
    assert not (tmp_path / "other").exists()


def test_figures_and_report_come_from_the_run_in_memory(tmp_path, monkeypatch):
    """The output hook reads nothing the run wrote: config.json, summary.json and metrics.jsonl
    are not opened again (only the PNG figures it embeds are read)."""
    from vaekit.reporting import report

    def refused(*args, **kwargs):
        raise AssertionError("read back from disk")

    pages, render = [], report._render
    monkeypatch.setattr(
        report, "_render", lambda template, **context: pages.append(context["run"]) or render(template, **context)
    )
    for name in ("load_record", "load_config", "read_json", "read_json_lines"):
        monkeypatch.setattr(io, name, refused)
    summary = run.train(CONFIG, tmp_path / "a", progress=False, outputs=[write_outputs])
    monkeypatch.undo()
    assert (tmp_path / "a" / report.REPORT).is_file() and (tmp_path / "a" / "loss_curves.png").is_file()
    # the page built from memory is the page built from the folder's files
    assert pages[0] == report.collect(tmp_path / "a")
    assert pages[0]["test"] == summary["test"] and len(pages[0]["figures"]) >= 3


@pytest.mark.parametrize("likelihood, advice", [("bernoulli", "Train longer"), ("gaussian", "--likelihood-scale")])
def test_the_collapse_note_gives_advice_for_the_run_s_own_likelihood(likelihood, advice):
    """A model whose encoder mean ignores x (no active unit) gets the posterior-collapse note, with the
    advice that fits its likelihood (the scale is a Gaussian's setting only)."""
    from vaekit.models import build_model
    from vaekit.run import summarize

    config = Config.from_flat(likelihood=likelihood, latent_dim=2, hidden=(8,), eval_num_samples=4, binarize="none")
    model = build_model(config.model, (1, 8, 8)).eval()
    with torch.no_grad():  # every code the same: the encoder mean does not depend on x
        for p in model.encoder.parameters():
            p.zero_()
    x = torch.rand(20, 1, 8, 8)
    summary = summarize(model, config, x, [{"time": 0.0}])
    assert summary["test"]["active_units"] == 0
    assert "posterior collapse" in summary["note_collapse"] and advice in summary["note_collapse"]


def test_the_background_writer_writes_in_order_and_raises_a_failed_write(tmp_path):
    """files.BackgroundWriter: writes land in order (a callable's bytes made in the thread), flush
    waits for them, and the error of a failed write comes back from the next write or flush."""
    writer = files.BackgroundWriter()
    target = tmp_path / "m.jsonl"
    for i in range(20):
        writer.write(target, f"{i}\n")
    writer.write(tmp_path / "b.bin", lambda: b"made in the thread")
    writer.flush()
    assert target.read_text() == "19\n" and (tmp_path / "b.bin").read_bytes() == b"made in the thread"
    (tmp_path / "a_file").write_text("x")
    writer.write(tmp_path / "a_file" / "under_a_file.json", "{}")  # its folder is a file: the write fails
    with pytest.raises(OSError):
        writer.flush()
    writer.write(tmp_path / "a_file" / "again.json", "{}")
    with pytest.raises(OSError):  # the failed write's error comes back from the next write, which starts nothing
        writer.write(target, "late\n")
    writer.close()
    assert target.read_text() == "19\n"


def test_a_checkpoint_snapshot_is_not_changed_by_later_training(tmp_path):
    """The checkpoint is serialised in the background: its snapshot copies every tensor, so steps
    taken after the epoch's end do not reach the file."""
    from vaekit.training.checkpoint import checkpoint_bytes, checkpoint_snapshot
    from vaekit.training.lean_adam import LeanAdam

    net = torch.nn.Linear(3, 2)
    optimizer = LeanAdam(net.parameters(), lr=0.1)
    net(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    before = checkpoint_bytes(net, optimizer, {"epoch": 1}, {"rng": torch.zeros(4, dtype=torch.uint8)})
    snapshot = checkpoint_snapshot(net, optimizer, {"epoch": 1}, {"rng": torch.zeros(4, dtype=torch.uint8)})
    optimizer.step()  # the weights and Adam's moments change in place
    with torch.no_grad():
        net.weight.add_(1.0)
    (tmp_path / "before.safetensors").write_bytes(before)
    (tmp_path / "snapshot.safetensors").write_bytes(snapshot())
    tensors, metadata = files.read_safetensors(tmp_path / "before.safetensors")
    later, later_metadata = files.read_safetensors(tmp_path / "snapshot.safetensors")
    assert metadata == later_metadata and tensors.keys() == later.keys()
    assert all(torch.equal(tensors[k], later[k]) for k in tensors)  # (safetensors orders the metadata freely)


def test_metrics_are_on_disk_when_fit_returns_and_when_the_folder_is_left(tmp_path):
    """metrics.jsonl is written in the background: on disk, every epoch, once training returns."""
    run.train(CONFIG, tmp_path / "a", progress=False)
    rows = files.read_json_lines(tmp_path / "a" / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == [1, 2]
    with RunFolder(tmp_path / "b", config=CONFIG) as folder:
        folder.write_metrics([{"epoch": 1}])
        folder.write_metrics([{"epoch": 1}, {"epoch": 2}])
    assert files.read_json_lines(tmp_path / "b" / "metrics.jsonl") == [{"epoch": 1}, {"epoch": 2}]
