"""Integer host operations of imported networks: polyphase split, average pooling, residual add, concatenation.

These run beside the array (on the host, in the reference) on the integer activations the
array writes; each is exact integer arithmetic with the datapath's one hardware rounding rule
(docs/datapath.md): a product by an unsigned multiplier, ``+ 2^(shift−1)``, an arithmetic shift
right (round half up, towards +∞), saturation to ``act_bits`` (docs/import.md, "Rounding").

* :class:`Polyphase`: the input of a convolution lowered onto the array's stride-1 r×r kernel
  (stride 2: the four polyphase components; any stride: the zero padding and the offset that
  centre a smaller kernel). Pure data movement, no arithmetic.
* :class:`AvgPool`, :class:`GlobalAvgPool`: the window's int64 sum times ``mult`` ≈ 2^shift / window,
  rounded by the rule; the output keeps the input's scale.
* :class:`Add`: ``sat(round_shift(a·mult_a + b·mult_b, shift))`` with mult_x · 2^−shift ≈ s_x / s_out.
* :class:`Concat`: each input ``sat(round_shift(x·mult_i, shift_i))`` onto the output scale (identity
  where the scales agree: mult 1, shift 0), then joined along channels.

Every function here takes NumPy int64 arrays; :func:`polyphase` and :func:`requant_sum` also take
torch tensors (the imported model's float and fake-quantized forward passes use them, so the two
cannot drift apart).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from winnow.model.errors import ConfigError
from winnow.model.integer.quant import requant_params, round_shift, saturate

#: Multiplier bits of the host requantizers (the array's default mult_bits).
HOST_MULT_BITS = 15
#: Largest shift of a host requantizer (the products stay far below 2^63).
HOST_MAX_SHIFT = 40


def _is_torch(x) -> bool:
    return type(x).__module__.startswith("torch")


def phase_index(size: int, stride: int, padding: int, offset: int, phase: int, out: int):
    """(destination, source) indices along one axis: dst u reads src s·(u − offset) + phase − padding."""
    u = np.arange(out)
    src = stride * (u - offset) + phase - padding
    ok = (src >= 0) & (src < size)
    return u[ok], src[ok]


def polyphase(x, stride: int, padding: int, offset: int, phases, size):
    """(N, C, H, W) → (N, len(phases)·C, *size): out[j·C + c, u, v] = x[c, s(u−o)+a_j−p, s(v−o)+b_j−p], 0 outside."""
    N, C, H, W = x.shape
    shape = (N, len(phases) * C, *size)
    out = x.new_zeros(shape) if _is_torch(x) else np.zeros(shape, dtype=x.dtype)
    for j, (a, b) in enumerate(phases):
        du, su = phase_index(H, stride, padding, offset, a, size[0])
        dv, sv = phase_index(W, stride, padding, offset, b, size[1])
        if len(du) and len(dv):
            out[:, j * C:(j + 1) * C, du[0]:du[-1] + 1, dv[0]:dv[-1] + 1] = \
                x[:, :, su[0]:su[-1] + 1:stride, sv[0]:sv[-1] + 1:stride]
    return out


def host_requant(ratio: float, what: str) -> tuple[int, int]:
    """(mult, shift) of one host requantizer for the real ratio s_in / s_out (:func:`requant_params`)."""
    try:
        mult, shift = requant_params(float(ratio), HOST_MULT_BITS, HOST_MAX_SHIFT)
    except ConfigError as exc:
        raise ConfigError(f"{what}: {exc}") from None
    return mult, shift


def concat_requant(ratio: float, what: str) -> tuple[int, int]:
    """(1, 0), the identity, where an input already has the output's scale; else :func:`host_requant`."""
    return (1, 0) if ratio == 1.0 else host_requant(ratio, what)


def common_requant(ratios, what: str) -> tuple[list, int]:
    """Multipliers of several inputs sharing one shift: mult_i · 2^−shift ≈ ratio_i, every mult < 2^HOST_MULT_BITS."""
    top = max(ratios)
    if not (math.isfinite(top) and top > 0 and min(ratios) > 0):
        raise ConfigError(f"{what}: scale ratios must be finite and > 0; got {list(ratios)}")
    _, exp = math.frexp(top)
    shift = HOST_MULT_BITS - exp
    while shift > 0 and round(top * 2.0**shift) >= 1 << HOST_MULT_BITS:
        shift -= 1
    if shift < 0:
        raise ConfigError(f"{what}: an input scale {top:g} times the output's needs a left shift: the output "
                          f"scale is too small")
    shift = min(shift, HOST_MAX_SHIFT)
    return [int(round(r * 2.0**shift)) for r in ratios], shift


def requant_sum(terms, shift: int, bits: int):
    """sat(round_shift(Σ terms, shift)) for NumPy int64 arrays (exact) or torch tensors holding integers."""
    z = terms[0]
    for t in terms[1:]:
        z = z + t
    if _is_torch(z):
        import torch

        from winnow.model.nn.qat import ste_round_half_up

        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        return torch.clamp(ste_round_half_up(z * 2.0**-shift), lo, hi)
    return saturate(round_shift(z, np.int64(shift)), bits)


@dataclass(frozen=True)
class Polyphase:
    """Host data movement in front of a lowered convolution (:func:`polyphase`)."""

    stride: int
    padding: int
    offset: int
    phases: tuple
    size: tuple
    name: str = "polyphase"

    def __call__(self, xq, trace=None):
        return polyphase(xq, self.stride, self.padding, self.offset, self.phases, self.size)


def _window_sum(x: np.ndarray, k: int) -> np.ndarray:
    N, C, H, W = x.shape
    x = x[:, :, :(H // k) * k, :(W // k) * k]
    return x.reshape(N, C, H // k, k, W // k, k).sum(axis=(3, 5))


@dataclass(frozen=True)
class AvgPool:
    """Average pooling (kernel = stride = ``size``): sat(round_shift(Σ window · mult, shift)); scale kept."""

    size: int
    mult: int
    shift: int
    act_bits: int
    name: str = "avgpool"

    def __call__(self, xq, trace=None):
        return requant_sum([_window_sum(np.asarray(xq, dtype=np.int64), self.size) * self.mult], self.shift,
                           self.act_bits)


@dataclass(frozen=True)
class GlobalAvgPool:
    """Global average pooling, (N, C, H, W) → (N, C, 1, 1): sat(round_shift(Σ · mult, shift)); scale kept."""

    mult: int
    shift: int
    act_bits: int
    name: str = "gap"

    def __call__(self, xq, trace=None):
        s = np.asarray(xq, dtype=np.int64).sum(axis=(2, 3), keepdims=True)
        return requant_sum([s * self.mult], self.shift, self.act_bits)


@dataclass(frozen=True)
class Add:
    """Residual add: sat(round_shift(a·mult[0] + b·mult[1], shift)) on the output scale ``out_scale``."""

    mult: tuple
    shift: int
    act_bits: int
    out_scale: float
    name: str = "add"

    def __call__(self, a, b, trace=None):
        return requant_sum([np.asarray(a, dtype=np.int64) * self.mult[0], np.asarray(b, dtype=np.int64) * self.mult[1]],
                           self.shift, self.act_bits)


@dataclass(frozen=True)
class Concat:
    """Channel concatenation; input i is first sat(round_shift(x·mult[i], shift[i])) on ``out_scale``."""

    mult: tuple
    shift: tuple
    act_bits: int
    out_scale: float
    name: str = "concat"

    def __call__(self, *xs, trace=None):
        parts = [x if (m, s) == (1, 0) else requant_sum([np.asarray(x, dtype=np.int64) * m], s, self.act_bits)
                 for x, m, s in zip(xs, self.mult, self.shift)]
        return np.concatenate(parts, axis=1)
