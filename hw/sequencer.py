"""Sequencer: runs the phases of :mod:`winnow.hw.schedule` (its software twin) over the array's units.

It generates the steps (tile group g, output-channel block b) in order and keeps the
step of each pipeline stage: the input unit's, the PEs' (the previous step) and the
output unit's (the one before). When every unit is idle it *launches* the next phase
in one cycle: the three records shift, a unit with a valid step gets a ``*_go`` pulse
(the input unit only when its step starts a group), and the step numbers each unit
needs during the phase are held in registers from the next cycle on. When no stage
has a step left the run ends: ``done`` rises and stays high until the next start.

``cycles`` counts the cycles spent running; :mod:`winnow.hw.cycle_model` predicts it exactly.
"""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from winnow.hw.config import AccelConfig, ubits
from winnow.hw.ports import LaunchSignature


def step_layout(cfg: AccelConfig) -> data.StructLayout:
    """A pipeline stage's step: group, block, accumulator half (step parity), valid, and the
    products the output unit addresses with, kept as running sums so that no unit multiplies:
    ``k_base`` = block·k_block, ``slot_k`` = block·k_block·out_tiles, ``tile0`` = group·L,
    ``slot_t`` = group·L/otu_lanes."""
    return data.StructLayout({
        "group": ubits(cfg.groups_max), "block": ubits(cfg.k_blocks_max), "acc_half": 1, "valid": 1,
        "k_base": ubits(cfg.k_blocks_max * cfg.k_block), "slot_k": ubits(cfg.k_blocks_max * cfg.k_block * cfg.out_tiles),
        "tile0": ubits(cfg.groups_max * cfg.lanes), "slot_t": ubits(cfg.groups_max * cfg.lanes // cfg.otu_lanes),
    })  # fmt: skip


class Sequencer(wiring.Component):
    """Phase sequencer of the PE array.

    Parameters
    ----------
    config : AccelConfig

    Attributes
    ----------
    start : In(1)
        Pulse while idle: run the layer (``groups`` and ``blocks`` held during the run).
    groups, blocks : In
        Tile groups G and output-channel blocks B of the loaded layer.
    units_busy : In(1)
        Any unit busy; a phase ends in the first cycle it is low.
    finish : In(1)
        Launch the output unit (tiled mode: the pass's ``finish`` register; else tied high).
        Without it the output unit's phases still pass, idle.
    busy, done : Out(1)
        Running; the last run has ended (high until the next start).
    cycles : Out(32)
        Cycles of the last (or current) run.
    itu, pe, otu : Out(winnow.hw.ports.LaunchSignature)
        Each stage's control: ``go``, the launch pulse of the input unit, the PEs and the
        output unit; ``restart``, with ``go``: the stage's step starts a group (block 0; the
        PEs' streams restart at entry 0); ``step``, the stage's step in the running phase
        (valid from the cycle after the launch).
    """

    def __init__(self, config: AccelConfig):
        self._cfg = config
        launch = LaunchSignature(step_layout(config))
        super().__init__({
            "start": In(1), "groups": In(ubits(config.groups_max)), "blocks": In(ubits(config.k_blocks_max)),
            "units_busy": In(1), "finish": In(1), "busy": Out(1), "done": Out(1), "cycles": Out(32),
            "itu": Out(launch), "pe": Out(launch), "otu": Out(launch),
        })  # fmt: skip

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        run = Signal()
        gen = Signal(step_layout(cfg))  # the next step to generate (its valid field unused)
        g, b = gen.group, gen.block
        gen_valid = Signal()
        m.d.comb += gen_valid.eq(g < self.groups)
        m.d.comb += self.busy.eq(run)
        itu, pe, otu = self.itu.step, self.pe.step, self.otu.step
        with m.If(run):
            m.d.sync += self.cycles.eq(self.cycles + 1)
            with m.If(~self.units_busy):
                with m.If(~(gen_valid | itu.valid | pe.valid)):
                    m.d.sync += [run.eq(0), self.done.eq(1), itu.valid.eq(0), pe.valid.eq(0),
                                 otu.valid.eq(0)]  # fmt: skip
                with m.Else():
                    m.d.comb += [self.itu.go.eq(gen_valid & (b == 0)), self.itu.restart.eq(b == 0),
                                 self.pe.go.eq(itu.valid), self.pe.restart.eq(itu.block == 0),
                                 self.otu.go.eq(pe.valid & self.finish), self.otu.restart.eq(pe.block == 0)]
                    m.d.sync += [itu.eq(gen), itu.valid.eq(gen_valid), pe.eq(itu), otu.eq(pe),
                                 gen.acc_half.eq(~gen.acc_half)]
                    with m.If(gen_valid):
                        with m.If(b + 1 == self.blocks):
                            m.d.sync += [b.eq(0), gen.k_base.eq(0), gen.slot_k.eq(0), g.eq(g + 1),
                                         gen.tile0.eq(gen.tile0 + cfg.lanes),
                                         gen.slot_t.eq(gen.slot_t + cfg.lanes // cfg.otu_lanes)]
                        with m.Else():
                            m.d.sync += [b.eq(b + 1), gen.k_base.eq(gen.k_base + cfg.k_block),
                                         gen.slot_k.eq(gen.slot_k + cfg.k_block * cfg.out_tiles)]
        with m.Elif(self.start):
            m.d.sync += [run.eq(1), self.done.eq(0), self.cycles.eq(0), gen.eq(0),
                         itu.valid.eq(0), pe.valid.eq(0), otu.valid.eq(0)]  # fmt: skip
        return m
