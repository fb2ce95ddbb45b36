"""Pipelines over run folders: sweeps of settings × seeds and their reports."""
