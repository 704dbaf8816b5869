"""Duplicates: exact hashing, embeddings, pair search, clusters."""
