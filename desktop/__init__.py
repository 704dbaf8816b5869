"""Whetstone desktop app (PySide6). Thin views over core objects."""
