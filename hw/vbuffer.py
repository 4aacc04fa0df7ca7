"""V buffer: V' of one tile group for all input channels, banked by Winograd position, double-buffered.

Cluster s has its own copy: bank (s, p) holds V'[c, p, 0..L−1] of position p for the
two halves (address half·c_max + c, one word of L lanes). The input unit writes one
lane of every position of every copy per cycle (byte enables per lane); each PE reads
one bank of its cluster per cycle: bank (s, p) takes its address from the PE that
owns position p in cluster s (the ``owner`` registers), so no two PEs ever share a
bank, and the word comes back one cycle later.

With position-serial memories (``config.serial``, one PE per cluster) cluster s has one
memory at address (half·c_max + c)·2^a + p: the input unit writes one position per
cycle, the cluster's PE reads any (c, p) with the same one-cycle latency.
"""

from __future__ import annotations

import numpy as np
from amaranth import Array, Cat, Module, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from winnow.hw.config import AccelConfig, ubits


class VBufferRef:
    """NumPy twin: (clusters, positions, 2·c_max, lanes) words."""

    def __init__(self, cfg: AccelConfig):
        self.cfg = cfg
        self.words = np.zeros((cfg.clusters, cfg.positions, 2 * cfg.c_max, cfg.lanes), dtype=np.int64)

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
    w_en, w_addr, w_lane, w_data : In
        Input-unit write: address half·c_max + c, lane, n² signed ``v_bits`` values
        (serial: one value, position ``w_pos``).
    w_pos : In (serial only)
    owner : In(array of clusters × positions)
        PE index within the cluster that reads each (cluster, position) bank.
    rd_half : In(1)
        Half the PEs read (the PE step's group parity).
    rd_pos, rd_c : In(array of P)
        PE j's position and input channel this cycle.
    rd_data : Out(array of P)
        L lanes of signed ``v_bits`` for PE j, one cycle after its address.
    """

    def __init__(self, config: AccelConfig):
        self._cfg = config
        n2, P, S = config.positions, config.pes, config.clusters
        vb = config.widths.v_bits
        ports = {
            "w_en": In(1), "w_addr": In(ubits(2 * config.c_max - 1)), "w_lane": In(ubits(config.lanes - 1)),
            "w_data": In(signed(vb) if config.serial else data.ArrayLayout(signed(vb), n2)),
            "owner": In(ubits(config.pes_per_cluster - 1)).array(S, n2),
            "rd_half": In(1),
            "rd_pos": In(ubits(n2 - 1)).array(P), "rd_c": In(ubits(config.c_max - 1)).array(P),
            "rd_data": Out(config.lanes * vb).array(P),
        }  # fmt: skip
        if config.serial:
            ports["w_pos"] = In(ubits(n2 - 1))
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        n2, L, S, PC = cfg.positions, cfg.lanes, cfg.clusters, cfg.pes_per_cluster
        vb = cfg.widths.v_bits
        if cfg.serial:
            pw = ubits(n2 - 1)
            for s in range(S):  # one PE per cluster: PE s
                mem = Memory(shape=unsigned(L * vb), depth=(2 * cfg.c_max) << pw, init=[])
                m.submodules[f"v{s}"] = mem
                wp = mem.write_port(granularity=vb)
                m.d.comb += [wp.addr.eq(Cat(self.w_pos, self.w_addr)), wp.data.eq(Cat(*[self.w_data] * L))]
                for lane in range(L):
                    m.d.comb += wp.en[lane].eq(self.w_en & (self.w_lane == lane))
                rp = mem.read_port()
                m.d.comb += [rp.addr.eq(Cat(self.rd_pos[s], self.rd_half * cfg.c_max + self.rd_c[s])),
                             self.rd_data[s].eq(rp.data)]
            return m
        for s in range(S):
            pes = range(s * PC, (s + 1) * PC)
            c_of = Array([self.rd_c[j] for j in pes])
            words = []
            for p in range(n2):
                mem = Memory(shape=unsigned(L * vb), depth=2 * cfg.c_max, init=[])
                m.submodules[f"v{s}_{p}"] = mem
                wp = mem.write_port(granularity=vb)
                m.d.comb += [wp.addr.eq(self.w_addr), wp.data.eq(Cat(*[self.w_data[p]] * L))]
                for lane in range(L):
                    m.d.comb += wp.en[lane].eq(self.w_en & (self.w_lane == lane))
                rp = mem.read_port()
                c_sel = c_of[self.owner[s][p]] if PC > 1 else self.rd_c[s * PC]
                m.d.comb += rp.addr.eq(self.rd_half * cfg.c_max + c_sel)
                words.append(rp.data)
            bank = Array(words)
            for j in pes:
                pos1 = Signal.like(self.rd_pos[j], name=f"pos1_{j}")
                m.d.sync += pos1.eq(self.rd_pos[j])
                m.d.comb += self.rd_data[j].eq(bank[pos1])
        return m
