"""Applications built on the library: the foundation demo and the pruning experiment command."""
