"""Benchmarks that reproduce published protocols; each module backs a ``vaekit benchmark <name>`` command."""
