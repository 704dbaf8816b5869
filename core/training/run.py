"""Moved to core.runs (the one home of the run folder, its events and its summary); this name stays for code
written against it before the move."""

from core.runs import RunFolder, fold_resumed, sha256_file

__all__ = ["RunFolder", "fold_resumed", "sha256_file"]
