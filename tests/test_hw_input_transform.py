"""Input transform unit core against its NumPy twin and against the reference's V' stage."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from winnow.hw.input_transform import InputTransform, input_transform_ref
from winnow.model.integer.datapath import DatapathConfig, signed_range
from winnow.model.algebra.tiling import ConvGeometry
from winnow.model.algebra.winograd_conv import input_positions


@pytest.mark.parametrize("m", [2, 4, 6])
def test_twin_matches_the_reference_stage(m):
    cfg = DatapathConfig(m=m, r=3)
    rng = np.random.default_rng(m)
    x = rng.integers(-128, 128, size=(1, 1, cfg.n, cfg.n))
    geom = ConvGeometry.of((cfg.n, cfg.n), 0, m, 3)
    v = input_positions(x, geom, cfg.transforms.BT)[:, 0, 0, 0]  # (P,)
    assert np.array_equal(input_transform_ref(x[0, 0], cfg).reshape(-1), v)


@pytest.mark.parametrize("m", [2, 4, 6])
def test_rtl_matches_twin_with_backpressure(m):
    cfg = DatapathConfig(m=m, r=3)
    n = cfg.n
    lo, hi = signed_range(cfg.act_bits)
    rng = np.random.default_rng(10 + m)
    tiles = [rng.choice([lo, hi], size=(n, n)) for _ in range(3)] + [rng.integers(lo, hi + 1, size=(n, n)) for _ in range(5)]
    relus = [i % 2 == 1 for i in range(len(tiles))]
    dut = InputTransform(cfg)
    got = []

    async def producer(ctx):
        for t, r in zip(tiles, relus):
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload, {"tile": [int(v) for v in t.reshape(-1)], "relu": int(r)})
            await ctx.tick().until(dut.i.ready)
        ctx.set(dut.i.valid, 0)

    async def consumer(ctx):
        k = 0
        while len(got) < len(tiles):
            ctx.set(dut.o.ready, k % 3 != 1)  # back-pressure every third cycle
            await ctx.tick()
            k += 1
            if ctx.get(dut.o.valid) and ctx.get(dut.o.ready):
                pass
        ctx.set(dut.o.ready, 0)

    async def monitor(ctx):
        async for clk, rst, valid, ready, payload in ctx.tick().sample(dut.o.valid, dut.o.ready, dut.o.payload):
            if valid and ready:
                got.append(np.array([int(v) for v in payload.v]).reshape(n, n))
            if len(got) == len(tiles):
                return

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.add_testbench(monitor)
    sim.run_until(1e-8 * 200)
    assert len(got) == len(tiles)
    for g, t, r in zip(got, tiles, relus):
        assert np.array_equal(g, input_transform_ref(t, cfg, winograd_relu=r))
