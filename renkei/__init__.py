"""Renkei (連携): the `renkei` command-line entry point and process composition roots."""

__version__ = "0.1.0"
