"""Exactness of the Cook–Toom construction and its error handling."""

from fractions import Fraction
import random

import pytest

from winnow.model.algebra.cook_toom import MAX_TILE, winograd
from winnow.model.errors import ConfigError
from winnow.model.algebra.points import default_points


def direct_correlation(g, d, m):
    return [sum(g[k] * d[i + k] for k in range(len(g))) for i in range(m)]


def random_rationals(rng, count):
    return [Fraction(rng.randint(-50, 50), rng.randint(1, 9)) for _ in range(count)]


@pytest.mark.parametrize("m", range(1, 9))
@pytest.mark.parametrize("r", range(1, 8))
def test_exact_on_random_rationals(m, r):
    rng = random.Random(m * 100 + r)
    alg = winograd(m, r)
    assert (len(alg.AT), len(alg.AT[0])) == (m, alg.n)
    assert (len(alg.G), len(alg.G[0])) == (alg.n, r)
    assert (len(alg.BT), len(alg.BT[0])) == (alg.n, alg.n)
    for _ in range(3):
        g, d = random_rationals(rng, r), random_rationals(rng, alg.n)
        assert alg.correlate_1d(g, d) == direct_correlation(g, d, m)


def test_exact_with_user_points():
    alg = winograd(3, 3, points=["0", "1/3", "-3", "5/7", 4])
    rng = random.Random(1)
    g, d = random_rationals(rng, 3), random_rationals(rng, alg.n)
    assert alg.correlate_1d(g, d) == direct_correlation(g, d, 3)


def test_exact_on_unit_vectors_is_the_full_bilinear_identity():
    # every (g, d) pair of unit vectors: checks each coefficient of the bilinear form
    alg = winograd(4, 3)
    for k in range(3):
        for j in range(alg.n):
            g = [int(i == k) for i in range(3)]
            d = [int(i == j) for i in range(alg.n)]
            assert alg.correlate_1d(g, d) == direct_correlation(g, d, 4)


def test_lavin_f23_up_to_row_signs():
    # Lavin & Gray 2016, eq. (6)
    BT = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
    G = [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]]
    AT = [[1, 1, 1, 0], [0, 1, -1, -1]]
    alg = winograd(2, 3)
    for ours, theirs in ((alg.BT, BT), (alg.G, G)):
        for row_o, row_t in zip(ours, theirs):
            assert [float(v) for v in row_o] in ([float(v) for v in row_t], [-float(v) for v in row_t])
    # AT's last column is a sign convention paired with BT's last row
    assert [[abs(float(v)) for v in row] for row in alg.AT] == [[abs(v) for v in row] for row in AT]


def test_default_points_order_and_use():
    pts = default_points(9)
    assert pts == tuple(Fraction(v) for v in ("0", "1", "-1", "2", "-2", "1/2", "-1/2", "3", "-3"))
    assert winograd(4, 3).points == pts[:5]
    assert winograd(6, 3).points == pts[:7]


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"m": 0, "r": 3}, "m must be >= 1"),
        ({"m": 2, "r": 0}, "r must be >= 1"),
        ({"m": 2.0, "r": 3}, "m must be an integer"),
        ({"m": True, "r": 3}, "m must be an integer"),
        ({"m": 18, "r": 5}, f"n <= {MAX_TILE}"),
        ({"m": 4, "r": 3, "points": [0, 1, -1]}, "needs n − 1 = 5"),
        ({"m": 2, "r": 3, "points": [0, 1, 1]}, r"repeats points\[1\]"),
        ({"m": 2, "r": 3, "points": [0, 1, float("inf")]}, "∞ is always used"),
        ({"m": 2, "r": 3, "points": [0, 1, "x"]}, "not a rational"),
        ({"m": 2, "r": 3, "points": [0, 1, None]}, "not a rational"),
    ],
)
def test_bad_configurations_name_the_rule(kwargs, words):
    with pytest.raises(ConfigError, match=words):
        winograd(**kwargs)


def test_default_point_set_limit_is_named():
    assert len(default_points()) == MAX_TILE - 1  # the largest tile is exactly covered
    with pytest.raises(ConfigError, match=f"default point set holds {MAX_TILE - 1} finite points"):
        default_points(MAX_TILE)
