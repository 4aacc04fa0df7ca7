"""UART RX/TX (Amaranth simulator) against their software twins: random bytes, gaps,
baud error, framing errors and random back-pressure."""

import numpy as np
import pytest
from amaranth import Module
from amaranth.sim import Simulator

from winnow.boards.uart import (UARTRx, UARTTx, RxModel, check_divisor, divisor_for, line_waveform, rx_decode,
                         tx_waveform)
from winnow.model.errors import ConfigError


def _sim(dut, tb):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()


def _tx_line(divisor, data, idle=lambda: 0):
    """Feed ``data`` to a UARTTx (``idle()`` cycles of no valid before each byte); the line, per cycle."""
    dut = UARTTx(divisor)
    line = []

    async def tick(ctx):
        await ctx.tick()
        line.append(ctx.get(dut.tx))

    async def tb(ctx):
        assert ctx.get(dut.tx) == 1
        for byte in data:
            ctx.set(dut.i.valid, 0)
            for _ in range(idle()):
                await tick(ctx)
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload, byte)
            while True:
                ready = ctx.get(dut.i.ready)
                await tick(ctx)
                if ready:
                    break
        ctx.set(dut.i.valid, 0)
        for _ in range(12 * divisor):
            await tick(ctx)

    _sim(dut, tb)
    return line


@pytest.mark.parametrize("divisor", [4, 5, 7])
def test_tx_back_to_back_equals_twin_waveform(divisor):
    data = bytes(np.random.default_rng(divisor).integers(0, 256, 12).tolist()) + b"\x00\xff\x55"
    line = _tx_line(divisor, data)
    first = line.index(0)
    want = tx_waveform(data, divisor)
    assert line[first:first + len(want)] == want
    assert all(b == 1 for b in line[first + len(want):])


@pytest.mark.parametrize("seed", [0, 1])
def test_tx_with_random_producer_gaps_decodes_to_the_same_bytes(seed):
    rng = np.random.default_rng(seed)
    divisor = 4
    data = rng.integers(0, 256, 40).tolist()
    line = _tx_line(divisor, data, idle=lambda: int(rng.integers(0, 3)) * int(rng.integers(0, 30)))
    got, fe, ov = rx_decode(line, divisor)
    assert (got, fe, ov) == (data, 0, 0)


def _rx_against_model(divisor, waveform, ready):
    dut = UARTRx(divisor)
    model = RxModel(divisor)
    rtl, twin = [], []

    async def tb(ctx):
        for pin, r in zip(waveform, ready):
            ctx.set(dut.rx, pin)
            ctx.set(dut.o.ready, r)
            rtl.append((ctx.get(dut.o.valid), ctx.get(dut.o.payload) if ctx.get(dut.o.valid) else 0,
                        ctx.get(dut.frame_err), ctx.get(dut.overrun)))
            v, p, f, o = model.step(pin, r)
            twin.append((v, p if v else 0, f, o))
            await ctx.tick()

    _sim(dut, tb)
    return rtl, twin


@pytest.mark.parametrize("divisor,skew", [(4, 1.0), (8, 1.03), (8, 0.97), (16, 1.0)])
def test_rx_equals_twin_cycle_by_cycle_with_back_pressure(divisor, skew):
    rng = np.random.default_rng(divisor)
    frames = [(int(rng.integers(0, 256)), int(rng.integers(0, 3 * divisor)), 1) for _ in range(30)]
    frames[7] = (0x00, 5, 0)   # framing errors: stop bit 0 (one with an all-zero byte: a break)
    frames[19] = (0xA5, 5, 0)
    wave = line_waveform(frames, divisor * skew, idle=3 * divisor)
    ready = (rng.random(len(wave)) < 0.3).astype(int).tolist()  # random back-pressure (overruns: next test)
    rtl, twin = _rx_against_model(divisor, wave, ready)
    assert rtl == twin
    taken = [p for (v, p, f, o), r in zip(rtl, ready) if v and r]
    fe = sum(f for _, _, f, _ in rtl)
    assert fe == 2
    # with a consumer that keeps up, every good byte arrives in order
    got, fe, ov = rx_decode(wave, divisor, ready=[1] * len(wave))
    assert got == [b for b, _, stop in frames if stop] and fe == 2 and ov == 0
    assert set(taken) <= set(got)


def test_rx_overrun_drops_the_new_byte_and_keeps_the_held_one():
    divisor = 4
    wave = line_waveform([(0x12, 0, 1), (0x34, 0, 1), (0x56, 0, 1)], divisor, idle=8)
    ready = [0] * len(wave)
    ready[-1] = 1
    rtl, twin = _rx_against_model(divisor, wave, ready)
    assert rtl == twin
    assert sum(o for *_, o in rtl) == 2
    assert rtl[-1][:2] == (1, 0x12)


def test_rx_ignores_a_glitch_shorter_than_half_a_bit():
    divisor = 8
    wave = [1] * 20 + [0] * 2 + [1] * 40 + line_waveform([(0x3C, 0, 1)], divisor, idle=10)
    got, fe, ov = rx_decode(wave, divisor)
    assert (got, fe, ov) == ([0x3C], 0, 0)
    rtl, twin = _rx_against_model(divisor, wave, [1] * len(wave))
    assert rtl == twin


def test_loopback_tx_into_rx_with_random_consumer():
    divisor = 5
    rng = np.random.default_rng(3)
    data = rng.integers(0, 256, 30).tolist()
    m = Module()
    m.submodules.tx = tx = UARTTx(divisor)
    m.submodules.rx = rx = UARTRx(divisor)
    m.d.comb += rx.rx.eq(tx.tx)
    got = []

    async def tb(ctx):
        pending = list(data)
        for _ in range(len(data) * 10 * divisor + 60):
            ctx.set(tx.i.valid, bool(pending))
            if pending:
                ctx.set(tx.i.payload, pending[0])
            r = int(rng.random() < 0.5)  # consumer back-pressure, still faster than the line
            ctx.set(rx.o.ready, r)
            if ctx.get(rx.o.valid) and r:
                got.append(ctx.get(rx.o.payload))
            if pending and ctx.get(tx.i.ready):
                pending.pop(0)
            assert not ctx.get(rx.overrun) and not ctx.get(rx.frame_err)
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    assert got == data


def test_divisor_rules():
    assert divisor_for(25e6, 115200) == 217
    assert divisor_for(12e6, 115200) == 104
    with pytest.raises(ConfigError, match="divisor"):
        check_divisor(3)
    with pytest.raises(ConfigError, match="off"):
        divisor_for(12e6, 2_500_000)  # 4.8 cycles a bit: 5 gives 4 % too slow
