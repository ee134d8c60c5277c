"""Datasets: each module's builder returns an in-memory dataset selected by `dataset=` config."""
