"""Winnow model side: exact Winograd algebra, float and integer convolution, quantization.

Nothing in this package imports Amaranth or cocotb (see DESIGN.md).
"""
