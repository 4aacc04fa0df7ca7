"""Zero-skipping PE against its NumPy twin: one entry per cycle, rows written on 'last'."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from hw.config import AccelConfig
from hw.packer import pack_layer
from hw.pe import SparsePE, pe_ref
from model.datapath import DatapathConfig, signed_range
from sim.layers import random_layer

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


@pytest.mark.parametrize("density", [0.0, 0.3, 1.0])
def test_rtl_matches_twin_and_takes_length_plus_latency(density):
    cfg = AccelConfig(datapath=DP, pes=2, lanes=2, k_max=4, h_max=8, w_max=8)
    layer = random_layer(DP, C=4, K=3, H=6, W=6, density=density, seed=4, extreme=True)
    packed = pack_layer(layer, cfg)
    wb = DP.widths.v_bits
    lo, hi = signed_range(wb)
    rng = np.random.default_rng(1)
    v = rng.choice([lo, hi, 0, 1], size=(4, DP.positions, 2))
    for j in range(cfg.pes):
        dut = SparsePE(cfg)
        words = packed.stream_words(j)
        got = {}
        busy_cycles = []

        async def tb(ctx):
            for a, wd in enumerate(words):
                ctx.set(dut.load_en, 1)
                ctx.set(dut.load_addr, a)
                ctx.set(dut.load_data, int(wd))
                await ctx.tick()
            ctx.set(dut.load_en, 0)
            ctx.set(dut.length, len(words))
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            pending = None
            for cyc in range(len(words) + 10):
                # the V buffer answers one cycle after the address
                if pending is not None:
                    c, p = pending
                    ctx.set(dut.v_data, sum((int(v[c, p, l]) & ((1 << wb) - 1)) << (l * wb) for l in range(2)))
                if ctx.get(dut.busy):
                    busy_cycles.append(cyc)
                if ctx.get(dut.acc_en):
                    raw = ctx.get(dut.acc_data)
                    ab = DP.widths.acc_bits
                    lanes = [(raw >> (l * ab)) & ((1 << ab) - 1) for l in range(2)]
                    got[(ctx.get(dut.acc_pos), ctx.get(dut.acc_k))] = [x - (1 << ab) if x >> (ab - 1) else x for x in lanes]
                pending = (ctx.get(dut.v_addr), ctx.get(dut.v_pos))
                await ctx.tick()

        sim = Simulator(dut)
        sim.add_clock(1e-8)
        sim.add_testbench(tb)
        sim.run()
        want = pe_ref(packed.streams[j], v, 4)
        rows = {(int(p), int(k)) for p, k, *_ in packed.streams[j]}
        assert set(got) == rows
        for (p, k), lanes in got.items():
            assert lanes == list(want[p, k])
        # busy exactly len + 2 cycles (0 for an empty stream)
        assert len(busy_cycles) == (len(words) + 2 if len(words) else 0)
