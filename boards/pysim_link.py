"""An in-process transport: a :class:`winnow.boards.host_link.ByteLink` or :class:`~winnow.boards.host_link.HostLink`
running under the Amaranth simulator in a background thread.

The host driver runs in the caller's thread and talks to the simulated board through
two queues; the simulator thread feeds command bytes in (with random gaps, and for a
``ByteLink`` random back-pressure on the response stream) and collects the response.
Timeouts are wall-clock seconds. Slow (pure Python): for protocol tests on small arrays.
"""

from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np
from amaranth.sim import Simulator

from winnow.boards.host_link import ByteLink, HostLink
from winnow.boards.uart import BITS_PER_BYTE


class PysimTransport:
    """Simulate ``dut`` (a ByteLink or a HostLink) in a thread; use as a transport and a context manager.

    Parameters
    ----------
    dut : ByteLink or HostLink
    seed : int
        Random gaps between command bytes and random ``o.ready`` (ByteLink only).
    gap_p, ready_p : float
        Probability of an idle cycle between command bytes; of ``o.ready`` in a cycle.
    """

    byte_time = 0.0

    def __init__(self, dut, *, seed: int = 0, gap_p: float = 0.3, ready_p: float = 0.5):
        self.dut = dut
        self.rng = np.random.default_rng(seed)
        self.gap_p, self.ready_p = gap_p, ready_p
        self.to_board = deque()
        self.from_board = bytearray()
        self.cond = threading.Condition()
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.cycles = 0
        self.raw_bits = deque()   # HostLink: bit-level injection (framing-error tests)
        self.thread = threading.Thread(target=self._run, daemon=True)

    # -------------------------------------------------------------- transport API
    def write(self, data: bytes) -> None:
        with self.cond:
            self.to_board.extend(bytes(data))

    def read(self, n: int, timeout: float) -> bytes:
        end = time.monotonic() + timeout
        with self.cond:
            while len(self.from_board) < n and not self.error:
                left = end - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(left)
            if self.error:
                raise RuntimeError("the simulation thread failed") from self.error
            out = bytes(self.from_board[:n])
            del self.from_board[:n]
            return out

    def now(self) -> float:
        return time.monotonic()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=30)

    # -------------------------------------------------------------- simulation
    def _run(self):
        try:
            sim = Simulator(self.dut)
            sim.add_clock(1e-8)
            sim.add_testbench(self._tb_bytes if isinstance(self.dut, ByteLink) else self._tb_uart)
            sim.run()
        except BaseException as e:  # surfaced to the reader
            with self.cond:
                self.error = e
                self.cond.notify_all()

    def _push(self, byte: int):
        with self.cond:
            self.from_board.append(byte)
            self.cond.notify_all()

    async def _tb_bytes(self, ctx):
        dut = self.dut
        while not self.stop.is_set():
            have = bool(self.to_board) and self.rng.random() >= self.gap_p  # deque reads are atomic
            byte = self.to_board[0] if have else 0
            ctx.set(dut.i.valid, have)
            ctx.set(dut.i.payload, byte)
            ready = int(self.rng.random() < self.ready_p)
            ctx.set(dut.o.ready, ready)
            took = have and ctx.get(dut.i.ready)
            if ready and ctx.get(dut.o.valid):
                self._push(ctx.get(dut.o.payload))
            await ctx.tick()
            self.cycles += 1
            if took:
                self.to_board.popleft()

    async def _tb_uart(self, ctx):
        dut: HostLink = self.dut
        d = dut.divisor
        line = deque()     # levels to drive, one per cycle
        rx_state = None    # (cycles until the next sample, bit index, value)
        while not self.stop.is_set():
            if not line:
                with self.cond:
                    if self.raw_bits:
                        line.extend(self.raw_bits.popleft())
                    elif self.to_board:
                        byte = self.to_board.popleft()
                        bits = [0] + [(byte >> i) & 1 for i in range(8)] + [1]
                        line.extend(b for b in bits for _ in range(d))
            ctx.set(dut.rx, line.popleft() if line else 1)
            tx = ctx.get(dut.tx)
            # decode the response line: sample mid-bit after the start edge
            if rx_state is None:
                if tx == 0:
                    rx_state = [d // 2, 0, 0]
            else:
                rx_state[0] -= 1
                if rx_state[0] == 0:
                    k = rx_state[1]
                    if 1 <= k <= 8:
                        rx_state[2] |= tx << (k - 1)
                    if k == BITS_PER_BYTE - 1:
                        self._push(rx_state[2])
                        rx_state = None
                    else:
                        rx_state[0] = d
                        rx_state[1] += 1
            await ctx.tick()
            self.cycles += 1

    def send_bits(self, levels) -> None:
        """HostLink only: drive these line levels (one per cycle) before the next queued byte."""
        with self.cond:
            self.raw_bits.append(list(levels))
