"""HostLink: a UART command interface around :class:`winnow.hw.array.WinogradArray`.

``UARTRx → CommandProcessor → UARTTx``; the command processor drives the array's
ports (load, start, rd_bank/rd_addr) and reads its status (busy, done, cycles,
rd_data). The protocol is :mod:`winnow.boards.protocol` (table in docs/boards.md).

Only the array's ports are used, and their widths are read from its signature, so
the array's internals (memory banking, encodings) can change freely.
"""

from __future__ import annotations

from amaranth import C, Cat, ClockSignal, Instance, Module, Mux, ResetSignal, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from winnow.hw.array import WinogradArray
from winnow.hw.config import AccelConfig
from winnow.model.errors import ConfigError

from winnow.boards import protocol as P
from winnow.boards.uart import BITS_PER_BYTE, UARTRx, UARTTx, check_divisor

#: Module name of the array in the Verilog export (winnow.hw.generate.TOP).
ARRAY_MODULE = "winnow_array"


def array_link_info(array: WinogradArray, cfg: AccelConfig) -> P.LinkInfo:
    """Port widths of ``array`` (from its signature) and the configuration id, as INFO reports them."""
    return P.LinkInfo(version=P.VERSION, load_bits=len(array.load.payload.as_value()),
                      bank_bits=array.rd_bank.shape().width, addr_bits=array.rd_addr.shape().width,
                      data_bits=array.rd_data.shape().width, config_id=P.config_id(cfg))


def link_info(cfg: AccelConfig) -> P.LinkInfo:
    """What INFO reports for a HostLink around ``cfg``'s array (the array is only inspected)."""
    array = WinogradArray(cfg)
    array._MustUse__silence = True  # its signature is read, it is never elaborated
    return array_link_info(array, cfg)


class CommandProcessor(wiring.Component):
    """The protocol engine: bytes in, bytes out, array ports driven.

    Parameters
    ----------
    info : winnow.boards.protocol.LinkInfo
        Widths of the array's ports and the configuration id reported by INFO.
    timeout_cycles : int
        A command whose argument bytes stop arriving for this many cycles is abandoned
        (error TIMEOUT), so a host that dies mid-command never wedges the link.

    Attributes
    ----------
    i : In(stream.Signature(8))
        Received bytes.
    o : Out(stream.Signature(8))
        Response bytes.
    frame_err, overrun : In(1)
        Pulses from the receiver; reported as errors (abandoning a command in progress).
    load : Out(stream.Signature(load_bits))
        To the array's load port (the payload as one flat word).
    start : Out(1)
        One-cycle start pulse (only while the array is not busy).
    busy, done : In(1); cycles : In(32)
        The array's status.
    rd_bank, rd_addr : Out; rd_data : In
        The array's read-back port (data one clock after the address; read two after).
    """

    def __init__(self, info: P.LinkInfo, *, timeout_cycles: int):
        if timeout_cycles < 1:
            self._MustUse__silence = True
            raise ConfigError(f"timeout_cycles must be positive; got {timeout_cycles}")
        self.info = info
        self.timeout_cycles = int(timeout_cycles)
        super().__init__({
            "i": In(stream.Signature(8)), "o": Out(stream.Signature(8)),
            "frame_err": In(1), "overrun": In(1),
            "load": Out(stream.Signature(info.load_bits)),
            "start": Out(1), "busy": In(1), "done": In(1), "cycles": In(32),
            "rd_bank": Out(info.bank_bits), "rd_addr": Out(info.addr_bits), "rd_data": In(info.data_bits),
        })  # fmt: skip

    def elaborate(self, platform):
        m = Module()
        info = self.info
        nb, nr, nd = info.load_bytes, info.entry_bytes, info.data_bytes
        bb, ab = info.bank_bits, info.addr_bits
        arg_bytes = max(nb, nr + 2, 2)
        resp_bytes = max(1 + P.INFO_BYTES, 6, 3, nd)

        cmd = Signal(8)
        count = Signal(16)
        arg = Signal(8 * arg_bytes)
        bi = Signal(range(arg_bytes + 1))
        resp = Signal(8 * resp_bytes)
        resp_n = Signal(range(resp_bytes + 1))
        refused = Signal()   # LOAD while busy: consume the words, write nothing, answer BUSY
        is_range = Signal()
        in_read = Signal()
        ra_bank = Signal(bb)
        ra_addr = Signal(ab)
        m.d.comb += [self.rd_bank.eq(ra_bank), self.rd_addr.eq(ra_addr)]
        byte = self.i.payload

        # receiver errors are remembered until the command engine can answer them
        err_frame = Signal()
        err_overrun = Signal()
        clear_err = Signal()
        with m.If(clear_err):
            m.d.sync += [err_frame.eq(0), err_overrun.eq(0)]
        with m.If(self.frame_err):
            m.d.sync += err_frame.eq(1)
        with m.If(self.overrun):
            m.d.sync += err_overrun.eq(1)
        err_pending = err_frame | err_overrun
        err_code = Signal(8)
        m.d.comb += err_code.eq(Mux(err_frame, P.ERR_FRAMING, P.ERR_OVERRUN))

        # argument-byte timeout
        waiting = Signal()
        idle = Signal(range(self.timeout_cycles + 1))
        with m.If(~waiting | self.i.valid):
            m.d.sync += idle.eq(0)
        with m.Else():
            m.d.sync += idle.eq(idle + 1)
        timed_out = (idle == self.timeout_cycles) & ~self.i.valid

        def respond(*parts):
            """Statements: load the response shift register with bytes/signals (LSB first) and go SEND."""
            bits = Cat(*[C(p, 8) if isinstance(p, int) else p for p in parts])
            assert len(bits) % 8 == 0
            m.d.sync += [resp.eq(bits), resp_n.eq(len(bits) // 8)]
            m.next = "SEND"

        def error(code, command):
            respond(P.ERROR, code, command)
            m.d.sync += in_read.eq(0)

        def collect(need):
            """Take argument bytes into ``arg``; returns the condition 'the last one arrives now'."""
            last = self.i.valid & (bi == need - 1)
            with m.If(self.i.valid & self.i.ready):
                m.d.sync += [arg.word_select(bi, 8).eq(byte), bi.eq(Mux(last, 0, bi + 1))]
            return last

        def guard():
            """In a collecting state: abandon the command on a receiver error or a timeout."""
            m.d.comb += waiting.eq(1)
            with m.If(err_pending):
                m.d.comb += clear_err.eq(1)
                error(err_code, cmd)
            with m.Elif(timed_out):
                error(P.ERR_TIMEOUT, cmd)

        info_bytes = info.to_bytes()
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.i.ready.eq(~err_pending)
                m.d.sync += [bi.eq(0), in_read.eq(0)]
                with m.If(err_pending):
                    m.d.comb += clear_err.eq(1)
                    error(err_code, 0)
                with m.Elif(self.i.valid):
                    m.d.sync += cmd.eq(byte)
                    with m.Switch(byte):
                        with m.Case(P.INFO):
                            respond(P.INFO, *info_bytes)
                        with m.Case(P.LOAD):
                            m.d.sync += refused.eq(self.busy)
                            m.next = "LOAD_COUNT"
                        with m.Case(P.START):
                            with m.If(self.busy):
                                error(P.ERR_BUSY, P.START)
                            with m.Else():
                                m.d.comb += self.start.eq(1)
                                respond(P.START)
                        with m.Case(P.STATUS):
                            respond(P.STATUS, Cat(self.busy, self.done, C(0, 6)), self.cycles)
                        with m.Case(P.READ):
                            m.d.sync += [in_read.eq(1), is_range.eq(0)]
                            m.next = "READ_COUNT"
                        with m.Case(P.READ_RANGE):
                            m.d.sync += [in_read.eq(1), is_range.eq(1)]
                            m.next = "RANGE_ARGS"
                        with m.Default():
                            error(P.ERR_UNKNOWN, byte)

            with m.State("LOAD_COUNT"):
                m.d.comb += self.i.ready.eq(1)
                last = collect(2)
                guard()
                with m.If(~err_pending & last):
                    n = Cat(arg[:8], byte)
                    m.d.sync += count.eq(n)
                    with m.If(n == 0):
                        with m.If(refused):
                            error(P.ERR_BUSY, P.LOAD)
                        with m.Else():
                            respond(P.LOAD)
                    with m.Else():
                        m.next = "LOAD_WORD"

            with m.State("LOAD_WORD"):
                last = self.i.valid & (bi == nb - 1)
                word = Cat(arg[:8 * (nb - 1)], byte)[:info.load_bits]
                m.d.comb += [self.load.payload.eq(word), self.load.valid.eq(last & ~refused & ~err_pending),
                             self.i.ready.eq((bi != nb - 1) | self.load.ready | refused)]
                collect(nb)
                guard()
                with m.If(~err_pending & last & self.i.ready):
                    m.d.sync += count.eq(count - 1)
                    with m.If(count == 1):
                        with m.If(refused):
                            error(P.ERR_BUSY, P.LOAD)
                        with m.Else():
                            respond(P.LOAD)

            with m.State("READ_COUNT"):
                m.d.comb += self.i.ready.eq(1)
                last = collect(2)
                guard()
                with m.If(~err_pending & last):
                    m.d.sync += count.eq(Cat(arg[:8], byte))
                    respond(P.READ)

            with m.State("RANGE_ARGS"):
                m.d.comb += self.i.ready.eq(1)
                last = collect(nr + 2)
                guard()
                with m.If(~err_pending & last):
                    entry = arg[:8 * nr]
                    m.d.sync += [ra_bank.eq(entry[:bb]), ra_addr.eq(entry[bb:bb + ab]),
                                 count.eq(Cat(arg[8 * nr:8 * (nr + 1)], byte))]
                    respond(P.READ_RANGE)

            with m.State("READ_ENTRY"):
                m.d.comb += self.i.ready.eq(1)
                last = collect(nr)
                guard()
                with m.If(~err_pending & last):
                    entry = Cat(arg[:8 * (nr - 1)], byte)
                    m.d.sync += [ra_bank.eq(entry[:bb]), ra_addr.eq(entry[bb:bb + ab])]
                    m.next = "RD_WAIT"

            with m.State("RD_WAIT"):   # the address is on the port during this cycle
                m.next = "RD_CAP"

            with m.State("RD_CAP"):    # rd_data is valid (one clock after the address)
                m.d.sync += count.eq(count - 1)
                with m.If(is_range):
                    m.d.sync += ra_addr.eq(ra_addr + 1)
                pad = 8 * nd - info.data_bits
                respond(Cat(self.rd_data, C(0, pad)) if pad else self.rd_data)

            with m.State("SEND"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(resp[:8])]
                with m.If(self.o.ready):
                    m.d.sync += [resp.eq(resp >> 8), resp_n.eq(resp_n - 1)]
                    with m.If(resp_n == 1):
                        with m.If(in_read & (count != 0)):
                            with m.If(is_range):
                                m.next = "RD_WAIT"
                            with m.Else():
                                m.next = "READ_ENTRY"
                        with m.Else():
                            m.next = "IDLE"
        return m


def _make_array(owner, m):
    """The array inside ``m``: the component itself, or a Verilog instance with the same ports."""
    if owner.array_mode == "component":
        m.submodules.array = owner.array
        return owner.array
    arr = owner.array.signature.create(path=("array",))
    ports = {}
    for path, member, value in owner.array.signature.flatten(arr):
        ports[("i_" if member.flow == In else "o_") + "__".join(str(p) for p in path)] = value
    m.submodules.array = Instance(ARRAY_MODULE, i_clk=ClockSignal(), i_rst=ResetSignal(), **ports)
    return arr


class ByteLink(wiring.Component):
    """:class:`CommandProcessor` and the array: the HostLink without its UART (byte streams).

    Parameters
    ----------
    config : AccelConfig
    timeout_cycles : int
        See :class:`CommandProcessor`.
    array : {"component", "instance"}
        See :class:`HostLink`.

    Attributes
    ----------
    i : In(stream.Signature(8)); o : Out(stream.Signature(8))
        Command bytes in, response bytes out.
    frame_err, overrun : In(1)
        Receiver error pulses.
    busy, done : Out(1)
        The array's status.
    info : winnow.boards.protocol.LinkInfo
    """

    def __init__(self, config: AccelConfig, *, timeout_cycles: int, array: str = "component"):
        if array not in ("component", "instance"):
            self._MustUse__silence = True
            raise ConfigError(f"array must be 'component' or 'instance'; got {array!r}")
        self.config = config
        self.timeout_cycles = timeout_cycles
        self.array_mode = array
        self.array = WinogradArray(config)
        self.info = array_link_info(self.array, config)
        if array == "instance":
            self.array._MustUse__silence = True  # only its signature is used
        super().__init__({"i": In(stream.Signature(8)), "o": Out(stream.Signature(8)),
                          "frame_err": In(1), "overrun": In(1), "busy": Out(1), "done": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.cmd = cp = CommandProcessor(self.info, timeout_cycles=self.timeout_cycles)
        arr = _make_array(self, m)
        wiring.connect(m, wiring.flipped(self.i), cp.i)
        wiring.connect(m, cp.o, wiring.flipped(self.o))
        m.d.comb += [
            cp.frame_err.eq(self.frame_err), cp.overrun.eq(self.overrun),
            arr.load.valid.eq(cp.load.valid), arr.load.payload.as_value().eq(cp.load.payload),
            cp.load.ready.eq(arr.load.ready),
            arr.start.eq(cp.start), cp.busy.eq(arr.busy), cp.done.eq(arr.done), cp.cycles.eq(arr.cycles),
            arr.rd_bank.eq(cp.rd_bank), arr.rd_addr.eq(cp.rd_addr), cp.rd_data.eq(arr.rd_data),
            self.busy.eq(arr.busy), self.done.eq(arr.done),
        ]  # fmt: skip
        return m


class HostLink(wiring.Component):
    """A :class:`winnow.hw.array.WinogradArray` behind a UART command interface.

    Parameters
    ----------
    config : AccelConfig
        The array to build.
    divisor : int
        Clock cycles per UART bit (clock frequency / baud rate; at least 4).
    timeout_bytes : int
        Argument bytes may pause at most this many byte times before a command is
        abandoned with error TIMEOUT (default 1024: 89 ms at 115200 baud).
    array : {"component", "instance"}
        ``"component"`` elaborates the array inside (Amaranth simulation, board builds);
        ``"instance"`` instantiates a Verilog module ``winnow_array`` by name, to be
        compiled beside the file :func:`winnow.hw.generate.generate` writes (Verilog export).

    Attributes
    ----------
    rx : In(1)
        UART receive line (from the host).
    tx : Out(1)
        UART transmit line (to the host).
    busy, done : Out(1)
        The array's status (for LEDs).
    info : winnow.boards.protocol.LinkInfo
        What INFO reports.
    """

    def __init__(self, config: AccelConfig, *, divisor: int, timeout_bytes: int = 1024, array: str = "component"):
        self._MustUse__silence = True  # a refused parameter leaves no unused-elaboratable warning
        self.divisor = check_divisor(divisor)
        if isinstance(timeout_bytes, bool) or not isinstance(timeout_bytes, int) or timeout_bytes < 2:
            raise ConfigError(f"timeout_bytes must be an integer >= 2; got {timeout_bytes!r}")
        self._MustUse__silence = False
        self.timeout_bytes = timeout_bytes
        self.link = ByteLink(config, timeout_cycles=timeout_bytes * BITS_PER_BYTE * self.divisor, array=array)
        self.config = config
        self.info = self.link.info
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1), "busy": Out(1), "done": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.uart_rx = rx = UARTRx(self.divisor)
        m.submodules.uart_tx = tx = UARTTx(self.divisor)
        m.submodules.link = link = self.link
        m.d.comb += [rx.rx.eq(self.rx), self.tx.eq(tx.tx), link.frame_err.eq(rx.frame_err),
                     link.overrun.eq(rx.overrun), self.busy.eq(link.busy), self.done.eq(link.done)]
        wiring.connect(m, rx.o, link.i)
        wiring.connect(m, link.o, tx.i)
        return m
