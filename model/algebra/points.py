"""Interpolation point sets for the Cook–Toom construction.

A Winograd algorithm F(m, r) with tile n = m + r − 1 evaluates polynomials at n − 1
finite points and at infinity. The choice of points sets the size of the transform
constants and hence both the float round-off and the integer datapath widths. The
default sequence is the one used throughout the literature (Lavin & Gray 2016,
Barabasz et al. 2020): small integers and their reciprocals, in the order

    0, 1, −1, 2, −2, 1/2, −1/2, 3, −3, 1/3, −1/3, 4, −4, 1/4, −1/4, …

of which F(m, r) takes the first n − 1 (∞ is always the last point).
"""

from __future__ import annotations

from fractions import Fraction
from numbers import Rational
from typing import Iterable, Sequence

from winnow.model.errors import ConfigError

#: Largest k in ±k, ±1/k of the default sequence: 19 finite points, exactly enough for
#: the largest tile (n = 20, winnow.model.algebra.cook_toom.MAX_TILE).
DEFAULT_MAX_K = 5


def default_points(count: int | None = None) -> tuple[Fraction, ...]:
    """Return the first ``count`` finite points of the default sequence (all if None)."""
    pts: list[Fraction] = [Fraction(0), Fraction(1), Fraction(-1)]
    for k in range(2, DEFAULT_MAX_K + 1):
        pts += [Fraction(k), Fraction(-k), Fraction(1, k), Fraction(-1, k)]
    if count is None:
        return tuple(pts)
    if count > len(pts):
        raise ConfigError(
            f"the default point set holds {len(pts)} finite points (0, ±1 … ±{DEFAULT_MAX_K}, "
            f"±1/2 … ±1/{DEFAULT_MAX_K}); {count} were asked for. Pass points= explicitly"
        )
    return tuple(pts[:count])


def _as_fraction(value, index: int) -> Fraction:
    if isinstance(value, bool):
        raise ConfigError(f"points[{index}] is a bool; points must be rational numbers")
    if isinstance(value, (int, Rational)):
        return Fraction(value)
    if isinstance(value, str):
        try:
            return Fraction(value)
        except ValueError:
            raise ConfigError(f"points[{index}] = {value!r} is not a rational number ('1/2', '-3')") from None
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigError(
                f"points[{index}] = {value}: only finite points may be given; ∞ is always used as the last point"
            )
        return Fraction(value)
    raise ConfigError(f"points[{index}] = {value!r} ({type(value).__name__}) is not a rational number")


def resolve_points(n_finite: int, points: Iterable | None = None) -> tuple[Fraction, ...]:
    """Choose the ``n_finite`` finite interpolation points for a tile.

    Parameters
    ----------
    n_finite : int
        How many finite points the algorithm needs (n − 1).
    points : iterable of rationals, optional
        User points (ints, Fractions, strings such as ``"1/2"``, or exactly
        representable floats). The first ``n_finite`` are used; they must be distinct.
        ``None`` takes the default sequence.
    """
    if points is None:
        return default_points(n_finite)
    given: Sequence = list(points)
    pts = tuple(_as_fraction(v, i) for i, v in enumerate(given))
    if len(pts) < n_finite:
        raise ConfigError(
            f"the point set has {len(pts)} finite points; this tile needs n − 1 = {n_finite}"
        )
    pts = pts[:n_finite]
    seen: dict[Fraction, int] = {}
    for i, p in enumerate(pts):
        if p in seen:
            raise ConfigError(f"points[{i}] = {p} repeats points[{seen[p]}]; interpolation points must be distinct")
        seen[p] = i
    return pts
