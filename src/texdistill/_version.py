"""The package version: one place, imported by the package and by what prints or writes it (a leaf)."""

__version__ = "0.1.0"
