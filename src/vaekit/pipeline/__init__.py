"""The run pipeline: run folders (:mod:`.folders`) and training a config end to end in one (:mod:`.run`)."""

from .folders import (CHECKPOINT, METRICS, SCALER, SUMMARY, class_count, clean_stale_files, condition_labels, create_run_dir, data_options,
                      default_name, examples, fit_scaler, hold_run, initialise, load_dataset, load_run_split, load_scaler,
                      prepare, resolve_condition, run_path, split_validation, standardized, streamed_splits)
from .run import summarise, train_run, write_figures

__all__ = ["CHECKPOINT", "METRICS", "SCALER", "SUMMARY", "class_count", "clean_stale_files", "condition_labels", "create_run_dir", "data_options",
           "default_name", "examples", "fit_scaler", "hold_run", "initialise", "load_dataset", "load_run_split", "load_scaler",
           "prepare", "resolve_condition", "run_path", "split_validation", "standardized", "streamed_splits", "summarise",
           "train_run", "write_figures"]
