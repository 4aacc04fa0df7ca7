"""Output unit: accumulator rows → output transform, bias, requantization → output memory.

For a launched step (tile group g, output-channel block b) it walks the block's rows
k and, per row, the group's lanes in ``otu_lanes``-wide slices, one slice per cycle:

    s0  read row k of every position from the accumulators (cleared after the last
        slice) and channel k's bias/mult/shift from the quantization memory
    s1  select the slice's lanes → registered
    s2  ``otu_lanes`` :class:`OutputTransform` cores (four stages: A'ᵀ M, · A' + bias,
        × mult, round/shift/saturate/ReLU)
    s6  write the m² outputs of each valid tile t = g·L + l to output bank
        (t mod otu_lanes, ho mod m, wo mod m) at k·out_tiles + ⌊t/otu_lanes⌋

so it is busy K_b·L/otu_lanes + 6 cycles per step (``latency`` = 6). With
``requant`` = R < m² requantizers per core, each slice stays at s0 for Q = m²/R cycles
(``sub`` = 0 … Q−1; the cores requantize outputs sub·R … sub·R + R − 1 of it, one stage
more), so the unit is busy K_b·L/otu_lanes·Q + 7 cycles. Addresses are
running sums (the sequencer's step carries block·k_block and its slot offsets): no
multiplier outside the requantization. Outputs are
read back through ``rd_bank``/``rd_addr`` → ``rd_data`` (one cycle).

With position-serial accumulators (``config.serial``) a slice takes n² cycles at s0,
one position each (the last slice clears each position as it reads it); s1 shifts
the positions into an n² gather register per core; the full tile is loaded into the
cores' input register and held there for the Q requantizer cycles, while the next
tile gathers. Busy: K_b·L/otu_lanes·n² + 2 + Q + the core's latency.
"""

from __future__ import annotations

import numpy as np
from amaranth import Array, Cat, Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from winnow.hw import abi
from winnow.hw.accumulators import acc_read_signature
from winnow.hw.config import AccelConfig, ubits
from winnow.hw.delay import delay
from winnow.hw.output_transform import OutputTransform, output_transform_ref
from winnow.hw.ports import LaunchSignature, MemWriteSignature
from winnow.hw.serial_output_transform import SerialOutputTransform
from winnow.hw.sequencer import step_layout


def quant_write_signature(cfg: AccelConfig) -> MemWriteSignature:
    """The quantization memory's write port: output channel k → one word (:func:`winnow.hw.abi.quant_layout`)."""
    return MemWriteSignature(ubits(cfg.k_max - 1), abi.quant_layout(cfg.datapath))


def output_unit_ref(cfg: AccelConfig, M: np.ndarray, quant: np.ndarray, *, group: int, block: int, tiles: int,
                    relu: bool) -> dict[tuple[int, int], int]:
    """NumPy twin: accumulated rows M (K_b, n², L) of one step → {(bank, address): output} it writes."""
    n, mt, L, U = cfg.n, cfg.m, cfg.lanes, cfg.otu_lanes
    out = {}
    for kk in range(M.shape[0]):
        k = block * cfg.k_block + kk
        bias, mult, shift = (int(v) for v in quant[k])
        for lane in range(L):
            t = group * L + lane
            if t >= tiles:
                continue
            y = output_transform_ref(M[kk, :, lane].reshape(n, n), bias, mult, shift, relu, cfg.datapath)
            for q, v in enumerate(y.reshape(-1)):
                out[(abi.out_bank(cfg, t, q // mt, q % mt), abi.out_addr(cfg, k, t))] = int(v)
    return out


class OutputUnit(wiring.Component):
    """Output transforms, requantization and the output memory of the PE array.

    Parameters
    ----------
    config : AccelConfig

    Attributes
    ----------
    regs : In(register_layout)
        The layer's registers (tiles, k_blocks, k_last, relu).
    ctl : In(LaunchSignature)
        ``go``: finish the step in ``step`` (valid from the cycle after ``go``).
    busy : Out(1)
        Busy :func:`winnow.hw.abi.otu_latency` cycles beyond its items.
    acc : Out(:func:`winnow.hw.accumulators.acc_read_signature`)
        Accumulator row read (and clear); the row of every position comes back one cycle
        after the address (serial: of ``addr.pos``).
    quant : In(:func:`quant_write_signature`)
        Write port of the quantization memory (bias | mult | shift per output channel).
    rd_bank, rd_addr : In
        Output read-back address.
    rd_data : Out
        The output word (two's complement ``act_bits``), one cycle after the address.
    """

    def __init__(self, config: AccelConfig):
        self._cfg = config
        # accumulator read, input register (serial: gather, then the last tile's Q cycles), the core
        self.latency = abi.otu_latency(config)
        super().__init__({
            "regs": In(abi.register_layout(config)), "ctl": In(LaunchSignature(step_layout(config))),
            "busy": Out(1), "acc": Out(acc_read_signature(config)), "quant": In(quant_write_signature(config)),
            "rd_bank": In(ubits(config.out_banks - 1)), "rd_addr": In(ubits(config.out_depth - 1)),
            "rd_data": Out(config.datapath.act_bits),
        })  # fmt: skip

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        dp = cfg.datapath
        w = cfg.widths
        n2, mt, L, U, S = cfg.positions, cfg.m, cfg.lanes, cfg.otu_lanes, cfg.clusters
        slices = L // U
        regs, step, go = self.regs, self.ctl.step, self.ctl.go

        m.submodules.quant = qmem = Memory(shape=abi.quant_layout(dp), depth=cfg.k_max, init=[])
        qwp = qmem.write_port()
        qrp = qmem.read_port()
        m.d.comb += [qwp.en.eq(self.quant.en), qwp.addr.eq(self.quant.addr), qwp.data.eq(self.quant.data)]

        # s0: the row walk
        issue = Signal()
        k_in = Signal(ubits(cfg.k_block))      # row within the block
        s_o = Signal(ubits(S - 1))             # its cluster (k_in mod S) and bank row (⌊k_in/S⌋)
        kl = Signal(ubits(cfg.acc_depth - 1))
        lg = Signal(ubits(slices - 1))         # lane slice
        rows = Signal(ubits(cfg.k_block))
        m.d.comb += rows.eq(Mux(step.block + 1 == regs.k_blocks, regs.k_last, cfg.k_block))
        last_slice = lg == slices - 1
        T = abi.otu_item_cycles(cfg)
        # banked: which R of the tile's m² outputs the cores requantize; serial: the position read
        sub = Signal(ubits(T - 1))
        adv = Signal()                         # the walk moves on (every T cycles)
        m.d.comb += adv.eq(issue & (sub == T - 1))
        with m.If(go):
            m.d.sync += [issue.eq(1), k_in.eq(0), s_o.eq(0), kl.eq(0), lg.eq(0), sub.eq(0)]
        with m.Elif(issue & ~adv):
            m.d.sync += sub.eq(sub + 1)
        with m.Elif(adv):
            m.d.sync += sub.eq(0)
            with m.If(last_slice):
                m.d.sync += lg.eq(0)
                with m.If(k_in + 1 == rows):
                    m.d.sync += issue.eq(0)
                m.d.sync += k_in.eq(k_in + 1)
                if S > 1:
                    with m.If(s_o == S - 1):
                        m.d.sync += [s_o.eq(0), kl.eq(kl + 1)]
                    with m.Else():
                        m.d.sync += s_o.eq(s_o + 1)
                else:
                    m.d.sync += kl.eq(kl + 1)
            with m.Else():
                m.d.sync += lg.eq(lg + 1)
        k_glob = Signal(ubits(cfg.k_max))
        slot_k = Signal(ubits(cfg.out_depth))  # k_glob · out_tiles, a running sum
        with m.If(go):
            m.d.sync += slot_k.eq(0)
        with m.Elif(adv & last_slice):
            m.d.sync += slot_k.eq(slot_k + cfg.out_tiles)
        m.d.comb += [k_glob.eq(step.k_base + k_in), qrp.addr.eq(k_glob),
                     self.acc.addr.cluster.eq(s_o), self.acc.addr.k.eq(kl)]
        if cfg.serial:  # every position is read once per slice: the last slice clears it
            m.d.comb += [self.acc.addr.pos.eq(sub), self.acc.clear.eq(issue & last_slice)]
        else:
            m.d.comb += self.acc.clear.eq(adv & last_slice)
        # output address and tile validity of each core travel beside the pipeline
        slot = Signal(ubits(cfg.out_depth - 1))
        m.d.comb += slot.eq(step.slot_k + slot_k + step.slot_t + lg)
        lgU = Signal(ubits(L))  # lg · otu_lanes, a running sum
        with m.If(go | (adv & last_slice)):
            m.d.sync += lgU.eq(0)
        with m.Elif(adv):
            m.d.sync += lgU.eq(lgU + U)
        t0 = Signal(ubits(cfg.groups_max * L))
        m.d.comb += t0.eq(step.tile0 + lgU)
        ok = [Signal(name=f"tile_ok{u}") for u in range(U)]
        m.d.comb += [ok[u].eq(issue & (t0 + u < regs.tiles)) for u in range(U)]

        def quant_fields(qd):
            return {"bias": qd.bias, "mult": qd.mult, "shift": qd.shift}

        def lane_slice(row, u, lg1):
            """OTU lane u's lane of slice lg1 in an accumulator row."""
            word = row.as_value()
            return Array([word[(i * U + u) * w.acc_bits:(i * U + u + 1) * w.acc_bits]
                          for i in range(slices)])[lg1].as_signed()

        # s1: lane select into the cores
        o1 = Signal()
        lg1 = Signal.like(lg)
        sub1 = Signal.like(sub)
        m.d.sync += [o1.eq(issue), lg1.eq(lg), sub1.eq(sub)]
        cores = []
        if cfg.serial:
            # each core takes one position per cycle (registered at s1) and accumulates the transform
            last1 = Signal(name="last1")
            m.d.sync += last1.eq(adv)
            for u in range(U):
                core = SerialOutputTransform(dp, requant=cfg.requant)
                m.submodules[f"otu{u}"] = core
                cores.append(core)
                m.d.sync += [core.i.valid.eq(o1), core.i.payload.m.eq(lane_slice(self.acc.data, u, lg1)),
                             core.i.payload.pos.eq(sub1)]
                m.d.sync += [core.i.payload[k].eq(v) for k, v in quant_fields(qrp.data).items()]
                m.d.comb += [core.i.payload.relu.eq(regs.relu), core.o.ready.eq(1)]
            # the tile's address and validity, from its last position's s0, held while the core requantizes
            slot_h = Signal.like(slot)
            ok_h = Signal(U)
            slot2, ok2 = delay(m, slot, 2, "slot_s")[-1], delay(m, Cat(*ok), 2, "ok_s")[-1]
            tile_in = Signal()
            m.d.sync += tile_in.eq(o1 & last1)  # the last position is in the cores' input register
            with m.If(tile_in):
                m.d.sync += [slot_h.eq(slot2), ok_h.eq(ok2)]
            pipe_a, pipe_v = slot_h, ok_h
            m.d.comb += self.busy.eq(issue | o1 | tile_in | Cat(*[c.busy for c in cores]).any())
        else:
            o2 = Signal()
            m.d.sync += o2.eq(o1)
            for u in range(U):
                core = OutputTransform(dp, requant=cfg.requant)
                m.submodules[f"otu{u}"] = core
                cores.append(core)
                for p in range(n2):
                    m.d.sync += core.i.payload.m[p].eq(lane_slice(self.acc.data[p], u, lg1))
                m.d.sync += [core.i.payload[k].eq(v) for k, v in quant_fields(qrp.data).items()]
                m.d.sync += core.i.payload.sub.eq(sub1)
                m.d.comb += [core.i.payload.relu.eq(regs.relu), core.i.valid.eq(o2), core.o.ready.eq(1)]
            pipe_a = delay(m, slot, self.latency, "slot")[-1]
            pipe_v = delay(m, Cat(*ok), self.latency, "tile_ok")[-1]
            # the cores' inner stages: valid bits are not ports; track them here
            inner = delay(m, o2, cores[0].latency - 1, "otu_v")
            m.d.comb += self.busy.eq(issue | o1 | o2 | Cat(*inner).any() | cores[0].o.valid)
        out_rd = []
        for u in range(U):
            for q in range(mt * mt):
                mem = Memory(shape=unsigned(dp.act_bits), depth=cfg.out_depth, init=[])
                m.submodules[f"out{u}_{q}"] = mem
                wp = mem.write_port()
                R = cfg.requant
                mine = cores[u].o.payload.sub == q // R if R < mt * mt else 1
                m.d.comb += [wp.en.eq(cores[u].o.valid & pipe_v[u] & mine), wp.addr.eq(pipe_a),
                             wp.data.eq(cores[u].o.payload.y[q % R])]
                rp = mem.read_port()
                m.d.comb += rp.addr.eq(self.rd_addr)
                out_rd.append(rp.data)
        rdb = Signal.like(self.rd_bank)
        m.d.sync += rdb.eq(self.rd_bank)
        m.d.comb += self.rd_data.eq(Array(out_rd)[rdb])
        return m
