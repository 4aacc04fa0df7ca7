"""The sparse Winograd PE array: registers, load decoding and the units, wired together.

Units (each a component with a NumPy twin and its own test):

* :class:`winnow.hw.sequencer.Sequencer`: the phases of :mod:`winnow.hw.schedule` over steps (tile
  group, output-channel block);
* :class:`winnow.hw.input_unit.InputUnit`: input memory, tile walker, input transform;
* :class:`winnow.hw.vbuffer.VBuffer`: V' banked by (cluster, position), double-buffered;
* :class:`winnow.hw.pe.SparsePE` × P: zero-skipping PEs walking their stream segments;
* :class:`winnow.hw.accumulators.Accumulators`: row sums banked by (cluster, position),
  double-buffered;
* :class:`winnow.hw.output_unit.OutputUnit`: output transforms, requantization, output memory.

The load port writes every memory and register while the array is idle:
select ``REG`` (address = index in :func:`winnow.hw.config.register_map`), ``X`` (input bank,
address), ``STREAM`` (PE, entry index), ``QUANT`` (output channel).
"""

from __future__ import annotations

from amaranth import Cat, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from winnow.hw.accumulators import Accumulators
from winnow.hw.config import AccelConfig, check_buildable, load_fields, register_map, ubits
from winnow.hw.input_unit import InputUnit
from winnow.hw.output_unit import OutputUnit
from winnow.hw.packer import SEL_QUANT, SEL_REG, SEL_STREAM, SEL_X
from winnow.hw.pe import SparsePE
from winnow.hw.registers import register_layout
from winnow.hw.sequencer import Sequencer
from winnow.hw.vbuffer import VBuffer



def load_layout(cfg: AccelConfig) -> data.StructLayout:
    """Payload of the load port: memory select, bank, address, data word (:func:`winnow.hw.config.load_fields`)."""
    return data.StructLayout(load_fields(cfg))


class WinogradArray(wiring.Component):
    """Top level: load memories, start, wait for done, read outputs back.

    Parameters
    ----------
    config : AccelConfig

    Attributes
    ----------
    load : In(stream)
        Memory and register writes (``sel`` REG/X/STREAM/QUANT, ``bank``, ``addr``,
        ``data``); always ready. Load only while not busy.
    start : In(1)
        Pulse (while idle) to run the loaded layer.
    busy, done : Out(1)
        ``done`` rises when a run ends and stays high until the next start.
    cycles : Out(32)
        Cycles the last run spent in the RUN state (the cycle model's figure).
    rd_bank, rd_addr : In
        Output memory read-back address (:meth:`winnow.hw.packer.PackedLayer.output_reads`).
    rd_data : Out
        The output word, one cycle after the address.
    """

    def __init__(self, config: AccelConfig):
        check_buildable(config)
        self._cfg = config
        super().__init__({
            "load": In(stream.Signature(load_layout(config))),
            "start": In(1), "busy": Out(1), "done": Out(1), "cycles": Out(32),
            "rd_bank": In(ubits(config.out_banks - 1)), "rd_addr": In(ubits(config.out_depth - 1)),
            "rd_data": Out(config.datapath.act_bits),
        })  # fmt: skip

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        ld = self.load.payload
        m.d.comb += self.load.ready.eq(1)

        layout = register_layout(cfg)
        regs = Signal(layout)
        raw = regs.as_value()
        for i, (name, bits, _sgn) in enumerate(register_map(cfg)):
            off = layout[name].offset
            with m.If(self.load.valid & (ld.sel == SEL_REG) & (ld.addr == i)):
                m.d.sync += raw[off:off + bits].eq(ld.data[:bits])

        m.submodules.seq = seq = Sequencer(cfg)
        m.submodules.itu = itu = InputUnit(cfg)
        m.submodules.vbuf = vbuf = VBuffer(cfg)
        m.submodules.acc = acc = Accumulators(cfg)
        m.submodules.otu = otu = OutputUnit(cfg)
        pes = []
        for j in range(cfg.pes):
            pe = SparsePE(cfg)
            m.submodules[f"pe{j}"] = pe
            pes.append(pe)

        m.d.comb += [seq.start.eq(self.start), seq.groups.eq(regs.groups), seq.blocks.eq(regs.k_blocks),
                     seq.units_busy.eq(itu.busy | otu.busy | Cat(*[pe.busy for pe in pes]).any()),
                     self.busy.eq(seq.busy), self.done.eq(seq.done), self.cycles.eq(seq.cycles)]
        for s in range(cfg.clusters):
            for p in range(cfg.positions):
                m.d.comb += [vbuf.owner[s][p].eq(regs[f"owner{s}_{p}"]), acc.owner[s][p].eq(regs[f"owner{s}_{p}"])]

        m.d.comb += [itu.load_en.eq(self.load.valid & (ld.sel == SEL_X)), itu.load_bank.eq(ld.bank),
                     itu.load_addr.eq(ld.addr), itu.load_data.eq(ld.data), itu.regs.eq(regs),
                     itu.start.eq(self.start & ~seq.busy), itu.go.eq(seq.itu_go), itu.half.eq(seq.itu.group[0]),
                     vbuf.w_en.eq(itu.v_en), vbuf.w_addr.eq(itu.v_addr), vbuf.w_lane.eq(itu.v_lane),
                     vbuf.w_data.eq(itu.v_data), vbuf.rd_half.eq(seq.pe.group[0])]  # fmt: skip

        m.d.comb += [acc.pe_half.eq(seq.pe.acc_half), acc.rd_half.eq(seq.otu.acc_half)]
        for j, pe in enumerate(pes):
            m.d.comb += [pe.start.eq(seq.pe_go), pe.restart.eq(seq.pe_restart),
                         pe.load_en.eq(self.load.valid & (ld.sel == SEL_STREAM) & (ld.bank == j)),
                         pe.load_addr.eq(ld.addr), pe.load_data.eq(ld.data),
                         vbuf.rd_pos[j].eq(pe.v_pos), vbuf.rd_c[j].eq(pe.v_addr), pe.v_data.eq(vbuf.rd_data[j]),
                         acc.wr_en[j].eq(pe.acc_en), acc.wr_pos[j].eq(pe.acc_pos), acc.wr_k[j].eq(pe.acc_k),
                         acc.wr_data[j].eq(pe.acc_data)]  # fmt: skip

        m.d.comb += [otu.regs.eq(regs), otu.go.eq(seq.otu_go), otu.step.eq(seq.otu),
                     acc.rd_cluster.eq(otu.acc_cluster), acc.rd_k.eq(otu.acc_k), acc.rd_clear.eq(otu.acc_clear),
                     otu.quant_en.eq(self.load.valid & (ld.sel == SEL_QUANT)), otu.quant_addr.eq(ld.addr),
                     otu.quant_data.eq(ld.data), otu.rd_bank.eq(self.rd_bank), otu.rd_addr.eq(self.rd_addr),
                     self.rd_data.eq(otu.rd_data)]  # fmt: skip
        if cfg.serial:
            m.d.comb += [vbuf.w_pos.eq(itu.v_pos), acc.rd_pos.eq(otu.acc_pos), otu.acc_data.eq(acc.rd_data)]
        else:
            for p in range(cfg.positions):
                m.d.comb += otu.acc_data[p].eq(acc.rd_data[p])
        return m
