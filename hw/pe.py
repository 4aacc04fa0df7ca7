"""Zero-skipping PE: walks its non-zero stream (p, k, c, value, last, eob), L MACs per entry.

Pipeline (one entry per cycle, no bubbles)::

    s0  stream memory address = entry index
    s1  entry out of the stream memory; an entry with ``eob`` (end of block) ends the walk:
        the next index is kept for the next block's segment, and the entry read behind it
        is dropped
    s2  V' read address (c) and position p to the V buffer, registered
    s3  V'[c, p, 0..L−1] back from the V buffer's bank multiplexer → registered
    s4  L products value · V' → registered (the multiplier's output register)
    s5  acc += product in L lanes; on ``last`` the row sum goes to the accumulator memory
        at (p, k) and the accumulator restarts from zero

The registers between the multiplexer, the multiplier and the adder keep each of them
on its own clock cycle (the ECP5 critical path was all three in one, 33 ns). A launch
walks one segment; with ``restart`` (a new tile group) from entry 0, else from where the
previous segment ended. A segment of ``len`` entries keeps ``busy`` high for
``len + 5`` cycles (:data:`winnow.hw.abi.PE_LATENCY`). Zero weights are simply absent from a sparse stream: they
cost nothing.
"""

from __future__ import annotations

import numpy as np
from amaranth import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from winnow.hw import abi
from winnow.hw.config import AccelConfig, ubits
from winnow.hw.delay import delay
from winnow.hw.ports import LaunchSignature, MemWriteSignature, lanes
from winnow.hw.sequencer import step_layout
from winnow.hw.vbuffer import v_read_signature


def acc_write_signature(cfg: AccelConfig) -> MemWriteSignature:
    """A PE's row write into the accumulators: position and row k → L signed ``acc_bits`` lanes."""
    addr = data.StructLayout({"pos": ubits(cfg.positions - 1), "k": ubits(cfg.acc_depth - 1)})
    return MemWriteSignature(addr, lanes(cfg.widths.acc_bits, cfg.lanes))


def stream_write_signature(cfg: AccelConfig) -> MemWriteSignature:
    """The stream memory's write port: entry index → one entry (:func:`winnow.hw.abi.entry_layout`)."""
    return MemWriteSignature(ubits(cfg.stream_depth - 1), abi.entry_layout(cfg))


def pe_ref(stream: np.ndarray, v: np.ndarray, k_max: int) -> np.ndarray:
    """NumPy twin: entries (p, k, c, value, last, eob) over V' (C, positions, L) → written rows M[p, k, L].

    Rows never written stay zero, as in the accumulator memory.
    """
    positions, lanes = v.shape[1], v.shape[2]
    out = np.zeros((positions, k_max, lanes), dtype=np.int64)
    acc = np.zeros(lanes, dtype=np.int64)
    for p, k, c, val, last, _eob in np.asarray(stream, dtype=np.int64):
        acc = acc + val * v[c, p]
        if last:
            out[p, k] = acc
            acc = np.zeros(lanes, dtype=np.int64)
    return out


class SparsePE(wiring.Component):
    """One zero-skipping processing element with its own stream memory.

    Parameters
    ----------
    config : AccelConfig

    Attributes
    ----------
    ctl : In(LaunchSignature)
        ``go``: walk the next segment; ``restart`` (with ``go``): begin at entry 0 (a new
        tile group).
    busy : Out(1)
    load : In(:func:`stream_write_signature`)
        Write port of the stream memory.
    v : Out(:func:`winnow.hw.vbuffer.v_read_signature`)
        V-buffer read: position p and channel c of the entry at s2 (registered); L lanes
        of signed ``v_bits`` back one cycle later.
    acc : Out(:func:`acc_write_signature`)
        Row write to the accumulator memory: L lanes of signed ``acc_bits``.
    """

    def __init__(self, config: AccelConfig):
        self._cfg = config
        self.latency = abi.pe_latency(config)
        super().__init__({
            "ctl": In(LaunchSignature(step_layout(config))), "busy": Out(1),
            "load": In(stream_write_signature(config)), "v": Out(v_read_signature(config)),
            "acc": Out(acc_write_signature(config)),
        })  # fmt: skip

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        w = cfg.widths
        L = cfg.lanes
        m.submodules.mem = mem = Memory(shape=abi.entry_layout(cfg), depth=cfg.stream_depth, init=[])
        wp = mem.write_port()
        rp = mem.read_port()
        m.d.comb += [wp.en.eq(self.load.en), wp.addr.eq(self.load.addr), wp.data.eq(self.load.data)]

        idx = Signal(ubits(cfg.stream_depth))
        issuing = Signal()
        v1 = Signal()
        m.d.comb += rp.addr.eq(idx)

        # s1: the entry (a view of the ABI's layout)
        off = rp.data
        eob = v1 & off.eob
        with m.If(self.ctl.go):
            m.d.sync += issuing.eq(1)
            with m.If(self.ctl.restart):
                m.d.sync += idx.eq(0)
        with m.Elif(issuing):
            with m.If(eob):
                m.d.sync += issuing.eq(0)  # idx already points past the end-of-block entry
            with m.Else():
                m.d.sync += idx.eq(idx + 1)
        m.d.sync += v1.eq(issuing & ~eob)
        # s2: the V-buffer address, registered (the stream memory's output would otherwise run
        # through the buffer's owner multiplexer into its RAM address in the same cycle)
        m.d.sync += [self.v.addr.c.eq(off.c), self.v.addr.pos.eq(off.p)]

        # the entry's fields travel beside the pipeline (registered at s2 … s5)
        fields = {"k": off.k, "p": off.p, "value": off.value, "last": off.last}
        depth = abi.PE_LATENCY - 1
        lines = {k: delay(m, v, depth, k) for k, v in fields.items()}
        e4, e5 = ({k: lines[k][d] for k in fields} for d in (depth - 2, depth - 1))
        v2, v3, v4, v5 = delay(m, v1, depth, "valid")
        # s3: the V buffer's word arrives; register it with the entry
        vreg = Signal(lanes(w.v_bits, L))
        m.d.sync += vreg.eq(self.v.data)
        # s4: the products
        prod = [Signal(signed(w.prod_bits), name=f"prod{l}") for l in range(L)]
        for l in range(L):
            m.d.sync += prod[l].eq(e4["value"] * vreg[l])
        # s5: accumulate; on 'last' the row goes out and the accumulator restarts
        acc = [Signal(signed(w.acc_bits), name=f"acc{l}") for l in range(L)]
        nxt = []
        for l in range(L):
            sm = Signal(signed(w.acc_bits), name=f"sum{l}")
            m.d.comb += sm.eq(acc[l] + prod[l])
            nxt.append(sm)
        with m.If(v5):
            for l in range(L):
                m.d.sync += acc[l].eq(Mux(e5["last"], 0, nxt[l]))
        m.d.comb += [self.acc.en.eq(v5 & e5["last"]), self.acc.addr.pos.eq(e5["p"]), self.acc.addr.k.eq(e5["k"])]
        busy = issuing | v1 | v2 | v3 | v4 | v5
        if cfg.tiled:  # the accumulators write the sum one cycle after the row leaves (read, add, write):
            v6 = Signal()  # one more busy cycle after every segment's last entry, its end-of-block marker too
            m.d.sync += v6.eq(v5)
            busy = busy | v6
        m.d.comb += self.busy.eq(busy)
        for l, sm in enumerate(nxt):
            m.d.comb += self.acc.data[l].eq(sm)
        return m
