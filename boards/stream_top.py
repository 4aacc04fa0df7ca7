"""The ULX3S top of the streaming array over the board's SDRAM through a LiteDRAM core.

:class:`StreamTop` puts together, all in one 50 MHz clock domain:

* an ECP5 PLL (EHXPLLL) from the 25 MHz oscillator: CLKOP is the system clock (the
  ``sync`` domain, and the LiteDRAM core's ``clk`` input, for the core has no PLL of its
  own with ``GENSDRPHY``); CLKOS is the same frequency 90° later and clocks the SDRAM's
  clock pin through an ODDRX1F, as LiteX-Boards' ULX3S target does;
* the LiteDRAM core (:mod:`winnow.boards.dram`), an ``Instance`` of its Verilog (added to
  the build with ``platform.add_file``) on the SDRAM pins of amaranth-boards' ULX3S
  platform, reset until the PLL locks;
* :class:`InitSequencer`: replays the SDRAM initialisation (LiteX's BIOS ``sdram_init``,
  as control-bus writes) on the core's ``wb_ctrl`` port, ending with ``init_done``;
* :class:`~winnow.hw.stream_array.StreamArray` on the core's AXI4 user port;
* :class:`HostCommand`: a UART command interpreter (:data:`COMMANDS`) on the FTDI port
  that writes and reads DRAM through the core's Wishbone user port (LiteDRAM's crossbar
  arbitrates it with the array's port), starts a run and reports its status;
* LEDs 0–3: ``init_done``, ``busy``, ``done``, ``error``.
"""

from __future__ import annotations

from amaranth import Cat, ClockDomain, ClockSignal, Const, Elaboratable, Instance, Module, Signal
from amaranth.lib import io, wiring
from amaranth.lib.cdc import ResetSynchronizer
from amaranth.lib.wiring import In, Out

from winnow.hw.config import AccelConfig
from winnow.hw.stream_abi import FAULTS, StreamConfig
from winnow.hw.stream_array import PASSES_BITS, StreamArray
from winnow.model.errors import ConfigError

from winnow.boards.dram import DramCore
from winnow.boards.top import ecp5_pll_params
from winnow.boards.uart import UARTRx, UARTTx, check_divisor

#: The host commands (one byte each, then little-endian 32-bit arguments) and their replies. One
#: command at a time: the interpreter does not read the line while it replies, so a host waits
#: for each reply before it sends the next command.
COMMANDS = {
    "W": "addr, n, then n 32-bit words: write them from byte address addr; reply 'K' once written",
    "R": "addr, n: reply the n 32-bit words from byte address addr",
    "S": "desc_addr, passes: start the array (ignored while it runs or before init_done); reply 'K'",
    "Q": "reply status: flags (init_done, busy, done, error), fault bits, cycles, error_addr (10 bytes)",
}
#: Bytes of the 'Q' reply.
STATUS_BYTES = 10


class WishboneSignature(wiring.Signature):
    """A classic Wishbone master (32-bit data, word addresses), members named as LiteDRAM's ports."""

    def __init__(self, addr_bits: int):
        self.addr_bits = addr_bits
        super().__init__({"adr": Out(addr_bits), "dat_w": Out(32), "dat_r": In(32), "sel": Out(4), "cyc": Out(1),
                          "stb": Out(1), "we": Out(1), "ack": In(1), "err": In(1)})

    def __eq__(self, other):
        return type(other) is type(self) and self.addr_bits == other.addr_bits


class InitSequencer(wiring.Component):
    """Replays ``writes`` (``(word_address, data, wait_cycles)``) on a Wishbone master, then raises ``done``.

    Each write holds ``cyc``, ``stb`` and ``we`` until ``ack``; the next write follows
    ``wait_cycles`` cycles later.

    Attributes
    ----------
    bus : Out(WishboneSignature(30))
        The core's ``wb_ctrl`` port.
    done : Out(1)
        All writes acknowledged.
    """

    def __init__(self, writes):
        if not writes:
            raise ConfigError("the SDRAM initialisation has no writes")
        self._writes = [tuple(int(v) for v in w) for w in writes]
        super().__init__({"bus": Out(WishboneSignature(30)), "done": Out(1)})

    def elaborate(self, platform):
        m = Module()
        ws = self._writes
        idx = Signal(range(len(ws) + 1))
        wait = Signal(range(max(w[2] for w in ws) + 2))
        adr, dat, delay = Signal(30), Signal(32), Signal.like(wait)
        with m.Switch(idx):
            for i, (a, d, t) in enumerate(ws):
                with m.Case(i):
                    m.d.comb += [adr.eq(a), dat.eq(d), delay.eq(t)]
        b = self.bus
        m.d.comb += [b.adr.eq(adr), b.dat_w.eq(dat), b.sel.eq(0xF), b.we.eq(1)]
        with m.FSM():
            with m.State("WRITE"):
                m.d.comb += [b.cyc.eq(1), b.stb.eq(1)]
                with m.If(b.ack | b.err):
                    m.d.sync += [wait.eq(delay), idx.eq(idx + 1)]
                    m.next = "WAIT"
            with m.State("WAIT"):
                with m.If(wait != 0):
                    m.d.sync += wait.eq(wait - 1)
                with m.Elif(idx == len(ws)):
                    m.next = "DONE"
                with m.Else():
                    m.next = "WRITE"
            with m.State("DONE"):
                m.d.comb += self.done.eq(1)
        return m


class HostCommand(wiring.Component):
    """The UART host commands (:data:`COMMANDS`) over DRAM and the array's control.

    Parameters
    ----------
    divisor : int
        UART clock cycles per bit.
    addr_bits : int
        Word-address bits of the DRAM Wishbone port.

    Attributes
    ----------
    rx : In(1), tx : Out(1)
        The UART pins.
    bus : Out(WishboneSignature(addr_bits))
        DRAM, 32-bit words.
    start : Out(1)
        One-cycle pulse on 'S' while not ``busy`` and once ``init_done``.
    desc_addr, passes : Out(32), Out(24)
        The last 'S' command's arguments.
    init_done, busy, done, error : In(1); fault : In(5); cycles, error_addr : In(32)
        The status 'Q' reports.
    """

    def __init__(self, divisor: int, addr_bits: int):
        self._divisor = check_divisor(divisor)
        super().__init__({
            "rx": In(1, init=1), "tx": Out(1, init=1), "bus": Out(WishboneSignature(addr_bits)),
            "start": Out(1), "desc_addr": Out(32), "passes": Out(PASSES_BITS),
            "init_done": In(1), "busy": In(1), "done": In(1), "error": In(1), "fault": In(len(FAULTS)),
            "cycles": In(32), "error_addr": In(32),
        })  # fmt: skip

    def elaborate(self, platform):
        m = Module()
        m.submodules.urx = urx = UARTRx(self._divisor)
        m.submodules.utx = utx = UARTTx(self._divisor)
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx)]
        b = self.bus
        cmd = Signal(8)
        sh = Signal(32)  # bytes arrive LSB first: each new byte enters at the top
        nbytes = Signal(2)
        addr = Signal(32)
        count = Signal(32)
        txsh = Signal(8 * STATUS_BYTES)
        txn = Signal(range(STATUS_BYTES + 1))
        m.d.comb += [b.adr.eq(addr[2:]), b.dat_w.eq(sh), b.sel.eq(0xF), utx.i.payload.eq(txsh[:8])]
        byte = urx.o.payload

        def take_byte(then):  # shift one received byte into sh; after the 4th go to ``then``
            m.d.comb += urx.o.ready.eq(1)
            with m.If(urx.o.valid):
                m.d.sync += [sh.eq(Cat(sh[8:], byte)), nbytes.eq(nbytes + 1)]
                with m.If(nbytes == 3):
                    m.next = then

        ret = Signal()  # where SEND returns: 0 the next command, 1 the next word of an 'R'

        def send(value, n, then):  # in the state that moves to SEND: reply n bytes of value
            m.d.sync += [txsh.eq(value), txn.eq(n), ret.eq(then)]
            m.next = "SEND"
        with m.FSM():
            with m.State("CMD"):
                m.d.comb += urx.o.ready.eq(1)
                with m.If(urx.o.valid):
                    m.d.sync += [cmd.eq(byte), nbytes.eq(0)]
                    with m.If((byte == ord("W")) | (byte == ord("R")) | (byte == ord("S"))):
                        m.next = "ADDR"
                    with m.Elif(byte == ord("Q")):
                        send(Cat(self.init_done, self.busy, self.done, self.error, Const(0, 4), self.fault,
                                 Const(0, 8 - len(FAULTS)), self.cycles, self.error_addr), STATUS_BYTES, 0)
            with m.State("ADDR"):
                take_byte("COUNT")
                with m.If(urx.o.valid & (nbytes == 3)):
                    m.d.sync += addr.eq(Cat(sh[8:], byte))
            with m.State("COUNT"):
                take_byte("DISPATCH")
                with m.If(urx.o.valid & (nbytes == 3)):
                    m.d.sync += count.eq(Cat(sh[8:], byte))
            with m.State("DISPATCH"):
                with m.If(cmd == ord("S")):
                    m.d.sync += [self.desc_addr.eq(addr), self.passes.eq(count)]
                    m.next = "START"  # the array samples desc_addr and passes with start
                with m.Elif(count == 0):
                    send(ord("K"), 1, 0)
                with m.Elif(cmd == ord("W")):
                    m.next = "DATA"
                with m.Else():
                    m.next = "READ"
            with m.State("START"):
                m.d.comb += self.start.eq(~self.busy & self.init_done)  # else LiteDRAM holds the port: a timeout
                send(ord("K"), 1, 0)
            with m.State("DATA"):
                take_byte("WRITE")
            with m.State("WRITE"):
                m.d.comb += [b.cyc.eq(1), b.stb.eq(1), b.we.eq(1)]
                with m.If(b.ack | b.err):
                    m.d.sync += [addr.eq(addr + 4), count.eq(count - 1)]
                    with m.If(count == 1):
                        send(ord("K"), 1, 0)
                    with m.Else():
                        m.next = "DATA"
            with m.State("READ"):
                m.d.comb += [b.cyc.eq(1), b.stb.eq(1)]
                with m.If(b.ack | b.err):
                    m.d.sync += [addr.eq(addr + 4), count.eq(count - 1)]
                    send(b.dat_r, 4, 1)
            with m.State("SEND"):
                m.d.comb += utx.i.valid.eq(txn != 0)
                with m.If(txn == 0):
                    m.next = "BACK"
                with m.Elif(utx.i.ready):
                    m.d.sync += [txsh.eq(txsh >> 8), txn.eq(txn - 1)]
            with m.State("BACK"):
                with m.If((ret == 1) & (count != 0)):
                    m.next = "READ"
                with m.Else():
                    m.next = "CMD"
        return m


def _pll(m: Module, clk_in, in_hz: float, out_hz: float, phase_deg: int):
    """EHXPLLL: CLKOP ``out_hz`` and CLKOS the same, ``phase_deg`` later; returns (clkop, clkos, locked)."""
    p = ecp5_pll_params(in_hz, out_hz)
    div = p["CLKOP_DIV"]
    ph = round(phase_deg * div / 45)  # eighths of a VCO cycle (LiteX's ECP5PLL)
    clkop, clkos, locked = Signal(), Signal(), Signal()
    m.submodules.pll = Instance(
        "EHXPLLL",
        a_FREQUENCY_PIN_CLKI=f"{in_hz / 1e6:g}", a_FREQUENCY_PIN_CLKOP=f"{out_hz / 1e6:g}",
        a_FREQUENCY_PIN_CLKOS=f"{out_hz / 1e6:g}",
        a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1", a_MFG_GMCREF_SEL="2",
        p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED", p_DPHASE_SOURCE="DISABLED",
        p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB", p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
        p_CLKI_DIV=p["CLKI_DIV"], p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=div,
        p_CLKOP_CPHASE=p["CLKOP_CPHASE"], p_CLKOP_FPHASE=0,
        p_CLKOS_ENABLE="ENABLED", p_CLKOS_DIV=div, p_CLKOS_CPHASE=(ph >> 3) + div - 1, p_CLKOS_FPHASE=ph & 7,
        p_FEEDBK_PATH="CLKOP", p_CLKFB_DIV=p["CLKFB_DIV"],
        i_RST=0, i_STDBY=0, i_CLKI=clk_in, o_CLKOP=clkop, o_CLKOS=clkos, i_CLKFB=clkop,
        i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1, i_PLLWAKESYNC=0,
        i_ENCLKOP=0, i_ENCLKOS=0, o_LOCK=locked,
    )  # fmt: skip
    return clkop, clkos, locked


#: The core's SDRAM pads → the amaranth-boards SDRAM resource's subsignals (raw pins: the core drives
#: the active-low ones active-low itself).
PADS = {"sdram_a": "a", "sdram_ba": "ba", "sdram_cas_n": "cas", "sdram_cke": "clk_en", "sdram_cs_n": "cs",
        "sdram_dm": "dqm", "sdram_ras_n": "ras", "sdram_we_n": "we"}


class StreamTop(Elaboratable):
    """The streaming array, the LiteDRAM core, its initialisation and the UART host commands (module docstring).

    Parameters
    ----------
    cfg : AccelConfig
        A tiled-mode array.
    core : DramCore
        The generated LiteDRAM core (:func:`winnow.boards.dram.generate_core`); its AXI
        port's data width is the array's bus width.
    divisor : int
        UART clock cycles per bit at ``core.config.sys_clk_hz``.
    stream : StreamConfig or None
        The array's memory port; by default 128-bit words (the core's AXI width) and
        addresses as wide as the core's (25 bits for 32 MB).
    """

    def __init__(self, cfg: AccelConfig, core: DramCore, *, divisor: int, stream: StreamConfig | None = None):
        if core.config.sim:
            raise ConfigError("a simulation LiteDRAM core (DramConfig(sim=True)) has no SDRAM pins: "
                              "generate the board's core for the top")
        if not core.config.host_port:
            raise ConfigError("the stream top needs the LiteDRAM core's host port (DramConfig(host_port=True))")
        a = core.axi_addr_bits
        stream = stream or StreamConfig(data_bits=core.config.data_bits, addr_bits=a)
        if stream.data_bits != core.config.data_bits:
            raise ConfigError(f"the array's bus is {stream.data_bits} bits but the LiteDRAM core's AXI port "
                              f"{core.config.data_bits}: generate the core with DramConfig(data_bits="
                              f"{stream.data_bits})")
        if stream.addr_bits < a:
            raise ConfigError(f"the array's {stream.addr_bits}-bit addresses do not reach all of the "
                              f"{core.info.get('size_bytes', 0) >> 20} MB SDRAM ({a} bits)")
        self.cfg, self.core, self.stream_cfg = cfg, core, stream
        self.divisor = check_divisor(divisor)
        self.array = StreamArray(cfg, stream)
        self.init = InitSequencer(core.init_writes)
        self.host = HostCommand(divisor, core.host_addr_bits)

    def elaborate(self, platform):
        m = Module()
        core = self.core
        hz = core.config.sys_clk_hz

        # ---------------------------------------------------------------- clocks
        clk_io = platform.request(platform.default_clk, dir="-")
        m.submodules.clk_buf = clk_buf = io.Buffer("i", clk_io)
        clkop, clkos, locked = _pll(m, clk_buf.i, platform.default_clk_frequency, hz, 90)
        m.domains.sync = sync = ClockDomain("sync")
        m.domains.sdram_ps = sdram_ps = ClockDomain("sdram_ps", reset_less=True)
        m.d.comb += [sync.clk.eq(clkop), sdram_ps.clk.eq(clkos)]
        # on the domain's own clock signal: the PLL output's net takes that name after synthesis
        platform.add_clock_constraint(sync.clk, hz)
        m.submodules.reset_sync = ResetSynchronizer(~locked, domain="sync")

        # ---------------------------------------------------------------- the LiteDRAM core on the SDRAM pins
        pins = platform.request("sdram", 0, dir="-")
        m.submodules.sdram_clk = ck = io.DDRBuffer("o", pins.clk, o_domain="sdram_ps")
        m.d.comb += [ck.o[0].eq(1), ck.o[1].eq(0)]
        platform.add_file(core.verilog.name, core.verilog.read_text())
        sig = {name: Signal(w, name=f"dram_{name}") for name, (d, w) in core.ports.items()
               if name not in PADS and name != "sdram_dq"}
        conns = {}
        for name, s in sig.items():
            conns[("i_" if core.ports[name][0] == "input" else "o_") + name] = s
        for pad, res in PADS.items():
            # the pin as it is (not the resource's inverted view of PinsN): the core drives cs_n etc. itself
            m.submodules[f"pad_{pad}"] = buf = io.Buffer("o", io.SingleEndedPort(getattr(pins, res).io))
            o = Signal(core.ports[pad][1], name=f"dram_{pad}")
            conns[f"o_{pad}"] = o
            m.d.comb += buf.o.eq(o)
        conns["io_sdram_dq"] = pins.dq.io
        m.submodules.dram = Instance(core.config.name, **conns)
        m.d.comb += [sig["clk"].eq(ClockSignal("sync")), sig["rst"].eq(~locked)]

        # ---------------------------------------------------------------- SDRAM initialisation on wb_ctrl
        m.submodules.init = init = self.init
        self._wishbone(m, init.bus, sig, "wb_ctrl_")

        # ---------------------------------------------------------------- the array on the AXI port
        m.submodules.array = arr = self.array
        self._axi(m, arr.axi_rd, sig, "ar", "r")
        self._axi(m, arr.axi_wr, sig, "aw", "w")

        # ---------------------------------------------------------------- the UART host commands
        m.submodules.host = host = self.host
        self._wishbone(m, host.bus, sig, "user_port_host_")
        uart = platform.request("uart", 0, dir="-")
        m.submodules.uart_rx = rx_buf = io.Buffer("i", uart.rx)
        m.submodules.uart_tx = tx_buf = io.Buffer("o", uart.tx)
        m.d.comb += [host.rx.eq(rx_buf.i), tx_buf.o.eq(host.tx)]
        m.d.comb += [arr.start.eq(host.start), arr.desc_addr.eq(host.desc_addr), arr.passes.eq(host.passes),
                     host.init_done.eq(sig["init_done"] & ~sig["init_error"]), host.busy.eq(arr.busy),
                     host.done.eq(arr.done), host.error.eq(arr.error), host.fault.eq(arr.fault),
                     host.cycles.eq(arr.cycles), host.error_addr.eq(arr.error_addr)]
        for i, s in enumerate((host.init_done, arr.busy, arr.done, arr.error)):
            m.submodules[f"led{i}"] = led = io.Buffer("o", platform.request("led", i, dir="-"))
            m.d.comb += led.o.eq(s)
        return m

    @staticmethod
    def _wishbone(m, bus, sig, prefix):
        for name in ("adr", "dat_w", "sel", "cyc", "stb", "we"):
            m.d.comb += sig[prefix + name].eq(getattr(bus, name))
        m.d.comb += [bus.dat_r.eq(sig[prefix + "dat_r"]), bus.ack.eq(sig[prefix + "ack"])]
        if prefix + "err" in sig:
            m.d.comb += bus.err.eq(sig[prefix + "err"])
        for name, v in (("bte", 0), ("cti", 0)):
            if prefix + name in sig:
                m.d.comb += sig[prefix + name].eq(v)

    @staticmethod
    def _axi(m, axi, sig, addr_ch, data_ch):
        """Connect the array's AXI channels (``ar``+``r`` or ``aw``+``w``+``b``) to the core's ``user_port_axi_*``."""
        p = "user_port_axi_"
        chans = [addr_ch, data_ch] + (["b"] if addr_ch == "aw" else [])
        for member in axi.signature.members:
            if not any(member.startswith(c) and member[len(c):] in _AXI_SIGNALS[c] for c in chans):
                continue  # lock, cache, prot: LiteDRAM has none
            mine, theirs = getattr(axi, member), sig[p + member]
            flow = axi.signature.members[member].flow
            if flow == wiring.Out:
                m.d.comb += theirs.eq(mine[:len(theirs)] if len(mine) > len(theirs) else mine)
            else:
                m.d.comb += mine.eq(theirs)


_AXI_SIGNALS = {"ar": {"valid", "ready", "id", "addr", "len", "size", "burst"},
                "aw": {"valid", "ready", "id", "addr", "len", "size", "burst"},
                "r": {"valid", "ready", "id", "data", "resp", "last"},
                "w": {"valid", "ready", "data", "strb", "last"},
                "b": {"valid", "ready", "id", "resp"}}
