"""V buffer: V' of one tile group for all input channels, banked by Winograd position, double-buffered.

Cluster s has its own copy: bank (s, p) holds V'[c, p, 0..L−1] of position p for the
two halves (address half·c_block + c, one word of L lanes). The input unit writes one
lane of every position of every copy per cycle (byte enables per lane); each PE reads
one bank of its cluster per cycle: bank (s, p) takes its address from the PE that
owns position p in cluster s (the ``owner`` registers), so no two PEs ever share a
bank, and the word comes back one cycle later.

With position-serial memories (``config.serial``, one PE per cluster) cluster s has one
memory at address (half·c_block + c)·2^a + p: the input unit writes one position per
cycle, the cluster's PE reads any (c, p) with the same one-cycle latency.
"""

from __future__ import annotations

import numpy as np
from amaranth import Array, Cat, Module, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In

from winnow.hw.config import AccelConfig, ubits
from winnow.hw.input_unit import v_write_signature
from winnow.hw.ports import MemReadSignature, lanes


def v_read_signature(cfg: AccelConfig) -> MemReadSignature:
    """A PE's read port of the V buffer: position and input channel c → L signed ``v_bits`` lanes."""
    addr = data.StructLayout({"pos": ubits(cfg.positions - 1), "c": ubits(cfg.c_block - 1)})
    return MemReadSignature(addr, lanes(cfg.widths.v_bits, cfg.lanes))


class VBufferRef:
    """NumPy twin: (clusters, positions, 2·c_block, lanes) words."""

    def __init__(self, cfg: AccelConfig):
        self.cfg = cfg
        self.words = np.zeros((cfg.clusters, cfg.positions, 2 * cfg.c_block, cfg.lanes), dtype=np.int64)

    def write(self, addr: int, lane: int, v) -> None:
        self.words[:, :, addr, lane] = np.asarray(v, dtype=np.int64)

    def read(self, cluster: int, pos: int, addr: int) -> np.ndarray:
        return self.words[cluster, pos, addr].copy()


class VBuffer(wiring.Component):
    """Banked, double-buffered V' storage serving P PEs.

    Parameters
    ----------
    config : AccelConfig

    Attributes
    ----------
    w : In(:func:`winnow.hw.input_unit.v_write_signature`)
        Input-unit write: row half·c_block + c, lane, n² signed ``v_bits`` values
        (serial: one value, of position ``addr.pos``).
    owner : In(array of clusters × positions)
        PE index within the cluster that reads each (cluster, position) bank.
    rd_half : In(1)
        Half the PEs read (the PE step's group parity).
    rd : In(:func:`v_read_signature`) × P
        PE j's read: position and input channel this cycle; L lanes of signed ``v_bits``
        back one cycle later.
    """

    def __init__(self, config: AccelConfig):
        self._cfg = config
        n2, P, S = config.positions, config.pes, config.clusters
        super().__init__({
            "w": In(v_write_signature(config)), "owner": In(ubits(config.pes_per_cluster - 1)).array(S, n2),
            "rd_half": In(1), "rd": In(v_read_signature(config)).array(P),
        })  # fmt: skip

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        n2, L, S, PC = cfg.positions, cfg.lanes, cfg.clusters, cfg.pes_per_cluster
        vb = cfg.widths.v_bits
        if cfg.serial:
            pw = ubits(n2 - 1)
            for s in range(S):  # one PE per cluster: PE s
                mem = Memory(shape=unsigned(L * vb), depth=(2 * cfg.c_block) << pw, init=[])
                m.submodules[f"v{s}"] = mem
                wp = mem.write_port(granularity=vb)
                m.d.comb += [wp.addr.eq(Cat(self.w.addr.pos, self.w.addr.row)), wp.data.eq(Cat(*[self.w.data] * L))]
                for lane in range(L):
                    m.d.comb += wp.en[lane].eq(self.w.en & (self.w.addr.lane == lane))
                rp = mem.read_port()
                m.d.comb += [rp.addr.eq(Cat(self.rd[s].addr.pos, self.rd_half * cfg.c_block + self.rd[s].addr.c)),
                             self.rd[s].data.eq(rp.data)]
            return m
        for s in range(S):
            pes = range(s * PC, (s + 1) * PC)
            c_of = Array([self.rd[j].addr.c for j in pes])
            words = []
            for p in range(n2):
                mem = Memory(shape=unsigned(L * vb), depth=2 * cfg.c_block, init=[])
                m.submodules[f"v{s}_{p}"] = mem
                wp = mem.write_port(granularity=vb)
                m.d.comb += [wp.addr.eq(self.w.addr.row), wp.data.eq(Cat(*[self.w.data[p]] * L))]
                for lane in range(L):
                    m.d.comb += wp.en[lane].eq(self.w.en & (self.w.addr.lane == lane))
                rp = mem.read_port()
                c_sel = c_of[self.owner[s][p]] if PC > 1 else self.rd[s * PC].addr.c
                m.d.comb += rp.addr.eq(self.rd_half * cfg.c_block + c_sel)
                words.append(rp.data)
            bank = Array(words)
            for j in pes:
                pos1 = Signal(ubits(n2 - 1), name=f"pos1_{j}")
                m.d.sync += pos1.eq(self.rd[j].addr.pos)
                m.d.comb += self.rd[j].data.eq(bank[pos1])
        return m
