# amaranth: UnusedElaboratable=no
"""The LiteDRAM core for the ULX3S SDRAM (boards/dram.py) and the stream top on it (boards/stream_top.py).

The SDRAM chip cannot be simulated here; these tests check the generated core (its
ports and widths), its cache, the initialisation writes, that the top wires the core
to the array, the pins and the PLL (traced net by net through the RTLIL), and the UART
host commands in the Amaranth simulator against a Wishbone memory model.
"""

from __future__ import annotations

import os
import re
import struct
import subprocess

import pytest

from winnow.model.errors import WinnowError

from winnow.boards import dram as dram_mod
from winnow.boards.dram import DramConfig, DramError, DramMissingError, generate_core

pytestmark = pytest.mark.xdist_group("litedram")

_MISSING = [p for p, v in dram_mod.package_versions().items() if v is None]
needs_litedram = pytest.mark.skipif(bool(_MISSING), reason=f"{', '.join(_MISSING)} not installed "
                                    "(pip install 'winnow[boards]')")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("litedram")


@pytest.fixture(scope="module")
def core(cache_dir):
    if _MISSING:
        pytest.skip(f"{', '.join(_MISSING)} not installed (pip install 'winnow[boards]')")
    return generate_core(DramConfig(), cache_dir)


# ---------------------------------------------------------------------------- the core
@needs_litedram
def test_core_has_the_axi_port_of_the_array_width(core):
    p = core.ports
    assert p["user_port_axi_rdata"] == ("output", 128)
    assert p["user_port_axi_wdata"] == ("input", 128)
    assert p["user_port_axi_wstrb"] == ("input", 16)
    # byte addresses over the 32 MB: 25 bits
    assert p["user_port_axi_araddr"] == ("input", 25) and p["user_port_axi_awaddr"] == ("input", 25)
    assert p["user_port_axi_arlen"] == ("input", 8) and p["user_port_axi_arid"] == ("input", 1)
    # the host port: 32-bit Wishbone, word addresses over 32 MB
    assert p["user_port_host_dat_r"] == ("output", 32) and p["user_port_host_adr"] == ("input", 23)
    # the SDRAM: 16-bit DQ (bidirectional after the fix-up), 13 address and 2 bank bits
    assert p["sdram_dq"] == ("inout", 16) and p["sdram_a"] == ("output", 13) and p["sdram_ba"] == ("output", 2)
    assert core.info["native_data_bits"] == 16 and core.info["size_bytes"] == 32 << 20
    text = core.verilog.read_text()
    assert re.search(r"^module litedram_core\s*\(", text, re.M)
    assert re.search(r"^\s*output\s+wire\s+\[127:0\]\s+user_port_axi_rdata,", text, re.M)
    assert re.search(r"^\s*inout\s+wire\s+\[15:0\]\s+sdram_dq,", text, re.M)


@needs_litedram
def test_parse_ports_reads_the_module_header():
    text = "module m (\n    input  wire          clk,\n    output wire   [12:0] a,\n    inout  wire [3:0] d\n);\n"
    assert dram_mod.parse_ports(text, "m") == {"clk": ("input", 1), "a": ("output", 13), "d": ("inout", 4)}
    with pytest.raises(DramError, match="no module 'x'"):
        dram_mod.parse_ports(text, "x")


@needs_litedram
def test_init_writes_follow_the_bios_sequence(core):
    csr = core.csr
    w = core.init_writes
    ctl, cmd, issue = csr["sdram_dfii_control"] >> 2, csr["sdram_dfii_pi0_command"] >> 2, \
        csr["sdram_dfii_pi0_command_issue"] >> 2
    # software control with CKE, ODT, RESET_N first; hardware control (SEL) and init_done last
    assert w[0] == (ctl, 0x0E, 0)
    assert w[-2] == (ctl, 0x01, 0) and w[-1] == (csr["ddrctrl_init_done"] >> 2, 1, 0)
    # the SDR sequence: CKE (20,000 BIOS delay units), precharge, mode register (DLL reset), precharge,
    # two auto refreshes, mode register: six commands, each written then issued
    cmds = [w[i][1] for i in range(len(w) - 1) if w[i][0] == cmd and w[i + 1][0] == issue]
    assert cmds == [0x0B, 0x0F, 0x0B, 0x0D, 0x0D, 0x0F]
    assert (ctl, 0x0E, 20000 * dram_mod.CDELAY_CYCLES) in w
    # the mode register: CL=2, burst length 1 (0x20) is the last command's address
    addr = csr["sdram_dfii_pi0_address"] >> 2
    assert [x[1] for x in w if x[0] == addr][-1] == (core.info["phy"]["cl"] << 4)


# ---------------------------------------------------------------------------- the cache
@needs_litedram
def test_cache_regenerates_on_a_config_change_and_not_otherwise(core, cache_dir, monkeypatch):
    calls = []
    real_run = subprocess.run

    def counting_run(*a, **kw):
        calls.append(a[0])
        return real_run(*a, **kw)

    monkeypatch.setattr(dram_mod.subprocess, "run", counting_run)
    again = generate_core(DramConfig(), cache_dir)
    assert calls == [] and again.directory == core.directory and again.ports == core.ports
    narrow = generate_core(DramConfig(data_bits=64), cache_dir)
    assert len(calls) == 1 and narrow.directory != core.directory
    assert narrow.ports["user_port_axi_rdata"] == ("output", 64)
    assert narrow.ports["user_port_axi_wstrb"] == ("input", 8)
    generate_core(DramConfig(data_bits=64), cache_dir)
    assert len(calls) == 1
    # no temporary directories left behind
    assert sorted(p.name for p in cache_dir.iterdir()) == sorted([core.directory.name, narrow.directory.name])


@needs_litedram
def test_generation_failure_is_a_named_error_and_leaves_no_entry(tmp_path):
    with pytest.raises(DramError, match="LiteDRAM core generation failed for NO_SUCH_CHIP") as ei:
        generate_core(DramConfig(module="NO_SUCH_CHIP"), tmp_path)
    assert "NO_SUCH_CHIP" in str(ei.value).split("log", 1)[1]  # the log tail says what failed
    assert list(tmp_path.iterdir()) == []


def test_missing_litedram_is_a_named_error(monkeypatch, tmp_path):
    monkeypatch.setattr(dram_mod, "package_versions", lambda: {"litedram": None, "litex": "2024.12", "migen": None})
    with pytest.raises(DramMissingError, match=r"needs litedram, migen: pip install 'winnow\[boards\]'") as ei:
        generate_core(DramConfig(), tmp_path)
    assert isinstance(ei.value, WinnowError)


def test_config_is_checked():
    with pytest.raises(WinnowError, match="power of two"):
        DramConfig(data_bits=96)
    assert DramConfig().key() != DramConfig(data_bits=64).key() != DramConfig(module="AS4C32M16").key()
    assert DramConfig().key() == DramConfig().key()


# ---------------------------------------------------------------------------- RTLIL net tracing
_TOK = re.compile(r"\{|\}|\d+'[01xzm-]*|[\\$][^\s\[\]{}]+|\[\d+(?::\d+)?\]")


class Netlist:
    """The top module of an RTLIL file: wires, cells and which bits are the same net."""

    def __init__(self, text: str, module: str = "top"):
        body = re.search(rf"^module \\{module}\n(.*?)^end$", text, re.S | re.M).group(1)
        self.width, self.cells, self.ports = {}, {}, {}
        self.parent: dict = {}
        self._k = 0
        cell = None
        for line in body.splitlines():
            if m := re.match(r"  wire (.*?)(\S+)$", line):
                wm = re.search(r"width (\d+)", m.group(1))
                self.width[m.group(2)] = int(wm.group(1)) if wm else 1
                for d in ("input", "output", "inout"):
                    if re.search(rf"\b{d}\b", m.group(1)):
                        self.ports[m.group(2)] = d
            elif m := re.match(r"  cell (\S+) (\S+)$", line):
                cell = self.cells[m.group(2)] = {"type": m.group(1), "conn": {}, "params": {}}
            elif cell is not None and (m := re.match(r"    connect (\S+) (.*)$", line)):
                cell["conn"][m.group(1)] = self.bits(m.group(2))
            elif cell is not None and (m := re.match(r"    parameter (\S+) (.*)$", line)):
                cell["params"][m.group(1)] = m.group(2)
            elif line == "  end":
                cell = None
            elif m := re.match(r" {0,2}connect (.*)$", line):
                toks = _TOK.findall(m.group(1))
                lhs, rest = self._sigspec(toks)
                rhs, _ = self._sigspec(rest)
                for a, b in zip(lhs, rhs):
                    self._union(a, b)

    def _sigspec(self, toks):
        """(bits LSB first, remaining tokens) of the first sigspec in ``toks``."""
        t = toks[0]
        if t == "{":
            parts, rest = [], toks[1:]
            while rest[0] != "}":
                bits, rest = self._sigspec(rest)
                parts.append(bits)
            return [b for p in reversed(parts) for b in p], rest[1:]
        if "'" in t:
            n, v = t.split("'")
            out = []
            for ch in reversed(v):  # constants: a node each, never merged with another net
                self._k += 1
                out.append(("const", ch, self._k))
            return out, toks[1:]
        rest = toks[1:]
        if rest and rest[0].startswith("["):
            sl = rest[0][1:-1].split(":")
            hi, lo = int(sl[0]), int(sl[-1])
            return [(t, i) for i in range(lo, hi + 1)], rest[1:]
        return [(t, i) for i in range(self.width[t])], rest

    def bits(self, spec: str):
        return self._sigspec(_TOK.findall(spec))[0]

    def _find(self, x):
        while self.parent.get(x, x) != x:
            x = self.parent[x] = self.parent.get(self.parent[x], self.parent[x])
        return x

    def _union(self, a, b):
        ra, rb = self._find(a), self._find(b)
        if ra != rb:
            self.parent[ra] = rb

    def same(self, xs, ys) -> bool:
        return len(xs) == len(ys) and all(self._find(a) == self._find(b) for a, b in zip(xs, ys))

    def wire(self, name: str):
        return [(f"\\{name}", i) for i in range(self.width[f"\\{name}"])]

    def const(self, bits) -> str:
        """The constant value of ``bits``, MSB first ('?' where a bit is not constant)."""
        return "".join(b[1] if b[0] == "const" else "?" for b in reversed(bits))


@pytest.fixture(scope="module")
def top_build(core):
    os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")
    from amaranth_boards.ulx3s import ULX3S_85F_Platform

    from winnow.hw.config import AccelConfig
    from winnow.model.integer.datapath import DatapathConfig

    from winnow.boards.stream_top import StreamTop

    cfg = AccelConfig.resolved(DatapathConfig(m=2, r=3, c_max=16), tiled=True, pes=2, lanes=2, k_max=8, h_max=6,
                               w_max=6, pad_max=0, c_block=8)
    top = StreamTop(cfg, core, divisor=434)
    plan = ULX3S_85F_Platform().build(top, name="top", do_build=False, emit_src=False, debug_verilog=False)
    return top, plan, Netlist(plan.files["top.il"])


_AXI_RD = ("arvalid", "arready", "arid", "araddr", "arlen", "rvalid", "rready", "rid", "rdata", "rresp", "rlast")
_AXI_WR = ("awvalid", "awready", "awid", "awaddr", "awlen", "wvalid", "wready", "wdata", "wlast",
           "bvalid", "bready", "bid", "bresp")


@needs_litedram
def test_top_instantiates_the_core_with_every_port_connected(top_build, core):
    _top, plan, nl = top_build
    dram = nl.cells["\\dram"]
    assert dram["type"] == "\\litedram_core"
    assert set(dram["conn"]) == {f"\\{p}" for p in core.ports}
    for name, (_d, w) in core.ports.items():
        assert len(dram["conn"][f"\\{name}"]) == w, name
    assert "litedram_core.v" in plan.files and plan.files["litedram_core.v"] == core.verilog.read_text()
    assert "read_verilog  litedram_core.v" in plan.files["top.ys"] or \
        re.search(r"read_verilog\s+.*litedram_core\.v", plan.files["top.ys"])


@needs_litedram
def test_top_wires_the_array_to_the_core_axi_port(top_build):
    top, _plan, nl = top_build
    dram = nl.cells["\\dram"]["conn"]
    for names, iface in ((_AXI_RD, top.array.axi_rd), (_AXI_WR, top.array.axi_wr)):
        for x in names:
            mine = nl.wire(getattr(iface, x).name)
            theirs = dram[f"\\user_port_axi_{x}"]
            if x in ("arid", "awid"):  # the engines' IDs are constant 0
                assert nl.const(theirs) == "0", x
                continue
            assert nl.same(theirs, mine[:len(theirs)]), x
    # INCR bursts of whole 16-byte words, every byte written
    assert nl.const(dram["\\user_port_axi_arburst"]) == "01" and nl.const(dram["\\user_port_axi_awburst"]) == "01"
    assert nl.const(dram["\\user_port_axi_arsize"]) == "0100" and nl.const(dram["\\user_port_axi_awsize"]) == "0100"
    assert nl.const(dram["\\user_port_axi_wstrb"]) == "1" * 16


@needs_litedram
def test_top_wires_the_init_sequencer_and_the_host_to_the_wishbone_ports(top_build):
    _top, _plan, nl = top_build
    dram = nl.cells["\\dram"]["conn"]
    init, host = nl.cells["\\init"]["conn"], nl.cells["\\host"]["conn"]
    for x in ("adr", "dat_w", "cyc", "stb"):
        assert nl.same(dram[f"\\wb_ctrl_{x}"], init[f"\\bus__{x}"]), x
        assert nl.same(dram[f"\\user_port_host_{x}"], host[f"\\bus__{x}"][:len(dram[f"\\user_port_host_{x}"])]), x
    assert nl.same(dram["\\user_port_host_we"], host["\\bus__we"])
    assert nl.same(dram["\\wb_ctrl_ack"], init["\\bus__ack"])  # the sequencer reads nothing: no dat_r
    for x in ("dat_r", "ack"):
        assert nl.same(dram[f"\\user_port_host_{x}"], host[f"\\bus__{x}"]), x
    assert nl.const(dram["\\wb_ctrl_we"]) == "1"  # the sequencer only writes


@needs_litedram
def test_top_clocks_the_core_from_the_pll_and_the_sdram_clock_90_degrees_later(top_build):
    _top, plan, nl = top_build
    pll = nl.cells["\\pll"]
    assert pll["type"] == "\\EHXPLLL"
    div = int(pll["params"]["\\CLKOP_DIV"])
    assert pll["params"]["\\CLKOS_DIV"] == str(div)
    # 25 MHz × CLKFB_DIV / CLKI_DIV = 50 MHz; CLKOS a quarter period (div/4 VCO cycles) after CLKOP
    assert 25 * int(pll["params"]["\\CLKFB_DIV"]) / int(pll["params"]["\\CLKI_DIV"]) == 50
    assert int(pll["params"]["\\CLKOS_CPHASE"]) - (div - 1) == div // 4 and pll["params"]["\\CLKOS_FPHASE"] == "0"
    assert nl.same(nl.cells["\\dram"]["conn"]["\\clk"], pll["conn"]["\\CLKOP"])
    # the DQ pins go to the core's own tristate buffers: a top-level inout port
    dq = nl.cells["\\dram"]["conn"]["\\sdram_dq"]
    assert {b[0] for b in dq} == {"\\sdram_0__dq__io"} and nl.ports["\\sdram_0__dq__io"] == "inout"
    lpf = plan.files["top.lpf"]
    # a DQ, the clock, A0, BA0 and DQM0 of amaranth-boards' ULX3S; the UART's RX and TX; LED 0
    for pin in ("J16", "F19", "M20", "P19", "U19", "M1", "L4", "B2"):
        assert f'SITE "{pin}"' in lpf, pin


# ---------------------------------------------------------------------------- the UART host commands
def _run_host(commands, mem: dict, *, status=None, divisor=4, gap=600):
    """Send each command of ``commands`` then ``gap`` idle cycles (a host waits for each reply: at divisor 4
    a byte is 40 cycles, the longest reply 10 bytes)."""
    from amaranth.sim import Simulator

    from winnow.boards.stream_top import HostCommand
    from winnow.boards.uart import rx_decode, tx_waveform

    dut = HostCommand(divisor, 23)
    wave = [1] * 8
    for c in commands:
        wave += tx_waveform(c, divisor) + [1] * gap
    line, starts = [], []

    async def tb(ctx):
        for k, v in (status or {}).items():
            ctx.set(getattr(dut, k), v)
        for t in range(len(wave)):
            ctx.set(dut.rx, wave[t])
            b = dut.bus
            if ctx.get(b.cyc) and ctx.get(b.stb):
                a = ctx.get(b.adr)
                if ctx.get(b.we):
                    mem[a] = ctx.get(b.dat_w)
                else:
                    ctx.set(b.dat_r, mem.get(a, 0))
                ctx.set(b.ack, 1)
            else:
                ctx.set(b.ack, 0)
            if ctx.get(dut.start):
                starts.append((ctx.get(dut.desc_addr), ctx.get(dut.passes)))
            line.append(ctx.get(dut.tx))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    got, fe, _ov = rx_decode(line, divisor)
    assert fe == 0
    return bytes(got), starts


def test_host_commands_write_read_start_and_status():
    mem = {}
    words = [0x11223344, 0xDEADBEEF, 0x0BADF00D]
    cmd = [b"W" + struct.pack("<II", 0x100, 3) + struct.pack("<3I", *words), b"R" + struct.pack("<II", 0x104, 2),
           b"S" + struct.pack("<II", 0x2000, 5), b"Q"]
    st = dict(init_done=1, busy=0, done=1, error=1, fault=0b10001, cycles=123456, error_addr=0x1F0)
    reply, starts = _run_host(cmd, mem, status=st)
    assert mem == {0x40: words[0], 0x41: words[1], 0x42: words[2]}  # byte address 0x100 = word 0x40
    assert reply[0:1] == b"K"
    assert reply[1:9] == struct.pack("<2I", words[1], words[2])
    assert reply[9:10] == b"K" and starts == [(0x2000, 5)]
    assert reply[10:] == bytes([0b1101, 0b10001]) + struct.pack("<II", 123456, 0x1F0)


@pytest.mark.parametrize("status", [dict(busy=1, init_done=1), dict(busy=0, init_done=0)], ids=["busy", "no-init"])
def test_host_start_is_ignored_while_the_array_runs_or_the_sdram_is_not_ready(status):
    reply, starts = _run_host([b"S" + struct.pack("<II", 0x40, 1)], {}, status=status)
    assert reply == b"K" and starts == []


# ---------------------------------------------------------------------------- through LiteDRAM's SDRAM model
@needs_litedram
def test_sim_core_has_the_board_core_ports_and_init_but_no_pins(core, cache_dir):
    sim = generate_core(DramConfig(sim=True, name="litedram_sim"), cache_dir)
    assert not any(p.startswith("sdram_") for p in sim.ports)
    assert {p: v for p, v in sim.ports.items() if p.startswith("user_port_")} == \
        {p: v for p, v in core.ports.items() if p.startswith("user_port_")}
    assert sim.csr == core.csr and sim.init_writes == core.init_writes


@needs_litedram
def test_a_layer_through_litedram_and_its_sdram_model_is_bit_exact(tmp_path):
    """The array's AXI port on LiteDRAM's controller (128→16-bit conversion, refresh, the init sequence
    replayed on wb_ctrl, the image loaded through the host port): bit-exact, slower than the ideal RAM."""
    import numpy as np

    from winnow.hw.config import AccelConfig
    from winnow.model.integer.datapath import DatapathConfig
    from winnow.sim.cocotb_run import simulator_available
    from winnow.sim.dram_run import run_stream_dram
    from winnow.sim.layers import random_input, random_layer, reference_output
    from winnow.sim.stream_run import StreamCase

    reason = simulator_available("verilator")
    if reason:
        pytest.skip(reason)
    dp = DatapathConfig(m=2, r=3, c_max=16)
    cfg = AccelConfig(datapath=dp, pad_max=0, tiled=True, pes=2, lanes=2, otu_lanes=1, k_max=4, h_max=8, w_max=6,
                      c_block=3)
    layer = random_layer(dp, C=7, K=6, H=11, W=9, density=0.4, seed=13, padding=1)
    xq = random_input(layer, seed=11)
    (r,) = run_stream_dram(cfg, [StreamCase(layer, xq)], build_dir=tmp_path)
    assert not r.error and not r.timed_out, r.faults
    np.testing.assert_array_equal(r.out, reference_output(layer, xq))
    # the model's cycles assume a memory that answers at once; the SDRAM (16 bits a cycle) cannot
    assert r.cycles > r.model.cycles


@needs_litedram
def test_top_refuses_a_core_it_cannot_drive(core, cache_dir):
    from winnow.hw.config import AccelConfig
    from winnow.hw.stream_abi import StreamConfig
    from winnow.model.integer.datapath import DatapathConfig

    from winnow.boards.stream_top import StreamTop

    cfg = AccelConfig.resolved(DatapathConfig(m=2, r=3, c_max=16), tiled=True, pes=2, lanes=2, k_max=8, h_max=6,
                               w_max=6, pad_max=0, c_block=8)
    sim = generate_core(DramConfig(sim=True, name="litedram_sim"), cache_dir)
    with pytest.raises(WinnowError, match="no SDRAM pins"):
        StreamTop(cfg, sim, divisor=434)
    with pytest.raises(WinnowError, match="DramConfig\\(data_bits=256\\)"):
        StreamTop(cfg, core, divisor=434, stream=StreamConfig(data_bits=256, addr_bits=25))
    with pytest.raises(WinnowError, match="do not reach all of the 32 MB"):
        StreamTop(cfg, core, divisor=434, stream=StreamConfig(addr_bits=24))


# ---------------------------------------------------------------------------- the host driver and the twin
def test_command_model_is_the_twin_of_the_rtl():
    from winnow.boards.dram_host import CommandModel

    cmds = [b"W" + struct.pack("<II", 0x7FFFFFC, 2) + struct.pack("<2I", 5, 6),  # the second word wraps to 0
            b"R" + struct.pack("<II", 0, 1), b"R" + struct.pack("<II", 0x40, 0), b"X",
            b"S" + struct.pack("<II", 0x1234560, 0x1000003), b"Q"]
    st = dict(init_done=1, busy=0, done=0, error=0, fault=0b100, cycles=7, error_addr=0x10)
    mem_rtl = {}
    rtl, rtl_starts = _run_host(cmds, mem_rtl, status=st)
    twin = CommandModel(st)
    for c in cmds:
        twin.write(c)
    assert twin.read(1000) == rtl and twin.starts == rtl_starts == [(0x1234560, 3)]
    assert twin.mem == mem_rtl == {0x1FFFFFF & 0x7FFFFF: 5, 0: 6}


def test_driver_writes_any_bytes_reads_them_back_and_reports_a_failed_run():
    from winnow.boards.dram_host import CommandModel, DramHost
    from winnow.boards.host import HostLinkError

    class FailingRun(CommandModel):
        def write(self, data):
            super().write(data)
            if self.starts:
                self.status.update(done=1, error=1, fault=0b1, error_addr=0x2040)

    dev = FailingRun()
    host = DramHost(dev)
    host.write(0x10, bytes(range(1, 9)))
    host.write(0x13, b"\xAA\xBB")  # inside the first word and into the second: the rest kept
    assert host.read(0x10, 8) == bytes([1, 2, 3, 0xAA, 0xBB, 6, 7, 8])
    words = list(range(600))  # more than one command's chunk
    host.write_words(0x1000, words)
    assert host.read_words(0x1000, 600) == words
    st = host.status()
    assert st.init_done and not st.busy and not st.done and st.faults == ()

    class Image:  # what run_layer uses of a LayerImage
        blobs, input_addr, desc_addr, passes, output_addr, end = [(0x100, b"\x01" * 32)], 0x200, 0x100, 2, 0x300, 0x340

        def input_bytes(self, xq):
            return bytes(xq)

    with pytest.raises(HostLinkError, match="the run failed: read_error at 0x2040"):
        host.run_layer(Image(), [1, 2, 3])
    assert dev.starts == [(0x100, 2)] and dev.mem[0x200 >> 2] == 0x030201


def test_driver_refuses_to_run_before_the_sdram_is_initialised():
    from winnow.boards.dram_host import CommandModel, DramHost
    from winnow.boards.host import HostLinkError

    with pytest.raises(HostLinkError, match="not initialised"):
        DramHost(CommandModel({"init_done": 0})).run_layer(None, None)
