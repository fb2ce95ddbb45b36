"""Saving and loading: safetensors weights + JSON, written atomically, never pickle.

:mod:`.model_files`: a saved model (weights and the config that rebuilds it).
:mod:`.run_folder`: a training run's folder (names, lock, checkpoint, metrics, summary).
Every name of both is importable from ``vaekit.io``.
"""

from ..runtime.files import atomic_write, read_json, read_json_lines, read_safetensors, write_json
from .model_files import (
    CONFIG,
    FORMAT_VERSION,
    WEIGHTS,
    initialise,
    load,
    load_config,
    load_record,
    load_weights,
    model_config,
    model_record,
    save,
    save_weights,
)
from .run_folder import (
    CHECKPOINT,
    METRICS,
    SCALER,
    SUMMARY,
    RunFolder,
    clean_stale_files,
    create_run_dir,
    default_name,
    discard_unstarted,
    hold_run,
    load_run,
    load_run_split,
    load_scaler,
    lock_path,
    run_path,
)

__all__ = [
    "CHECKPOINT",
    "CONFIG",
    "FORMAT_VERSION",
    "METRICS",
    "RunFolder",
    "SCALER",
    "SUMMARY",
    "WEIGHTS",
    "atomic_write",
    "clean_stale_files",
    "create_run_dir",
    "default_name",
    "discard_unstarted",
    "hold_run",
    "initialise",
    "load",
    "load_config",
    "load_record",
    "load_run",
    "load_run_split",
    "load_scaler",
    "load_weights",
    "lock_path",
    "model_config",
    "model_record",
    "read_json",
    "read_json_lines",
    "read_safetensors",
    "run_path",
    "save",
    "save_weights",
    "write_json",
]
