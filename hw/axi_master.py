# amaranth: UnusedElaboratable=no
"""AXI4 memory-mapped master engines: read and write commands of whole words as INCR bursts.

Generic (no Winograd knowledge): the tiled array moves feature maps and weights between
external memory and its buffers through these two engines.

* :class:`AxiReadEngine`: a command stream in (``addr``, ``beats``), a data stream out
  (``data``, ``last`` on the final word of each command), an AXI4 read master (AR, R).
* :class:`AxiWriteEngine`: a command stream in, a data stream in (``data``), an AXI4
  write master (AW, W with all byte strobes set, B) and a ``done`` pulse per command,
  once every one of its B responses has arrived.

Burst rules (both engines, :func:`split_bursts` is the same rule in Python): a command
is cut into INCR bursts of full-width beats (``AxSIZE`` = log2 of the word's bytes),
each as long as allowed, at most ``max_burst`` beats (≤ 256) and never crossing a 4 KiB
boundary. The engine issues the next burst's address without waiting for the previous
burst's data, up to ``max_outstanding`` bursts unfinished (address issued or waiting to
be, data or response not yet complete). All bursts use ID 0 and complete in order.

Commands (:func:`command_layout`): ``addr`` is a byte address, a multiple of the word's
bytes; ``beats`` is 1 … ``max_beats``. :func:`check_command` refuses anything else with
:class:`~winnow.model.errors.DataError`; a bad command that reaches an engine anyway is
accepted and dropped (no bus traffic, no data consumed or produced, no ``done``), and
``bad_cmd`` is set.

Faults, all sticky until reset, with ``error_addr`` the address of the first one:

* ``error`` with ``error_resp`` (2 = SLVERR, 3 = DECERR): a response other than OKAY /
  EXOKAY; ``error_addr`` is the failing burst's address. The transfer goes on (the read
  data stream still delivers every beat, with ``last``; a write command still signals
  ``done``), so nothing hangs;
* ``timeout``: ``timeout`` consecutive cycles in which the engine waits on the memory
  (an address not accepted, a read beat or a write response missing, a write beat not
  accepted) and no handshake happens on any of its channels. ``error_addr`` is the
  address of the oldest unfinished burst. The engine then stops: it accepts no more
  commands and issues no more addresses (what the memory still delivers passes);
* ``bad_cmd``: a dropped command (above); ``error_addr`` is its address.

The data paths are combinational pass-throughs: ``rready`` is the consumer's ``ready``
and the write data stream's ``ready`` is ``wready`` (while a burst's address has been
accepted). :mod:`winnow.hw.memory_timing` gives the exact cycles of these engines
against cocotbext-axi's ``AxiRam``; docs/hardware.md ("External memory port") describes
the ports.
"""

from __future__ import annotations

from amaranth import Cat, ClockDomain, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from winnow.hw.ports import AxiReadSignature, AxiWriteSignature
from winnow.model.errors import ConfigError, DataError

#: Bursts never cross this boundary (AXI4).
PAGE_BYTES = 4096
#: AXI4 INCR bursts: at most 256 beats.
AXI_MAX_BURST = 256
#: AxBURST of an incrementing burst.
BURST_INCR = 1
#: AxCACHE of every burst: normal, non-cacheable, bufferable.
CACHE = 0b0011
#: xRESP values.
RESP_OKAY, RESP_EXOKAY, RESP_SLVERR, RESP_DECERR = 0, 1, 2, 3


def ubits(n: int) -> int:
    """Bits of an unsigned number up to ``n``."""
    return max(1, int(n).bit_length())


def word_bytes(data_bits: int) -> int:
    """Bytes of one data word (one beat)."""
    return data_bits // 8


def check_params(addr_bits: int, data_bits: int, max_burst: int, max_beats: int, max_outstanding: int,
                 timeout: int | None) -> None:
    """Refuse engine parameters the AXI4 rules or the engines cannot meet (:class:`ConfigError`)."""
    if data_bits < 8 or data_bits > 1024 or data_bits & (data_bits - 1):
        raise ConfigError(f"data_bits must be a power of two from 8 to 1024 (AXI4), got {data_bits}")
    if not 13 <= addr_bits <= 64:
        raise ConfigError(f"addr_bits must be 13 … 64 (an address above one 4 KiB page), got {addr_bits}")
    if not 1 <= max_burst <= AXI_MAX_BURST:
        raise ConfigError(f"max_burst must be 1 … {AXI_MAX_BURST} beats (AXI4 INCR), got {max_burst}")
    if max_beats < 1:
        raise ConfigError(f"max_beats must be at least 1, got {max_beats}")
    if max_outstanding < 1:
        raise ConfigError(f"max_outstanding must be at least 1, got {max_outstanding}")
    if timeout is not None and timeout < 1:
        raise ConfigError(f"timeout must be at least 1 cycle (or None for no watchdog), got {timeout}")


def command_layout(addr_bits: int, max_beats: int) -> data.StructLayout:
    """A command: ``addr`` (byte address of the first word) and ``beats`` (number of words, 1 … max_beats)."""
    return data.StructLayout({"addr": unsigned(addr_bits), "beats": unsigned(ubits(max_beats))})


def read_data_layout(data_bits: int) -> data.StructLayout:
    """A word of the read data stream: ``data`` and ``last`` (the command's final word)."""
    return data.StructLayout({"data": unsigned(data_bits), "last": unsigned(1)})


def write_data_layout(data_bits: int) -> data.StructLayout:
    """A word of the write data stream: ``data``."""
    return data.StructLayout({"data": unsigned(data_bits)})


def burst_layout(addr_bits: int) -> data.StructLayout:
    """A burst: ``addr``, ``len`` (beats − 1, as AxLEN) and ``last`` (the command's final burst)."""
    return data.StructLayout({"addr": unsigned(addr_bits), "len": unsigned(8), "last": unsigned(1)})


def check_command(addr: int, beats: int, *, addr_bits: int = 32, data_bits: int = 64, max_beats: int = 65535) -> None:
    """Refuse a command the engines would drop: :class:`DataError` naming the rule it breaks."""
    nb = word_bytes(data_bits)
    if not isinstance(beats, int) or not 1 <= beats <= max_beats:
        raise DataError(f"a command moves 1 … {max_beats} words, got beats={beats!r}")
    if not isinstance(addr, int) or addr < 0 or addr % nb:
        raise DataError(f"a command's address must be a non-negative multiple of {nb} bytes, got {addr!r}")
    if addr + beats * nb > 1 << addr_bits:
        raise DataError(f"command 0x{addr:x} + {beats} words of {nb} bytes runs past the {addr_bits}-bit address space")


def split_bursts(addr: int, beats: int, data_bits: int, max_burst: int) -> list[tuple[int, int]]:
    """The bursts (address, beats) of one command, as the engines cut it: longest first, ≤ max_burst, within 4 KiB."""
    nb = word_bytes(data_bits)
    out = []
    while beats:
        n = min(beats, max_burst, (PAGE_BYTES - addr % PAGE_BYTES) // nb)
        out.append((addr, n))
        addr, beats = addr + n * nb, beats - n
    return out


class BurstSplitter(wiring.Component):
    """Commands in, bursts out (the AR or AW channel's payload, registered).

    Loads the next burst when its output is free, ``room`` is high and ``halt`` is low;
    accepts the next command in the cycle its current one issues its last burst (so
    bursts of consecutive commands follow each other cycle by cycle). A command with
    no beats, more than ``max_beats``, or an address that is not word-aligned is
    accepted and dropped, with a ``bad`` pulse.

    Attributes
    ----------
    cmd : In(stream.Signature(command_layout))
    burst : Out(stream.Signature(burst_layout))
    room : In(1)
        The engine has a free slot for one more burst.
    halt : In(1)
        Load no burst and accept no command.
    active : Out(1)
        A command still has bursts to issue.
    bad : Out(1)
        A bad command is dropped this cycle (its address is ``cmd.payload.addr``).
    """

    def __init__(self, addr_bits: int, data_bits: int, max_burst: int, max_beats: int):
        self.addr_bits, self.data_bits, self.max_burst, self.max_beats = addr_bits, data_bits, max_burst, max_beats
        super().__init__({
            "cmd": In(stream.Signature(command_layout(addr_bits, max_beats))),
            "burst": Out(stream.Signature(burst_layout(addr_bits))),
            "room": In(1), "halt": In(1), "active": Out(1), "bad": Out(1),
        })  # fmt: skip

    def elaborate(self, platform):
        m = Module()
        nb = word_bytes(self.data_bits)
        lb = nb.bit_length() - 1  # log2 of the word's bytes
        page_beats = PAGE_BYTES // nb
        addr = Signal(self.addr_bits)
        left = Signal(len(self.cmd.payload.beats))  # beats still to issue
        active = self.active

        # the next burst: min(left, max_burst, beats to the 4 KiB boundary)
        page_left = Signal(range(page_beats + 1))
        capped = Signal(range(max(self.max_burst, page_beats) + 1))
        n = Signal(range(max(self.max_burst, page_beats) + 1))
        m.d.comb += [page_left.eq(page_beats - addr[lb:12]),
                     capped.eq(Mux(left < self.max_burst, left, self.max_burst)),
                     n.eq(Mux(capped < page_left, capped, page_left))]
        final = Signal()  # the next burst is the command's last
        m.d.comb += final.eq(left == n)

        out = self.burst
        free = ~out.valid | out.ready
        load = Signal()
        m.d.comb += load.eq(active & free & self.room & ~self.halt)
        with m.If(load):
            m.d.sync += [out.valid.eq(1), out.payload.addr.eq(addr), out.payload.len.eq(n - 1),
                         out.payload.last.eq(final), addr.eq(addr + (n << lb)), left.eq(left - n)]
            with m.If(final):
                m.d.sync += active.eq(0)
        with m.Elif(free):
            m.d.sync += out.valid.eq(0)

        cmd = self.cmd
        m.d.comb += cmd.ready.eq((~active | (load & final)) & ~self.halt)
        beats, caddr = cmd.payload.beats, cmd.payload.addr
        bad = (beats == 0) | (beats > self.max_beats) | (caddr[:lb] != 0 if lb else Const(0))
        with m.If(cmd.valid & cmd.ready):
            with m.If(bad):
                m.d.comb += self.bad.eq(1)
            with m.Else():
                m.d.sync += [active.eq(1), addr.eq(caddr), left.eq(beats)]
        return m


class Watchdog(wiring.Component):
    """``expired`` after ``limit`` consecutive cycles of ``waiting`` without ``progress``.

    Attributes
    ----------
    waiting : In(1)
        The engine waits on the memory this cycle.
    progress : In(1)
        A handshake on one of the engine's channels this cycle (clears the count).
    expired : Out(1)
        The count reached ``limit`` (it stays there until progress or an idle cycle).
    """

    def __init__(self, limit: int):
        self.limit = limit
        super().__init__({"waiting": In(1), "progress": In(1), "expired": Out(1)})

    def elaborate(self, platform):
        m = Module()
        count = Signal(range(self.limit + 1))
        m.d.comb += self.expired.eq(count == self.limit)
        with m.If(self.progress | ~self.waiting):
            m.d.sync += count.eq(0)
        with m.Elif(~self.expired):
            m.d.sync += count.eq(count + 1)
        return m


def _fault_ports(addr_bits: int) -> dict:
    """The status members both engines have (module docstring)."""
    return {"error": Out(1), "error_resp": Out(2), "timeout": Out(1), "bad_cmd": Out(1),
            "error_addr": Out(addr_bits), "busy": Out(1)}


def _latch_faults(m: Module, eng, *, resp_bad, resp, resp_addr, expired, oldest_addr, bad, bad_addr) -> None:
    """Set the sticky fault flags of ``eng``; ``error_addr`` keeps the address of the first fault."""
    seen = eng.error | eng.timeout | eng.bad_cmd
    # the first fault of a cycle names the address: response errors before timeouts before bad commands
    for cond, addr in ((bad, bad_addr), (expired, oldest_addr), (resp_bad, resp_addr)):
        with m.If(cond & ~seen):
            m.d.sync += eng.error_addr.eq(addr)
    with m.If(resp_bad & ~eng.error):
        m.d.sync += [eng.error.eq(1), eng.error_resp.eq(resp)]
    with m.If(expired):
        m.d.sync += eng.timeout.eq(1)
    with m.If(bad):
        m.d.sync += eng.bad_cmd.eq(1)


def _burst_fifo(m: Module, name: str, layout: data.StructLayout, depth: int):
    """A first-word-fall-through FIFO of ``layout`` records; returns it and its head as a view."""
    fifo = SyncFIFO(width=layout.size, depth=depth)
    m.submodules[name] = fifo
    return fifo, data.View(layout, fifo.r_data)


class _Engine(wiring.Component):
    """What both engines share: parameters, the command stream, the splitter and the watchdog."""

    def __init__(self, members: dict, addr_bits: int, data_bits: int, max_burst: int, max_beats: int,
                 max_outstanding: int, timeout: int | None, id_bits: int):
        check_params(addr_bits, data_bits, max_burst, max_beats, max_outstanding, timeout)
        self.addr_bits, self.data_bits, self.max_burst, self.max_beats = addr_bits, data_bits, max_burst, max_beats
        self.max_outstanding, self.timeout_cycles, self.id_bits = max_outstanding, timeout, id_bits
        super().__init__({"cmd": In(stream.Signature(command_layout(addr_bits, max_beats))), **members,
                          **_fault_ports(addr_bits)})

    def _splitter(self, m: Module) -> BurstSplitter:
        m.submodules.split = split = BurstSplitter(self.addr_bits, self.data_bits, self.max_burst, self.max_beats)
        wiring.connect(m, wiring.flipped(self.cmd), split.cmd)
        m.d.comb += split.halt.eq(self.timeout)
        return split

    def _watchdog(self, m: Module, waiting, progress):
        if self.timeout_cycles is None:
            return Const(0)
        m.submodules.watchdog = wd = Watchdog(self.timeout_cycles)
        m.d.comb += [wd.waiting.eq(waiting), wd.progress.eq(progress)]
        return wd.expired

    def _address_channel(self, m: Module, bus, prefix: str, split: BurstSplitter) -> None:
        """Drive the AR or AW channel (``prefix`` "ar" or "aw") from the splitter's registered burst."""
        ch = {name: getattr(bus, prefix + name) for name in
              ("valid", "ready", "id", "addr", "len", "size", "burst", "lock", "cache", "prot")}
        nb = word_bytes(self.data_bits)
        m.d.comb += [ch["valid"].eq(split.burst.valid), split.burst.ready.eq(ch["ready"]),
                     ch["addr"].eq(split.burst.payload.addr), ch["len"].eq(split.burst.payload.len),
                     ch["size"].eq(nb.bit_length() - 1), ch["burst"].eq(BURST_INCR), ch["cache"].eq(CACHE),
                     ch["id"].eq(0), ch["lock"].eq(0), ch["prot"].eq(0)]


class AxiReadEngine(_Engine):
    """Read commands → AXI4 read bursts → a stream of words (module docstring).

    Parameters
    ----------
    addr_bits, data_bits : int
        The AXI address and data widths (data: a power of two, 8 … 1024).
    max_burst : int
        Longest burst, 1 … 256 beats.
    max_beats : int
        Longest command (the ``beats`` field is wide enough for it).
    max_outstanding : int
        Bursts unfinished at once (address issued or waiting, data not all delivered).
    timeout : int or None
        Watchdog limit in cycles (None: no watchdog).
    id_bits : int
        Width of ARID/RID (always 0).

    Attributes
    ----------
    cmd : In(stream.Signature(command_layout(addr_bits, max_beats)))
    data : Out(stream.Signature(read_data_layout(data_bits)))
    axi : Out(AxiReadSignature(addr_bits, data_bits, id_bits))
    error, error_resp, timeout, bad_cmd, error_addr : Out
        Sticky faults (module docstring).
    busy : Out(1)
        A command is in progress (bursts to issue or data to deliver).
    """

    def __init__(self, addr_bits: int = 32, data_bits: int = 64, max_burst: int = 64, *, max_beats: int = 65535,
                 max_outstanding: int = 4, timeout: int | None = 1024, id_bits: int = 1):
        super().__init__({"data": Out(stream.Signature(read_data_layout(data_bits))),
                          "axi": Out(AxiReadSignature(addr_bits, data_bits, id_bits))},
                         addr_bits, data_bits, max_burst, max_beats, max_outstanding, timeout, id_bits)

    def elaborate(self, platform):
        m = Module()
        axi, out = self.axi, self.data
        split = self._splitter(m)
        self._address_channel(m, axi, "ar", split)
        # bursts whose address was accepted, oldest first: the R beats belong to the head
        info = data.StructLayout({"addr": unsigned(self.addr_bits), "last": unsigned(1)})
        fifo, head = _burst_fifo(m, "bursts", info, self.max_outstanding)
        ar_hs = Signal()
        r_hs = Signal()
        pop = Signal()
        m.d.comb += [ar_hs.eq(axi.arvalid & axi.arready),
                     fifo.w_en.eq(ar_hs), fifo.w_data.eq(Cat(split.burst.payload.addr, split.burst.payload.last)),
                     axi.rready.eq(out.ready & fifo.r_rdy), r_hs.eq(axi.rvalid & axi.rready),
                     pop.eq(r_hs & axi.rlast), fifo.r_en.eq(pop),
                     split.room.eq(fifo.level + split.burst.valid - pop < self.max_outstanding),
                     out.valid.eq(axi.rvalid & fifo.r_rdy), out.payload.data.eq(axi.rdata),
                     out.payload.last.eq(axi.rlast & head.last),
                     self.busy.eq(split.active | split.burst.valid | fifo.r_rdy)]
        waiting = (axi.arvalid & ~axi.arready) | (fifo.r_rdy & out.ready & ~axi.rvalid)
        expired = self._watchdog(m, waiting, ar_hs | r_hs)
        _latch_faults(m, self, resp_bad=r_hs & axi.rresp[1], resp=axi.rresp, resp_addr=head.addr, expired=expired,
                      oldest_addr=Mux(fifo.r_rdy, head.addr, axi.araddr), bad=split.bad,
                      bad_addr=self.cmd.payload.addr)
        return m


class AxiWriteEngine(_Engine):
    """Write commands + a stream of words → AXI4 write bursts; ``done`` per command (module docstring).

    Parameters are :class:`AxiReadEngine`'s.

    Attributes
    ----------
    cmd : In(stream.Signature(command_layout(addr_bits, max_beats)))
    data : In(stream.Signature(write_data_layout(data_bits)))
        Exactly ``beats`` words per command, in command order. WVALID is this stream's
        ``valid`` (while a burst's address has been accepted), so the producer must keep a
        word offered until it is taken, as AXI requires of WVALID.
    axi : Out(AxiWriteSignature(addr_bits, data_bits, id_bits))
    done : Out(1)
        One-cycle pulse the cycle after a command's last B response (all its bursts answered).
    error, error_resp, timeout, bad_cmd, error_addr, busy : Out
        As :class:`AxiReadEngine`'s (``busy``: bursts to issue, data to send or responses due).
    """

    def __init__(self, addr_bits: int = 32, data_bits: int = 64, max_burst: int = 64, *, max_beats: int = 65535,
                 max_outstanding: int = 4, timeout: int | None = 1024, id_bits: int = 1):
        super().__init__({"data": In(stream.Signature(write_data_layout(data_bits))),
                          "axi": Out(AxiWriteSignature(addr_bits, data_bits, id_bits)), "done": Out(1)},
                         addr_bits, data_bits, max_burst, max_beats, max_outstanding, timeout, id_bits)

    def elaborate(self, platform):
        m = Module()
        axi, src = self.axi, self.data
        split = self._splitter(m)
        self._address_channel(m, axi, "aw", split)
        aw_hs = Signal()
        w_hs = Signal()
        b_hs = Signal()
        m.d.comb += aw_hs.eq(axi.awvalid & axi.awready)
        # W: the bursts whose address was accepted, by length; B: the same bursts, by address
        wfifo, whead = _burst_fifo(m, "w_bursts", data.StructLayout({"len": unsigned(8)}), self.max_outstanding)
        binfo = data.StructLayout({"addr": unsigned(self.addr_bits), "last": unsigned(1)})
        bfifo, bhead = _burst_fifo(m, "b_bursts", binfo, self.max_outstanding)
        beat = Signal(8)  # the W beat of the head burst
        wlast = Signal()
        m.d.comb += [wfifo.w_en.eq(aw_hs), wfifo.w_data.eq(split.burst.payload.len),
                     bfifo.w_en.eq(aw_hs), bfifo.w_data.eq(Cat(split.burst.payload.addr, split.burst.payload.last)),
                     axi.wvalid.eq(src.valid & wfifo.r_rdy), src.ready.eq(axi.wready & wfifo.r_rdy),
                     axi.wdata.eq(src.payload.data), axi.wstrb.eq(-1), wlast.eq(beat == whead.len),
                     axi.wlast.eq(wlast), w_hs.eq(axi.wvalid & axi.wready), wfifo.r_en.eq(w_hs & wlast)]
        with m.If(w_hs):
            m.d.sync += beat.eq(Mux(wlast, 0, beat + 1))
        owed = Signal()  # a burst has sent all its data and waits for its response
        m.d.comb += [owed.eq(bfifo.level > wfifo.level), axi.bready.eq(bfifo.r_rdy),
                     b_hs.eq(axi.bvalid & axi.bready), bfifo.r_en.eq(b_hs),
                     split.room.eq(bfifo.level + split.burst.valid - b_hs < self.max_outstanding),
                     self.busy.eq(split.active | split.burst.valid | bfifo.r_rdy)]
        m.d.sync += self.done.eq(b_hs & bhead.last)
        waiting = (axi.awvalid & ~axi.awready) | (axi.wvalid & ~axi.wready) | (owed & ~axi.bvalid)
        expired = self._watchdog(m, waiting, aw_hs | w_hs | b_hs)
        _latch_faults(m, self, resp_bad=b_hs & axi.bresp[1], resp=axi.bresp, resp_addr=bhead.addr, expired=expired,
                      oldest_addr=Mux(bfifo.r_rdy, bhead.addr, axi.awaddr), bad=split.bad,
                      bad_addr=self.cmd.payload.addr)
        return m


def _flat_ports(engine: wiring.Component, prefix: str):
    """(top-level port name, flow, engine value) of every leaf of ``engine``'s ports (:class:`AxiMasterTop`)."""
    for path, member, value in engine.signature.flatten(engine):
        parts = [str(p) for p in path if p != "payload"]
        if parts[0] == "axi":
            base = f"m_axi_{parts[1]}"
        elif parts[0] == "data":  # the data stream: rd_valid, rd_ready, rd_data, rd_last
            base = f"{prefix}_{parts[-1]}"
        else:
            base = f"{prefix}_{'_'.join(parts)}"
        if isinstance(value, data.View):  # a payload: one port per field (rd_data, rd_last; rd_cmd_addr …)
            head = prefix if parts[0] == "data" else base
            for field, _ in value.shape():
                yield f"{head}_{field}", member.flow, value[field]
        else:
            yield base, member.flow, value


class AxiMasterTop(wiring.Component):
    """Both engines on one AXI4 port, every port flat with the standard names (tests, integration).

    Verilog ports (module ``winnow_axi_master``, :func:`winnow.hw.generate.axi_master_verilog_text`):

    * ``aclk``, ``aresetn`` (synchronous, active low);
    * read engine: ``rd_cmd_valid/ready/addr/beats``, ``rd_valid/ready/data/last``,
      ``rd_error``, ``rd_error_resp``, ``rd_timeout``, ``rd_bad_cmd``, ``rd_error_addr``, ``rd_busy``;
    * write engine: ``wr_cmd_valid/ready/addr/beats``, ``wr_valid/ready/data``, ``wr_done``
      and the same status ports with ``wr_``;
    * ``m_axi_ar*``, ``m_axi_r*``, ``m_axi_aw*``, ``m_axi_w*``, ``m_axi_b*``: the AXI4 master
      (:class:`winnow.hw.ports.AxiReadSignature`, :class:`~winnow.hw.ports.AxiWriteSignature`).

    Parameters are the engines' (both get the same).
    """

    def __init__(self, addr_bits: int = 32, data_bits: int = 64, max_burst: int = 64, *, max_beats: int = 65535,
                 max_outstanding: int = 4, timeout: int | None = 1024, id_bits: int = 1):
        kw = dict(max_beats=max_beats, max_outstanding=max_outstanding, timeout=timeout, id_bits=id_bits)
        self.reader = AxiReadEngine(addr_bits, data_bits, max_burst, **kw)
        self.writer = AxiWriteEngine(addr_bits, data_bits, max_burst, **kw)
        self._ports = [*_flat_ports(self.reader, "rd"), *_flat_ports(self.writer, "wr")]
        members = {"aclk": In(1), "aresetn": In(1)}
        for name, flow, value in self._ports:
            members[name] = flow(len(value))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = cd = ClockDomain("sync")
        m.d.comb += [cd.clk.eq(self.aclk), cd.rst.eq(~self.aresetn)]
        m.submodules.reader = self.reader
        m.submodules.writer = self.writer
        for name, flow, value in self._ports:
            port = getattr(self, name)
            m.d.comb += value.eq(port) if flow == In else port.eq(value)
        return m
