"""Exact Cook–Toom construction of the Winograd minimal-filtering matrices Aᵀ, G, Bᵀ.

For F(m, r) (m outputs of an r-tap correlation, tile n = m + r − 1) the algorithm is

    y = Aᵀ [ (G g) ⊙ (Bᵀ d) ]

derived here from the Toom–Cook *convolution* algorithm by the transposition principle
(Winograd 1980; Lavin & Gray 2016). Polynomials g (degree r − 1) and h (degree m − 1)
are evaluated at finite points a_0 … a_{n−2} and at ∞ (the leading coefficient); their
product s = g·h (degree n − 1) is interpolated back by

    s(x) = s_{n−1} M(x) + Σ_j s(a_j) N_j(x) / f_j,
    N_j(x) = Π_{l≠j} (x − a_l),   M(x) = Π_l (x − a_l),   f_j = Π_{l≠j} (a_j − a_l).

Writing the convolution as s = C [(E_g g) ⊙ (E_h h)] and transposing gives the
correlation y = E_hᵀ [(E_g g) ⊙ (Cᵀ d)], hence Aᵀ = E_hᵀ, G = E_g, Bᵀ = Cᵀ. The 1/f_j
are moved into G and every row sign is normalised so that G's row factors are
positive, which reproduces Lavin's F(2,3) and F(4,3) matrices exactly.

All entries are ``fractions.Fraction``: nothing here is rounded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property, lru_cache
from typing import Iterable

import numpy as np

from winnow.model.errors import ConfigError
from winnow.model.algebra.points import resolve_points

FracMatrix = tuple[tuple[Fraction, ...], ...]

#: Largest tile the package builds (n = m + r − 1). Measured float64 error of a whole
#: convolution against F.conv2d with the default points (relative to the output's max):
#: n = 18: 1.5e-6, n = 22: 3.9e-3, n = 26: 25 — beyond n = 20 the float transforms are
#: useless, and the integer widths passed 64 bits long before.
MAX_TILE = 20


def _poly_from_roots(roots: Iterable[Fraction]) -> list[Fraction]:
    """Coefficients (lowest degree first) of Π (x − root)."""
    coeffs = [Fraction(1)]
    for a in roots:
        nxt = [Fraction(0)] * (len(coeffs) + 1)
        for i, c in enumerate(coeffs):
            nxt[i] -= a * c
            nxt[i + 1] += c
        coeffs = nxt
    return coeffs


def _check_size(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"{name} must be an integer >= 1; got {value!r}")
    if value < 1:
        raise ConfigError(f"{name} must be >= 1; got {value}")
    return int(value)


@dataclass(frozen=True)
class WinogradAlgorithm:
    """The exact matrices of the 1-D Winograd algorithm F(m, r).

    Build with :func:`winograd`. Higher dimensions nest the 1-D matrices: a 2-D tile
    is ``Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A`` and 3-D applies each matrix along all three axes.

    Attributes
    ----------
    m, r, n : int
        Outputs per tile, kernel taps, tile size n = m + r − 1.
    points : tuple of Fraction
        The n − 1 finite interpolation points (∞ is implicit and last).
    AT, G, BT : tuple of tuples of Fraction
        Aᵀ (m × n), G (n × r), Bᵀ (n × n).
    """

    m: int
    r: int
    points: tuple[Fraction, ...]
    AT: FracMatrix = field(repr=False)
    G: FracMatrix = field(repr=False)
    BT: FracMatrix = field(repr=False)

    @property
    def n(self) -> int:
        return self.m + self.r - 1

    @property
    def name(self) -> str:
        return f"F({self.m},{self.r})"

    @cached_property
    def AT_f64(self) -> np.ndarray:
        return _to_float(self.AT)

    @cached_property
    def G_f64(self) -> np.ndarray:
        return _to_float(self.G)

    @cached_property
    def BT_f64(self) -> np.ndarray:
        return _to_float(self.BT)

    def correlate_1d(self, g, d) -> list[Fraction]:
        """Exact y = Aᵀ[(G g) ⊙ (Bᵀ d)] for sequences g (length r) and d (length n)."""
        g = [Fraction(v) for v in g]
        d = [Fraction(v) for v in d]
        if len(g) != self.r or len(d) != self.n:
            raise ConfigError(f"{self.name} needs len(g) = {self.r} and len(d) = {self.n}; got {len(g)}, {len(d)}")
        u = [sum(gr * gv for gr, gv in zip(row, g)) for row in self.G]
        v = [sum(br * dv for br, dv in zip(row, d)) for row in self.BT]
        mprod = [a * b for a, b in zip(u, v)]
        return [sum(ar * mv for ar, mv in zip(row, mprod)) for row in self.AT]


def _to_float(mat: FracMatrix) -> np.ndarray:
    out = np.array([[float(x) for x in row] for row in mat], dtype=np.float64)
    out.setflags(write=False)
    return out


def winograd(m: int, r: int, points: Iterable | None = None) -> WinogradAlgorithm:
    """Build F(m, r) exactly by Cook–Toom.

    Parameters
    ----------
    m : int
        Output tile size, m >= 1.
    r : int
        Kernel size, r >= 1.
    points : iterable of rationals, optional
        Finite interpolation points; the first n − 1 are used. Default: the sequence
        of :mod:`winnow.model.algebra.points` (0, ±1, ±2, ±1/2, ±3, ±1/3, …).

    Raises
    ------
    ConfigError
        m or r < 1, a tile beyond :data:`MAX_TILE`, too few or repeated points.
    """
    m = _check_size("m", m)
    r = _check_size("r", r)
    n = m + r - 1
    if n > MAX_TILE:
        raise ConfigError(f"F({m},{r}) has tile n = m + r − 1 = {n}; the limit is n <= {MAX_TILE}")
    pts = resolve_points(n - 1, points)
    return _build(m, r, pts)


@lru_cache(maxsize=128)
def _build(m: int, r: int, pts: tuple[Fraction, ...]) -> WinogradAlgorithm:
    n = m + r - 1
    k = n - 1  # finite points
    AT = [[pts[j] ** i for j in range(k)] + [Fraction(int(i == m - 1))] for i in range(m)]
    G = []
    BT = []
    for j in range(k):
        f = Fraction(1)
        for l in range(k):
            if l != j:
                f *= pts[j] - pts[l]
        sign = 1 if f > 0 else -1
        G.append([sign * pts[j] ** c / f for c in range(r)])
        row = _poly_from_roots(pts[l] for l in range(k) if l != j) + [Fraction(0)]
        BT.append([sign * c for c in row])
    G.append([Fraction(int(c == r - 1)) for c in range(r)])
    BT.append(_poly_from_roots(pts))
    freeze = lambda rows: tuple(tuple(row) for row in rows)  # noqa: E731
    return WinogradAlgorithm(m=m, r=r, points=pts, AT=freeze(AT), G=freeze(G), BT=freeze(BT))
