"""Host side of the ULX3S stream top's UART commands (:data:`winnow.boards.stream_top.COMMANDS`).

::

    from winnow.boards.host import SerialTransport
    from winnow.boards.dram_host import DramHost
    host = DramHost(SerialTransport("/dev/ttyUSB0", baud=115200))
    out, status = host.run_layer(layer_image(layer, cfg, stream), xq)

A transport is what :mod:`winnow.boards.host` takes (``write(data)``, ``read(n, timeout)``).
:class:`CommandModel` is the software twin of :class:`~winnow.boards.stream_top.HostCommand`
(the same replies and memory writes for the same bytes), a transport for tests.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass

from winnow.hw.stream_abi import FAULTS

from winnow.boards.host import HostLinkError, HostLinkTimeout
from winnow.boards.stream_top import STATUS_BYTES

#: Words per 'W' or 'R' command (the interpreter takes any count; shorter commands bound a lost reply).
CHUNK_WORDS = 256


@dataclass(frozen=True)
class DramStatus:
    """The 'Q' reply."""

    init_done: bool
    busy: bool
    done: bool
    error: bool
    faults: tuple
    cycles: int
    error_addr: int

    @classmethod
    def decode(cls, raw: bytes) -> DramStatus:
        flags, fault = raw[0], raw[1]
        cycles, error_addr = struct.unpack("<II", raw[2:10])
        return cls(bool(flags & 1), bool(flags & 2), bool(flags & 4), bool(flags & 8),
                   tuple(f for i, f in enumerate(FAULTS) if fault >> i & 1), cycles, error_addr)


class DramHost:
    """DRAM writes and reads, runs and status over a transport (module docstring)."""

    def __init__(self, transport, *, timeout: float = 5.0):
        self.t, self.timeout = transport, timeout

    def _reply(self, n: int, what: str) -> bytes:
        got = self.t.read(n, self.timeout)
        if len(got) != n:
            raise HostLinkTimeout(f"{what}: {len(got)} of {n} reply bytes in {self.timeout:g} s")
        return got

    def _ok(self, what: str) -> None:
        if self._reply(1, what) != b"K":
            raise HostLinkError(f"{what}: the board did not acknowledge")

    def write_words(self, addr: int, words: list[int]) -> None:
        if addr % 4:
            raise HostLinkError(f"DRAM word writes need a multiple of 4 as address; got {addr:#x}")
        for i in range(0, len(words), CHUNK_WORDS):
            part = words[i:i + CHUNK_WORDS]
            self.t.write(b"W" + struct.pack(f"<II{len(part)}I", addr + 4 * i, len(part), *part))
            self._ok(f"write of {len(part)} words at {addr + 4 * i:#x}")

    def read_words(self, addr: int, n: int) -> list[int]:
        if addr % 4:
            raise HostLinkError(f"DRAM word reads need a multiple of 4 as address; got {addr:#x}")
        out: list[int] = []
        for i in range(0, n, CHUNK_WORDS):
            k = min(CHUNK_WORDS, n - i)
            self.t.write(b"R" + struct.pack("<II", addr + 4 * i, k))
            out += struct.unpack(f"<{k}I", self._reply(4 * k, f"read of {k} words at {addr + 4 * i:#x}"))
        return out

    def write(self, addr: int, data: bytes) -> None:
        """Bytes at any address: whole words, the partial first and last ones read, merged and written back."""
        lo, hi = addr & ~3, (addr + len(data) + 3) & ~3
        buf = bytearray(hi - lo)
        if addr != lo or addr + len(data) != hi:
            for j, w in ((0, lo), (len(buf) - 4, hi - 4)):
                buf[j:j + 4] = struct.pack("<I", self.read_words(w, 1)[0])
        buf[addr - lo:addr - lo + len(data)] = data
        self.write_words(lo, list(struct.unpack(f"<{len(buf) // 4}I", bytes(buf))))

    def read(self, addr: int, n: int) -> bytes:
        lo, hi = addr & ~3, (addr + n + 3) & ~3
        raw = struct.pack(f"<{(hi - lo) // 4}I", *self.read_words(lo, (hi - lo) // 4))
        return raw[addr - lo:addr - lo + n]

    def status(self) -> DramStatus:
        self.t.write(b"Q")
        return DramStatus.decode(self._reply(STATUS_BYTES, "status"))

    def start(self, desc_addr: int, passes: int) -> None:
        self.t.write(b"S" + struct.pack("<II", desc_addr, passes))
        self._ok("start")

    def run_layer(self, image, xq, *, timeout: float = 60.0, poll: float = 0.05):
        """Load ``image`` (:func:`winnow.hw.memory_image.layer_image`) and the input ``xq``, run, read the output.

        Returns (output (K, Ho, Wo), the final :class:`DramStatus`). Raises
        :class:`HostLinkError` if the SDRAM is not initialised, the run ends with an error
        (its faults and address), or it does not finish within ``timeout`` seconds.
        """
        st = self.status()
        if not st.init_done:
            raise HostLinkError("the SDRAM is not initialised (init_done low): is the LiteDRAM core running?")
        for addr, blob in list(image.blobs) + [(image.input_addr, image.input_bytes(xq))]:
            self.write(addr, blob)
        self.start(image.desc_addr, image.passes)
        t0 = time.monotonic()
        while True:
            st = self.status()
            if st.done and not st.busy:
                break
            if time.monotonic() - t0 > timeout:
                raise HostLinkTimeout(f"the run did not finish in {timeout:g} s (cycles so far {st.cycles})")
            time.sleep(poll)
        if st.error:
            raise HostLinkError(f"the run failed: {', '.join(st.faults)} at {st.error_addr:#x}")
        raw = self.read(image.output_addr, image.end - image.output_addr)
        base = image.output_addr
        return image.read_output(lambda a, n: raw[a - base:a - base + n]), st


class CommandModel:
    """Software twin of :class:`~winnow.boards.stream_top.HostCommand`, usable as a transport.

    ``mem`` maps word addresses (``word_addr_bits`` wide: 23 for the 32 MB core) to 32-bit
    words; ``status`` holds the inputs 'Q' reports; ``starts`` records each accepted 'S' as
    (desc_addr, passes).
    """

    def __init__(self, status: dict | None = None, word_addr_bits: int = 23):
        self._amask = (1 << word_addr_bits) - 1
        self.mem: dict[int, int] = {}
        self.status = {"init_done": 1, "busy": 0, "done": 0, "error": 0, "fault": 0, "cycles": 0, "error_addr": 0}
        self.status.update(status or {})
        self.starts: list[tuple[int, int]] = []
        self._in = bytearray()
        self._out = bytearray()

    def write(self, data: bytes) -> None:
        self._in += data
        while self._step():
            pass

    def read(self, n: int, timeout: float = 0) -> bytes:
        got, self._out = bytes(self._out[:n]), self._out[n:]
        return got

    def _step(self) -> bool:
        """Interpret one whole command from the input, if there is one."""
        b = self._in
        if not b:
            return False
        c = chr(b[0])
        if c not in "WRSQ":
            del b[:1]
            return True
        if c == "Q":
            s = self.status
            self._out += bytes([s["init_done"] | s["busy"] << 1 | s["done"] << 2 | s["error"] << 3, s["fault"]])
            self._out += struct.pack("<II", s["cycles"], s["error_addr"] & 0xFFFFFFFF)
            del b[:1]
            return True
        if len(b) < 9:
            return False
        addr, n = struct.unpack("<II", b[1:9])
        if c in "WR" and n == 0:  # as the RTL: an empty transfer is acknowledged
            del b[:9]
            self._out += b"K"
        elif c == "W":
            if len(b) < 9 + 4 * n:
                return False
            for i, w in enumerate(struct.unpack(f"<{n}I", b[9:9 + 4 * n])):
                self.mem[((addr >> 2) + i) & self._amask] = w
            del b[:9 + 4 * n]
            self._out += b"K"
        elif c == "R":
            del b[:9]
            self._out += struct.pack(f"<{n}I", *[self.mem.get(((addr >> 2) + i) & self._amask, 0) for i in range(n)])
        else:
            del b[:9]
            if not self.status["busy"] and self.status["init_done"]:
                self.starts.append((addr, n & 0xFFFFFF))
            self._out += b"K"
        return True
