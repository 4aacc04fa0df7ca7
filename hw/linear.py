"""Constant integer matrix products as shift-and-add trees: no multiplier at all.

A constant k is written in canonical signed-digit form (k = Σ ±2^s with no two
adjacent non-zero digits), so x·k is a sum of shifted ±x. Synthesis tools otherwise
map wide constant products to DSP blocks (yosys did for F(4,3)'s transforms on ECP5: a
4×4 array with 4 requantizers took 48 MULT18X18D, 24 after this change: 16 MACs and
2 per requantizer).
"""

from __future__ import annotations

from amaranth.hdl import Const, Value


def csd(k: int) -> list[tuple[int, int]]:
    """Canonical signed digits of k: [(sign, shift)] with k = Σ sign·2^shift."""
    out, s = [], 0
    while k:
        if k & 1:
            d = 2 - (k & 3)  # +1 when k ≡ 1 (mod 4), −1 when k ≡ 3
            out.append((d, s))
            k -= d
        k >>= 1
        s += 1
    return out


def const_dot(row, xs) -> Value:
    """Σ row[q] · xs[q] with integer constants; Amaranth widens every partial sum, so it is exact."""
    terms = []
    for k, x in zip(row, xs):
        for sign, shift in csd(int(k)):
            t = x << shift if shift else x
            terms.append(t if sign > 0 else -t)
    if not terms:
        return Const(0, 1)
    acc = terms[0]
    for t in terms[1:]:
        acc = acc + t
    return acc


def left(mat, tile):
    """mat · tile for an integer (a×b) ``mat`` and a b×c nested list of Values → a×c nested list."""
    b = len(tile)
    return [[const_dot(row, [tile[q][j] for q in range(b)]) for j in range(len(tile[0]))] for row in mat]


def right(tile, mat):
    """tile · matᵀ for an a×b nested list of Values and an integer (c×b) ``mat`` → a×c nested list."""
    return [[const_dot(row, tile[i]) for row in mat] for i in range(len(tile))]


def separable_2d(mat, tile):
    """mat · tile · matᵀ for an integer (a×b) ``mat`` and a b×b nested list of Values → a×a nested list."""
    return right(left(mat, tile), mat)
