"""Input unit and output unit RTL against their twins (tile walking, padding, lanes, blocks, output banking)."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from winnow.hw.accumulators import AccumulatorsRef
from winnow.hw.config import AccelConfig
from winnow.hw.input_unit import InputUnit, input_unit_ref
from winnow.hw.output_unit import OutputUnit, output_unit_ref
from winnow.hw.abi import Sel
from winnow.hw.packer import pack_layer
from winnow.model.integer.datapath import DatapathConfig, signed_range
from winnow.sim.layers import random_input, random_layer


def _regs(packed):
    return {name: int(v) for name, v in packed.registers.items()}


@pytest.mark.parametrize("m, C, H, W, pad, lanes, wrelu, serial", [
    (2, 3, 5, 7, 1, 2, False, False),
    (4, 2, 9, 6, 0, 3, True, False),
    (4, 1, 1, 1, 1, 2, False, False),
    (6, 2, 11, 10, 1, 4, False, False),
    # position-serial: one input memory, a pixel per cycle, V' written a position per cycle
    (2, 3, 5, 7, 1, 2, False, True),
    (4, 2, 9, 6, 0, 3, True, True),
    (4, 1, 1, 1, 1, 2, False, True),
])
def test_input_unit_writes_the_twins_v(m, C, H, W, pad, lanes, wrelu, serial):
    dp = DatapathConfig(m=m, r=3, c_max=4)
    cfg = AccelConfig(datapath=dp, pes=1, lanes=lanes, k_max=2, h_max=12, w_max=12, serial=serial)
    layer = random_layer(dp, C=C, K=1, H=H, W=W, density=1.0, padding=pad, winograd_relu=wrelu, seed=m)
    packed = pack_layer(layer, cfg)
    xq = random_input(layer, seed=1, extreme=True)
    groups = packed.groups
    dut = InputUnit(cfg)
    got = {}
    busy = []

    async def tb(ctx):
        for sel, bank, addr, data in packed.load_words(xq):
            if sel == Sel.X:
                ctx.set(dut.load.en, 1)
                ctx.set(dut.load.addr, {"bank": bank, "word": addr})
                ctx.set(dut.load.data, data)
                await ctx.tick()
        ctx.set(dut.load.en, 0)
        ctx.set(dut.regs, _regs(packed))
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        for g in range(groups):
            ctx.set(dut.ctl.go, 1)
            await ctx.tick()
            ctx.set(dut.ctl.go, 0)
            ctx.set(dut.ctl.step.group, g)  # its parity is the V-buffer half
            n_busy = 0
            while ctx.get(dut.busy):
                n_busy += 1
                if ctx.get(dut.v.en):
                    addr, lane = ctx.get(dut.v.addr.row), ctx.get(dut.v.addr.lane)
                    if serial:  # one position per write, in order
                        got.setdefault((g, addr, lane), []).append((ctx.get(dut.v.addr.pos), int(ctx.get(dut.v.data))))
                    else:
                        got[(g, addr, lane)] = [int(v) for v in ctx.get(dut.v.data)]
                await ctx.tick()
            busy.append(n_busy)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    n2 = cfg.positions
    # by hand: C·L tiles of one cycle each (n² serial), then read, rotate/gather, two transform stages
    # (and n² position writes serial)
    assert busy == [C * lanes * (n2 if serial else 1) + 4 + (n2 if serial else 0)] * groups
    for g in range(groups):
        want = input_unit_ref(xq, dp, layer.padding, g, lanes, wrelu)
        for c in range(C):
            for lane in range(lanes):
                if g * lanes + lane < packed.tiles:
                    v = got[(g, (g % 2) * cfg.c_max + c, lane)]
                    if serial:
                        assert [p for p, _ in v] == list(range(n2))
                        v = [x for _, x in v]
                    assert v == want[c, :, lane].tolist(), (g, c, lane)


@pytest.mark.parametrize("arr, K, block", [
    ({}, 3, 0),
    (dict(clusters=2, pes=2, k_block=2, otu_lanes=2), 5, 1),
    (dict(clusters=2, pes=2, k_block=2, otu_lanes=4), 5, 2),
    (dict(requant=1), 3, 0),  # one requantizer per core: four cycles per tile
    (dict(clusters=2, pes=2, k_block=2, otu_lanes=2, requant=2), 5, 1),
    # position-serial accumulators: a position per cycle, transform accumulated as they pass
    (dict(serial=True), 3, 0),
    (dict(serial=True, requant=1), 3, 0),
    (dict(clusters=2, pes=2, k_block=2, otu_lanes=2, requant=2, serial=True), 5, 1),
])
def test_output_unit_writes_the_twins_outputs(arr, K, block):
    dp = DatapathConfig(m=2, r=3, c_max=4)
    cfg = AccelConfig(**{"datapath": dp, "pes": 1, "lanes": 4, "k_max": 6, "h_max": 9, "w_max": 9, **arr})
    layer = random_layer(dp, C=2, K=K, H=9, W=7, density=0.5, relu=True, seed=3, extreme=True)
    packed = pack_layer(layer, cfg)
    rng = np.random.default_rng(4)
    lo, hi = signed_range(cfg.widths.acc_bits)
    acc = AccumulatorsRef(cfg)
    acc.rows[:] = rng.integers(lo // 4, hi // 4, size=acc.rows.shape)
    group, half = packed.groups - 1, 1  # the ragged last group: lanes past the last tile write nothing
    rows = min(cfg.k_block, K - block * cfg.k_block)
    M = np.stack([acc.rows[kk % cfg.clusters, :, half, kk // cfg.clusters] for kk in range(rows)])
    want = output_unit_ref(cfg, M, packed.quant, group=group, block=block, tiles=packed.tiles, relu=True)
    dut = OutputUnit(cfg)
    got = {}
    bits = dp.act_bits
    serial = cfg.serial

    async def tb(ctx):
        for k, word in enumerate(packed.quant_words()):
            ctx.set(dut.quant.en, 1)
            ctx.set(dut.quant.addr, k)
            ctx.set(dut.quant.data.as_value(), int(word))  # the packed word, as the load port carries it
            await ctx.tick()
        ctx.set(dut.quant.en, 0)
        ctx.set(dut.regs, _regs(packed))
        ctx.set(dut.ctl.go, 1)
        await ctx.tick()
        ctx.set(dut.ctl.go, 0)
        ctx.set(dut.ctl.step, {"group": group, "block": block, "acc_half": half, "valid": 1,
                           "k_base": block * cfg.k_block, "slot_k": block * cfg.k_block * cfg.out_tiles,
                           "tile0": group * cfg.lanes, "slot_t": group * cfg.lanes // cfg.otu_lanes})
        n_busy, pending = 0, None
        while ctx.get(dut.busy):
            n_busy += 1
            if pending is not None and pending[2] < cfg.acc_depth:  # answered one cycle after the address
                row = acc.read(*pending)
                for p in range(cfg.positions):
                    word = sum((int(x) & ((1 << cfg.widths.acc_bits) - 1)) << (i * cfg.widths.acc_bits)
                               for i, x in enumerate(row[p]))
                    if serial and p == pos:
                        ctx.set(dut.acc.data.as_value(), word)
                    elif not serial:
                        ctx.set(dut.acc.data[p].as_value(), word)
            pending = (ctx.get(dut.acc.addr.cluster), half, ctx.get(dut.acc.addr.k))
            pos = ctx.get(dut.acc.addr.pos) if serial else None
            await ctx.tick()
        got["busy"] = n_busy
        for (bank, addr) in want:
            ctx.set(dut.rd_bank, bank)
            ctx.set(dut.rd_addr, addr)
            await ctx.tick()
            raw = ctx.get(dut.rd_data)
            got[(bank, addr)] = raw - (1 << bits) if raw >> (bits - 1) else raw

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    Q = cfg.requant_cycles
    # by hand: rows · slices items of Q cycles (n² serial), then read, input register and the core's
    # 4 stages (+1 with a requantizer multiplexer); serial: input register, last position, the bias
    # add, Q requantizer cycles, multiply and round
    tail = 6 + Q if serial else (6 if Q == 1 else 7)
    assert got.pop("busy") == rows * cfg.lanes // cfg.otu_lanes * (cfg.positions if serial else Q) + tail
    assert want and got == want
