"""Reporting: figures, the HTML report and experiment trackers (MLflow, W&B)."""
