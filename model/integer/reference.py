"""Bit-accurate integer reference of the Winograd datapath (docs/datapath.md).

This is the oracle for every RTL test: integer in, integer out, every stage checked
against the exact worst-case ranges derived by :class:`~winnow.model.integer.datapath.DatapathConfig`.

Stages per layer (names as in docs/datapath.md)::

    x   (act_bits)  ──B'ᵀ·B'──►  V'  ──[ReLU]──►  ×W (weight_bits) ──Σ_c──►  acc
    acc ──<< (E−e_p)──► shifted ──A'ᵀ·A'──► Y ──+bias──► z ──×mult, round, >>shift──► sat ──[ReLU]──► out
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from winnow.model.integer.datapath import DatapathConfig, signed_range
from winnow.model.errors import ConfigError, DataError, WinnowError
from winnow.model.integer.quant import quantize, requant_params, round_shift, saturate, symmetric_scale
from winnow.model.algebra.tiling import ConvGeometry, normalize_padding
from winnow.model.algebra.winograd_conv import (
    assemble_positions,
    input_positions,
    kernel_to_winograd,
    output_transform,
    weights_by_position,
)

#: Accumulations whose worst case stays below 2^53 run through float64 BLAS, which is
#: exact there: every partial sum, in any order, is an integer bounded by Σ|terms|.
_EXACT_FLOAT_BITS = 53


class DatapathOverflow(WinnowError, ArithmeticError):
    """An intermediate left its derived range: a bug in the width derivation or the data path."""


def _check_range(name: str, values: np.ndarray, lo, hi, trace: dict | None) -> None:
    lo = np.asarray(lo)
    hi = np.asarray(hi)
    if values.size and (np.any(values < lo) or np.any(values > hi)):
        raise DatapathOverflow(
            f"stage {name}: value range [{values.min()}, {values.max()}] leaves the derived range "
            f"[{lo.min()}, {hi.max()}]"
        )
    if trace is not None and values.size:
        old = trace.get(name)
        vmin, vmax = int(values.min()), int(values.max())
        trace[name] = (vmin, vmax) if old is None else (min(old[0], vmin), max(old[1], vmax))


def check_int_array(name: str, x, bits: int) -> np.ndarray:
    """``x`` as int64, or a DataError if it is not integer or leaves the signed ``bits`` range."""
    if not isinstance(x, np.ndarray):
        if type(x).__module__.startswith("torch"):
            raise DataError(f"{name} is a torch tensor; the integer reference takes NumPy integer arrays (use .numpy())")
        x = np.asarray(x)
    if x.dtype.kind not in "iu":
        raise DataError(f"{name} must be an integer array; got dtype {x.dtype} (quantize it first)")
    lo, hi = signed_range(bits)
    if x.size and (x.min() < lo or x.max() > hi):
        raise DataError(f"{name} holds values in [{x.min()}, {x.max()}], outside the signed {bits}-bit range [{lo}, {hi}]")
    return x.astype(np.int64, copy=False)


@dataclass(frozen=True)
class QuantizedConv:
    """One integer Winograd convolution layer, exactly as the hardware runs it.

    Parameters
    ----------
    config : DatapathConfig
    weights : int64 array, (K, C, n, n) or (K, C, n, n, n)
        Quantized Winograd-domain weights W ≈ U' · 2^e_p / weight_scale[k].
    bias : int64 array, (K,)
        Added to Y (scale in_scale · weight_scale[k] · 2^−E).
    mult, shift : int64 arrays, (K,)
        Requantization per output channel: out = sat((z · mult + 2^(shift−1)) >> shift).
    padding : tuple of int
    relu : bool
        ReLU after saturation.
    winograd_relu : bool
        ReLU on V' (Liu & Pool 2018, Winograd-ReLU).
    in_scale, out_scale : float
        Real value of one input / output LSB.
    weight_scale : float64 array, (K,)
        Real value of one weight LSB per output channel (before the 2^−e_p).
    name : str
    """

    config: DatapathConfig
    weights: np.ndarray
    bias: np.ndarray
    mult: np.ndarray
    shift: np.ndarray
    padding: tuple[int, ...] = (0, 0)
    relu: bool = False
    winograd_relu: bool = False
    in_scale: float = 1.0
    out_scale: float = 1.0
    weight_scale: np.ndarray | None = field(default=None, repr=False)
    name: str = "conv"

    def __post_init__(self):
        cfg = self.config
        d, n = cfg.dims, cfg.n
        w = check_int_array(f"{self.name}.weights", self.weights, cfg.weight_bits)
        if w.ndim != 2 + d or tuple(w.shape[2:]) != (n,) * d:
            raise DataError(f"{self.name}.weights must have shape (K, C{', ' + str(n)} * {d}) for {cfg.alg.name} {d}-D; got {w.shape}")
        K, C = w.shape[:2]
        if C > cfg.c_max:
            raise ConfigError(f"{self.name} has C = {C} input channels; the datapath is sized for c_max = {cfg.c_max}")
        b = check_int_array(f"{self.name}.bias", self.bias, cfg.bias_bits)
        mult = check_int_array(f"{self.name}.mult", self.mult, 64)
        shift = check_int_array(f"{self.name}.shift", self.shift, 64)
        for nm, arr in (("bias", b), ("mult", mult), ("shift", shift)):
            if arr.shape != (K,):
                raise DataError(f"{self.name}.{nm} must have shape ({K},); got {arr.shape}")
        if mult.size and (mult.min() < 0 or mult.max() >= 1 << cfg.mult_bits):
            raise DataError(f"{self.name}.mult must be in [0, 2^{cfg.mult_bits}); got [{mult.min()}, {mult.max()}]")
        max_shift = cfg.widths.requant_bits - 1
        if shift.size and (shift.min() < 0 or shift.max() > max_shift):
            raise DataError(f"{self.name}.shift must be in [0, {max_shift}]; got [{shift.min()}, {shift.max()}]")
        object.__setattr__(self, "padding", normalize_padding(self.padding, d))
        for nm, arr in (("weights", w), ("bias", b), ("mult", mult), ("shift", shift)):
            arr = arr.copy()
            arr.setflags(write=False)
            object.__setattr__(self, nm, arr)

    @property
    def out_channels(self) -> int:
        return self.weights.shape[0]

    @property
    def in_channels(self) -> int:
        return self.weights.shape[1]

    def output_scale_per_channel(self) -> np.ndarray:
        """Real value of one LSB of Y (before bias and requantization), per output channel."""
        return self.in_scale * np.asarray(self.weight_scale) * 2.0 ** -self.config.exponent_max

    def __call__(self, xq: np.ndarray, trace: dict | None = None) -> np.ndarray:
        return integer_conv(xq, self, trace=trace)


def quantize_winograd_weights(u, bias, in_scale: float, out_scale: float, config: DatapathConfig, *,
                              padding=0, relu=False, winograd_relu=False, name="conv") -> QuantizedConv:
    """Quantize float Winograd-domain weights U = G g Gᵀ (K, C, n, …) onto ``config``'s datapath.

    Folds the integer-transform factors into U (U' = U · fold), applies the
    per-position exponents, quantizes per output channel (round half even), and derives
    the integer bias and the requantization multiplier/shift per channel.
    """
    cfg = config
    u = np.asarray(u, dtype=np.float64)
    d = cfg.dims
    if u.ndim != 2 + d or tuple(u.shape[2:]) != (cfg.n,) * d:
        raise DataError(f"U must have shape (K, C{', ' + str(cfg.n)} * {d}); got {u.shape}")
    for nm, v in (("in_scale", in_scale), ("out_scale", out_scale)):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
            raise ConfigError(f"{nm} must be a number; got {v!r}")
    if u.shape[0] < 1 or u.shape[1] < 1:
        raise DataError(f"U must have K >= 1 and C >= 1; got shape {u.shape}")
    if not np.all(np.isfinite(u)):
        raise DataError("U holds NaN or infinite values")
    if not (math.isfinite(in_scale) and in_scale > 0 and math.isfinite(out_scale) and out_scale > 0):
        raise ConfigError(f"in_scale and out_scale must be finite and > 0; got {in_scale}, {out_scale}")
    K = u.shape[0]
    wt = u * cfg.transforms.fold(d) * np.exp2(cfg.exponents)  # W̃ = U' · 2^e_p
    sw = symmetric_scale(np.abs(wt.reshape(K, -1)).max(axis=1), cfg.weight_bits)
    wq = quantize(wt, sw.reshape((K,) + (1,) * (wt.ndim - 1)), cfg.weight_bits)
    y_lsb = in_scale * sw * 2.0 ** -cfg.exponent_max
    if bias is None:
        bq = np.zeros(K, dtype=np.int64)
    else:
        bias = np.asarray(bias, dtype=np.float64)
        if bias.shape != (K,):
            raise DataError(f"bias must have shape ({K},); got {bias.shape}")
        if not np.all(np.isfinite(bias)):
            raise DataError("bias holds NaN or infinite values")
        bq = np.rint(bias / y_lsb)
        lo, hi = signed_range(cfg.bias_bits)
        if bq.min(initial=0) < lo or bq.max(initial=0) > hi:
            raise ConfigError(f"{name}: the bias needs more than bias_bits = {cfg.bias_bits} at this scale; raise bias_bits")
        bq = bq.astype(np.int64)
    mults, shifts = zip(*(requant_params(float(s / out_scale), cfg.mult_bits, cfg.widths.requant_bits - 1) for s in y_lsb))
    return QuantizedConv(config=cfg, weights=wq, bias=bq, mult=np.array(mults, dtype=np.int64),
                         shift=np.array(shifts, dtype=np.int64), padding=padding, relu=relu,
                         winograd_relu=winograd_relu, in_scale=float(in_scale), out_scale=float(out_scale),
                         weight_scale=sw, name=name)  # fmt: skip


def quantize_conv(w, bias, in_scale: float, out_scale: float, config: DatapathConfig, **kw) -> QuantizedConv:
    """Quantize a spatial kernel w (K, C, r, …): U = G w Gᵀ, then :func:`quantize_winograd_weights`."""
    w = np.asarray(w, dtype=np.float64)
    if w.ndim != 2 + config.dims or any(s != config.r for s in w.shape[2:]):
        raise DataError(f"kernel must have shape (K, C{', ' + str(config.r)} * {config.dims}) for this datapath; got {w.shape}")
    return quantize_winograd_weights(kernel_to_winograd(w, config.alg), bias, in_scale, out_scale, config, **kw)


def _exact(fn, bits: int, *arrays):
    """Run a linear integer stage through float64 BLAS when every partial sum stays below 2^53.

    A partial sum of Σ_q K[p,q] x_q is bounded by Σ_q |K[p,q]| |x_q|, at most one bit
    above the stage's derived width, hence the ``+ 1``; the result is then exact.
    """
    if bits + 1 <= _EXACT_FLOAT_BITS:
        return np.rint(fn(*(a.astype(np.float64) for a in arrays))).astype(np.int64)
    return fn(*arrays)


def integer_conv(xq, layer: QuantizedConv, trace: dict | None = None, exact_float: bool = True) -> np.ndarray:
    """Run one :class:`QuantizedConv` on integer activations ``xq`` (N, C, H, W[, D]).

    Returns int64 activations (N, K, Ho, Wo) in the ``act_bits`` range. ``trace``, if
    given, collects the observed (min, max) of every stage. Raises DatapathOverflow if
    any stage leaves its derived range (which the derivation makes impossible).
    ``exact_float=False`` forces int64 accumulation (the float64 path is exact; the
    switch exists so tests can show both agree).
    """
    z = integer_conv_biased(xq, layer, trace=trace, exact_float=exact_float)
    return requantize(z, layer, trace=trace)


def integer_conv_biased(xq, layer: QuantizedConv, trace: dict | None = None, exact_float: bool = True) -> np.ndarray:
    """Stages up to z = Y + bias, the requantizer's input (int64, (N, K, *out))."""
    cfg = layer.config
    d = cfg.dims
    x = check_int_array("input", xq, cfg.act_bits)
    if x.ndim != d + 2:
        raise DataError(f"input must have shape (N, C, {', '.join('DHW'[-d:])}); got {x.shape}")
    if x.shape[0] < 1:
        raise DataError(f"input has N = {x.shape[0]} images; need at least 1")
    if x.shape[1] != layer.in_channels:
        raise DataError(f"input has C = {x.shape[1]} channels; layer {layer.name} expects {layer.in_channels}")
    w = cfg.widths
    geom = ConvGeometry.of(x.shape[2:], layer.padding, cfg.m, cfg.r)
    K = layer.out_channels
    P = cfg.positions
    big = 999  # forces the int64 path
    v = _exact(lambda a, b: input_positions(a, geom, b), w.v_bits if exact_float else big, x, cfg.transforms.BT)
    pos = (slice(None), None, None, None)  # per-position ranges against (P, N, C|K, T)
    _check_range("V'", v, np.array(w.v_lo)[pos], np.array(w.v_hi)[pos], trace)
    if layer.winograd_relu:
        v = np.maximum(v, 0)
    up = weights_by_position(layer.weights)  # (P, 1, K, C)
    if trace is not None:  # products are only materialised when asked for
        prods = up[..., None] * v[:, :, None, :, :]  # (P, N, K, C, T)
        lo, hi = (np.array(b)[:, None, None, None, None] for b in (w.prod_lo, w.prod_hi))
        _check_range("product", prods, lo, hi, trace)
    acc = _exact(np.matmul, w.acc_bits if exact_float else big, up, v)  # (P, N, K, T)
    _check_range("acc", acc, np.array(w.acc_lo)[pos], np.array(w.acc_hi)[pos], trace)
    shifted = np.left_shift(acc, cfg.shifts.reshape(P, 1, 1, 1))
    _check_range("shifted", shifted, np.array(w.shifted_lo)[pos], np.array(w.shifted_hi)[pos], trace)
    y = _exact(lambda a, b: output_transform(a, b, d), w.y_bits if exact_float else big, shifted, cfg.transforms.AT)
    _check_range("Y", y, np.array(w.y_lo)[pos], np.array(w.y_hi)[pos], trace)
    z = assemble_positions(y, geom) + layer.bias.reshape((1, K) + (1,) * d)
    _check_range("biased", z, *signed_range(w.biased_bits), trace)
    return z


def requantize(z: np.ndarray, layer: QuantizedConv, trace: dict | None = None) -> np.ndarray:
    """out = relu?(sat((z · mult + 2^(shift−1)) >> shift)) per output channel."""
    cfg = layer.config
    bshape = (1, layer.out_channels) + (1,) * cfg.dims
    prod = z * layer.mult.reshape(bshape)
    _check_range("requant", prod, *signed_range(cfg.widths.requant_bits - 1), trace)
    out = saturate(round_shift(prod, layer.shift.reshape(bshape)), cfg.act_bits)
    return np.maximum(out, 0) if layer.relu else out


@dataclass(frozen=True)
class MaxPool:
    """Integer max pooling (kernel = stride = ``size``), exact on quantized values."""

    size: int = 2
    name: str = "maxpool"

    def __post_init__(self):
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 1:
            raise ConfigError(f"{self.name}: pooling size must be an integer >= 1; got {self.size!r}")

    def __call__(self, xq: np.ndarray, trace: dict | None = None) -> np.ndarray:
        k = self.size
        d = xq.ndim - 2
        crop = tuple(slice(0, (s // k) * k) for s in xq.shape[2:])
        x = xq[(slice(None), slice(None)) + crop]
        shape = x.shape[:2] + tuple(v for s in x.shape[2:] for v in (s // k, k))
        return x.reshape(shape).max(axis=tuple(3 + 2 * i for i in range(d)))


def run_network(xq: np.ndarray, layers: Sequence, trace: dict | None = None) -> np.ndarray:
    """Run integer layers in sequence. Consecutive convolutions must agree on scale:
    a layer's ``in_scale`` equals the previous convolution's ``out_scale``."""
    prev = None
    for i, layer in enumerate(layers):
        if isinstance(layer, QuantizedConv):
            if prev is not None and not math.isclose(prev.out_scale, layer.in_scale, rel_tol=1e-12):
                raise ConfigError(
                    f"layer {i} ({layer.name}) has in_scale {layer.in_scale:g} but the previous convolution "
                    f"({prev.name}) writes out_scale {prev.out_scale:g}"
                )
            prev = layer
        xq = layer(xq, trace=None if trace is None else trace.setdefault(f"{i}:{getattr(layer, 'name', i)}", {}))
    return xq


def quantize_input(x, bits: int, scale: float | None = None) -> tuple[np.ndarray, float]:
    """Per-tensor symmetric quantization of float activations: (xq, scale)."""
    x = np.asarray(x, dtype=np.float64)
    if scale is None:
        scale = float(symmetric_scale(np.abs(x).max(initial=0.0), bits))
    return quantize(x, scale, bits), scale
