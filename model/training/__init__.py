"""Training: seeded loops, the per-position scaled optimizer, the dense → prune → QAT → measure pipeline."""
