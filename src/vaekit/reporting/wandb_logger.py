"""Weights & Biases tracking (``vaekit train --logger wandb``; needs ``pip install 'vaekit[wandb]'``).

One training run is one W&B run, written under ``RUN/wandb/``:

- config: every setting of the run's Config under its flat name (``latent_dim``, ``epochs``, ...);
- history: every numeric entry of ``metrics.jsonl`` with ``step`` = the epoch (lists as
  ``name/0``, ``name/1``, ...); summary: the test metrics of ``summary.json`` as ``test_<name>``;
- an artifact ``run-<name>`` (type ``vaekit-run``) holding every file at the top of the run
  folder (report.html, figures, summary.json, model.safetensors, ...);
- tags: the model, the data and ``vaekit-<version>``.

W&B's own settings apply: ``WANDB_PROJECT`` (default "vaekit"), ``WANDB_ENTITY``, ``WANDB_MODE``
(``offline`` keeps everything on disk, to ``wandb sync`` later; ``disabled``), ``wandb login``.
The run id is kept in ``RUN/tracking.json``: ``--resume`` continues the same W&B run.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

from .tracking import Logger, RunContext, numeric_items, vaekit_version

INSTALL = "pip install 'vaekit[wandb]' (or pip install wandb)"


class WandbLogger(Logger):
    """Track a run in Weights & Biases (see the module doc for what is logged).

    Args:
        project: W&B project; default ``WANDB_PROJECT``, else "vaekit".
        entity: W&B team or user; default ``WANDB_ENTITY`` / your default entity.
        run_name: display name; default the run folder's name.
        mode: "online", "offline" or "disabled"; default ``WANDB_MODE`` / online.

    Raises:
        ImportError: wandb is not installed (the message names the pip command).
    """

    name = "wandb"

    def __init__(
        self,
        project: str | None = None,
        entity: str | None = None,
        run_name: str | None = None,
        mode: str | None = None,
    ):
        super().__init__()
        self.project, self.entity, self.run_name, self.mode = project, entity, run_name, mode
        self.wandb_run = None

    @classmethod
    def check(cls) -> None:
        """Raise ImportError naming the pip command when wandb is missing."""
        try:
            import wandb  # noqa: F401
        except ImportError:
            raise ImportError(f"--logger wandb needs wandb: {INSTALL}") from None

    def start(self, run: RunContext) -> None:
        """``wandb.init`` in ``RUN/wandb`` (on resume with the stored run id, ``resume="allow"``).

        Raises:
            RuntimeError: wandb could not start (e.g. not logged in; the message says what to do).
        """
        self.check()
        import wandb

        super().start(run)
        state = self.load_state() if run.resume else {}
        run_id = state.get("id") or secrets.token_hex(6)  # W&B ids: lowercase letters and digits
        if not state.get("id"):
            self.logged_epoch = 0
        config = run.config
        try:
            self.wandb_run = wandb.init(
                project=self.project or os.environ.get("WANDB_PROJECT") or "vaekit",
                entity=self.entity,
                name=self.run_name or Path(run.run_dir).name,
                id=run_id,
                resume="allow",
                dir=str(run.run_dir),
                mode=self.mode,
                job_type="train",
                config=config.to_flat(),
                tags=[config.model.name, config.data.name, f"vaekit-{vaekit_version()}"],
                settings=wandb.Settings(console="off", silent=True),
            )
        except Exception as e:  # wandb raises its own error types; one clear line for the CLI
            raise RuntimeError(
                f"wandb could not start: {e}; run `wandb login`, or set WANDB_MODE=offline to "
                "write the run to disk only"
            ) from None
        self.save_state(id=run_id, project=self.wandb_run.project, last_epoch=self.logged_epoch)

    def log(self, metrics: dict) -> None:
        """Every numeric entry of ``metrics`` at ``step = metrics["epoch"]``."""
        self.wandb_run.log(dict(numeric_items(metrics)), step=int(metrics["epoch"]))

    def finish(self, summary: dict) -> None:
        """The test metrics into the run summary, and the run folder's files as an artifact."""
        import wandb

        test = {**summary.get("test", {}), "training_time_s": summary.get("training_time_s")}
        self.wandb_run.summary.update(
            dict(numeric_items({k: v for k, v in test.items() if v is not None}, prefix="test_"))
        )
        name = "run-" + re.sub(r"[^\w.-]", "-", Path(self.run.run_dir).name)
        artifact = wandb.Artifact(name, type="vaekit-run", metadata={"epochs_trained": summary.get("epochs_trained")})
        for path in sorted(Path(self.run.run_dir).iterdir()):
            if path.is_file() and not path.name.startswith("."):
                artifact.add_file(str(path))
        self.wandb_run.log_artifact(artifact)

    def close(self, status: str = "FINISHED") -> None:
        """``finish`` the W&B run (exit code 0 when FINISHED, else 1)."""
        if self.wandb_run is not None:
            self.wandb_run.finish(exit_code=0 if status == "FINISHED" else 1)
            self.wandb_run = None

    def describe(self) -> dict:
        """``{"logger": "wandb", "project": ..., "run_id": ..., "dir": ...}``."""
        if self.wandb_run is None:
            return {}
        return {
            "logger": self.name,
            "project": self.wandb_run.project,
            "run_id": self.wandb_run.id,
            "dir": str(self.wandb_run.dir),
        }
