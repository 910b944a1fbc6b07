"""Architectures and datasets, registered by name."""
