"""The version of vaekit (one place; the package and the reports read it)."""

__version__ = "0.2.0"
