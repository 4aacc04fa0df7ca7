"""cocotb testbench of the generated ``winnow_array`` Verilog.

Reads a case file (JSON, path in ``WINNOW_CASES``): a list of layers, each with the
packed load words and the output addresses to read back. For every layer it loads the
memories through the load port, pulses ``start`` and then waits for ``done`` on a
value-change trigger (no Python runs during the computation), reads the outputs back
and writes them with the measured cycles to ``WINNOW_RESULTS`` (JSON). The comparison
with the reference happens outside the simulator (sim/cocotb_run.py), so a mismatch
is reported with the layer and the first differing element.
"""

from __future__ import annotations

import json
import os
import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge, SimTimeoutError, with_timeout

PERIOD_NS = 10


@cocotb.test()
async def run_cases(dut):
    with open(os.environ["WINNOW_CASES"]) as fh:
        cases = json.load(fh)
    cocotb.start_soon(Clock(dut.clk, PERIOD_NS, unit="ns").start())
    dut.rst.value = 1
    dut.load__valid.value = 0
    dut.start.value = 0
    dut.rd_bank.value = 0
    dut.rd_addr.value = 0
    await FallingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    results = []
    for case in cases:
        t0 = time.perf_counter()
        dut.load__valid.value = 1
        for word in case["load"]:
            dut.load__payload.value = word
            await FallingEdge(dut.clk)
        dut.load__valid.value = 0
        t_load = time.perf_counter() - t0
        dut.start.value = 1
        t_sim0 = cocotb.utils.get_sim_time(unit="ns")
        await FallingEdge(dut.clk)
        dut.start.value = 0
        w0 = time.perf_counter()
        if not int(dut.done.value):
            try:
                await with_timeout(RisingEdge(dut.done), case["max_cycles"] * PERIOD_NS, "ns")
            except SimTimeoutError:
                raise AssertionError(f"layer {case['name']}: no done within {case['max_cycles']} cycles "
                                     f"(the cycle model predicts {case['model_cycles']})") from None
        wall = time.perf_counter() - w0
        t_sim1 = cocotb.utils.get_sim_time(unit="ns")
        await FallingEdge(dut.clk)
        cycles = int(dut.cycles.value)
        out = []
        reads = case["read"]
        for i, (bank, addr) in enumerate(reads):
            dut.rd_bank.value = bank
            dut.rd_addr.value = addr
            await FallingEdge(dut.clk)
            out.append(int(dut.rd_data.value))
        results.append({"name": case["name"], "cycles": cycles, "start_to_done_ns": t_sim1 - t_sim0,
                        "run_wall_s": wall, "load_wall_s": t_load, "out": out})
    tmp = os.environ["WINNOW_RESULTS"] + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(results, fh)
    os.replace(tmp, os.environ["WINNOW_RESULTS"])
