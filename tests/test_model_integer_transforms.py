"""The integer hardware transforms are exact: proved in Fraction arithmetic."""

from fractions import Fraction
import random

import numpy as np
import pytest

from winnow.model.algebra.cook_toom import winograd
from winnow.model.integer.transforms import integer_transforms

TILES = [(m, r) for m in range(1, 9) for r in (1, 2, 3, 5) if m + r - 1 <= 12]


def matmul(a, b):
    return [[sum(x * y for x, y in zip(row, col)) for col in zip(*b)] for row in a]


def transpose(a):
    return [list(col) for col in zip(*a)]


def rand_matrix(rng, rows, cols):
    return [[Fraction(rng.randint(-9, 9), rng.randint(1, 4)) for _ in range(cols)] for _ in range(rows)]


@pytest.mark.parametrize("m, r", TILES)
def test_integer_matrices_are_primitive_integers(m, r):
    it = integer_transforms(winograd(m, r))
    for mat, axis in ((it.BT_exact, 1), (it.AT_exact, 0)):
        arr = np.array([[int(v) for v in row] for row in mat], dtype=object)
        assert all(v.denominator == 1 for row in mat for v in row)
        # gcd 1 along each scaled row (Bᵀ) or column (Aᵀ): no smaller integer scaling exists
        lines = arr if axis == 1 else arr.T
        for line in lines:
            g = 0
            for v in line:
                g = np.gcd(g, int(v))
            assert g == 1
    assert all(s > 0 for s in it.s) and all(t > 0 for t in it.t)


@pytest.mark.parametrize("m, r", TILES)
def test_scalings_relate_the_matrices(m, r):
    alg = winograd(m, r)
    it = integer_transforms(alg)
    for i in range(alg.n):
        assert list(it.BT_exact[i]) == [it.s[i] * v for v in alg.BT[i]]
    for a in range(m):
        assert list(it.AT_exact[a]) == [v * t for v, t in zip(alg.AT[a], it.t)]


@pytest.mark.parametrize("m, r", TILES)
def test_folded_2d_tile_equals_direct_correlation_exactly(m, r):
    """A'ᵀ[(U ⊙ fold) ⊙ (B'ᵀ d B')]A' equals the direct 2-D correlation, in Fraction."""
    alg = winograd(m, r)
    it = integer_transforms(alg)
    rng = random.Random(m * 31 + r)
    g = rand_matrix(rng, r, r)
    d = [[Fraction(rng.randint(-128, 127)) for _ in range(alg.n)] for _ in range(alg.n)]
    U = matmul(matmul([list(row) for row in alg.G], g), transpose(alg.G))
    fold = it.fold_1d
    Uf = [[U[i][j] * fold[i] * fold[j] for j in range(alg.n)] for i in range(alg.n)]
    BT = [list(row) for row in it.BT_exact]
    V = matmul(matmul(BT, d), transpose(BT))
    assert all(v.denominator == 1 for row in V for v in row)  # V' is an integer tile
    Mt = [[Uf[i][j] * V[i][j] for j in range(alg.n)] for i in range(alg.n)]
    AT = [list(row) for row in it.AT_exact]
    Y = matmul(matmul(AT, Mt), transpose(AT))
    direct = [[sum(g[a][b] * d[i + a][j + b] for a in range(r) for b in range(r)) for j in range(m)] for i in range(m)]
    assert Y == direct


def test_folded_3d_tile_equals_direct_correlation_exactly():
    alg = winograd(2, 3)
    it = integer_transforms(alg)
    n, fold = alg.n, it.fold_1d
    rng = random.Random(7)
    g = [[[Fraction(rng.randint(-5, 5), rng.randint(1, 3)) for _ in range(3)] for _ in range(3)] for _ in range(3)]
    d = [[[Fraction(rng.randint(-128, 127)) for _ in range(n)] for _ in range(n)] for _ in range(n)]

    def t3(x, mat):  # apply mat along each of the three axes
        p, q = len(mat), len(mat[0])
        out = x
        for axis in range(3):
            sizes = [len(out), len(out[0]), len(out[0][0])]
            sizes[axis] = p
            new = [[[Fraction(0)] * sizes[2] for _ in range(sizes[1])] for _ in range(sizes[0])]
            for i in range(sizes[0]):
                for j in range(sizes[1]):
                    for k in range(sizes[2]):
                        idx = [i, j, k]
                        acc = Fraction(0)
                        for s in range(q):
                            src = list(idx)
                            src[axis] = s
                            acc += mat[idx[axis]][s] * out[src[0]][src[1]][src[2]]
                        new[i][j][k] = acc
            out = new
        return out

    U = t3(g, [list(row) for row in alg.G])
    V = t3(d, [list(row) for row in it.BT_exact])
    M = [[[U[i][j][k] * fold[i] * fold[j] * fold[k] * V[i][j][k] for k in range(n)] for j in range(n)] for i in range(n)]
    Y = t3(M, [list(row) for row in it.AT_exact])
    direct = [[[sum(g[a][b][c] * d[i + a][j + b][k + c] for a in range(3) for b in range(3) for c in range(3))
                for k in range(2)] for j in range(2)] for i in range(2)]
    assert Y == direct


@pytest.mark.parametrize("m", [2, 4, 6])
def test_position_exponents_balance_weight_magnitudes(m):
    """After 2^e_p, the typical |U'| per position is within a factor 2 of the largest (uncapped)."""
    it = integer_transforms(winograd(m, 3))
    rng = np.random.default_rng(m)
    g = rng.standard_normal((4000, 3, 3))
    G = it.alg.G_f64
    U = G @ g @ G.T * it.fold(2)
    rms = np.sqrt((U**2).mean(axis=0))
    e = it.position_exponents(2, max_shift=32)
    balanced = rms * np.exp2(e)
    assert e.min() == 0
    assert balanced.max() / balanced.min() < 2 * 1.1  # measured rms, 10% sampling slack
