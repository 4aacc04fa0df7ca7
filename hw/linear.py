"""Constant integer matrix products as adder trees (no multipliers for 0 and ±1)."""

from __future__ import annotations

from amaranth.hdl import Const, Value


def const_dot(row, xs) -> Value:
    """Σ row[q] · xs[q] with integer constants; Amaranth widens every partial sum, so it is exact."""
    terms = []
    for k, x in zip(row, xs):
        k = int(k)
        if k == 0:
            continue
        terms.append(x if k == 1 else -x if k == -1 else x * k)
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
