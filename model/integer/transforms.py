"""Integer hardware transforms: B'ᵀ and A'ᵀ with small integer entries only.

Scale each row i of Bᵀ by s_i and each column j of Aᵀ by t_j (positive rationals) so
that both become primitive integer matrices:

    B'ᵀ = diag(s) Bᵀ,        A'ᵀ = Aᵀ diag(t).

Then V' = B'ᵀ d B' has V'[i,j] = s_i s_j V[i,j], and

    Y = Aᵀ (U ⊙ V) A = A'ᵀ (U' ⊙ V') A',   U'[i,j] = U[i,j] / (s_i s_j t_i t_j),

so every fraction folds into the Winograd-domain weights U', which are quantized anyway
(docs/datapath.md §2). In 3-D the fold is the triple outer product. The fabric adds, shifts and
multiplies by small integer constants only.

Per-position exponents: the fold factors and the norms of G's rows make the typical
magnitude of U' differ by orders of magnitude between positions (for F(6,3) about
2^8 in 2-D, 2^12 in 3-D). A per-position power-of-two e_p, a function of the algorithm alone, rescales
U' by 2^{e_p} before quantization so 8-bit weights use their range at every position;
the hardware undoes it by a constant left shift of the accumulated sum by E − e_p,
E = max e_p, and the requantization multiplier absorbs 2^{−E}.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property, lru_cache

import numpy as np

from winnow.model.algebra.cook_toom import FracMatrix, WinogradAlgorithm


def _primitive_scale(vec) -> Fraction:
    """Positive s such that s·vec is an integer vector with gcd 1."""
    den = 1
    for v in vec:
        den = den * v.denominator // math.gcd(den, v.denominator)
    ints = [int(v * den) for v in vec]
    g = 0
    for v in ints:
        g = math.gcd(g, v)
    return Fraction(den, g)


def _as_int_matrix(rows) -> np.ndarray:
    out = np.array([[int(v) for v in row] for row in rows], dtype=np.int64)
    out.setflags(write=False)
    return out


@dataclass(frozen=True)
class IntegerTransforms:
    """Integer B'ᵀ, A'ᵀ of an algorithm, the folded scale factors and position exponents.

    Attributes
    ----------
    alg : WinogradAlgorithm
    s : tuple of Fraction
        Row scales of Bᵀ (B'ᵀ = diag(s) Bᵀ).
    t : tuple of Fraction
        Column scales of Aᵀ (A'ᵀ = Aᵀ diag(t)).
    BT_exact, AT_exact : tuple of tuples of Fraction
        B'ᵀ and A'ᵀ, exact (their entries are integers).
    """

    alg: WinogradAlgorithm
    s: tuple[Fraction, ...]
    t: tuple[Fraction, ...]
    BT_exact: FracMatrix
    AT_exact: FracMatrix

    @cached_property
    def BT(self) -> np.ndarray:
        """B'ᵀ as int64 (n × n)."""
        return _as_int_matrix(self.BT_exact)

    @cached_property
    def AT(self) -> np.ndarray:
        """A'ᵀ as int64 (m × n)."""
        return _as_int_matrix(self.AT_exact)

    @cached_property
    def fold_1d(self) -> tuple[Fraction, ...]:
        """1 / (s_i t_i): the factor by which position i of U is multiplied, per dimension."""
        return tuple(1 / (si * ti) for si, ti in zip(self.s, self.t))

    def fold(self, dims: int) -> np.ndarray:
        """U'/U per position for a ``dims``-D tile, float64 of shape (n,)*dims."""
        f = np.array([float(v) for v in self.fold_1d])
        out = f
        for _ in range(dims - 1):
            out = np.multiply.outer(out, f)
        return out

    def position_exponents(self, dims: int, max_shift: int) -> np.ndarray:
        """Per-position e_p in [0, max_shift] (int64, shape (n,)*dims); zeros if max_shift = 0.

        The typical magnitude of U'[p] for a kernel of i.i.d. entries is proportional to
        ∏_d ‖G_{i_d}‖₂ · fold(p); e_p = ⌊log2(max_q f_q / f_p)⌋ brings every position
        within a factor 2 of the largest, capped at max_shift.
        """
        g_norm = [math.sqrt(sum(float(v) ** 2 for v in row)) for row in self.alg.G]
        f1 = np.array([gn * float(fv) for gn, fv in zip(g_norm, self.fold_1d)])
        f = f1
        for _ in range(dims - 1):
            f = np.multiply.outer(f, f1)
        e = np.floor(np.log2(f.max() / f) + 1e-9).astype(np.int64)
        return np.clip(e, 0, max_shift)


@lru_cache(maxsize=128)
def integer_transforms(alg: WinogradAlgorithm) -> IntegerTransforms:
    """Row-scale Bᵀ and column-scale Aᵀ of ``alg`` to primitive integer matrices."""
    s = tuple(_primitive_scale(row) for row in alg.BT)
    BT = tuple(tuple(si * v for v in row) for si, row in zip(s, alg.BT))
    cols = list(zip(*alg.AT))
    t = tuple(_primitive_scale(col) for col in cols)
    AT = tuple(tuple(v * tj for v, tj in zip(row, t)) for row in alg.AT)
    for mat in (BT, AT):
        assert all(v.denominator == 1 for row in mat for v in row)
    return IntegerTransforms(alg=alg, s=s, t=t, BT_exact=BT, AT_exact=AT)
