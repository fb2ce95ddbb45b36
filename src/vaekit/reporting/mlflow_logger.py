"""MLflow tracking (``vaekit train --logger mlflow``; needs ``pip install 'vaekit[mlflow]'``).

One training run is one MLflow run:

- parameters: every setting of the run's Config under its flat name (its flag: ``latent_dim``,
  ``epochs``, ...), strings as they are, other values as JSON;
- metrics: every numeric entry of ``metrics.jsonl`` with ``step`` = the epoch (lists such as
  ``val_kl_per_dim`` as ``val_kl_per_dim/0``, ...), then the test metrics of ``summary.json`` as
  ``test_<name>`` at the last epoch;
- artifacts: every file at the top of the run folder (report.html, the PNG figures,
  summary.json, metrics.jsonl, config.json, model.safetensors, ...; not the checkpoint folder);
- tags: ``model``, ``data``, ``vaekit_version``, ``data_shape``, ``run_dir``.

Where: the ``tracking_uri`` argument, else ``MLFLOW_TRACKING_URI``, else an embedded SQLite store
beside the run folders (``<runs_dir>/mlflow.db``, artifacts in ``<runs_dir>/mlartifacts``; browse
it with ``mlflow ui --backend-store-uri sqlite:///<runs_dir>/mlflow.db``). The experiment is the
``experiment`` argument, else ``MLFLOW_EXPERIMENT_NAME``, else "vaekit". The run id and its store
are kept in ``RUN/tracking.json``: ``--resume`` continues the same MLflow run in the same store
(unless ``tracking_uri`` names another; a store without the run gets a new run with every epoch).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from .tracking import Logger, RunContext, numeric_items, param_value, vaekit_version

INSTALL = "pip install 'vaekit[mlflow]' (or pip install mlflow)"
#: MLflow's limits per log_batch call.
MAX_METRICS, MAX_PARAMS = 1000, 100


def embedded_store(runs_dir) -> tuple[str, str]:
    """``(tracking URI, artifact location)`` of the SQLite store kept in the folder of run folders."""
    runs_dir = Path(runs_dir).resolve()
    return f"sqlite:///{runs_dir / 'mlflow.db'}", (runs_dir / "mlartifacts").as_uri()


class MLflowLogger(Logger):
    """Track a run in MLflow (see the module doc for what is logged and where).

    Args:
        tracking_uri: MLflow tracking URI; default ``MLFLOW_TRACKING_URI``, else the embedded store.
        experiment: experiment name; default ``MLFLOW_EXPERIMENT_NAME``, else "vaekit".
        run_name: MLflow run name; default the run folder's name.

    Raises:
        ImportError: MLflow is not installed (the message names the pip command).
    """

    name = "mlflow"

    def __init__(self, tracking_uri: str | None = None, experiment: str | None = None, run_name: str | None = None):
        super().__init__()
        self.tracking_uri, self.experiment, self.run_name = tracking_uri, experiment, run_name
        self.client = self.run_id = None

    @classmethod
    def check(cls) -> None:
        """Raise ImportError naming the pip command when MLflow is missing."""
        try:
            import mlflow  # noqa: F401
        except ImportError:
            raise ImportError(f"--logger mlflow needs MLflow: {INSTALL}") from None

    def start(self, run: RunContext) -> None:
        """Create the MLflow run (or, on resume, reopen the one in ``RUN/tracking.json``), log the
        parameters and tags."""
        self.check()
        from mlflow import MlflowClient

        super().start(run)
        state = self.load_state() if run.resume else {}
        uri, artifacts = embedded_store(Path(run.run_dir).resolve().parent)
        # on resume, the store of the stored run (an embedded one is found again beside the run folder, even if moved)
        stored = (uri if state.get("embedded") else state.get("tracking_uri")) if state.get("run_id") else None
        self.uri = self.tracking_uri or stored or os.environ.get("MLFLOW_TRACKING_URI") or uri
        embedded = self.uri == uri
        for name in ("alembic", "mlflow.store.db.utils"):  # no "creating tables" lines in the CLI's output
            logging.getLogger(name).setLevel(logging.WARNING)
        self.client = MlflowClient(tracking_uri=self.uri)
        if state.get("run_id") and self._reopen(state["run_id"]):
            return
        self.logged_epoch = 0  # a new MLflow run: send the whole history
        experiment_id = self._experiment_id(artifacts if embedded else None)
        config = run.config
        tags = {
            "model": config.model.name,
            "data": config.data.name,
            "vaekit_version": vaekit_version(),
            "data_shape": param_value(list(run.model.data_shape)),
            "run_dir": str(Path(run.run_dir).resolve()),
        }
        self.run_id = self.client.create_run(
            experiment_id, run_name=self.run_name or Path(run.run_dir).name, tags=tags
        ).info.run_id
        self.save_state(
            tracking_uri=self.uri, embedded=embedded, run_id=self.run_id, experiment_id=experiment_id, last_epoch=0
        )
        self._log_params(self.run.params())

    def _log_params(self, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in params.items()]
        for i in range(0, len(items), MAX_PARAMS):
            self.client.log_batch(self.run_id, params=items[i : i + MAX_PARAMS])

    def _experiment_id(self, artifact_location: str | None) -> str:
        from mlflow.exceptions import MlflowException

        name = self.experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME") or "vaekit"
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        try:
            return self.client.create_experiment(name, artifact_location=artifact_location)
        except MlflowException:  # created meanwhile by another process
            return self.client.get_experiment_by_name(name).experiment_id

    def _reopen(self, run_id: str) -> bool:
        """Continue the stored run: status RUNNING, parameters it lacks logged; a changed value
        (``--epochs`` to extend a run) becomes the tag ``resumed.<name>`` (MLflow parameters are
        immutable). False when the store no longer has the run."""
        from mlflow.exceptions import MlflowException

        try:
            logged = self.client.get_run(run_id).data.params
        except MlflowException:
            return False
        self.run_id = run_id
        self.client.update_run(run_id, status="RUNNING")
        params = self.run.params()
        self._log_params({k: v for k, v in params.items() if k not in logged})
        for key, value in params.items():
            if key in logged and logged[key] != value:
                self.client.set_tag(run_id, f"resumed.{key}", value)
        return True

    def _log_metrics(self, items, step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(key, value, now, step) for key, value in items]
        for i in range(0, len(metrics), MAX_METRICS):
            self.client.log_batch(self.run_id, metrics=metrics[i : i + MAX_METRICS])

    def log(self, metrics: dict) -> None:
        """Every numeric entry of ``metrics`` at ``step = metrics["epoch"]``, in one batch."""
        self._log_metrics(numeric_items(metrics), int(metrics["epoch"]))

    def finish(self, summary: dict) -> None:
        """The test metrics (``test_<name>``, step = epochs trained) and the run folder's files."""
        test = {**summary.get("test", {}), "training_time_s": summary.get("training_time_s")}
        self._log_metrics(
            numeric_items({k: v for k, v in test.items() if v is not None}, prefix="test_"),
            int(summary.get("epochs_trained", self.logged_epoch)),
        )
        for path in sorted(Path(self.run.run_dir).iterdir()):
            if path.is_file() and not path.name.startswith("."):
                self.client.log_artifact(self.run_id, str(path))

    def close(self, status: str = "FINISHED") -> None:
        """Mark the MLflow run FINISHED, FAILED or KILLED."""
        if self.run_id is not None:
            self.client.set_terminated(self.run_id, status)

    def describe(self) -> dict:
        """``{"logger": "mlflow", "tracking_uri": ..., "run_id": ...}``."""
        return {"logger": self.name, "tracking_uri": self.uri, "run_id": self.run_id} if self.run_id else {}
