"""Benchmarks that reproduce published tables (run through ``vaekit benchmark ...``)."""
