"""The fixed-point datapath configuration and its worst-case widths (docs/datapath.md).

``DatapathConfig`` is the single source of truth for the numbers that the integer
reference, the quantizer and (later) the RTL generator share. ``widths()`` derives
every intermediate width by exact interval arithmetic over Python integers: for each
stage the exact [lo, hi] reachable from the stage's input ranges, then the smallest
two's-complement width holding it. Overflow is therefore impossible by construction;
the reference still checks every stage against these ranges.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property

import numpy as np

from winnow.model.algebra.cook_toom import WinogradAlgorithm, winograd
from winnow.model.errors import ConfigError
from winnow.model.integer.transforms import IntegerTransforms, integer_transforms

#: Widest intermediate the reference (int64) and the generator accept.
MAX_WIDTH = 64


def signed_bits(lo: int, hi: int) -> int:
    """Smallest two's-complement width holding every integer in [lo, hi]."""
    bits = 1
    while not (-(1 << (bits - 1)) <= lo and hi <= (1 << (bits - 1)) - 1):
        bits += 1
    return bits


def signed_range(bits: int) -> tuple[int, int]:
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def _check_int(name: str, value, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"{name} must be an integer in [{lo}, {hi}]; got {value!r}")
    if not lo <= value <= hi:
        raise ConfigError(f"{name} must be in [{lo}, {hi}]; got {value}")
    return int(value)


def _kron_rows(mat: np.ndarray, dims: int) -> list[list[int]]:
    """Rows of mat ⊗ mat (⊗ mat) as Python ints (row-major position order)."""
    rows = [[int(v) for v in row] for row in mat]
    out = rows
    for _ in range(dims - 1):
        out = [[a * b for a in ra for b in rb] for ra in out for rb in rows]
    return out


def _linear_range(rows: list[list[int]], lo: list[int], hi: list[int]) -> tuple[list[int], list[int]]:
    """Exact output ranges of y = K x when each x_q lies in [lo_q, hi_q]."""
    out_lo, out_hi = [], []
    for row in rows:
        a = b = 0
        for k, l, h in zip(row, lo, hi):
            if k >= 0:
                a += k * l
                b += k * h
            else:
                a += k * h
                b += k * l
        out_lo.append(a)
        out_hi.append(b)
    return out_lo, out_hi


@dataclass(frozen=True)
class DatapathWidths:
    """Exact worst-case ranges and widths of every datapath stage.

    Ranges are per Winograd position (row-major over the tile) or per output pixel;
    ``*_bits`` is the width the hardware must give that stage (the maximum over
    positions). Stage names follow docs/datapath.md.
    """

    act_bits: int
    weight_bits: int
    v_lo: tuple[int, ...]
    v_hi: tuple[int, ...]
    prod_lo: tuple[int, ...]
    prod_hi: tuple[int, ...]
    acc_lo: tuple[int, ...]
    acc_hi: tuple[int, ...]
    shifted_lo: tuple[int, ...]
    shifted_hi: tuple[int, ...]
    y_lo: tuple[int, ...]
    y_hi: tuple[int, ...]
    bias_bits: int
    biased_bits: int
    mult_bits: int
    requant_bits: int

    @property
    def v_bits(self) -> int:
        return signed_bits(min(self.v_lo), max(self.v_hi))

    @property
    def prod_bits(self) -> int:
        return signed_bits(min(self.prod_lo), max(self.prod_hi))

    @property
    def acc_bits(self) -> int:
        return signed_bits(min(self.acc_lo), max(self.acc_hi))

    @property
    def shifted_bits(self) -> int:
        return signed_bits(min(self.shifted_lo), max(self.shifted_hi))

    @property
    def y_bits(self) -> int:
        return signed_bits(min(self.y_lo), max(self.y_hi))

    def summary(self) -> dict[str, int]:
        return {
            "act_bits": self.act_bits,
            "v_bits": self.v_bits,
            "weight_bits": self.weight_bits,
            "prod_bits": self.prod_bits,
            "acc_bits": self.acc_bits,
            "shifted_bits": self.shifted_bits,
            "y_bits": self.y_bits,
            "bias_bits": self.bias_bits,
            "biased_bits": self.biased_bits,
            "mult_bits": self.mult_bits,
            "requant_bits": self.requant_bits,
        }


@dataclass(frozen=True)
class DatapathConfig:
    """One integer Winograd datapath: tile, point set, bit widths and channel limit.

    Parameters
    ----------
    dims : int
        2 (conv2d) or 3 (conv3d).
    m, r : int
        Output tile and kernel size of F(m, r).
    points : tuple, optional
        Finite interpolation points (rationals); ``None`` is the default sequence.
    act_bits : int
        Signed width of input and output activations (2 … 32).
    weight_bits : int
        Signed width of the quantized Winograd-domain weights (2 … 32).
    c_max : int
        Largest number of input channels accumulated; sizes the accumulator.
    bias_bits : int
        Signed width of the integer bias (added to Y).
    mult_bits : int
        Unsigned width of the requantization multiplier (normalised to its top bit).
    max_position_shift : int
        Cap on the per-position exponents e_p; 0 turns them off.
    """

    dims: int = 2
    m: int = 4
    r: int = 3
    points: tuple | None = None
    act_bits: int = 8
    weight_bits: int = 8
    c_max: int = 256
    bias_bits: int = 32
    mult_bits: int = 15
    max_position_shift: int = 8
    _alg: WinogradAlgorithm = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        _check_int("dims", self.dims, 2, 3)
        _check_int("act_bits", self.act_bits, 2, 32)
        _check_int("weight_bits", self.weight_bits, 2, 32)
        _check_int("c_max", self.c_max, 1, 1 << 20)
        _check_int("bias_bits", self.bias_bits, 2, MAX_WIDTH)
        _check_int("mult_bits", self.mult_bits, 1, 32)
        _check_int("max_position_shift", self.max_position_shift, 0, 32)
        alg = winograd(self.m, self.r, self.points)  # validates m, r and the points
        object.__setattr__(self, "points", None if self.points is None else alg.points)
        object.__setattr__(self, "_alg", alg)
        self._check_growth()
        w = self.widths  # derive now so an impossible configuration fails at construction
        for name, bits in w.summary().items():
            if bits > MAX_WIDTH:
                raise ConfigError(
                    f"{self.alg.name} {self.dims}-D with act_bits={self.act_bits}, weight_bits={self.weight_bits}, "
                    f"c_max={self.c_max} needs {name} = {bits} > {MAX_WIDTH}: reduce c_max, the bit widths "
                    f"or max_position_shift, or use a smaller tile"
                )

    def _check_growth(self) -> None:
        """Refuse, before any int64 or Kronecker work, transforms that cannot fit 64 bits.

        The input transform alone grows act_bits by log2 of B' 's largest row L1 norm per
        dimension; if that already passes 64 bits (large tiles, points with large
        denominators), no datapath exists.
        """
        it = self.transforms
        l1 = max(sum(abs(v) for v in row) for row in it.BT_exact)
        a1 = max(sum(abs(v) for v in col) for col in zip(*it.AT_exact))
        v_est = self.act_bits + self.dims * math.log2(max(int(l1), 1))
        y_est = v_est + self.weight_bits + math.log2(self.c_max) + self.dims * math.log2(max(int(a1), 1))
        if v_est > MAX_WIDTH or y_est > MAX_WIDTH + 8:
            raise ConfigError(
                f"{self.alg.name} {self.dims}-D with points {[str(p) for p in self.alg.points]} grows the datapath to "
                f"about {max(v_est, y_est):.0f} bits (limit {MAX_WIDTH}): use a smaller tile or points with "
                f"small denominators (a float point is taken exactly: pass '1/7' as a string)"
            )

    @property
    def alg(self) -> WinogradAlgorithm:
        return self._alg

    @property
    def n(self) -> int:
        return self.m + self.r - 1

    @property
    def positions(self) -> int:
        return self.n**self.dims

    @property
    def transforms(self) -> IntegerTransforms:
        return integer_transforms(self._alg)

    @cached_property
    def exponents(self) -> np.ndarray:
        """Per-position e_p, shape (n,)*dims (see integer_transforms)."""
        return self.transforms.position_exponents(self.dims, self.max_position_shift)

    @property
    def exponent_max(self) -> int:
        """E = max e_p: the requantization absorbs 2^-E."""
        return int(self.exponents.max())

    @cached_property
    def shifts(self) -> np.ndarray:
        """Left shift E − e_p applied to the accumulated sum at each position."""
        return (self.exponent_max - self.exponents).astype(np.int64)

    @cached_property
    def widths(self) -> DatapathWidths:
        it = self.transforms
        a_lo, a_hi = signed_range(self.act_bits)
        w_lo, w_hi = signed_range(self.weight_bits)
        P = self.positions
        v_lo, v_hi = _linear_range(_kron_rows(it.BT, self.dims), [a_lo] * P, [a_hi] * P)
        prod_lo, prod_hi = [], []
        for lo, hi in zip(v_lo, v_hi):
            corners = (lo * w_lo, lo * w_hi, hi * w_lo, hi * w_hi)
            prod_lo.append(min(corners))
            prod_hi.append(max(corners))
        acc_lo = [self.c_max * v for v in prod_lo]
        acc_hi = [self.c_max * v for v in prod_hi]
        sh = [int(v) for v in self.shifts.reshape(-1)]
        s_lo = [v << s for v, s in zip(acc_lo, sh)]
        s_hi = [v << s for v, s in zip(acc_hi, sh)]
        y_lo, y_hi = _linear_range(_kron_rows(it.AT, self.dims), s_lo, s_hi)
        b_lo, b_hi = signed_range(self.bias_bits)
        biased_bits = signed_bits(min(y_lo) + b_lo, max(y_hi) + b_hi)
        z_lo, z_hi = signed_range(biased_bits)
        mult_max = (1 << self.mult_bits) - 1
        # (z·mult + 2^(shift−1)) with shift <= the product width: one extra bit suffices
        requant_bits = signed_bits(z_lo * mult_max, z_hi * mult_max) + 1
        t = tuple
        return DatapathWidths(
            act_bits=self.act_bits, weight_bits=self.weight_bits,
            v_lo=t(v_lo), v_hi=t(v_hi), prod_lo=t(prod_lo), prod_hi=t(prod_hi),
            acc_lo=t(acc_lo), acc_hi=t(acc_hi), shifted_lo=t(s_lo), shifted_hi=t(s_hi),
            y_lo=t(y_lo), y_hi=t(y_hi), bias_bits=self.bias_bits, biased_bits=biased_bits,
            mult_bits=self.mult_bits, requant_bits=requant_bits,
        )  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict) -> "DatapathConfig":
        """Rebuild from :meth:`to_dict`; the derived fields (shifts, widths) must match what this version derives."""
        keys = ("dims", "m", "r", "act_bits", "weight_bits", "c_max", "bias_bits", "mult_bits", "max_position_shift")
        if not isinstance(d, dict) or any(k not in d for k in keys + ("points",)):
            raise ConfigError(f"a datapath description needs the fields {', '.join(keys + ('points',))}")
        kw = {k: d[k] for k in keys}
        if not isinstance(d["points"], list) or not all(isinstance(p, str) for p in d["points"]):
            raise ConfigError(f"a datapath description's points are a list of strings such as '1/2'; "
                              f"got {d['points']!r}")
        try:
            cfg = cls(**kw)  # the default points unless the description names others
        except TypeError as exc:
            raise ConfigError(f"a datapath description field has the wrong type ({exc})") from None
        if [str(p) for p in cfg.alg.points] != list(d["points"]):
            cfg = cls(points=tuple(d["points"]), **kw)
        if cfg.to_dict() != d:
            raise ConfigError("the datapath description's derived fields (position_shifts, widths) differ from "
                              "what this version derives for the same configuration")
        return cfg

    def to_dict(self) -> dict:
        """JSON-ready description (params.json uses this)."""
        return {
            "dims": self.dims, "m": self.m, "r": self.r, "n": self.n,
            "points": [str(p) for p in self.alg.points],
            "act_bits": self.act_bits, "weight_bits": self.weight_bits, "c_max": self.c_max,
            "bias_bits": self.bias_bits, "mult_bits": self.mult_bits,
            "max_position_shift": self.max_position_shift,
            "position_shifts": [int(v) for v in self.shifts.reshape(-1)],
            "widths": self.widths.summary(),
        }  # fmt: skip
