"""Random integer test layers (NumPy only): shapes, densities, extreme values."""

from __future__ import annotations

import dataclasses

import numpy as np

from winnow.model.integer.datapath import DatapathConfig, signed_range
from winnow.model.files.layer_file import SparseLayer
from winnow.model.integer.reference import quantize_conv


def random_layer(config: DatapathConfig, *, C: int, K: int, H: int, W: int, density: float, seed: int,
                 padding: int = 1, extreme: bool = False, relu: bool = False, winograd_relu: bool = False,
                 name: str = "rand") -> SparseLayer:
    """A quantized layer with a random Winograd-domain mask of the given density.

    ``extreme`` replaces the kept weights by ±2^(b−1) (and −2^(b−1)), the bias by the
    ends of its range scaled down, and uses the largest multipliers: the corners of the
    datapath.
    """
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((K, C, config.r, config.r)) / (config.r * np.sqrt(C))
    b = rng.standard_normal(K) * 0.1
    q = quantize_conv(w, b, 0.02, 0.05, config, padding=padding, relu=relu, winograd_relu=winograd_relu, name=name)
    n = config.n
    keep = rng.random((K, C, n, n)) < density
    wts = np.where(keep, q.weights, 0)
    bias, mult, shift = q.bias, q.mult, q.shift
    if extreme:
        lo, hi = signed_range(config.weight_bits)
        wts = np.where(keep, rng.choice([lo, hi, lo, -hi], size=wts.shape), 0)
        blo, bhi = signed_range(config.bias_bits)
        bias = rng.choice([blo // 1024, bhi // 1024, 0], size=K).astype(np.int64)
        mult = np.full(K, (1 << config.mult_bits) - 1, dtype=np.int64)
        shift = rng.integers(0, config.widths.requant_bits - 1, size=K).astype(np.int64)
    q = dataclasses.replace(q, weights=wts.astype(np.int64), bias=bias, mult=mult, shift=shift)
    return SparseLayer.from_quantized_conv(q, (H, W), name=name)


def random_input(layer: SparseLayer, seed: int, extreme: bool = False) -> np.ndarray:
    """Activations (C, H, W) in the full signed act_bits range (``extreme``: only the two ends)."""
    rng = np.random.default_rng(seed)
    lo, hi = signed_range(layer.config.act_bits)
    shape = (layer.in_channels, *layer.size)
    if extreme:
        return rng.choice([lo, hi], size=shape).astype(np.int64)
    return rng.integers(lo, hi + 1, size=shape).astype(np.int64)


def reference_output(layer: SparseLayer, xq: np.ndarray) -> np.ndarray:
    """The oracle: winnow.model.integer.reference.integer_conv on one image → (K, Ho, Wo)."""
    from winnow.model.integer.reference import integer_conv

    return integer_conv(xq[None], layer.to_quantized_conv())[0]
