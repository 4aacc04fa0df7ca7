"""V buffer and accumulator memory RTL against their twins: banking, halves, owners, clearing."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from winnow.hw.accumulators import Accumulators, AccumulatorsRef
from winnow.hw.config import AccelConfig
from winnow.hw.balance import balance_positions
from winnow.hw.vbuffer import VBuffer, VBufferRef
from winnow.model.integer.datapath import DatapathConfig, signed_range

DP = DatapathConfig(m=2, r=3, c_max=4)


def _cfg(**kw):
    return AccelConfig(**{"datapath": DP, "pes": 4, "clusters": 2, "lanes": 3, "k_max": 8, "k_block": 4,
                          "h_max": 8, "w_max": 8, **kw})


def _owners(cfg, rng):
    return np.stack([balance_positions(rng.integers(0, 9, cfg.positions), cfg.pes_per_cluster)
                     for _ in range(cfg.clusters)])


def _lanes(word, bits, n):
    mask = (1 << bits) - 1
    return [((word >> (i * bits)) & mask) - ((((word >> (i * bits)) & mask) >> (bits - 1)) << bits) for i in range(n)]


@pytest.mark.parametrize("kw", [{}, dict(pes=2, clusters=1), dict(pes=4, clusters=4)])
def test_vbuffer_serves_each_pe_its_cluster_copy(kw):
    cfg = _cfg(**kw)
    rng = np.random.default_rng(1)
    owner = _owners(cfg, rng)
    ref = VBufferRef(cfg)
    dut = VBuffer(cfg)
    vb = cfg.widths.v_bits
    lo, hi = signed_range(vb)
    checked = []

    async def tb(ctx):
        for s in range(cfg.clusters):
            for p in range(cfg.positions):
                ctx.set(dut.owner[s][p], int(owner[s, p]))
        for addr in range(2 * cfg.c_max):
            for lane in range(cfg.lanes):
                v = rng.integers(lo, hi + 1, size=cfg.positions)
                ctx.set(dut.w.en, 1)
                ctx.set(dut.w.addr, {"row": addr, "lane": lane})
                ctx.set(dut.w.data, [int(x) for x in v])
                ref.write(addr, lane, v)
                await ctx.tick()
        ctx.set(dut.w.en, 0)
        for _ in range(40):
            half = int(rng.integers(0, 2))
            ctx.set(dut.rd_half, half)
            want = []
            for j in range(cfg.pes):
                s, i = divmod(j, cfg.pes_per_cluster)
                mine = np.flatnonzero(owner[s] == i)
                p, c = int(rng.choice(mine)), int(rng.integers(0, cfg.c_max))
                ctx.set(dut.rd[j].addr, {"pos": p, "c": c})
                want.append(ref.read(s, p, half * cfg.c_max + c))
            await ctx.tick()
            for j in range(cfg.pes):
                got = _lanes(ctx.get(dut.rd[j].data.as_value()), vb, cfg.lanes)
                assert got == [int(x) for x in want[j]]
                checked.append(j)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    assert len(checked) == 40 * cfg.pes


@pytest.mark.parametrize("kw", [{}, dict(pes=2, clusters=1, k_block=3)])
def test_accumulators_write_read_and_clear(kw):
    cfg = _cfg(**kw)
    rng = np.random.default_rng(2)
    owner = _owners(cfg, rng)
    ref = AccumulatorsRef(cfg)
    dut = Accumulators(cfg)
    ab = cfg.widths.acc_bits
    lo, hi = signed_range(ab)
    mask = (1 << ab) - 1

    async def tb(ctx):
        for s in range(cfg.clusters):
            for p in range(cfg.positions):
                ctx.set(dut.owner[s][p], int(owner[s, p]))
        for rnd in range(30):
            pe_half = rnd % 2
            ctx.set(dut.pe_half, pe_half)
            ctx.set(dut.rd_half, 1 - pe_half)
            # every PE writes a row of one of its positions (or idles); at the same time the
            # output side reads (and sometimes clears) a row of the other half
            writes = []
            for j in range(cfg.pes):
                s, i = divmod(j, cfg.pes_per_cluster)
                en = bool(rng.integers(0, 4))
                p = int(rng.choice(np.flatnonzero(owner[s] == i)))
                k = int(rng.integers(0, cfg.acc_depth))
                lanes = rng.integers(lo, hi + 1, size=cfg.lanes)
                ctx.set(dut.wr[j].en, en)
                ctx.set(dut.wr[j].addr, {"pos": p, "k": k})
                ctx.set(dut.wr[j].data.as_value(), sum((int(x) & mask) << (l * ab) for l, x in enumerate(lanes)))
                if en:
                    writes.append((s, p, k, lanes))
            rs, rk, clear = int(rng.integers(0, cfg.clusters)), int(rng.integers(0, cfg.acc_depth)), bool(rnd % 3 == 0)
            ctx.set(dut.rd.addr, {"cluster": rs, "k": rk})
            ctx.set(dut.rd.clear, clear)
            want = ref.read(rs, 1 - pe_half, rk, clear=clear)
            for s, p, k, lanes in writes:
                ref.write(s, p, pe_half, k, lanes)
            await ctx.tick()
            for j in range(cfg.pes):
                ctx.set(dut.wr[j].en, 0)
            ctx.set(dut.rd.clear, 0)
            for p in range(cfg.positions):
                assert _lanes(ctx.get(dut.rd.data[p].as_value()), ab, cfg.lanes) == [int(x) for x in want[p]], (rnd, p)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    assert ref.rows.any()  # the test did write something
