"""Exact cycles of the AXI4 master engines (:mod:`winnow.hw.axi_master`) against cocotbext-axi's ``AxiRam``.

:func:`read_timing` gives the cycle in which each read command's last word is delivered
(an always-ready consumer), :func:`write_timing` the cycle of each write command's ``done``
pulse (a producer that always has the next word), for commands offered back to back from
cycle 0, the first cycle out of reset. Both return the cycles of every burst's address
handshake and of every beat too. The memory is :class:`RamTiming`: AxiRam with a
deterministic pause pattern per channel (cocotbext-axi's ``set_pause_generator`` with
``itertools.cycle(pattern)``, set in cycle 0), which is how a test throttles it (``r =
(0, 1, 1)``: R valid at most one cycle in three).

Where the cycles go. A handshake "in cycle t" has valid and ready high during cycle t
and takes effect at the clock edge ending it ("edge t").

The engines (the RTL's rules):

* a command is accepted in cycle c (``cmd.ready`` is high when no command is splitting,
  or in the cycle the current one loads its last burst), so the next command of a
  back-to-back list is accepted in the cycle its predecessor loads its last burst;
* burst j is loaded into the AR/AW register in cycle L_j and its address is valid from
  L_j + 1: L_0 = 1 (the cycle after the command's acceptance) and
  L_j = max(L_{j-1} + 1, a_{j-1}, F_{j-D}): one load per cycle, the register free (the
  previous address handshake a_{j-1} frees it in its own cycle), and at most D =
  ``max_outstanding`` bursts unfinished, where F is a burst's finish, the cycle of its
  last R beat (reads) or of its B response (writes); a burst finishing in cycle t frees
  its slot for a load in that same cycle;
* the address handshake a_j is the first cycle ≥ L_j + 1 in which the memory is ready;
* reads: the data path is combinational, so a word is delivered in the cycle its R beat is
  valid (the consumer is always ready and the burst's entry exists since a_j);
* writes: burst j's first W beat may be valid from a_j + 1 (its length enters the W queue at
  the address handshake), one beat per cycle, each in the first cycle the memory is ready;
  ``done`` is high in the cycle after the command's last B handshake, B being always ready.

AxiRam (cocotbext-axi 0.1.28 on cocotb 2.1). Its channel models are coroutines woken by the
clock edge; its read and write processes are coroutines woken by queue events, and cocotb
runs those after every coroutine woken by the edge itself. So at each edge the channel
sinks and sources act on the state as of the edge, and the processes react afterwards:

* an address or W sink (ready driven by AxiRam) captures at edge e when valid and ready, then
  drives ready for cycle e + 1 = not (its queue holds ≥ 2 entries, counted after this
  capture and before the process takes any at this edge, or the pause pattern's value for
  cycle e, ``pattern[e % k]``). Ready is low in cycle 0 (reset);
* the read process takes burst j at T_j = max(edge of the capture a_j, the edge it put burst
  j−1's last beat); it puts each beat into the R queue (at most 2 entries) as soon as there
  is room, at the same edge as the pop that makes room: P_b = max(P_{b-1}, T_j for a
  burst's first beat, D_{b-2});
* the R (or B) source pops its next entry at edge D_b, the first edge ≥ max(P_b + 1,
  D_{b-1} + 1) whose next cycle is not paused (``pattern[(D_b + 1) % k] == 0``): an entry put
  at edge p is first seen at edge p + 1, and a beat is valid in cycle D_b + 1 = its
  handshake (always ready). Hence AxiRam's read latency: the first beat after an idle R
  channel is valid 2 cycles after the AR handshake (a_j + 2);
* the write process takes burst j at T_j = max(a_j, the edge it put burst j−1's B), takes its
  W beats in order (each at max(its capture edge, the previous take, T_j)), puts the B once
  it has the last one, as soon as the B queue (2 entries) has room: max(last W take, D_{j-2}
  of the B source); the B source pops as the R source. Hence AxiRam's write response
  latency: the B is valid 2 cycles after the last W handshake, when nothing waits.

Unthrottled, one command of n beats from an idle engine: reads deliver their last word in
cycle n + 3 (accepted 0, loaded 1, AR handshake 2, first word 4, then one per cycle, the
following bursts' addresses issued while the first one streams); writes signal ``done`` in
cycle n + 5 (AW handshake 2, W beats 3 … n + 2, B n + 4). That holds while, for every burst
j ≥ D, the bursts j − D + 1 … j − 1 carry at least 2 beats (reads) or 3 (writes): the slot
burst j − D frees at its finish F is reloaded at F, burst j's address handshake is at F + 1
and its first R beat at F + 3 (its first W beat at F + 2, where F is the B, 2 cycles after
the last W), so fewer beats in between leave gaps (D = 1 always does past one burst).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from winnow.hw.axi_master import check_command, split_bursts
from winnow.model.errors import DataError

#: AxiRam's queue_occupancy_limit of every channel (cocotbext-axi's AxiSlaveRead/Write set 2).
QUEUE = 2


@dataclass(frozen=True)
class RamTiming:
    """AxiRam with a cycled pause pattern per channel (1 = paused that cycle; empty = never paused).

    ``r`` and ``b`` throttle the slave's valid (R, B); ``ar``, ``aw`` and ``w`` its ready.
    """

    ar: tuple[int, ...] = ()
    r: tuple[int, ...] = ()
    aw: tuple[int, ...] = ()
    w: tuple[int, ...] = ()
    b: tuple[int, ...] = ()

    def __post_init__(self):
        for channel in ("ar", "r", "aw", "w", "b"):
            pattern = getattr(self, channel)
            if pattern and all(pattern):
                raise DataError(f"channel {channel} paused in every cycle never answers (pattern {pattern})")

    def paused(self, channel: str, cycle: int) -> bool:
        pattern = getattr(self, channel)
        return bool(pattern) and bool(pattern[cycle % len(pattern)])


@dataclass
class Timing:
    """Modelled cycles: ``done`` per command (last word delivered / ``done`` pulse), per burst the
    address handshake, per beat its handshake (R or W), per write burst its B handshake."""

    done: list[int]
    addr: list[int]
    beats: list[int]
    resp: list[int]


class _Sink:
    """An AxiRam sink's ready: captures at ``captured`` edges, its process takes at ``taken`` edges (sorted)."""

    def __init__(self, ram: RamTiming, channel: str):
        self.ram, self.channel = ram, channel
        self.captured: list[int] = []
        self.taken: list[int] = []

    def ready(self, t: int) -> bool:
        """Ready in cycle t: set at edge t − 1 from the queue after that edge's capture, before its take."""
        e = t - 1
        if e < 0:
            return False
        held = bisect.bisect_right(self.captured, e) - bisect.bisect_left(self.taken, e)
        return not (held >= QUEUE or self.ram.paused(self.channel, e))

    def handshake(self, t: int) -> int:
        """The first cycle ≥ t in which the sink is ready; records the capture."""
        while not self.ready(t):
            t += 1
        self.captured.append(t)
        return t


def _pop_edge(ram: RamTiming, channel: str, earliest: int) -> int:
    """The first edge ≥ ``earliest`` after which the source's channel is not paused."""
    e = earliest
    while ram.paused(channel, e + 1):
        e += 1
    return e


def _bursts(commands, data_bits: int, max_burst: int, addr_bits: int, max_beats: int):
    """(beats, last-of-command) of every burst, commands in order (bad commands refused: the engines drop them)."""
    out = []
    for addr, beats in commands:
        check_command(addr, beats, addr_bits=addr_bits, data_bits=data_bits, max_beats=max_beats)
        parts = split_bursts(addr, beats, data_bits, max_burst)
        out += [(n, i == len(parts) - 1) for i, (_a, n) in enumerate(parts)]
    return out


def _load(j: int, loads: list[int], addr: list[int], finish: list[int], outstanding: int) -> int:
    """L_j: the cycle burst j enters the address register (module docstring)."""
    if j == 0:
        return 1
    t = max(loads[-1] + 1, addr[-1])
    if j >= outstanding:
        t = max(t, finish[j - outstanding])
    return t


def read_timing(commands, *, data_bits: int = 64, max_burst: int = 64, max_outstanding: int = 4,
                ram: RamTiming = RamTiming(), addr_bits: int = 32, max_beats: int = 65535) -> Timing:
    """Cycles of the read ``commands`` [(addr, beats)] on :class:`~winnow.hw.axi_master.AxiReadEngine` (module docstring)."""
    ar = _Sink(ram, "ar")
    loads, addr, finish, done, beats = [], [], [], [], []
    puts: list[int] = []  # P_b, edge the read process put beat b into the R queue
    pops: list[int] = []  # D_b, edge the R source popped it
    put_last = -1  # edge the process put the previous burst's last beat
    for j, (n, last) in enumerate(_bursts(commands, data_bits, max_burst, addr_bits, max_beats)):
        loads.append(_load(j, loads, addr, finish, max_outstanding))
        addr.append(ar.handshake(loads[-1] + 1))
        take = max(addr[-1], put_last)  # T_j
        ar.taken.append(take)
        for i in range(n):
            b = len(puts)
            p = take if i == 0 else puts[-1]
            if b >= QUEUE:
                p = max(p, pops[b - QUEUE])
            puts.append(p)
            pops.append(_pop_edge(ram, "r", max(p + 1, pops[-1] + 1 if pops else 0)))
            beats.append(pops[-1] + 1)
        put_last = puts[-1]
        finish.append(beats[-1])
        if last:
            done.append(beats[-1])
    return Timing(done=done, addr=addr, beats=beats, resp=[])


def write_timing(commands, *, data_bits: int = 64, max_burst: int = 64, max_outstanding: int = 4,
                 ram: RamTiming = RamTiming(), addr_bits: int = 32, max_beats: int = 65535) -> Timing:
    """Cycles of the write ``commands`` [(addr, beats)] on :class:`~winnow.hw.axi_master.AxiWriteEngine` (module docstring)."""
    aw, w = _Sink(ram, "aw"), _Sink(ram, "w")
    loads, addr, finish, done, beats = [], [], [], [], []
    b_puts: list[int] = []  # edge the write process put burst j's B
    b_pops: list[int] = []  # edge the B source popped it
    w_take = -1  # edge the write process took the previous W beat
    for j, (n, last) in enumerate(_bursts(commands, data_bits, max_burst, addr_bits, max_beats)):
        loads.append(_load(j, loads, addr, finish, max_outstanding))
        addr.append(aw.handshake(loads[-1] + 1))
        take = max(addr[-1], b_puts[-1] if b_puts else -1)  # T_j
        aw.taken.append(take)
        w_take = take
        t = addr[-1] + 1
        for _ in range(n):
            t = w.handshake(max(t, beats[-1] + 1 if beats else 0))
            beats.append(t)
            w_take = max(t, w_take)
            w.taken.append(w_take)
        p = w_take
        if j >= QUEUE:
            p = max(p, b_pops[j - QUEUE])
        b_puts.append(p)
        b_pops.append(_pop_edge(ram, "b", max(p + 1, b_pops[-1] + 1 if b_pops else 0)))
        finish.append(b_pops[-1] + 1)
        if last:
            done.append(finish[-1] + 1)
    return Timing(done=done, addr=addr, beats=beats, resp=finish)
