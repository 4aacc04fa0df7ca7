"""cocotb testbench of the streaming array ``winnow_stream`` (:class:`winnow.hw.stream_array.StreamTop`).

Reads a case file (JSON, path in ``WINNOW_CASES``): a list of runs, each from a fresh
reset with cocotbext-axi's ``AxiRam`` on the ``m_axi`` port. Per case:

* ``ram_size``: bytes of the RAM; ``blobs``: [(address, offset, length)] byte ranges of
  the case's binary file (``data``, a path) written into the RAM first;
* ``desc_addr``, ``passes``: the run's descriptors (a ``start`` pulse with them);
* ``pause``: per AXI channel (``ar``, ``r``, ``aw``, ``w``, ``b``) the RAM's pause
  generator, as in :mod:`winnow.sim.tb_axi_master`; ``faults``: [(lo, hi, resp)] byte
  ranges answered with SLVERR (2) or DECERR (3), as there;
* ``max_cycles``: the run fails (``timed_out``) if ``done`` does not rise by then;
* ``reads``: [(address, length)] read from the RAM after the run, concatenated into the
  binary file ``out`` (a path).

Writes ``WINNOW_RESULTS`` (JSON): per case the ``cycles``, ``compute_cycles``, ``error``,
``fault``, ``error_addr`` and ``pass_index`` ports after ``done``, the cycles from the
start pulse to ``done`` (``start_to_done``), ``timed_out`` and the wall time.
"""

from __future__ import annotations

import json
import logging
import os
import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge, SimTimeoutError, with_timeout
from cocotbext.axi import AxiBus, AxiRam

from winnow.model.files.atomic import atomic_write_json
from winnow.sim.tb_axi_master import _faulty, _pause_gen

PERIOD_NS = 10
CHANNELS = ("ar", "r", "aw", "w", "b")


async def _run_case(dut, case, ram: AxiRam) -> dict:
    dut.start.value = 0
    dut.aresetn.value = 0
    await FallingEdge(dut.aclk)
    await FallingEdge(dut.aclk)
    ram.write(0, bytes(case["ram_size"]))  # nothing of an earlier case survives
    with open(case["data"], "rb") as fh:
        blob = fh.read()
    for addr, off, length in case["blobs"]:
        ram.write(addr, blob[off:off + length])
    dut.aresetn.value = 1
    channels = {"ar": ram.read_if.ar_channel, "r": ram.read_if.r_channel, "aw": ram.write_if.aw_channel,
                "w": ram.write_if.w_channel, "b": ram.write_if.b_channel}
    for ch, port in channels.items():
        port.set_pause_generator(_pause_gen(case.get("pause", {}).get(ch)))
        if ch not in case.get("pause", {}):
            port.pause = False
    await FallingEdge(dut.aclk)
    dut.desc_addr.value = case["desc_addr"]
    dut.passes.value = case["passes"]
    dut.start.value = 1
    t0 = cocotb.utils.get_sim_time(unit="ns")
    await FallingEdge(dut.aclk)
    dut.start.value = 0
    w0 = time.perf_counter()
    timed_out = False
    if not int(dut.done.value):
        try:
            await with_timeout(RisingEdge(dut.done), case["max_cycles"] * PERIOD_NS, "ns")
        except SimTimeoutError:
            timed_out = True
    wall = time.perf_counter() - w0
    t1 = cocotb.utils.get_sim_time(unit="ns")
    await FallingEdge(dut.aclk)
    res = {"name": case["name"], "timed_out": timed_out, "start_to_done": int((t1 - t0) // PERIOD_NS),
           "run_wall_s": wall}
    for port in ("cycles", "compute_cycles", "error", "fault", "error_addr", "pass_index", "busy", "done"):
        res[port] = int(getattr(dut, port).value)
    with open(case["out"] + ".tmp", "wb") as fh:
        for addr, length in case.get("reads", []):
            fh.write(bytes(ram.read(addr, length)))
    os.replace(case["out"] + ".tmp", case["out"])
    return res


@cocotb.test()
async def run_cases(dut):
    with open(os.environ["WINNOW_CASES"]) as fh:
        cases = json.load(fh)
    cocotb.start_soon(Clock(dut.aclk, PERIOD_NS, unit="ns").start())
    ram = AxiRam(AxiBus.from_prefix(dut, "m_axi"), dut.aclk, dut.aresetn, reset_active_level=False,
                 size=max(c["ram_size"] for c in cases))
    logging.getLogger("cocotb.m_axi").setLevel(logging.WARNING)
    faults: list = []  # the running case's fault ranges (the RAM's wrapper reads this list)
    _faulty(ram, faults)
    results = []
    for case in cases:
        faults[:] = case.get("faults", [])
        results.append(await _run_case(dut, case, ram))
    atomic_write_json(os.environ["WINNOW_RESULTS"], results)
