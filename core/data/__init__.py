"""Datasets: formats, the canonical Example, the workspace store, splits and token counts."""
