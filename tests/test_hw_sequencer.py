"""Sequencer RTL against its twin (winnow.hw.schedule): launches, step records and cycle count, with random unit busy times."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from winnow.hw.config import AccelConfig
from winnow.hw.schedule import phases
from winnow.hw.sequencer import Sequencer
from winnow.model.integer.datapath import DatapathConfig


@pytest.mark.parametrize("groups, blocks, seed", [(1, 1, 0), (3, 1, 1), (2, 3, 2), (4, 2, 3)])
def test_launches_follow_the_schedule(groups, blocks, seed):
    cfg = AccelConfig(datapath=DatapathConfig(m=2, r=3, c_max=4), pes=2, lanes=4, otu_lanes=2, k_max=8, k_block=2,
                      h_max=16, w_max=16)
    rng = np.random.default_rng(seed)
    dur = {u: rng.integers(0, 6, size=groups * blocks + 2) for u in ("itu", "pe", "otu")}
    dut = Sequencer(cfg)
    seen = []
    sums = {}
    result = {}

    async def tb(ctx):
        ctx.set(dut.groups, groups)
        ctx.set(dut.blocks, blocks)
        ctx.set(dut.finish, 1)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        rem = {"itu": 0, "pe": 0, "otu": 0}
        phase = -1
        for _ in range(2000):
            ctx.set(dut.units_busy, any(v > 0 for v in rem.values()))
            if ctx.get(dut.done):
                break
            go = {u: ctx.get(getattr(dut, u).go) for u in rem}
            restart = ctx.get(dut.pe.restart)
            launched = any(go.values())  # every phase of the schedule launches at least one unit
            await ctx.tick()
            rem = {u: max(v - 1, 0) for u, v in rem.items()}
            if launched:
                phase += 1
                rec = {}
                for u in rem:
                    st = getattr(dut, u).step
                    if go[u]:
                        rem[u] = int(dur[u][phase])
                        rec[u] = (ctx.get(st.group), ctx.get(st.block), ctx.get(st.acc_half))
                        sums[(u, phase)] = (ctx.get(st.k_base), ctx.get(st.slot_k), ctx.get(st.tile0),
                                            ctx.get(st.slot_t))
                seen.append((rec, restart if go["pe"] else None))
        result["cycles"] = ctx.get(dut.cycles)
        result["done"] = ctx.get(dut.done)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    want = phases(groups, blocks)
    assert result["done"] == 1
    assert len(seen) == len(want)
    total = 1
    for (rec, restart), ph in zip(seen, want):
        for u in ("itu", "pe", "otu"):
            st = getattr(ph, u)
            assert (u in rec) == (st is not None), (ph.index, u)
            if st is not None:
                assert rec[u] == (st.group, st.block, st.acc_half)
                # the running sums the output unit addresses with, instead of multipliers
                assert sums[(u, ph.index)] == (st.block * cfg.k_block, st.block * cfg.k_block * cfg.out_tiles,
                                               st.group * cfg.lanes, st.group * cfg.lanes // cfg.otu_lanes)
        if ph.pe is not None:
            assert restart == (ph.pe.block == 0)
        total += 1 + max([int(dur[u][ph.index]) for u in ("itu", "pe", "otu") if getattr(ph, u) is not None])
    assert result["cycles"] == total


def test_without_finish_the_output_unit_is_never_launched_and_the_run_still_ends():
    """Tiled mode: a pass that is not its job's last only accumulates."""
    cfg = AccelConfig(datapath=DatapathConfig(m=2, r=3, c_max=4), pes=2, lanes=2, otu_lanes=2, k_max=4,
                      h_max=8, w_max=8)
    dut = Sequencer(cfg)
    seen = {"itu": 0, "pe": 0, "otu": 0}
    result = {}

    async def tb(ctx):
        ctx.set(dut.groups, 3)
        ctx.set(dut.blocks, 1)
        ctx.set(dut.finish, 0)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        for _ in range(100):
            if ctx.get(dut.done):
                break
            for u in seen:
                seen[u] += ctx.get(getattr(dut, u).go)
            await ctx.tick()
        result["done"], result["cycles"] = ctx.get(dut.done), ctx.get(dut.cycles)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    # 3 groups: the input unit and the PEs launch 3 times each, the output unit never; 3 + 2 phases of
    # one cycle each (no unit is busy here) and the final idle check
    assert seen == {"itu": 3, "pe": 3, "otu": 0}
    assert result["done"] == 1 and result["cycles"] == 5 + 1
