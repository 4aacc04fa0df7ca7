"""Accumulator memory: the PEs' row sums M[k, p, lanes], banked by cluster and position, double-buffered.

Bank (s, p, half) holds the rows k of cluster s (k ≡ s mod S) of position p for one
output-channel block, row ⌊(k mod k_block)/S⌋ at that address, L lanes of signed
``acc_bits`` per word. The PEs write the half of their step (a row is written once,
when its ``last`` entry passes); the output unit reads a row of every position at
once from the other half and clears it in the same cycle as its last read, so the
memory is all zero again for the next step (rows without non-zeros are never
written and must read as zero). The memories start at zero.

In tiled mode (``config.tiled``) the halves alternate by tile group and hold every
group of the patch: group g's rows are in half g mod 2 at slot ⌊g/2⌋ (address
slot·2^⌈log2 acc_depth⌉ + row), and a PE's row write *adds* to the stored sum: the
bank reads the old word in the cycle of the write request and writes old + sum in the
next one (no two requests of a bank share an address in consecutive cycles: a row is
written once per segment). The partial sums of a patch thus accumulate over the
passes of its C blocks; the output unit's reads in the last pass clear them.

With position-serial memories (``config.serial``, one PE per cluster) bank (s, half)
is one memory holding every position, row k of position p at k·2^a + p; the output
unit reads (and clears) one position per cycle.
"""

from __future__ import annotations

import numpy as np
from amaranth import Array, Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In

from winnow.hw.config import AccelConfig, ubits
from winnow.hw.pe import acc_write_signature
from winnow.hw.ports import MemReadSignature, lanes


def acc_read_signature(cfg: AccelConfig) -> MemReadSignature:
    """The output unit's read (and clear) of the accumulators: row k of cluster s (serial: and one
    position) → the row of every position (serial: of that position), L signed ``acc_bits`` lanes each."""
    addr = {"cluster": ubits(cfg.clusters - 1), "k": ubits(cfg.acc_depth - 1)}
    row = lanes(cfg.widths.acc_bits, cfg.lanes)
    if cfg.serial:
        addr["pos"] = ubits(cfg.positions - 1)
        return MemReadSignature(data.StructLayout(addr), row, clear=True)
    return MemReadSignature(data.StructLayout(addr), data.ArrayLayout(row, cfg.positions), clear=True)


class AccumulatorsRef:
    """NumPy twin: (clusters, positions, 2 halves, acc_depth, lanes) integers."""

    def __init__(self, cfg: AccelConfig):
        self.rows = np.zeros((cfg.clusters, cfg.positions, 2, cfg.acc_depth, cfg.lanes), dtype=np.int64)

    def write(self, cluster: int, pos: int, half: int, k: int, lanes) -> None:
        self.rows[cluster, pos, half, k] = np.asarray(lanes, dtype=np.int64)

    def read(self, cluster: int, half: int, k: int, clear: bool = False) -> np.ndarray:
        """Row k of every position (positions, lanes); ``clear`` zeroes it after the read."""
        out = self.rows[cluster, :, half, k].copy()
        if clear:
            self.rows[cluster, :, half, k] = 0
        return out


class Accumulators(wiring.Component):
    """Double-buffered accumulator banks between the PEs and the output unit.

    Parameters
    ----------
    config : AccelConfig

    Attributes
    ----------
    owner : In(array of clusters × positions)
        PE index within the cluster that writes each (cluster, position) bank.
    pe_half : In(1)
        Half the PEs write.
    wr : In(:func:`winnow.hw.pe.acc_write_signature`) × P
        PE j's row write: position, row address, L lanes of signed ``acc_bits``.
    rd_half : In(1)
        Half the output unit reads (always ≠ ``pe_half`` while both run).
    rd : In(:func:`acc_read_signature`)
        Row (cluster, k; serial: and position) to read; ``clear`` zeroes it in the same
        cycle (the read still returns the old value); the row of each position (serial:
        of ``addr.pos``) one cycle after the address.
    pe_slot, rd_slot : In (tiled mode only)
        Slot ⌊g/2⌋ of the tile group the PEs write and of the one the output unit reads.
    """

    def __init__(self, config: AccelConfig):
        self._cfg = config
        n2, P, S = config.positions, config.pes, config.clusters
        members = {
            "owner": In(ubits(config.pes_per_cluster - 1)).array(S, n2), "pe_half": In(1),
            "wr": In(acc_write_signature(config)).array(P), "rd_half": In(1), "rd": In(acc_read_signature(config)),
        }  # fmt: skip
        if config.tiled:
            members |= {"pe_slot": In(ubits(config.acc_slots - 1)), "rd_slot": In(ubits(config.acc_slots - 1))}
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        n2, S, PC = cfg.positions, cfg.clusters, cfg.pes_per_cluster
        word = cfg.lanes * cfg.widths.acc_bits
        sel1 = Signal(ubits(2 * S - 1))  # (cluster, half) of the read, one cycle later
        rd = self.rd
        m.d.sync += sel1.eq(rd.addr.cluster * 2 + self.rd_half)
        if cfg.serial:
            pw = ubits(n2 - 1)
            words = []
            for s in range(S):  # one PE per cluster: PE s
                for h in range(2):
                    mem = Memory(shape=unsigned(word), depth=cfg.acc_depth << pw, init=[])
                    m.submodules[f"acc{s}_{h}"] = mem
                    wp, rp = mem.write_port(), mem.read_port()
                    pe_side = self.pe_half == h
                    clear = rd.clear & (rd.addr.cluster == s) & (self.rd_half == h)
                    rd_addr = Cat(rd.addr.pos, rd.addr.k)
                    wr = self.wr[s]
                    m.d.comb += [wp.en.eq(Mux(pe_side, wr.en, clear)),
                                 wp.addr.eq(Mux(pe_side, Cat(wr.addr.pos, wr.addr.k), rd_addr)),
                                 wp.data.eq(Mux(pe_side, wr.data.as_value(), 0)), rp.addr.eq(rd_addr)]
                    words.append(rp.data)
            m.d.comb += rd.data.eq(Array(words)[sel1])
            return m
        words = [[None] * (2 * S) for _ in range(n2)]
        for s in range(S):
            pes = list(range(s * PC, (s + 1) * PC))
            for p in range(n2):
                if PC > 1:
                    o = self.owner[s][p]
                    en = Array([self.wr[j].en & (self.wr[j].addr.pos == p) for j in pes])[o]
                    k = Array([self.wr[j].addr.k for j in pes])[o]
                    d = Array([self.wr[j].data.as_value() for j in pes])[o]
                else:
                    wr = self.wr[pes[0]]
                    en, k, d = wr.en & (wr.addr.pos == p), wr.addr.k, wr.data.as_value()
                for h in range(2):
                    mem = Memory(shape=unsigned(word), depth=cfg.acc_bank_depth, init=[])
                    m.submodules[f"acc{s}_{p}_{h}"] = mem
                    wp = mem.write_port()
                    rp = mem.read_port()
                    pe_side = self.pe_half == h
                    clear = rd.clear & (rd.addr.cluster == s) & (self.rd_half == h)
                    if cfg.tiled:
                        self._add_in_place(m, mem, wp, rp, pe_side, clear, en, k, d, f"{s}_{p}_{h}")
                    else:
                        m.d.comb += [wp.en.eq(Mux(pe_side, en, clear)), wp.addr.eq(Mux(pe_side, k, rd.addr.k)),
                                     wp.data.eq(Mux(pe_side, d, 0)), rp.addr.eq(rd.addr.k)]
                    words[p][s * 2 + h] = rp.data
        for p in range(n2):
            m.d.comb += rd.data[p].eq(Array(words[p])[sel1])
        return m

    def _add_in_place(self, m, mem, wp, rp, pe_side, clear, en, k, d, name):
        """Tiled mode: the PE side adds its row to the stored word (read now, write next cycle)."""
        cfg = self._cfg
        w, L = cfg.widths.acc_bits, cfg.lanes
        rows = ubits(cfg.acc_depth - 1)
        pe_addr = Signal(ubits(cfg.acc_bank_depth - 1), name=f"pe_addr{name}")
        rd_addr = Signal.like(pe_addr, name=f"rd_addr{name}")
        m.d.comb += [pe_addr.eq(Cat(k[:rows], self.pe_slot)), rd_addr.eq(Cat(self.rd.addr.k[:rows], self.rd_slot))]
        old = mem.read_port()  # the PE side's read of the stored sum
        m.d.comb += [old.addr.eq(pe_addr), rp.addr.eq(rd_addr)]
        en1 = Signal(name=f"add_en{name}")
        addr1 = Signal.like(pe_addr, name=f"add_addr{name}")
        d1 = Signal(len(d), name=f"add_data{name}")
        m.d.sync += [en1.eq(en & pe_side), addr1.eq(pe_addr), d1.eq(d)]
        total = Signal(L * w, name=f"add_sum{name}")
        m.d.comb += total.eq(Cat(*[(old.data[l * w:(l + 1) * w].as_signed() + d1[l * w:(l + 1) * w].as_signed())[:w]
                                   for l in range(L)]))
        m.d.comb += [wp.en.eq(Mux(pe_side, en1, clear)), wp.addr.eq(Mux(pe_side, addr1, rd_addr)),
                     wp.data.eq(Mux(pe_side, total, 0))]

