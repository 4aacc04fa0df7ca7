"""cocotb testbench of ``winnow_stream_dram``: the streaming array on LiteDRAM's simulation core (:mod:`winnow.sim.dram_run`).

Reads the cases (``WINNOW_CASES``, as :mod:`winnow.sim.tb_stream` with ``init_writes``:
the SDRAM initialisation as ``(word_address, data, wait_cycles)`` writes on the control
port). Once, after reset: the initialisation, then per case: the blobs written through
the host Wishbone port (32-bit words, byte selects for partial words), ``start``,
``done`` (or the case's ``max_cycles``), the ``reads`` read back through the host port.
Writes ``WINNOW_RESULTS``.
"""

from __future__ import annotations

import json
import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge, SimTimeoutError, Timer, with_timeout

from winnow.model.files.atomic import atomic_write_json

PERIOD_NS = 20
#: Cycles a Wishbone access may wait for ``ack`` (LiteDRAM's refresh and the array's traffic) before the test fails.
WB_TIMEOUT = 20000


async def _wb(dut, prefix: str, adr: int, data: int = 0, *, we: bool, sel: int = 0xF) -> int:
    """One classic Wishbone access on ``<prefix>_*``, driven on falling edges; the read data."""
    sig = lambda s: getattr(dut, f"{prefix}_{s}")  # noqa: E731
    await FallingEdge(dut.clk)
    sig("adr").value, sig("dat_w").value, sig("sel").value = adr, data, sel
    sig("we").value, sig("cyc").value, sig("stb").value = int(we), 1, 1
    for _ in range(WB_TIMEOUT):
        await RisingEdge(dut.clk)
        if int(sig("ack").value):
            value = int(sig("dat_r").value) if not we else 0
            await FallingEdge(dut.clk)
            sig("cyc").value, sig("stb").value, sig("we").value = 0, 0, 0
            return value
    raise AssertionError(f"{prefix}: no ack for word address {adr:#x} in {WB_TIMEOUT} cycles")


async def _write_bytes(dut, addr: int, data: bytes) -> None:
    for a in range(addr & ~3, addr + len(data), 4):
        word, sel = 0, 0
        for k in range(4):
            i = a + k - addr
            if 0 <= i < len(data):
                word |= data[i] << (8 * k)
                sel |= 1 << k
        await _wb(dut, "host", a >> 2, word, we=True, sel=sel)


async def _read_bytes(dut, addr: int, n: int) -> bytes:
    out = bytearray()
    for a in range(addr & ~3, addr + n, 4):
        out += (await _wb(dut, "host", a >> 2, we=False)).to_bytes(4, "little")
    return bytes(out[addr & 3:(addr & 3) + n])


@cocotb.test()
async def run_cases(dut):
    with open(os.environ["WINNOW_CASES"]) as fh:
        cases = json.load(fh)
    cocotb.start_soon(Clock(dut.clk, PERIOD_NS, unit="ns").start())
    for p in ("ctl", "host"):
        for s in ("cyc", "stb", "we", "adr", "dat_w", "sel"):
            getattr(dut, f"{p}_{s}").value = 0
    dut.start.value = 0
    dut.aresetn.value = 0
    await ClockCycles(dut.clk, 4)
    dut.aresetn.value = 1
    for adr, data, wait in cases[0]["init_writes"]:
        await _wb(dut, "ctl", adr, data, we=True)
        if wait:
            await Timer(wait * PERIOD_NS, "ns")
    assert int(dut.init_done.value) == 1 and int(dut.init_error.value) == 0
    results = []
    for case in cases:
        with open(case["data"], "rb") as fh:
            blob = fh.read()
        for addr, off, length in case["blobs"]:
            await _write_bytes(dut, addr, blob[off:off + length])
        await FallingEdge(dut.clk)
        dut.desc_addr.value, dut.passes.value, dut.start.value = case["desc_addr"], case["passes"], 1
        await FallingEdge(dut.clk)
        dut.start.value = 0
        timed_out = False
        if not int(dut.done.value):
            try:
                await with_timeout(RisingEdge(dut.done), case["max_cycles"] * PERIOD_NS, "ns")
            except SimTimeoutError:
                timed_out = True
        await FallingEdge(dut.clk)
        res = {"name": case["name"], "timed_out": timed_out}
        for port in ("cycles", "error", "fault", "error_addr", "pass_index"):
            res[port] = int(getattr(dut, port).value)
        with open(case["out"] + ".tmp", "wb") as fh:
            for addr, length in case["reads"]:
                fh.write(await _read_bytes(dut, addr, length))
        os.replace(case["out"] + ".tmp", case["out"])
        results.append(res)
    atomic_write_json(os.environ["WINNOW_RESULTS"], results)
