"""Winograd algebra: exact Cook–Toom matrices, interpolation points, tiling, float Winograd convolution."""
