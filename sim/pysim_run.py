"""Run a packed layer on :class:`winnow.hw.array.WinogradArray` under the Amaranth simulator.

Slow (pure Python); for unit-scale checks. The cocotb runner (sim/cocotb_run.py) runs
the generated Verilog under Verilator or Icarus.
"""

from __future__ import annotations

import numpy as np
from amaranth.sim import Simulator

from winnow.hw.array import WinogradArray
from winnow.hw.packer import PackedLayer


def run_pysim(packed: PackedLayer, xq: np.ndarray, max_cycles: int = 200_000) -> tuple[np.ndarray, int]:
    """Load, start, wait for done, read back. Returns (output (K, Ho, Wo), RUN cycles)."""
    dut = WinogradArray(packed.config)
    words = packed.load_words(xq)
    result = {}

    async def tb(ctx):
        for sel, bank, addr, data in words:
            ctx.set(dut.load.valid, 1)
            ctx.set(dut.load.payload, {"sel": sel, "bank": bank, "addr": addr, "data": data})
            await ctx.tick()
        ctx.set(dut.load.valid, 0)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        for _ in range(max_cycles):
            if ctx.get(dut.done):
                break
            await ctx.tick()
        else:
            raise TimeoutError(f"no done within {max_cycles} cycles")
        values = []
        for bank, addr in packed.output_reads():
            ctx.set(dut.rd_bank, bank)
            ctx.set(dut.rd_addr, addr)
            await ctx.tick()
            values.append(ctx.get(dut.rd_data))
        result["out"] = packed.unpack_reads(values)
        result["cycles"] = ctx.get(dut.cycles)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    return result["out"], result["cycles"]
