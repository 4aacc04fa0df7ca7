"""Pruning methods, one module each, registered by name."""
