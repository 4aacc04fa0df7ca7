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

The load port writes every memory and register while the array is idle; the word format,
the selects and the register map are the ABI's (:mod:`winnow.hw.abi`, table in
docs/hardware.md). :class:`LoadDecoder` turns it into one typed write port per memory;
every unit-to-unit link is a typed port (:mod:`winnow.hw.ports`) joined with
``wiring.connect``, which checks both sides' widths at elaboration.
"""

from __future__ import annotations

from amaranth import Cat, Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from winnow.hw import abi
from winnow.hw.abi import Sel
from winnow.hw.accumulators import Accumulators
from winnow.hw.config import AccelConfig, check_buildable, ubits
from winnow.hw.input_unit import InputUnit, x_write_signature
from winnow.hw.output_unit import OutputUnit, quant_write_signature
from winnow.hw.pe import SparsePE, stream_write_signature
from winnow.hw.sequencer import Sequencer
from winnow.hw.vbuffer import VBuffer


class LoadDecoder(wiring.Component):
    """The load port (:func:`winnow.hw.abi.load_layout`) → the registers and one write port per memory.

    Parameters
    ----------
    config : AccelConfig

    Attributes
    ----------
    load : In(stream)
        Load-port words; always ready.
    regs : Out(register_layout)
        The registers (select ``REG``, address = index in :func:`winnow.hw.abi.register_map`).
    x : Out(:func:`winnow.hw.input_unit.x_write_signature`)
        Input memory writes (select ``X``).
    stream : Out(:func:`winnow.hw.pe.stream_write_signature`) × P
        PE j's stream memory writes (select ``STREAM``, bank j).
    quant : Out(:func:`winnow.hw.output_unit.quant_write_signature`)
        Quantization memory writes (select ``QUANT``).
    """

    def __init__(self, config: AccelConfig):
        self._cfg = config
        super().__init__({
            "load": In(stream.Signature(abi.load_layout(config))), "regs": Out(abi.register_layout(config)),
            "x": Out(x_write_signature(config)), "stream": Out(stream_write_signature(config)).array(config.pes),
            "quant": Out(quant_write_signature(config)),
        })  # fmt: skip

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        ld = self.load.payload
        m.d.comb += self.load.ready.eq(1)
        layout = abi.register_layout(cfg)
        raw = self.regs.as_value()
        for i, (name, bits, _sgn) in enumerate(abi.register_map(cfg)):
            off = layout[name].offset
            with m.If(self.load.valid & (ld.sel == Sel.REG) & (ld.addr == i)):
                m.d.sync += raw[off:off + bits].eq(ld.data[:bits])
        # the data word is the widest any select writes: each port takes its low bits
        m.d.comb += [self.x.en.eq(self.load.valid & (ld.sel == Sel.X)), self.x.addr.word.eq(ld.addr),
                     self.x.addr.bank.eq(ld.bank), self.x.data.eq(ld.data)]
        for j, port in enumerate(self.stream):
            m.d.comb += [port.en.eq(self.load.valid & (ld.sel == Sel.STREAM) & (ld.bank == j)),
                         port.addr.eq(ld.addr), port.data.eq(ld.data)]
        m.d.comb += [self.quant.en.eq(self.load.valid & (ld.sel == Sel.QUANT)), self.quant.addr.eq(ld.addr),
                     self.quant.data.eq(ld.data)]
        return m


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
            "load": In(stream.Signature(abi.load_layout(config))),
            "start": In(1), "busy": Out(1), "done": Out(1), "cycles": Out(32),
            "rd_bank": In(ubits(config.out_banks - 1)), "rd_addr": In(ubits(config.out_depth - 1)),
            "rd_data": Out(config.datapath.act_bits),
        })  # fmt: skip

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        m.submodules.load = dec = LoadDecoder(cfg)
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
        regs = dec.regs

        # the load port into every memory
        wiring.connect(m, wiring.flipped(self.load), dec.load)
        wiring.connect(m, dec.x, itu.load)
        wiring.connect(m, dec.quant, otu.quant)
        for j, pe in enumerate(pes):
            wiring.connect(m, dec.stream[j], pe.load)

        # the sequencer launches the units
        m.d.comb += [seq.start.eq(self.start), seq.groups.eq(regs.groups), seq.blocks.eq(regs.k_blocks),
                     seq.units_busy.eq(itu.busy | otu.busy | Cat(*[pe.busy for pe in pes]).any()),
                     self.busy.eq(seq.busy), self.done.eq(seq.done), self.cycles.eq(seq.cycles)]
        wiring.connect(m, seq.itu, itu.ctl)
        wiring.connect(m, seq.pe, *[pe.ctl for pe in pes])
        wiring.connect(m, seq.otu, otu.ctl)
        m.d.comb += [itu.regs.eq(regs), itu.start.eq(self.start & ~seq.busy), otu.regs.eq(regs),
                     vbuf.rd_half.eq(seq.pe.step.group[0]), acc.pe_half.eq(seq.pe.step.acc_half),
                     acc.rd_half.eq(seq.otu.step.acc_half),
                     seq.finish.eq(regs.finish if cfg.tiled else 1)]  # fmt: skip
        if cfg.tiled:  # tile group g's rows: half g mod 2, slot ⌊g/2⌋
            m.d.comb += [acc.pe_slot.eq(seq.pe.step.group >> 1), acc.rd_slot.eq(seq.otu.step.group >> 1)]
        for s in range(cfg.clusters):
            for p in range(cfg.positions):
                m.d.comb += [vbuf.owner[s][p].eq(regs[f"owner{s}_{p}"]), acc.owner[s][p].eq(regs[f"owner{s}_{p}"])]

        # the data path: input unit → V buffer → PEs → accumulators → output unit
        wiring.connect(m, itu.v, vbuf.w)
        for j, pe in enumerate(pes):
            wiring.connect(m, pe.v, vbuf.rd[j])
            wiring.connect(m, pe.acc, acc.wr[j])
        wiring.connect(m, otu.acc, acc.rd)
        m.d.comb += [otu.rd_bank.eq(self.rd_bank), otu.rd_addr.eq(self.rd_addr), self.rd_data.eq(otu.rd_data)]
        return m
