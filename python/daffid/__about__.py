"""The package version: the repository's VERSION (tests/test_packaging.py checks)."""

__version__ = "0.1.0"
