"""Quantization helpers shared by the integer reference and (later) fake-quant training.

Two rounding rules, each used in exactly one place (docs/datapath.md):

* **software quantization** of floats to integers (activations, weights, bias):
  round half to even (``numpy.rint``, identical to ``torch.round``), then clamp;
* **hardware requantization** of the integer accumulator: multiply by an unsigned
  ``mult_bits`` integer, add 2^(shift−1), arithmetic shift right by ``shift``
  (round half up, i.e. towards +∞), then saturate to ``act_bits``.
"""

from __future__ import annotations

import math

import numpy as np

from winnow.model.errors import ConfigError, DataError


def qmax(bits: int) -> int:
    """Largest magnitude of a symmetric signed ``bits`` quantizer (2^(bits−1) − 1)."""
    return (1 << (bits - 1)) - 1


def symmetric_scale(max_abs, bits: int):
    """Scale mapping ±max_abs onto ±qmax(bits); an all-zero tensor gets scale 1.

    ``max_abs`` may be a scalar or an array (per-channel scales).
    """
    max_abs = np.asarray(max_abs, dtype=np.float64)
    if np.any(~np.isfinite(max_abs)) or np.any(max_abs < 0):
        raise DataError("max_abs must be finite and >= 0 to derive a quantization scale")
    scale = max_abs / qmax(bits)
    return np.where(scale > 0, scale, 1.0)


def quantize(x, scale, bits: int) -> np.ndarray:
    """round_half_even(x / scale), clamped to the symmetric range [−qmax, qmax], as int64."""
    x = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise DataError("cannot quantize NaN or infinite values")
    q = np.rint(x / scale)
    lim = qmax(bits)
    return np.clip(q, -lim, lim).astype(np.int64)


def requant_params(scale: float, mult_bits: int, max_shift: int = 62) -> tuple[int, int]:
    """(mult, shift) with mult · 2^−shift ≈ scale, mult normalised to [2^(mult_bits−1), 2^mult_bits).

    The relative error is at most 2^−mult_bits. A scale so small that the shift would
    exceed ``max_shift`` rounds every input to 0 and is returned as (0, 0), which is
    exactly what the hardware computes for it.
    """
    if not (math.isfinite(scale) and scale > 0):
        raise ConfigError(f"requantization scale must be finite and > 0; got {scale}")
    mant, exp = math.frexp(scale)  # scale = mant · 2^exp, mant in [0.5, 1)
    shift = mult_bits - exp
    mult = round(mant * (1 << mult_bits))
    if mult == 1 << mult_bits:  # mant rounded up to 1.0
        mult >>= 1
        shift -= 1
    if shift < 0:
        raise ConfigError(
            f"requantization scale {scale:g} needs a left shift ({-shift} bits): the output scale is too "
            f"small for this layer; raise the output scale or lower mult_bits"
        )
    if shift > max_shift:
        return 0, 0
    return int(mult), int(shift)


def round_shift(z: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """(z + 2^(shift−1)) >> shift elementwise (round half up); shift 0 leaves z unchanged."""
    shift = np.asarray(shift, dtype=np.int64)
    half = np.where(shift > 0, np.left_shift(np.int64(1), np.maximum(shift - 1, 0)), 0)
    return np.right_shift(z + half, shift)


def saturate(z: np.ndarray, bits: int) -> np.ndarray:
    """Clamp to the two's-complement range of ``bits``: [−2^(bits−1), 2^(bits−1) − 1]."""
    return np.clip(z, -(1 << (bits - 1)), (1 << (bits - 1)) - 1)
