"""Output transform + requantization core against its twin and the reference's stages."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from winnow.hw.output_transform import OutputTransform, output_transform_ref
from winnow.model.integer.datapath import DatapathConfig, signed_range
from winnow.model.integer.quant import round_shift, saturate


def _cases(cfg, rng, count):
    w = cfg.widths
    n2 = cfg.positions
    lo = np.array(w.acc_lo)
    hi = np.array(w.acc_hi)
    out = []
    for i in range(count):
        if i < 2:  # the corners of every position's accumulator range
            mv = np.where(rng.random(n2) < 0.5, lo, hi)
        else:
            mv = np.array([int(rng.integers(a, b + 1)) for a, b in zip(lo // 64, hi // 64)])
        blo, bhi = signed_range(cfg.bias_bits)
        bias = int(rng.choice([blo, bhi, int(rng.integers(-1000, 1000))]))
        mult = int(rng.choice([0, (1 << cfg.mult_bits) - 1, int(rng.integers(1 << (cfg.mult_bits - 1), 1 << cfg.mult_bits))]))
        shift = int(rng.choice([0, 1, w.requant_bits - 1, int(rng.integers(0, w.requant_bits))]))
        out.append((mv.reshape(cfg.n, cfg.n), bias, mult, shift, bool(i % 2)))
    return out


def test_twin_follows_the_datapath_spec():
    cfg = DatapathConfig(m=4, r=3)
    at = cfg.transforms.AT
    rng = np.random.default_rng(0)
    mv = rng.integers(-1000, 1000, size=(6, 6))
    z = at @ (mv << cfg.shifts) @ at.T + 7
    want = saturate(round_shift(z * 12345, np.int64(20)), 8)
    assert np.array_equal(output_transform_ref(mv, 7, 12345, 20, False, cfg), want)


@pytest.mark.parametrize("m", [2, 4, 6])
def test_rtl_matches_twin(m):
    cfg = DatapathConfig(m=m, r=3)
    rng = np.random.default_rng(m)
    cases = _cases(cfg, rng, 10)
    dut = OutputTransform(cfg)
    got = []

    async def producer(ctx):
        ctx.set(dut.o.ready, 1)
        for mv, bias, mult, shift, relu in cases:
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload, {"m": [int(v) for v in mv.reshape(-1)], "bias": bias, "mult": mult,
                                    "shift": shift, "relu": int(relu)})
            await ctx.tick().until(dut.i.ready)
        ctx.set(dut.i.valid, 0)

    async def monitor(ctx):
        async for clk, rst, valid, payload in ctx.tick().sample(dut.o.valid, dut.o.payload):
            if valid:
                got.append(np.array([int(v) for v in payload.y]).reshape(m, m))
            if len(got) == len(cases):
                return

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_testbench(monitor)
    sim.run_until(1e-8 * 100)
    assert len(got) == len(cases)
    for g, (mv, bias, mult, shift, relu) in zip(got, cases):
        assert np.array_equal(g, output_transform_ref(mv, bias, mult, shift, relu, cfg)), (bias, mult, shift)


@pytest.mark.parametrize("m, R", [(2, 1), (2, 2), (4, 4), (4, 1), (6, 6)])
def test_shared_requantizers_give_the_same_outputs(m, R):
    """R requantizers: each tile is held for m²/R cycles, sub = 0 … m²/R − 1 picks the outputs."""
    cfg = DatapathConfig(m=m, r=3)
    Q = m * m // R
    cases = _cases(cfg, np.random.default_rng(100 + m), 6)
    dut = OutputTransform(cfg, requant=R)
    got = {}

    async def producer(ctx):
        ctx.set(dut.o.ready, 1)
        for mv, bias, mult, shift, relu in cases:
            for sub in range(Q):
                ctx.set(dut.i.valid, 1)
                ctx.set(dut.i.payload, {"m": [int(v) for v in mv.reshape(-1)], "bias": bias, "mult": mult,
                                        "shift": shift, "relu": int(relu), "sub": sub})
                await ctx.tick()
        ctx.set(dut.i.valid, 0)

    async def monitor(ctx):
        k = 0
        async for clk, rst, valid, payload in ctx.tick().sample(dut.o.valid, dut.o.payload):
            if valid:
                tile, sub = divmod(k, Q)
                assert payload.sub == sub
                got.setdefault(tile, {})[sub] = [int(v) for v in payload.y]
                k += 1
            if k == len(cases) * Q:
                return

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_testbench(monitor)
    sim.run_until(1e-8 * (len(cases) * Q + 20))
    assert len(got) == len(cases)
    for t, (mv, bias, mult, shift, relu) in enumerate(cases):
        y = np.concatenate([got[t][s] for s in range(Q)]).reshape(m, m)
        assert np.array_equal(y, output_transform_ref(mv, bias, mult, shift, relu, cfg))


def test_requantizers_must_divide_the_outputs():
    with pytest.raises(ValueError, match="must divide"):
        OutputTransform(DatapathConfig(m=4, r=3), requant=3)


@pytest.mark.parametrize("m, requant, gaps", [(2, None, False), (2, 1, True), (4, 4, False), (4, 1, True),
                                              (6, 6, False)])
def test_serial_core_matches_twin(m, requant, gaps):
    """Positions one per cycle (with idle cycles between some of them when ``gaps``), tiles back to
    back: every output equals the twin, and leaves 5 + sub cycles after the tile's last position."""
    from winnow.hw.serial_output_transform import SerialOutputTransform

    cfg = DatapathConfig(m=m, r=3)
    rng = np.random.default_rng(10 + m)
    cases = _cases(cfg, rng, 6)
    R = requant or m * m
    Q = m * m // R
    dut = SerialOutputTransform(cfg, requant=requant)
    got, last_at, out_at = [], [], []

    async def producer(ctx):
        for mv, bias, mult, shift, relu in cases:
            for p, v in enumerate(mv.reshape(-1)):
                if gaps and p % 5 == 3:
                    ctx.set(dut.i.valid, 0)
                    await ctx.tick()
                ctx.set(dut.i.valid, 1)
                # the quantization is only read with the last position: other values before it
                q = (bias, mult, shift, int(relu)) if p == cfg.positions - 1 else (0, 0, 0, 0)
                ctx.set(dut.i.payload, {"m": int(v), "pos": p, "bias": q[0], "mult": q[1], "shift": q[2],
                                        "relu": q[3]})
                await ctx.tick()
            last_at.append(cycle[0] - 1)
            if gaps:  # one tile's requantization overlaps the next tile's positions, or not
                ctx.set(dut.i.valid, 0)
                await ctx.tick()
        ctx.set(dut.i.valid, 0)

    cycle = [0]

    async def monitor(ctx):
        async for clk, rst, valid, payload, busy in ctx.tick().sample(dut.o.valid, dut.o.payload, dut.busy):
            cycle[0] += 1
            if valid:
                got.append((int(payload.sub), [int(v) for v in payload.y]))
                out_at.append(cycle[0] - 1)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_process(monitor)
    sim.run_until(1e-8 * (len(cases) * (cfg.positions * 2 + 20) + 50))
    want = []
    for mv, bias, mult, shift, relu in cases:
        y = output_transform_ref(mv, bias, mult, shift, relu, cfg).reshape(-1)
        want += [(s, [int(v) for v in y[s * R:(s + 1) * R]]) for s in range(Q)]
    assert got == want
    assert out_at == [t + 4 + s + 1 for t in last_at for s in range(Q)]
