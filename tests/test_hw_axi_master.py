# amaranth: UnusedElaboratable=no
"""The AXI4 master engines' parts without a simulator of Verilog: rules, splitter and watchdog (pysim), ports.

* :func:`check_command` and :func:`check_params` refuse what the engines cannot do, naming the rule;
* :func:`split_bursts` obeys the burst rules (AXI4: ≤ 256 beats, no 4 KiB crossing) on any command,
  and the rule check the RTL tests use (:func:`winnow.sim.axi_run.burst_violations`) finds each fault;
* the RTL :class:`BurstSplitter` (Amaranth simulation, with stalls on every side) issues, for
  random commands near and across 4 KiB boundaries, bursts that tile each command in order,
  each ≤ max_burst, none crossing 4 KiB, each as long as allowed, ``last`` on the final one;
  bad commands are dropped with a ``bad`` pulse;
* the :class:`Watchdog` expires after exactly ``limit`` waiting cycles without progress;
* the top's ports carry every signal cocotbext-axi's AXI bus requires, under the names
  ``AxiBus.from_prefix(dut, "m_axi")`` looks for, with the widths it asserts.
"""

from __future__ import annotations

import random

import pytest
from amaranth.hdl import Shape
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator
from hypothesis import given
from hypothesis import strategies as st

from winnow.hw.axi_master import (PAGE_BYTES, AxiMasterTop, AxiReadEngine, BurstSplitter, Watchdog, check_command,
                                  check_params, split_bursts)
from winnow.hw.ports import AxiReadSignature, AxiWriteSignature
from winnow.model.errors import ConfigError, DataError
from winnow.sim.axi_run import burst_violations


# ---------------------------------------------------------------------------- Python-side rules
@pytest.mark.parametrize("addr, beats, rule", [
    (0x1000, 0, "1 … 1000 words"), (0x1000, 1001, "1 … 1000 words"), (0x1000, -3, "1 … 1000 words"),
    (0x1004, 4, "multiple of 8 bytes"), (-8, 4, "multiple of 8 bytes"), (0x1000, 2.0, "1 … 1000 words"),
    ((1 << 20) - 8, 2, "past the 20-bit address space"),
])
def test_check_command_refuses_bad_commands(addr, beats, rule):
    with pytest.raises(DataError, match=rule):
        check_command(addr, beats, addr_bits=20, data_bits=64, max_beats=1000)


def test_check_command_accepts_the_limits():
    check_command(0, 1, addr_bits=20, data_bits=64, max_beats=1000)
    check_command((1 << 20) - 8000, 1000, addr_bits=20, data_bits=64, max_beats=1000)
    check_command(0x1004, 3, addr_bits=32, data_bits=32, max_beats=3)


@pytest.mark.parametrize("kw, rule", [
    (dict(data_bits=12), "power of two"), (dict(data_bits=2048), "power of two"), (dict(max_burst=0), "max_burst"),
    (dict(max_burst=257), "max_burst"), (dict(max_outstanding=0), "max_outstanding"), (dict(timeout=0), "timeout"),
    (dict(addr_bits=12), "addr_bits"), (dict(max_beats=0), "max_beats"),
])
def test_bad_engine_parameters_are_refused(kw, rule):
    params = dict(addr_bits=32, data_bits=64, max_burst=16, max_beats=100, max_outstanding=2, timeout=10) | kw
    with pytest.raises(ConfigError, match=rule):
        check_params(**params)
    with pytest.raises(ConfigError, match=rule):
        AxiReadEngine(params.pop("addr_bits"), params.pop("data_bits"), params.pop("max_burst"), **params)


def _assert_burst_rules(addr, beats, bursts, nb, max_burst):
    """Bursts [(addr, beats)] tile the command in order, each ≤ max_burst, none crossing 4 KiB, each as long as allowed."""
    problems = burst_violations([(addr, beats)], [(a, n - 1) for a, n in bursts], nb * 8, max_burst)
    assert not problems, problems


def test_the_burst_rule_check_finds_each_kind_of_fault():
    """The checker the RTL tests rely on: a crossing, an over-long, a short, a misplaced and a missing burst."""
    cmd = [(0x1000 - 16, 6)]  # 2 beats to the boundary, then 4
    assert burst_violations(cmd, [(0x1000 - 16, 1), (0x1000, 3)], 64, 16) == []
    assert any("crosses" in p for p in burst_violations(cmd, [(0x1000 - 16, 5)], 64, 16))
    assert any("more than max_burst" in p for p in burst_violations([(0, 6)], [(0, 5)], 64, 4))
    assert any("allowed" in p for p in burst_violations([(0, 6)], [(0, 2), (24, 2)], 64, 16))
    assert any("expected 0x1000" in p for p in burst_violations(cmd, [(0x1000 - 16, 1), (0x1008, 3)], 64, 16))
    assert any("no burst" in p for p in burst_violations(cmd, [(0x1000 - 16, 1)], 64, 16))
    assert any("beyond" in p for p in burst_violations(cmd, [(0x1000 - 16, 1), (0x1000, 3), (0x1020, 0)], 64, 16))


@given(page=st.integers(0, 100), word=st.integers(0, 511), beats=st.integers(1, 2000),
       max_burst=st.sampled_from([1, 2, 7, 16, 64, 256]), data_bits=st.sampled_from([8, 32, 64, 256]))
def test_split_bursts_obeys_the_burst_rules(page, word, beats, max_burst, data_bits):
    nb = data_bits // 8
    addr = page * PAGE_BYTES + (word * nb) % PAGE_BYTES
    _assert_burst_rules(addr, beats, split_bursts(addr, beats, data_bits, max_burst), nb, max_burst)


# ---------------------------------------------------------------------------- splitter (pysim)
def _near_pages(rng: random.Random, nb: int, n: int, max_beats: int):
    """Commands starting at, just before or anywhere in a 4 KiB page, some crossing one or several."""
    out = []
    for _ in range(n):
        page = rng.randint(0, 50) * PAGE_BYTES
        off = rng.choice([0, PAGE_BYTES - nb, PAGE_BYTES - 3 * nb, rng.randrange(0, PAGE_BYTES, nb)])
        out.append((page + off, rng.choice([1, 2, rng.randint(1, 40), rng.randint(1, max_beats)])))
    return out


@pytest.mark.parametrize("data_bits, max_burst, seed", [(64, 16, 1), (32, 256, 2), (128, 1, 3), (8, 7, 4)])
def test_splitter_rtl_issues_bursts_by_the_rules_under_stalls(data_bits, max_burst, seed):
    nb, max_beats = data_bits // 8, 600
    rng = random.Random(seed)
    cmds = _near_pages(rng, nb, 25, max_beats)
    dut = BurstSplitter(32, data_bits, max_burst, max_beats)
    got = []

    async def drive(ctx):
        for addr, beats in cmds:
            ctx.set(dut.cmd.valid, 1)
            ctx.set(dut.cmd.payload, {"addr": addr, "beats": beats})
            await ctx.tick().until(dut.cmd.ready)
            ctx.set(dut.cmd.valid, 0)
            for _ in range(rng.choice([0, 0, 1, 3])):
                await ctx.tick()

    async def take(ctx):
        total = sum(n for _, n in cmds)
        seen = 0
        cycles = 0
        while seen < total:
            ready, room = rng.random() < 0.7, rng.random() < 0.8
            ctx.set(dut.burst.ready, ready)
            ctx.set(dut.room, room)
            if ready and ctx.get(dut.burst.valid):
                p = ctx.get(dut.burst.payload)
                got.append((p.addr, p.len + 1, p.last))
                seen += p.len + 1
            await ctx.tick()
            cycles += 1
            assert cycles < 20 * total, "the splitter stalled"

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(drive)
    sim.add_testbench(take)
    sim.run()
    i = 0
    for addr, beats in cmds:
        parts = []
        while not parts or not parts[-1][2]:
            parts.append(got[i])
            i += 1
        _assert_burst_rules(addr, beats, [(a, n) for a, n, _ in parts], nb, max_burst)
        assert [last for *_, last in parts] == [0] * (len(parts) - 1) + [1]
    assert i == len(got)


def test_splitter_drops_bad_commands_with_a_pulse():
    dut = BurstSplitter(32, 64, 16, 1000)
    cmds = [(0x1000, 0), (0x1004, 3), (0x2000, 1001), (0x3000, 1023), (0x4000, 2)]
    bad, bursts = [], []

    async def tb(ctx):
        ctx.set(dut.burst.ready, 1)
        ctx.set(dut.room, 1)
        for addr, beats in cmds:
            ctx.set(dut.cmd.valid, 1)
            ctx.set(dut.cmd.payload, {"addr": addr, "beats": beats})
            while True:
                done = ctx.get(dut.cmd.ready)
                if done:
                    bad.append(ctx.get(dut.bad))
                if ctx.get(dut.burst.valid):
                    bursts.append(ctx.get(dut.burst.payload.addr))
                await ctx.tick()
                if done:
                    break
        ctx.set(dut.cmd.valid, 0)
        for _ in range(4):
            if ctx.get(dut.burst.valid):
                bursts.append(ctx.get(dut.burst.payload.addr))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    assert bad == [1, 1, 1, 1, 0]
    assert bursts == [0x4000]


# ---------------------------------------------------------------------------- watchdog (pysim)
def test_watchdog_expires_after_exactly_limit_waiting_cycles():
    dut = Watchdog(5)
    trace = []

    async def tb(ctx):
        # (waiting, progress) per cycle: 4 waits then progress, an idle cycle, then 7 waits
        for waiting, progress in [(1, 0)] * 4 + [(1, 1), (0, 0)] + [(1, 0)] * 7:
            ctx.set(dut.waiting, waiting)
            ctx.set(dut.progress, progress)
            trace.append(ctx.get(dut.expired))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    assert trace == [0] * 6 + [0, 0, 0, 0, 0, 1, 1]


# ---------------------------------------------------------------------------- ports
def _width(member) -> int:
    return Shape.cast(member.shape).width


def test_signatures_name_the_axi_signals():
    rd, wr = AxiReadSignature(32, 64).members, AxiWriteSignature(40, 128, id_bits=4).members
    assert {n for n, m in rd.items() if m.flow == Out} == {"arvalid", "arid", "araddr", "arlen", "arsize", "arburst",
                                                           "arlock", "arcache", "arprot", "rready"}
    assert {n for n, m in rd.items() if m.flow == In} == {"arready", "rvalid", "rid", "rdata", "rresp", "rlast"}
    assert (_width(rd["araddr"]), _width(rd["rdata"]), _width(rd["arlen"])) == (32, 64, 8)
    assert {n for n, m in wr.items() if m.flow == In} == {"awready", "wready", "bvalid", "bid", "bresp"}
    assert (_width(wr["awaddr"]), _width(wr["wdata"]), _width(wr["wstrb"]), _width(wr["bid"])) == (40, 128, 16, 4)
    assert AxiReadSignature(32, 64) == AxiReadSignature(32, 64) != AxiReadSignature(32, 32)


def test_top_has_every_signal_cocotbext_axi_requires():
    """``AxiBus.from_prefix(dut, "m_axi")`` finds each required signal and asserts these widths."""
    from cocotbext.axi.axi_channels import AxiARBus, AxiAWBus, AxiBBus, AxiRBus, AxiWBus

    top = AxiMasterTop(data_bits=64).signature.members
    for bus in (AxiARBus, AxiRBus, AxiAWBus, AxiWBus, AxiBBus):
        for sig in bus._signals:
            assert f"m_axi_{sig}" in top, f"m_axi_{sig} is missing ({bus.__name__} requires it)"
    for sig, width in {"arlen": 8, "arsize": 3, "arburst": 2, "awlen": 8, "rresp": 2, "bresp": 2, "wlast": 1,
                       "arcache": 4, "arprot": 3, "arlock": 1, "wstrb": 8}.items():
        assert _width(top[f"m_axi_{sig}"]) == width, sig
    assert _width(top["m_axi_arid"]) == _width(top["m_axi_rid"]) == _width(top["m_axi_bid"])
