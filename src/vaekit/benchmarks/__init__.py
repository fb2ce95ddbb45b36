"""Benchmarks that reproduce published tables: each trains runs and writes Markdown + JSON results."""
