"""cocotb testbench of the AXI4 master engines' top ``winnow_axi_master`` (:class:`winnow.hw.axi_master.AxiMasterTop`).

Reads a case file (JSON, path in ``WINNOW_CASES``): a list of cases, each run from a
fresh reset with cocotbext-axi's ``AxiRam`` on the ``m_axi`` port. Per case:

* ``fill``: [(address, bytes, seed)] regions of the RAM filled with random bytes first;
* ``reads`` / ``writes``: command lists [(addr, beats)], presented back to back on
  ``rd_cmd`` / ``wr_cmd`` from cycle 0 (the first cycle out of reset); with
  ``reads_after_writes`` the reads start once every write command has signalled ``done``;
  ``wdata``: the write words, all commands' in order;
* ``pause``: per AXI channel (``ar``, ``r``, ``aw``, ``w``, ``b``) the RAM's pause
  generator, ``{"cycle": [0, 1, 1]}`` (itertools.cycle of the list: 1 pauses that cycle),
  ``{"random": p, "seed": s}`` or ``{"always": 1}`` (a memory that never answers on that
  channel); set in cycle 0;
* ``consumer`` / ``producer``: ``{"random": p, "seed": s}`` pauses of ``rd_ready`` /
  ``wr_valid`` (default: always ready / always valid); a word offered on ``wr`` stays
  offered until taken, as AXI requires of WVALID (the engine passes it through);
* ``faults``: [(lo, hi, resp)] byte ranges where the RAM answers ``resp`` (2 SLVERR,
  3 DECERR) instead of OKAY, for reads and writes: the RAM's read or write of a word in the
  range fails (cocotbext-axi then answers SLVERR for the beat or the burst) and the
  response is rewritten to ``resp``;
* ``watch_flags``: read the fault flags every cycle (for the cycle each rises; otherwise they
  are read at the end only);
* ``max_cycles``: the run's end if the commands do not finish (faults, dead memory);
  ``after_fault``: cycles to run on after the first fault flag rises (default: to the end).

Cycle n is the n-th clock period out of reset; a handshake "in cycle n" has valid and
ready high in that period (sampled settled, ReadOnly), so it takes effect at the edge
ending it. Writes ``WINNOW_RESULTS`` (JSON): per case the read words per command, the
cycle of every read beat and of each command's last beat, the cycle of every ``wr_done``
pulse, every AR / AW handshake (cycle, addr, len), of every W and B handshake, the fault
flags and ``busy`` in the cycle after the last one sampled (with the cycle each flag rose)
and the RAM's contents at every read and written command afterwards.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge
from cocotbext.axi import AxiBus, AxiRam

from winnow.model.files.atomic import atomic_write_json

PERIOD_NS = 10
FLAGS = ("error", "error_resp", "timeout", "bad_cmd", "error_addr")
#: The ports the loop drives or samples.
PORTS = tuple(f"rd_{p}" for p in ("cmd_valid", "cmd_ready", "cmd_addr", "cmd_beats", "valid", "ready", "data", "last")) \
    + tuple(f"wr_{p}" for p in ("cmd_valid", "cmd_ready", "cmd_addr", "cmd_beats", "valid", "ready", "data", "done")) \
    + tuple(f"m_axi_{p}" for p in ("arvalid", "arready", "araddr", "arlen", "awvalid", "awready", "awaddr", "awlen",
                                   "wvalid", "wready", "bvalid", "bready"))


def _pause_gen(spec):
    """A pause generator for one channel from its case entry (module docstring)."""
    if spec is None:
        return None
    if "cycle" in spec:
        return itertools.cycle([bool(v) for v in spec["cycle"]])
    if "always" in spec:
        return itertools.repeat(True)
    rng = random.Random(spec["seed"])
    return (rng.random() < spec["random"] for _ in itertools.count())


def _faulty(ram: AxiRam, faults) -> None:
    """Make ``ram`` answer a fault response for words in the ``faults`` ranges (module docstring)."""
    def code(addr, length):
        for lo, hi, resp in faults:
            if addr < hi and addr + length > lo:
                return resp
        return None

    for side, op in ((ram.read_if, "_read"), (ram.write_if, "_write")):
        channel = side.r_channel if op == "_read" else side.b_channel
        state = {"resp": None}
        orig_op, orig_send = getattr(side, op), channel.send

        async def failing(address, arg, _orig=orig_op, _state=state):
            resp = code(address, arg if isinstance(arg, int) else len(arg))
            if resp is not None:
                _state["resp"] = resp
                raise OSError(f"fault response {resp} at 0x{address:x}")  # cocotbext-axi answers SLVERR
            return await _orig(address, arg)

        async def send(obj, _orig=orig_send, _state=state, _field="rresp" if op == "_read" else "bresp"):
            if _state["resp"] is not None:
                setattr(obj, _field, _state["resp"])
                _state["resp"] = None
            await _orig(obj)

        setattr(side, op, failing)
        channel.send = send


def _sig(dut, name) -> int:
    return int(getattr(dut, name).value)


async def _run_case(dut, case, ram: AxiRam, nb: int) -> dict:
    await RisingEdge(dut.aclk)
    dut.aresetn.value = 0
    for port in ("rd_cmd_valid", "wr_cmd_valid", "wr_valid", "rd_ready"):
        getattr(dut, port).value = 0
    await ClockCycles(dut.aclk, 3)
    for addr, beats in case.get("writes", []):  # a write that does not land shows as zeros
        ram.write(addr, bytes(beats * nb))
    for addr, size, seed in case.get("fill", []):
        ram.write(addr, random.Random(seed).randbytes(size))
    channels = {"ar": ram.read_if.ar_channel, "r": ram.read_if.r_channel, "aw": ram.write_if.aw_channel,
                "w": ram.write_if.w_channel, "b": ram.write_if.b_channel}
    reads, writes = case.get("reads", []), case.get("writes", [])
    wdata = case.get("wdata", [])
    consumer, producer = _pause_gen(case.get("consumer")), _pause_gen(case.get("producer"))
    after_writes = case.get("reads_after_writes", False)

    await RisingEdge(dut.aclk)  # cycle 0 begins
    dut.aresetn.value = 1
    for ch, port in channels.items():
        port.set_pause_generator(_pause_gen(case.get("pause", {}).get(ch)))
        if ch not in case.get("pause", {}):
            port.pause = False  # clearing a generator leaves its last value
    ri = wi = wd = 0  # next read command, write command, write word
    rd_words, cur, beat_cycles, last_cycles, done_cycles = [], [], [], [], []
    ar, aw, w_cycles, b_cycles, rd_cmd_cycles, wr_cmd_cycles = [], [], [], [], [], []
    flag_cycle = {}
    first_fault = None
    # the flags are read every cycle only where a case expects faults (each read costs simulator time)
    watched = [f"{side}_{flag}" for side in ("rd", "wr") for flag in ("error", "timeout", "bad_cmd")
               if case.get("watch_flags")]
    h = {name: getattr(dut, name) for name in PORTS + tuple(watched)}
    driven = {}

    def drive(name, value):
        if driven.get(name) != value:
            h[name].value = value
            driven[name] = value

    def get(name):
        return int(h[name].value)

    cycle = 0
    held = False  # the producer's word was offered and not taken
    while cycle < case["max_cycles"]:
        if cycle:
            await RisingEdge(dut.aclk)
        # drive cycle `cycle`
        reads_open = not after_writes or len(done_cycles) == len(writes)
        rd_cmd = ri < len(reads) and reads_open
        drive("rd_cmd_valid", int(rd_cmd))
        if rd_cmd:
            drive("rd_cmd_addr", reads[ri][0])
            drive("rd_cmd_beats", reads[ri][1])
        wr_cmd = wi < len(writes)
        drive("wr_cmd_valid", int(wr_cmd))
        if wr_cmd:
            drive("wr_cmd_addr", writes[wi][0])
            drive("wr_cmd_beats", writes[wi][1])
        # a word offered stays offered until taken (AXI: WVALID follows the producer's valid)
        wr_word = wd < len(wdata) and (held or not (producer and next(producer)))
        drive("wr_valid", int(wr_word))
        if wr_word:
            drive("wr_data", wdata[wd])
        rd_ready = 0 if consumer and next(consumer) else 1
        drive("rd_ready", rd_ready)
        await ReadOnly()
        # sample cycle `cycle`
        if reads:
            if rd_cmd and get("rd_cmd_ready"):
                ri += 1
                rd_cmd_cycles.append(cycle)
            if rd_ready and get("rd_valid"):
                cur.append(get("rd_data"))
                beat_cycles.append(cycle)
                if get("rd_last"):
                    rd_words.append(cur)
                    cur = []
                    last_cycles.append(cycle)
            if get("m_axi_arvalid") and get("m_axi_arready"):
                ar.append((cycle, get("m_axi_araddr"), get("m_axi_arlen")))
        if writes:
            if wr_cmd and get("wr_cmd_ready"):
                wi += 1
                wr_cmd_cycles.append(cycle)
            held = wr_word and not get("wr_ready")
            wd += wr_word and not held
            if get("wr_done"):
                done_cycles.append(cycle)
            if get("m_axi_awvalid") and get("m_axi_awready"):
                aw.append((cycle, get("m_axi_awaddr"), get("m_axi_awlen")))
            if get("m_axi_wvalid") and get("m_axi_wready"):
                w_cycles.append(cycle)
            if get("m_axi_bvalid") and get("m_axi_bready"):
                b_cycles.append(cycle)
        for flag in watched:
            if flag not in flag_cycle and get(flag):
                flag_cycle[flag] = cycle
                first_fault = cycle if first_fault is None else first_fault
        cycle += 1
        if len(last_cycles) == len(reads) and len(done_cycles) == len(writes):
            break
        if first_fault is not None and cycle > first_fault + case.get("after_fault", case["max_cycles"]):
            break
    await RisingEdge(dut.aclk)
    await ReadOnly()  # the cycle after the last one sampled: a finished engine is no longer busy
    flags = {f"{side}_{f}": _sig(dut, f"{side}_{f}") for side in ("rd", "wr") for f in FLAGS + ("busy",)}
    ram_words = {kind: [[int.from_bytes(ram.read(a + i * nb, nb), "little") for i in range(n)] for a, n in cmds]
                 for kind, cmds in (("reads", reads), ("writes", writes))}
    return {"name": case["name"], "rd_words": rd_words, "rd_partial": cur, "beat_cycles": beat_cycles,
            "last_cycles": last_cycles, "done_cycles": done_cycles, "ar": ar, "aw": aw, "w_cycles": w_cycles,
            "b_cycles": b_cycles, "rd_cmd_cycles": rd_cmd_cycles, "wr_cmd_cycles": wr_cmd_cycles,
            "flags": flags, "flag_cycle": flag_cycle, "cycles": cycle, "ram": ram_words}


@cocotb.test()
async def run_cases(dut):
    with open(os.environ["WINNOW_CASES"]) as fh:
        cases = json.load(fh)
    cocotb.start_soon(Clock(dut.aclk, PERIOD_NS, unit="ns").start())
    dut.aresetn.value = 0
    nb = len(dut.m_axi_rdata) // 8
    # one RAM for every case (its processes restart at each reset); faults: the current case's ranges
    ram = AxiRam(AxiBus.from_prefix(dut, "m_axi"), dut.aclk, dut.aresetn, reset_active_level=False, size=2 ** 32)
    for side in (ram.read_if, ram.write_if):
        side.log.setLevel(logging.WARNING)  # it logs every burst
    faults = []
    _faulty(ram, faults)
    results = []
    for case in cases:
        faults[:] = case.get("faults", [])
        results.append(await _run_case(dut, case, ram, nb))
    atomic_write_json(os.environ["WINNOW_RESULTS"], results)
