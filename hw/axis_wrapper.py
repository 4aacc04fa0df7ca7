# amaranth: UnusedElaboratable=no
"""AXI-Stream wrapper of the PE array: the load port and the output read-back as AXI-Stream.

:class:`AxisArray` instantiates the core module ``winnow_array``
(:class:`winnow.hw.array.WinogradArray`, written to ``winnow_array.v`` beside it) and
takes every width and every port of that instance from the core's signature (never
restated here), so the wrapper follows any change of the core's ports. The wrapper's
Verilog holds only the wrapper: compile it together with ``winnow_array.v`` (the core
is converted once, not a second time inside the wrapper). Top-level Verilog ports
(``winnow_array_axis``):

* ``aclk``, ``aresetn``: clock and synchronous active-low reset (the core's ``clk``
  and ``rst`` = ``~aresetn``);
* ``s_axis_load_tvalid/tready/tdata/tlast``: slave, one load word per beat; the
  payload (:func:`winnow.hw.array.load_layout`) sits in the low bits of ``tdata``,
  which is padded with ignored bits to whole bytes; ``tlast`` is accepted and
  ignored; ``tready`` is low while the core runs, so words sent early wait;
* ``start``, ``busy``, ``done``, ``cycles``: the core's control ports, unchanged;
* ``out_start`` (pulse), ``out_busy``: ask for the outputs of the last run;
* ``m_axis_out_tvalid/tready/tdata/tlast``: master, every output of the layer in
  (k, ho, wo) order (:meth:`winnow.hw.packer.PackedLayer.output_reads`), one
  act_bits two's complement word per beat in the low bits of ``tdata``, zero-padded
  to whole bytes; ``tlast`` on the last output; ``tready`` back-pressure is honoured.

The read-back walker learns the layer's K, H, W and padding by watching the
register writes (select ``REG``) pass on the load port, so the host only pulses
``out_start``. docs/hardware.md describes the protocol.
"""

from __future__ import annotations

from amaranth import Cat, ClockDomain, ClockSignal, Instance, Module, Mux, ResetSignal, Shape, Signal
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from winnow.hw.array import WinogradArray
from winnow.hw.abi import Sel, register_map
from winnow.hw.config import AccelConfig, ubits

#: The core's control ports the wrapper passes through unchanged.
CONTROL = ("start", "busy", "done", "cycles")
#: The layer registers the read-back walker needs (winnow.hw.abi.register_map).
WATCHED = ("k", "h", "w", "h0", "w0")


def byte_width(bits: int) -> int:
    """``bits`` rounded up to whole bytes: the width of an AXI-Stream ``tdata`` carrying them."""
    return -(-bits // 8) * 8


def core_widths(signature: wiring.Signature) -> dict[str, int]:
    """Widths of the core's ports the wrapper adapts, read from its signature."""
    mem = signature.members
    width = {name: Shape.cast(mem[name].shape).width for name in ("rd_bank", "rd_addr", "rd_data") + CONTROL}
    return {"load": Shape.cast(mem["load"].signature.members["payload"].shape).width, **width}


def wrapper_signature(cfg: AccelConfig) -> wiring.Signature:
    """The signature of :class:`AxisArray` for ``cfg`` (its ports), without building anything to elaborate."""
    return AxisArray(cfg).signature  # built only to be inspected: the file's first line silences the warning


def core_signature(cfg: AccelConfig) -> wiring.Signature:
    """The signature of the wrapped :class:`winnow.hw.array.WinogradArray` for ``cfg``."""
    return WinogradArray(cfg).signature


class OutputWalker(wiring.Component):
    """Output memory addresses in (k, ho, wo) order, as :meth:`winnow.hw.packer.PackedLayer.output_reads`.

    Incremental: the tile index t = ⌊ho/m⌋·tiles_w + ⌊wo/m⌋ is kept as the pair
    (t div otu_lanes, t mod otu_lanes) and stepped, so no multiplier or divider is
    needed (tiles_w is implied by Wo).

    Attributes
    ----------
    start : In(1)
        Begin a walk over K × Ho × Wo (the ``last_*`` values, latched here).
    last_k, last_ho, last_wo : In
        K − 1, Ho − 1, Wo − 1.
    next : In(1)
        Advance to the next output (while ``valid``).
    valid : Out(1)
        A walk is in progress; ``bank``/``addr``/``last`` describe the current output.
    bank, addr : Out
        The current output's read-back address.
    last : Out(1)
        The current output is the walk's last.
    """

    def __init__(self, cfg: AccelConfig, bank_bits: int, addr_bits: int):
        self._cfg = cfg
        super().__init__({
            "start": In(1), "last_k": In(ubits(cfg.k_max)), "last_ho": In(ubits(cfg.ho_max)),
            "last_wo": In(ubits(cfg.wo_max)), "next": In(1), "valid": Out(1),
            "bank": Out(bank_bits), "addr": Out(addr_bits), "last": Out(1),
        })  # fmt: skip

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        mm, U = cfg.m, cfg.otu_lanes
        lk = Signal.like(self.last_k)
        lho = Signal.like(self.last_ho)
        lwo = Signal.like(self.last_wo)
        k = Signal.like(self.last_k)
        ho = Signal.like(self.last_ho)
        wo = Signal.like(self.last_wo)
        ho_r = Signal(range(mm))
        wo_r = Signal(range(mm))
        kbase = Signal(len(self.addr))  # k · out_tiles
        tq = Signal(ubits(cfg.out_tiles))  # t div U
        tr = Signal(range(U))  # t mod U
        rq = Signal.like(tq)  # t of the current tile row's first tile
        rr = Signal.like(tr)

        tq_inc = Signal.like(tq)  # t + 1
        tr_inc = Signal.like(tr)
        m.d.comb += [tq_inc.eq(Mux(tr == U - 1, tq + 1, tq)), tr_inc.eq(Mux(tr == U - 1, 0, tr + 1))]

        end_w, end_h, end_k = wo == lwo, ho == lho, k == lk
        m.d.comb += [self.bank.eq(tr * (mm * mm) + ho_r * mm + wo_r), self.addr.eq(kbase + tq),
                     self.last.eq(end_w & end_h & end_k)]

        with m.If(self.start):
            m.d.sync += [self.valid.eq(1), lk.eq(self.last_k), lho.eq(self.last_ho), lwo.eq(self.last_wo),
                         k.eq(0), kbase.eq(0), ho.eq(0), ho_r.eq(0), wo.eq(0), wo_r.eq(0),
                         tq.eq(0), tr.eq(0), rq.eq(0), rr.eq(0)]  # fmt: skip
        with m.Elif(self.valid & self.next):
            with m.If(~end_w):
                m.d.sync += wo.eq(wo + 1)
                with m.If(wo_r == mm - 1):  # next tile of the row
                    m.d.sync += [wo_r.eq(0), tq.eq(tq_inc), tr.eq(tr_inc)]
                with m.Else():
                    m.d.sync += wo_r.eq(wo_r + 1)
            with m.Else():
                m.d.sync += [wo.eq(0), wo_r.eq(0)]
                with m.If(~end_h):
                    m.d.sync += ho.eq(ho + 1)
                    with m.If(ho_r == mm - 1):  # next tile row starts after this row's last tile
                        m.d.sync += [ho_r.eq(0), tq.eq(tq_inc), tr.eq(tr_inc), rq.eq(tq_inc), rr.eq(tr_inc)]
                    with m.Else():  # next pixel row of the same tiles
                        m.d.sync += [ho_r.eq(ho_r + 1), tq.eq(rq), tr.eq(rr)]
                with m.Else():
                    m.d.sync += [ho.eq(0), ho_r.eq(0), tq.eq(0), tr.eq(0), rq.eq(0), rr.eq(0)]
                    with m.If(~end_k):
                        m.d.sync += [k.eq(k + 1), kbase.eq(kbase + cfg.out_tiles)]
                    with m.Else():
                        m.d.sync += self.valid.eq(0)
        return m


class AxisArray(wiring.Component):
    """:class:`winnow.hw.array.WinogradArray` with AXI-Stream load and read-back ports (module docstring).

    Parameters
    ----------
    config : AccelConfig
    core_module : str
        The Verilog module name of the core (``winnow_array``, as :mod:`winnow.hw.generate` writes it).

    Attributes
    ----------
    core_signature : wiring.Signature
        The wrapped array's signature: it sizes every port here and names the instance's ports.
    """

    def __init__(self, config: AccelConfig, core_module: str = "winnow_array"):
        self._cfg = config
        self._core_module = core_module
        self.core_signature = core_signature(config)
        mem = self.core_signature.members
        wd = core_widths(self.core_signature)
        super().__init__({
            "aclk": In(1), "aresetn": In(1),
            "s_axis_load_tvalid": In(1), "s_axis_load_tready": Out(1),
            "s_axis_load_tdata": In(byte_width(wd["load"])), "s_axis_load_tlast": In(1),
            **{name: mem[name] for name in CONTROL},
            "out_start": In(1), "out_busy": Out(1),
            "m_axis_out_tvalid": Out(1), "m_axis_out_tready": In(1),
            "m_axis_out_tdata": Out(byte_width(wd["rd_data"])), "m_axis_out_tlast": Out(1),
        })  # fmt: skip

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        # the core's sync domain is clocked and reset from the AXI ports (aresetn: synchronous, active low)
        m.domains.sync = cd = ClockDomain("sync")
        m.d.comb += [cd.clk.eq(self.aclk), cd.rst.eq(~self.aresetn)]
        # the core's ports as an interface object; the instance connects each to its Verilog port
        # (Amaranth names a member at path (a, b) a__b, with ``clk``/``rst`` of its sync domain)
        core = self.core_signature.create(path=("core",))
        ports = {}
        for path, member, value in self.core_signature.flatten(core):
            ports[("i_" if member.flow == In else "o_") + "__".join(map(str, path))] = value
        m.submodules.core = Instance(self._core_module, i_clk=ClockSignal("sync"), i_rst=ResetSignal("sync"),
                                     **ports)
        wd = core_widths(self.core_signature)

        # load: payload in the low bits; refused while the core runs (it must not be written then)
        load_ok = Signal()
        m.d.comb += [self.s_axis_load_tready.eq(core.load.ready & ~core.busy),
                     load_ok.eq(self.s_axis_load_tvalid & self.s_axis_load_tready),
                     core.load.valid.eq(load_ok), core.load.payload.eq(self.s_axis_load_tdata[:wd["load"]])]
        for name in CONTROL:
            if self.core_signature.members[name].flow == In:
                m.d.comb += getattr(core, name).eq(getattr(self, name))
            else:
                m.d.comb += getattr(self, name).eq(getattr(core, name))

        # the layer registers the walker needs, copied as the load port writes them
        payload = core.load.payload
        index = {name: (i, bits) for i, (name, bits, _signed) in enumerate(register_map(cfg))}
        regs = {}
        for name in WATCHED:
            i, bits = index[name]
            regs[name] = Signal(bits, name=f"layer_{name}")
            with m.If(load_ok & (payload.sel == Sel.REG) & (payload.addr == i)):
                m.d.sync += regs[name].eq(payload.data[:bits])
        h0, w0 = regs["h0"].as_signed(), regs["w0"].as_signed()  # −padding
        last_ho = Signal(ubits(cfg.ho_max))
        last_wo = Signal(ubits(cfg.wo_max))
        last_k = Signal(ubits(cfg.k_max))
        # Ho − 1 = H + 2·pad − r = H − 2·h0 − r
        m.d.comb += [last_ho.eq(regs["h"] - 2 * h0 - cfg.r), last_wo.eq(regs["w"] - 2 * w0 - cfg.r),
                     last_k.eq(regs["k"] - 1)]

        # read-back: the walker issues an address when the FIFO will have room for its word, which the
        # core returns one cycle later; two entries keep one word per cycle under a ready master
        m.submodules.walk = walk = OutputWalker(cfg, wd["rd_bank"], wd["rd_addr"])
        m.submodules.fifo = fifo = SyncFIFO(width=wd["rd_data"] + 1, depth=2)
        busy_out = Signal()
        pending = Signal()  # a word arrives from the core this cycle
        pending_last = Signal()
        issue = Signal()
        room = fifo.level + pending - (fifo.r_en & fifo.r_rdy) < fifo.depth  # after this cycle's write and read
        m.d.comb += [walk.start.eq(self.out_start & ~busy_out & ~core.busy), walk.last_k.eq(last_k),
                     walk.last_ho.eq(last_ho), walk.last_wo.eq(last_wo),
                     core.rd_bank.eq(walk.bank), core.rd_addr.eq(walk.addr),
                     issue.eq(walk.valid & room), walk.next.eq(issue),
                     fifo.w_en.eq(pending), fifo.w_data.eq(Cat(core.rd_data, pending_last)),
                     self.m_axis_out_tvalid.eq(fifo.r_rdy), fifo.r_en.eq(self.m_axis_out_tready),
                     self.m_axis_out_tdata.eq(fifo.r_data[:wd["rd_data"]]),
                     self.m_axis_out_tlast.eq(fifo.r_data[wd["rd_data"]]),
                     busy_out.eq(walk.valid | pending | fifo.r_rdy), self.out_busy.eq(busy_out)]  # fmt: skip
        m.d.sync += [pending.eq(issue), pending_last.eq(walk.last)]
        return m
