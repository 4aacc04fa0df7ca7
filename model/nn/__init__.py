"""PyTorch layers: native Winograd layers, the model converter, quantization-aware training, checkpoints."""
