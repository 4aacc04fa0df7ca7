"""Zero-skipping PE against its NumPy twin: one entry per cycle, rows written on 'last', one segment per launch."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from winnow.hw.config import AccelConfig
from winnow.hw.packer import pack_layer
from winnow.hw.pe import SparsePE, pe_ref
from winnow.model.integer.datapath import DatapathConfig, signed_range
from winnow.sim.layers import random_layer

DP = DatapathConfig(m=2, r=3, c_max=8)


def test_twin_equals_the_reference_channel_sums():
    cfg = AccelConfig(datapath=DP, pes=1, lanes=3, k_max=4, h_max=8, w_max=8)
    layer = random_layer(DP, C=5, K=4, H=6, W=6, density=0.4, seed=1)
    packed = pack_layer(layer, cfg)
    rng = np.random.default_rng(0)
    v = rng.integers(-500, 500, size=(5, DP.positions, 3))
    w = layer.to_dense().reshape(4, 5, -1).transpose(2, 0, 1)  # (P, K, C)
    want = np.einsum("pkc,cpl->pkl", w, v)
    assert np.array_equal(pe_ref(packed.streams[0], v, 4), want)


def _signed(x, bits):
    return x - (1 << bits) if x >> (bits - 1) else x


@pytest.mark.parametrize("density, k_block", [(0.0, 4), (0.3, 4), (1.0, 4), (0.3, 2), (0.05, 1)])
def test_rtl_matches_twin_segment_by_segment(density, k_block):
    """Every block's segment is one launch (restart at block 0 only); busy = segment length + latency."""
    cfg = AccelConfig(datapath=DP, pes=2, lanes=2, k_max=4, k_block=k_block, h_max=8, w_max=8)
    layer = random_layer(DP, C=4, K=3, H=6, W=6, density=density, seed=4, extreme=True)
    packed = pack_layer(layer, cfg)
    wb, ab = DP.widths.v_bits, DP.widths.acc_bits
    lo, hi = signed_range(wb)
    v = np.random.default_rng(1).choice([lo, hi, 0, 1], size=(4, DP.positions, 2))
    for j in range(cfg.pes):
        dut = SparsePE(cfg)
        words = packed.stream_words(j)
        segs = [int(x) for x in packed.segments[j]]
        got, busy = [], []

        async def tb(ctx):
            for a, wd in enumerate(words):
                ctx.set(dut.load.en, 1)
                ctx.set(dut.load.addr, a)
                ctx.set(dut.load.data.as_value(), int(wd))  # the packed word, as the load port carries it
                await ctx.tick()
            ctx.set(dut.load.en, 0)
            for rep in range(2):  # two tile groups: the second restarts at entry 0
                for b in range(len(segs)):
                    ctx.set(dut.ctl.go, 1)
                    ctx.set(dut.ctl.restart, b == 0)
                    await ctx.tick()
                    ctx.set(dut.ctl.go, 0)
                    pending, n_busy, rows = None, 0, {}
                    for _ in range(segs[b] + 8):
                        if pending is not None:  # the V buffer answers one cycle after the address
                            c, p = pending
                            ctx.set(dut.v.data.as_value(),
                                    sum((int(v[c, p, l]) & ((1 << wb) - 1)) << (l * wb) for l in range(2)))
                        n_busy += ctx.get(dut.busy)
                        if ctx.get(dut.acc.en):
                            raw = ctx.get(dut.acc.data.as_value())
                            rows[(ctx.get(dut.acc.addr.pos), ctx.get(dut.acc.addr.k))] = [
                                _signed((raw >> (l * ab)) & ((1 << ab) - 1), ab) for l in range(2)]
                        pending = (ctx.get(dut.v.addr.c), ctx.get(dut.v.addr.pos))
                        await ctx.tick()
                    busy.append(n_busy)
                    if rep == 0:
                        got.append(rows)

        sim = Simulator(dut)
        sim.add_clock(1e-8)
        sim.add_testbench(tb)
        sim.run()
        assert busy == [s + dut.latency for s in segs] * 2
        stream = packed.streams[j]
        bounds = np.cumsum([0] + segs)
        for b in range(len(segs)):
            seg = stream[bounds[b]:bounds[b + 1]]
            want = pe_ref(seg, v, 4)
            rows = {(int(p), (int(k) % k_block) // cfg.clusters): list(want[p, k]) for p, k, _c, _v, last, _e in seg
                    if last}
            assert got[b] == rows
            assert seg[-1, 5] == 1 and seg[:-1, 5].sum() == 0  # one end-of-block mark, at the end
