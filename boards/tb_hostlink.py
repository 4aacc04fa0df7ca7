"""cocotb testbench of ``winnow_hostlink``: the host driver talks to the RTL through its UART pins.

A cocotb UART model drives ``rx`` with the bytes the host driver writes and decodes
``tx`` into the bytes it reads. The driver (:class:`winnow.boards.host.HostDriver`, the same
class that talks to a board over pyserial) runs in a cocotb bridge thread; its
transport's timeouts are in simulated seconds. Cases come from a pickle
(``WINNOW_HL_CASES``: [(packed, xq, name)]); results go to ``WINNOW_HL_RESULTS`` (JSON)
and are compared with the reference outside the simulator (boards/sim_hostlink.py).
"""

from __future__ import annotations

import json
import os
import pickle
import time
from collections import deque

import cocotb
from cocotb.clock import Clock
from cocotb.task import bridge, resume
from cocotb.triggers import Event, FallingEdge, First, Timer
from cocotb.utils import get_sim_time

from winnow.boards.host import HostDriver

PERIOD_NS = 10


class CocotbTransport:
    """Transport for the host driver inside a cocotb test (call from a bridge thread)."""

    def __init__(self, dut, divisor: int):
        self.dut = dut
        self.d = divisor
        self.byte_time = 10 * divisor * PERIOD_NS * 1e-9
        self.to_board = deque()
        self.from_board = bytearray()
        self.tx_event = Event()
        self.rx_event = Event()
        self.bytes_in = self.bytes_out = 0

    # -- blocking API (bridge thread) -----------------------------------------
    def write(self, data: bytes) -> None:
        resume(self._write)(bytes(data))

    def read(self, n: int, timeout: float) -> bytes:
        return resume(self._read)(n, timeout)

    def now(self) -> float:
        return get_sim_time(unit="ns") * 1e-9

    # -- coroutines (simulator) ------------------------------------------------
    async def _write(self, data):
        self.to_board.extend(data)
        self.tx_event.set()

    async def _read(self, n, timeout):
        deadline = get_sim_time(unit="ns") + timeout * 1e9
        while len(self.from_board) < n:
            left = int(deadline - get_sim_time(unit="ns"))
            if left <= 0:
                break
            self.rx_event.clear()
            await First(self.rx_event.wait(), Timer(left, unit="ns"))
        out = bytes(self.from_board[:n])
        del self.from_board[:n]
        return out

    async def drive_rx(self):
        """UART transmitter model on the DUT's rx pin (bits change on falling clock edges)."""
        dut, bit_ns = self.dut, self.d * PERIOD_NS
        while True:
            while not self.to_board:
                self.tx_event.clear()
                await self.tx_event.wait()
                await FallingEdge(dut.clk)
            byte = self.to_board.popleft()
            for bit in [0] + [(byte >> i) & 1 for i in range(8)] + [1]:
                dut.rx.value = bit
                await Timer(bit_ns, unit="ns")
            self.bytes_in += 1

    async def monitor_tx(self):
        """UART receiver model on the DUT's tx pin (samples mid-bit)."""
        dut, bit_ns = self.dut, self.d * PERIOD_NS
        while True:
            await FallingEdge(dut.tx)
            await Timer(bit_ns // 2, unit="ns")
            assert int(dut.tx.value) == 0, "tx start bit did not hold"
            byte = 0
            for i in range(8):
                await Timer(bit_ns, unit="ns")
                byte |= int(dut.tx.value) << i
            await Timer(bit_ns, unit="ns")
            assert int(dut.tx.value) == 1, "tx stop bit is 0"
            self.from_board.append(byte)
            self.bytes_out += 1
            self.rx_event.set()


@cocotb.test()
async def run_cases(dut):
    divisor = int(os.environ["WINNOW_HL_DIVISOR"])
    with open(os.environ["WINNOW_HL_CASES"], "rb") as fh:
        cases = pickle.load(fh)
    cocotb.start_soon(Clock(dut.clk, PERIOD_NS, unit="ns").start())
    dut.rx.value = 1
    dut.rst.value = 1
    await FallingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    tr = CocotbTransport(dut, divisor)
    cocotb.start_soon(tr.drive_rx())
    cocotb.start_soon(tr.monitor_tx())

    def host():
        # timeouts in simulated seconds: 50 µs (5,000 cycles) beyond the bytes' line time
        drv = HostDriver(tr, timeout=50e-6)
        out = []
        for packed, xq, name in cases:
            w0, s0, b0 = time.perf_counter(), tr.now(), (tr.bytes_in, tr.bytes_out)
            if isinstance(packed, tuple) and packed[0] == "tiled":  # ("tiled", cfg, layer): its passes
                y, cycles = drv.run_tiled(packed[1], packed[2], xq, run_timeout=1.0)
            else:
                y, cycles = drv.run_layer(packed, xq, run_timeout=1.0)
            out.append({"name": name, "out": y.tolist(), "cycles": cycles, "wall_s": time.perf_counter() - w0,
                        "sim_cycles": round((tr.now() - s0) * 1e9 / PERIOD_NS),
                        "bytes_to_board": tr.bytes_in - b0[0], "bytes_from_board": tr.bytes_out - b0[1]})
        return out

    results = await bridge(host)()
    tmp = os.environ["WINNOW_HL_RESULTS"] + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(results, fh)
    os.replace(tmp, os.environ["WINNOW_HL_RESULTS"])
