"""8N1 UART receiver and transmitter (Amaranth) and their software twins.

One start bit (0), eight data bits LSB first, one stop bit (1); the line idles at 1.
``divisor`` is the number of clock cycles per bit (clock frequency / baud rate).

* :class:`UARTTx` takes bytes from a stream and shifts them out back to back: a byte
  accepted in cycle t drives its start bit from t + 1 for ``divisor`` cycles, then each
  data bit and the stop bit for ``divisor`` cycles; the next byte's start bit follows
  the stop bit directly. :func:`tx_waveform` is its twin (the line, cycle by cycle).
* :class:`UARTRx` synchronizes the pin through two flip-flops, waits half a bit after
  the falling edge of the start bit, checks the start bit is still low (a shorter
  glitch is ignored), then samples every ``divisor`` cycles: eight data bits and the
  stop bit. A byte with a stop bit of 0 is dropped and ``frame_err`` pulses (the
  receiver then waits for the line to return to 1). The received byte is held on a
  stream until taken; a byte that completes while the previous one is still held is
  dropped and ``overrun`` pulses. :class:`RxModel` is its cycle-exact twin.
"""

from __future__ import annotations

from amaranth import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from winnow.model.errors import ConfigError

#: Bits on the line per byte (start, eight data bits, stop).
BITS_PER_BYTE = 10
#: The smallest divisor: the receiver samples half a bit after the start edge.
MIN_DIVISOR = 4


def check_divisor(divisor) -> int:
    """``divisor`` as an int, or a :class:`ConfigError` naming the rule."""
    if isinstance(divisor, bool) or not isinstance(divisor, int) or divisor < MIN_DIVISOR:
        raise ConfigError(f"UART divisor (clock cycles per bit) must be an integer >= {MIN_DIVISOR}; got {divisor!r}")
    return divisor


def divisor_for(clk_hz: float, baud: int) -> int:
    """Clock cycles per bit for ``baud`` at ``clk_hz``; refuses a rate off by more than 2 %."""
    if baud <= 0:
        raise ConfigError(f"baud rate must be positive; got {baud}")
    d = round(clk_hz / baud)
    check_divisor(d)
    err = abs(clk_hz / d - baud) / baud
    if err > 0.02:
        raise ConfigError(f"{baud} baud is {err:.1%} off at {clk_hz / 1e6:g} MHz (divisor {d}); "
                          f"a UART tolerates about 2 %: choose another baud rate")
    return d


class UARTTx(wiring.Component):
    """UART transmitter, 8N1.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit (at least 4).

    Attributes
    ----------
    i : In(stream.Signature(8))
        Bytes to send; ``ready`` is high while the transmitter is idle and in the last
        cycle of a stop bit (so a waiting byte's start bit follows without a gap).
    tx : Out(1)
        The serial line (idles high); driven from a flip-flop, so it never glitches.
    """

    def __init__(self, divisor: int):
        self.divisor = check_divisor(divisor)
        super().__init__({"i": In(stream.Signature(8)), "tx": Out(1, init=1)})

    def elaborate(self, platform):
        m = Module()
        d = self.divisor
        shreg = Signal(BITS_PER_BYTE, init=(1 << BITS_PER_BYTE) - 1)  # LSB goes out first; idle = all ones
        bits = Signal(range(BITS_PER_BYTE + 1))
        timer = Signal(range(d))
        m.d.comb += [self.tx.eq(shreg[0]),
                     # idle, or in the last cycle of a stop bit: the next start bit follows directly
                     self.i.ready.eq((bits == 0) | ((bits == 1) & (timer == 0)))]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [shreg.eq(Cat(0, self.i.payload, 1)), bits.eq(BITS_PER_BYTE), timer.eq(d - 1)]
        with m.Elif(bits == 0):
            pass
        with m.Elif(timer == 0):
            m.d.sync += [shreg.eq(Cat(shreg[1:], 1)), bits.eq(bits - 1), timer.eq(d - 1)]
        with m.Else():
            m.d.sync += timer.eq(timer - 1)
        return m


class UARTRx(wiring.Component):
    """UART receiver, 8N1, with framing and overrun detection.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit (at least 4).

    Attributes
    ----------
    rx : In(1)
        The serial line (asynchronous; synchronized by two flip-flops inside).
    o : Out(stream.Signature(8))
        Received bytes; ``valid`` stays high until ``ready``.
    frame_err : Out(1)
        One-cycle pulse: a byte had a stop bit of 0 and was dropped.
    overrun : Out(1)
        One-cycle pulse: a byte completed while the previous one was still held on
        ``o``; the new byte was dropped.
    """

    def __init__(self, divisor: int):
        self.divisor = check_divisor(divisor)
        super().__init__({"rx": In(1, init=1), "o": Out(stream.Signature(8)),
                          "frame_err": Out(1), "overrun": Out(1)})

    def elaborate(self, platform):
        m = Module()
        d = self.divisor
        s1 = Signal(init=1)
        rx = Signal(init=1)  # synchronized line
        m.d.sync += [s1.eq(self.rx), rx.eq(s1)]
        timer = Signal(range(d))
        nbit = Signal(range(8))
        shreg = Signal(8)
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(~rx):
                    m.d.sync += timer.eq(d // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(rx):
                    m.next = "IDLE"  # a glitch, not a start bit
                with m.Else():
                    m.d.sync += [timer.eq(d - 1), nbit.eq(0)]
                    m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += [shreg.eq(Cat(shreg[1:], rx)), nbit.eq(nbit + 1), timer.eq(d - 1)]
                    with m.If(nbit == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(~rx):
                    m.d.comb += self.frame_err.eq(1)
                    m.next = "BREAK"
                with m.Else():
                    with m.If(self.o.valid & ~self.o.ready):
                        m.d.comb += self.overrun.eq(1)
                    with m.Else():
                        m.d.sync += [self.o.payload.eq(shreg), self.o.valid.eq(1)]
                    m.next = "IDLE"
            with m.State("BREAK"):
                with m.If(rx):
                    m.next = "IDLE"
        return m


# ---------------------------------------------------------------------------- software twins
def tx_waveform(data: bytes, divisor: int) -> list[int]:
    """The line, one entry per clock cycle, for ``data`` sent back to back (twin of :class:`UARTTx`)."""
    out = []
    for byte in bytes(data):
        for bit in [0] + [(byte >> i) & 1 for i in range(8)] + [1]:
            out += [bit] * divisor
    return out


def line_waveform(frames, divisor: float, *, idle: int = 0) -> list[int]:
    """A line waveform from ``frames`` = [(byte, gap_cycles, stop_bit)], bits ``divisor`` cycles long.

    ``divisor`` may be fractional (a transmitter whose baud rate is off); bit edges
    fall on the nearest cycle. ``stop_bit`` 0 makes a framing error. Starts and ends
    with ``idle`` cycles of 1.
    """
    out = [1] * idle
    for byte, gap, stop in frames:
        out += [1] * gap
        bits = [0] + [(byte >> i) & 1 for i in range(8)] + [stop]
        t0 = len(out)
        for i, bit in enumerate(bits):
            out += [bit] * (t0 + round((i + 1) * divisor) - len(out))
    return out + [1] * idle


class RxModel:
    """Cycle-exact twin of :class:`UARTRx`: :meth:`step` with the pin and ``ready`` of one cycle.

    :meth:`step` returns what the RTL's outputs show during that cycle (before the
    clock edge that ends it): ``(valid, payload, frame_err, overrun)``.
    """

    def __init__(self, divisor: int):
        self.d = check_divisor(divisor)
        self.s1 = self.rx = 1
        self.state, self.timer, self.nbit, self.shreg = "IDLE", 0, 0, 0
        self.valid, self.payload = 0, 0

    def step(self, pin: int, ready: int) -> tuple[int, int, int, int]:
        d, rx = self.d, self.rx
        shown = (self.valid, self.payload)
        frame_err = overrun = 0
        nxt = dict(state=self.state, timer=self.timer, nbit=self.nbit, shreg=self.shreg,
                   valid=0 if ready else self.valid, payload=self.payload)
        if self.state == "IDLE":
            if not rx:
                nxt.update(timer=d // 2 - 1, state="START")
        elif self.state == "START":
            if self.timer:
                nxt["timer"] = self.timer - 1
            elif rx:
                nxt["state"] = "IDLE"
            else:
                nxt.update(timer=d - 1, nbit=0, state="DATA")
        elif self.state == "DATA":
            if self.timer:
                nxt["timer"] = self.timer - 1
            else:
                nxt.update(shreg=(self.shreg >> 1) | (rx << 7), nbit=(self.nbit + 1) % 8, timer=d - 1)
                if self.nbit == 7:
                    nxt["state"] = "STOP"
        elif self.state == "STOP":
            if self.timer:
                nxt["timer"] = self.timer - 1
            elif not rx:
                frame_err = 1
                nxt["state"] = "BREAK"
            else:
                if self.valid and not ready:
                    overrun = 1
                else:
                    nxt.update(payload=self.shreg, valid=1)
                nxt["state"] = "IDLE"
        elif self.state == "BREAK":
            if rx:
                nxt["state"] = "IDLE"
        self.s1, self.rx = pin, self.s1
        for k, v in nxt.items():
            setattr(self, k, v)
        return shown[0], shown[1], frame_err, overrun


def rx_decode(waveform, divisor: int, ready=None) -> tuple[list[int], int, int]:
    """Run :class:`RxModel` over a waveform → (bytes taken, framing errors, overruns)."""
    model = RxModel(divisor)
    got, fe, ov = [], 0, 0
    for t, pin in enumerate(waveform):
        r = 1 if ready is None else ready[t]
        valid, payload, f, o = model.step(pin, r)
        if valid and r:
            got.append(payload)
        fe += f
        ov += o
    return got, fe, ov
