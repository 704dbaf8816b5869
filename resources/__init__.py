"""Installed as the package `whetstone_resources` (pyproject.toml); read through core/resources.py."""
