"""Host driver: runs packed layers on a board (or a simulation) through the HostLink protocol.

::

    from winnow.boards.host import HostDriver, SerialTransport
    drv = HostDriver(SerialTransport("/dev/ttyUSB1", baud=115200))
    out, cycles = drv.run_layer(pack_layer(layer, cfg), xq)

Any object with ``write(data)``, ``read(n, timeout)`` (up to n bytes; fewer when
``timeout`` seconds pass), ``now()`` (seconds on the transport's clock) and
``byte_time`` (seconds per byte on the line, 0 if unknown) is a transport: a pyserial
port (:class:`SerialTransport`), a simulated board (``boards/tb_hostlink.py``), or the
in-process Amaranth simulation used by the tests.
"""

from __future__ import annotations

import time
from collections import defaultdict

import numpy as np

from winnow.model.errors import DataError, WinnowError

from winnow.boards import protocol as P


class HostLinkError(WinnowError):
    """A host-link failure: names the command and what went wrong."""


class HostLinkTimeout(HostLinkError):
    """No (or not enough) answer from the board in time."""


class BoardError(HostLinkError):
    """The board answered a command with an error response."""

    def __init__(self, command: int, code: int, what: str):
        self.command, self.code = command, code
        super().__init__(f"board refused {what}: error {code:#04x} "
                         f"({P.ERRORS.get(code, 'unknown error code')})")


class SerialTransport:
    """A pyserial port as a transport (8N1)."""

    def __init__(self, port: str, baud: int = 115200, **kwargs):
        try:
            import serial
        except ImportError as e:  # pragma: no cover - pyserial is a dependency
            raise HostLinkError("pyserial is not installed (pip install pyserial==3.5)") from e
        try:
            self.port = serial.Serial(port, baudrate=baud, bytesize=8, parity="N", stopbits=1, timeout=1.0, **kwargs)
        except serial.SerialException as e:
            raise HostLinkError(f"cannot open serial port {port}: {e}") from e
        self.byte_time = 10.0 / baud

    def write(self, data: bytes) -> None:
        self.port.write(data)

    def read(self, n: int, timeout: float) -> bytes:
        self.port.timeout = max(timeout, 0.0)
        return self.port.read(n)

    def now(self) -> float:
        return time.monotonic()

    def close(self) -> None:
        self.port.close()


def coalesce_reads(reads, max_gap: int = 4):
    """Group (bank, addr) reads into READ_RANGE runs: [(bank, addr0, count)], gaps up to ``max_gap`` read through."""
    by_bank = defaultdict(set)
    for bank, addr in reads:
        by_bank[int(bank)].add(int(addr))
    runs = []
    for bank in sorted(by_bank):
        addrs = sorted(by_bank[bank])
        a0 = prev = addrs[0]
        for a in addrs[1:]:
            if a - prev > max_gap + 1 or a - a0 + 1 > P.MAX_COUNT:
                runs.append((bank, a0, prev - a0 + 1))
                a0 = a
            prev = a
        runs.append((bank, a0, prev - a0 + 1))
    return runs


class HostDriver:
    """Speaks the HostLink protocol over a transport.

    Parameters
    ----------
    transport
        See the module docstring.
    timeout : float
        Seconds (on the transport's clock) to wait for a response beyond the time its
        bytes need on the line.
    block_words : int
        Load words per LOAD command (each command is acknowledged before the next).
    """

    def __init__(self, transport, *, timeout: float = 1.0, block_words: int = 4096):
        self.t = transport
        self.timeout = float(timeout)
        self.block_words = max(1, min(int(block_words), P.MAX_COUNT))
        self._info: P.LinkInfo | None = None

    # ---------------------------------------------------------------- plumbing
    def _read_exact(self, n: int, what: str, line_bytes: int = 0) -> bytes:
        """Read exactly ``n`` bytes or raise :class:`HostLinkTimeout` naming ``what``."""
        budget = self.timeout + (line_bytes + n) * getattr(self.t, "byte_time", 0.0)
        got = bytearray()
        t0 = self.t.now()
        while len(got) < n:
            left = budget - (self.t.now() - t0)
            if left <= 0:
                break
            chunk = self.t.read(n - len(got), left)
            if not isinstance(chunk, (bytes, bytearray)):
                raise HostLinkError(f"the transport answered {type(chunk).__name__} instead of bytes while "
                                    f"waiting for {what}")
            if len(chunk) > n - len(got):
                raise HostLinkError(f"the transport returned {len(chunk)} bytes for a read of {n - len(got)} "
                                    f"while waiting for {what}")
            got += chunk
        if len(got) < n:
            raise HostLinkTimeout(f"timed out after {budget:.3g} s waiting for {what} "
                                  f"(received {len(got)} of {n} bytes{': ' + got.hex() if got else ''}); "
                                  f"is the board programmed, on this port, at this baud rate?")
        return bytes(got)

    def _expect_echo(self, command: int, what: str, line_bytes: int = 0) -> None:
        b = self._read_exact(1, f"the response to {what}", line_bytes)[0]
        if b == P.ERROR:
            rest = self._read_exact(2, f"the error code of the response to {what}")
            raise BoardError(rest[1], rest[0], what)
        if b != command:
            raise HostLinkError(f"bad response to {what}: expected {command:#04x} or an error ({P.ERROR:#04x}), "
                                f"got {b:#04x} (link out of step: call resync())")

    def resync(self) -> None:
        """Bring the link back in step: wait out the board's argument timeout, drop stale bytes."""
        info_wait = self.timeout
        end = self.t.now() + info_wait
        while self.t.now() < end:
            if not self.t.read(4096, end - self.t.now()):
                break
        self._info = None

    # ---------------------------------------------------------------- commands
    def info(self) -> P.LinkInfo:
        """INFO: the board's protocol version, port widths and configuration id (cached)."""
        if self._info is None:
            self.t.write(bytes([P.INFO]))
            self._expect_echo(P.INFO, "INFO", 1)
            try:
                info = P.LinkInfo.from_bytes(self._read_exact(P.INFO_BYTES, "the INFO payload"))
            except DataError as exc:
                raise HostLinkError(f"bad INFO response: {exc}") from None
            if info.version != P.VERSION:
                raise HostLinkError(f"board speaks protocol version {info.version}; this driver speaks {P.VERSION}")
            self._info = info
        return self._info

    def load(self, words) -> None:
        """LOAD the load-port words, in blocks of ``block_words``."""
        info = self.info()
        words = list(words)
        for i in range(0, len(words), self.block_words):
            block = words[i:i + self.block_words]
            cmd = P.load_command(block, info)
            self.t.write(cmd)
            self._expect_echo(P.LOAD, f"LOAD of words {i}..{i + len(block) - 1}", len(cmd))

    def start(self) -> None:
        self.t.write(bytes([P.START]))
        self._expect_echo(P.START, "START", 1)

    def status(self) -> tuple[bool, bool, int]:
        """STATUS → (busy, done, cycles of the last run)."""
        self.t.write(bytes([P.STATUS]))
        self._expect_echo(P.STATUS, "STATUS", 1)
        b = self._read_exact(5, "the STATUS payload")
        return bool(b[0] & P.FLAG_BUSY), bool(b[0] & P.FLAG_DONE), int.from_bytes(b[1:5], "little")

    def read(self, entries) -> list[int]:
        """READ a list of (bank, addr) → values."""
        info = self.info()
        entries = list(entries)
        out = []
        # a block per command; READ answers one value per entry as the entries arrive
        for i in range(0, len(entries), 1024):
            block = entries[i:i + 1024]
            cmd = P.read_command(block, info)
            self.t.write(cmd)
            self._expect_echo(P.READ, f"READ of {len(block)} entries", 3)
            raw = self._read_exact(len(block) * info.data_bytes, f"{len(block)} READ values", len(cmd))
            out += self._values(raw, info)
        return out

    def read_range(self, bank: int, addr: int, count: int) -> list[int]:
        """READ_RANGE: ``count`` values of ``bank`` from ``addr`` on."""
        info = self.info()
        cmd = P.read_range_command(bank, addr, count, info)
        self.t.write(cmd)
        self._expect_echo(P.READ_RANGE, f"READ_RANGE bank {bank} addr {addr} count {count}", len(cmd))
        raw = self._read_exact(count * info.data_bytes, f"{count} READ_RANGE values (bank {bank}, addr {addr})")
        return self._values(raw, info)

    @staticmethod
    def _values(raw: bytes, info: P.LinkInfo) -> list[int]:
        nd = info.data_bytes
        return [int.from_bytes(raw[q:q + nd], "little") for q in range(0, len(raw), nd)]

    def read_outputs(self, reads, mode: str = "range") -> list[int]:
        """Values at ``reads`` (a list of (bank, addr)), by READ_RANGE runs or one READ list."""
        reads = [(int(b), int(a)) for b, a in reads]
        if mode == "list":
            return self.read(reads)
        if mode != "range":
            raise DataError(f"mode must be 'range' or 'list'; got {mode!r}")
        got = {}
        for bank, a0, n in coalesce_reads(reads):
            for k, v in enumerate(self.read_range(bank, a0, n)):
                got[(bank, a0 + k)] = v
        return [got[r] for r in reads]

    def wait_done(self, timeout: float = 10.0, poll: float = 0.0) -> int:
        """Poll STATUS until done; return the cycle count of the run."""
        t0 = self.t.now()
        while True:
            busy, done, cycles = self.status()
            if done and not busy:
                return cycles
            if self.t.now() - t0 > timeout:
                raise HostLinkTimeout(f"timed out after {timeout:.3g} s waiting for the run to finish "
                                      f"(busy={busy}, done={done}, {cycles} cycles so far)")
            if poll:
                time.sleep(poll)

    def check_config(self, cfg) -> None:
        """Refuse a layer packed for another configuration than the board's."""
        info = self.info()
        want = P.config_id(cfg)
        if info.config_id != want:
            raise HostLinkError(f"the board runs configuration {info.config_id:08x}, the layer is packed for "
                                f"{want:08x}: pack it with the board's preset (winnow.boards.presets) or rebuild")

    def run_tiled(self, cfg, layer, xq, *, run_timeout: float = 10.0, read_mode: str = "range"):
        """Run ``layer`` on a tiled-mode board array pass after pass (:mod:`winnow.hw.tiled_packer`).

        Every pass is loaded, started and waited for; the outputs of each job's finishing
        pass are read back and assembled. The host's memory stands in for the external
        memory: the board's accumulators keep the partial sums between the passes.
        Returns (outputs int64 (K, Ho, Wo), RUN cycles summed over the passes).
        """
        from winnow.hw.tiled_packer import assemble, passes, plan_for

        self.check_config(cfg)
        plan = plan_for(cfg, layer)
        runs = passes(layer, np.asarray(xq), cfg, plan)
        outs, total = [], 0
        for r in runs:
            self.load(r.packed.load_port_words(r.x))
            self.start()
            total += self.wait_done(timeout=run_timeout)
            outs.append(r.packed.unpack_reads(self.read_outputs(r.packed.output_reads(), mode=read_mode))
                        if r.finish else None)
        return assemble(plan, runs, outs), total

    def run_layer(self, packed, xq, *, run_timeout: float = 10.0, read_mode: str = "range"):
        """Load ``packed`` with input ``xq``, run, read back → (outputs int64 (K, Ho, Wo), RUN cycles)."""
        self.check_config(packed.config)
        self.load(packed.load_port_words(np.asarray(xq)))
        self.start()
        cycles = self.wait_done(timeout=run_timeout)
        values = self.read_outputs(packed.output_reads(), mode=read_mode)
        return packed.unpack_reads(values), cycles
