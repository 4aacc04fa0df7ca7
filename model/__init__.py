"""Winnow model side: exact Winograd algebra, float and integer convolution, quantization.

Nothing in this package imports Amaranth or cocotb (README.md, "Dependencies flow one way").
"""
