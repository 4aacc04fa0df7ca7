"""cocotb testbench of the AXI-Stream wrapper ``winnow_array_axis`` (:mod:`winnow.hw.axis_wrapper`).

Reads a case file (JSON, path in ``WINNOW_CASES``): a seed, the source and sink pause
probabilities and a list of layers, each with its load-port payload words and its
number of outputs. Per layer it sends the load words as one frame through a
cocotbext-axi ``AxiStreamSource`` (with random pauses), pulses ``start``, waits for
``done``, pulses ``out_start`` and receives the outputs through an ``AxiStreamSink``
(with random back-pressure). It writes the output words, the length of every frame
(TLAST splits frames: one frame of exactly the layer's outputs means TLAST on the
last word only) and the ``cycles`` port to ``WINNOW_RESULTS`` (JSON); the comparison
with the reference happens outside the simulator (:mod:`winnow.sim.axis_run`).
"""

from __future__ import annotations

import json
import logging
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge, SimTimeoutError, with_timeout
from cocotbext.axi import AxiStreamBus, AxiStreamFrame, AxiStreamSink, AxiStreamSource

PERIOD_NS = 10


def _pauses(rng: random.Random, p: float):
    """A pause generator: pause in a cycle with probability ``p``."""
    while True:
        yield rng.random() < p


async def _pulse(dut, port):
    """One cycle of ``port`` high; returns where the edge that sampled it has taken effect (ReadOnly)."""
    await RisingEdge(dut.aclk)
    getattr(dut, port).value = 1
    await RisingEdge(dut.aclk)
    getattr(dut, port).value = 0
    await ReadOnly()


@cocotb.test()
async def run_cases(dut):
    with open(os.environ["WINNOW_CASES"]) as fh:
        spec = json.load(fh)
    rng = random.Random(spec["seed"])
    cocotb.start_soon(Clock(dut.aclk, PERIOD_NS, unit="ns").start())
    dut.aresetn.value = 0
    dut.start.value = 0
    dut.out_start.value = 0
    source = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis_load"), dut.aclk, dut.aresetn,
                             reset_active_level=False)
    sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis_out"), dut.aclk, dut.aresetn, reset_active_level=False)
    source.log.setLevel(logging.WARNING)  # it logs every frame it sends, all the load words
    sink.log.setLevel(logging.WARNING)
    source.set_pause_generator(_pauses(rng, spec["source_pause"]))
    sink.set_pause_generator(_pauses(rng, spec["sink_pause"]))
    in_bytes = len(dut.s_axis_load_tdata) // 8
    out_bytes = len(dut.m_axis_out_tdata) // 8
    await ClockCycles(dut.aclk, 3)
    dut.aresetn.value = 1
    await ClockCycles(dut.aclk, 2)
    results = []
    for case in spec["cases"]:
        name = case["name"]
        await source.send(AxiStreamFrame(b"".join(w.to_bytes(in_bytes, "little") for w in case["load"])))
        await source.wait()
        await _pulse(dut, "start")
        if not int(dut.done.value):
            try:
                await with_timeout(RisingEdge(dut.done), case["max_cycles"] * PERIOD_NS, "ns")
            except SimTimeoutError:
                raise AssertionError(f"layer {name}: no done within {case['max_cycles']} cycles "
                                     f"(the cycle model predicts {case['model_cycles']})") from None
        await RisingEdge(dut.aclk)
        cycles = int(dut.cycles.value)
        await _pulse(dut, "out_start")
        frames, data = [], bytearray()
        budget = (8 * case["outputs"] + 1000) * PERIOD_NS  # generous under the sink's back-pressure
        while len(data) < case["outputs"] * out_bytes:
            try:
                frame = await with_timeout(sink.recv(), budget, "ns")
            except SimTimeoutError:
                raise AssertionError(f"layer {name}: after {len(data) // out_bytes} of {case['outputs']} outputs "
                                     f"in frames {frames}, no TLAST within {budget // PERIOD_NS} cycles") from None
            frames.append(len(frame.tdata) // out_bytes)
            data += frame.tdata
        await ClockCycles(dut.aclk, 8)  # anything the master still sends after the last frame
        extra = int(dut.out_busy.value) or int(dut.m_axis_out_tvalid.value) or not sink.empty()
        out = [int.from_bytes(data[i:i + out_bytes], "little") for i in range(0, len(data), out_bytes)]
        results.append({"name": name, "cycles": cycles, "frames": frames, "out": out, "extra_after_last": bool(extra)})
    tmp = os.environ["WINNOW_RESULTS"] + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(results, fh)
    os.replace(tmp, os.environ["WINNOW_RESULTS"])
