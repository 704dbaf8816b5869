"""Evaluation: generation, metrics, review sessions, reports."""
