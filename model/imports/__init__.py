"""Bring your own model: ONNX and torch.fx readers, the graph, the lowering onto the array (docs/import.md)."""
