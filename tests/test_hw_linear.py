"""Constant matrix products as shift-and-add trees: exact, and free of multipliers."""

import numpy as np
import pytest
from amaranth import Signal, signed
from amaranth.sim import Simulator

from winnow.hw.linear import csd, separable_2d
from winnow.model.integer.datapath import DatapathConfig


@pytest.mark.parametrize("k", list(range(-70, 71)) + [255, -256, 1000])
def test_canonical_signed_digits(k):
    digits = csd(k)
    assert sum(s * 2**t for s, t in digits) == k
    shifts = [t for _, t in digits]
    assert all(b - a >= 2 for a, b in zip(shifts, shifts[1:]))  # no two adjacent non-zero digits
    assert len(digits) <= (abs(k).bit_length() + 2) // 2 + 1


@pytest.mark.parametrize("m", [2, 4, 6])
@pytest.mark.parametrize("which", ["BT", "AT"])
def test_separable_product_is_exact_and_has_no_multiplier(m, which):
    cfg = DatapathConfig(m=m, r=3)
    bt = getattr(cfg.transforms, which)
    n = cfg.n
    xs = [[Signal(signed(9), name=f"x{i}{j}") for j in range(n)] for i in range(n)]
    out = separable_2d(bt, xs)
    assert all("*" not in repr(v) for row in out for v in row)  # shifts and adds only
    rng = np.random.default_rng(m)
    vals = rng.integers(-256, 256, size=(n, n))
    got = {}

    async def tb(ctx):
        for i in range(n):
            for j in range(n):
                ctx.set(xs[i][j], int(vals[i, j]))
        got["v"] = np.array([[ctx.get(v) for v in row] for row in out])

    sim = Simulator(__import__("amaranth").Module())
    sim.add_testbench(tb)
    sim.run()
    assert np.array_equal(got["v"], bt.astype(np.int64) @ vals @ bt.T.astype(np.int64))
