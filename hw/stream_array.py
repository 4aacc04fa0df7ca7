# amaranth: UnusedElaboratable=no
"""The streaming array: a tiled-mode PE array run pass after pass out of external memory.

:class:`StreamArray` holds a :class:`winnow.hw.array.WinogradArray` in tiled mode, an
:class:`~winnow.hw.axi_master.AxiReadEngine` and an :class:`~winnow.hw.axi_master.AxiWriteEngine`
on one AXI4 port, and a controller. Given ``desc_addr`` (the first pass descriptor,
:func:`winnow.hw.stream_abi.pass_layout`) and ``passes``, a ``start`` pulse runs every
pass in order, each in phases that follow one another:

1. ``DESC``: read the pass's descriptor (:func:`~winnow.hw.stream_abi.desc_words` words)
   and check it (``bad_desc``: a field outside the array's limits, an address or
   stride not a multiple of the word, ``x_beats`` or ``out_words`` inconsistent);
2. ``LOADS``: read its load words into the array's load port, one per cycle (the
   registers, quantization words and stream segments of the pass);
3. ``X``: read the input window row by row (one read command per row of ``x_beats``
   words, issued while the row FIFO has room for it, so the read data path is always
   ready) and write it into the input memory one pixel per cycle (bank and address of
   :func:`winnow.hw.abi.x_bank` / :func:`~winnow.hw.abi.x_addr`, kept as running counters);
4. ``RUN``: start the array and wait for ``done`` (its cycles add to ``compute_cycles``);
5. ``OUT`` (finishing passes): read the output memory one pixel per cycle in tile-major
   order (channel, tile, the m×m outputs), pack them into words and write them in
   commands of ``out_chunk`` words, each issued once its words are in the output FIFO
   and the previous command is done.

A fault of either engine (SLVERR/DECERR, watchdog, a dropped command) or a bad descriptor
stops the run: ``done`` rises with ``error`` and the ``fault`` bits (:data:`FAULTS`),
``error_addr`` says where. The engines' faults are sticky until reset. ``cycles`` counts
the cycles from ``start`` to ``done``; :mod:`winnow.hw.stream_timing` predicts them exactly.
"""

from __future__ import annotations

from amaranth import Cat, ClockDomain, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from winnow.hw import abi
from winnow.hw.abi import Sel
from winnow.hw.array import WinogradArray
from winnow.hw.axi_master import AxiReadEngine, AxiWriteEngine
from winnow.hw.config import AccelConfig, ubits
from winnow.hw.ports import AxiReadSignature, AxiWriteSignature
from winnow.hw.stream_abi import FAULTS, MAX_LOADS, StreamConfig, check_stream, desc_words, pass_layout

#: The most passes of one run (the ``passes`` port).
PASSES_BITS = 24


class StreamArray(wiring.Component):
    """A tiled-mode array with its controller and AXI4 master (module docstring).

    Attributes
    ----------
    start : In(1)
        Pulse while idle: run ``passes`` passes from ``desc_addr``.
    desc_addr : In(addr_bits)
        Byte address of the first descriptor (a multiple of the word's bytes).
    passes : In(24)
        Number of passes (≥ 1).
    busy, done, error : Out(1)
        Running; the last run ended (until the next start); it ended on a fault.
    fault : Out(5)
        :data:`winnow.hw.stream_abi.FAULTS`, LSB first.
    error_addr : Out(addr_bits)
        The engine's fault address, or the bad descriptor's address.
    cycles, compute_cycles : Out(32)
        Cycles of the last run; the array's own (RUN) cycles summed over its passes.
    pass_index : Out(24)
        The pass in progress (progress for the host).
    axi_rd, axi_wr : Out(AxiReadSignature), Out(AxiWriteSignature)
        The AXI4 master.
    """

    def __init__(self, config: AccelConfig, stream: StreamConfig = StreamConfig()):
        check_stream(config, stream)
        self._cfg, self._s = config, stream
        a = stream.addr_bits
        super().__init__({
            "start": In(1), "desc_addr": In(a), "passes": In(PASSES_BITS),
            "busy": Out(1), "done": Out(1), "error": Out(1), "fault": Out(len(FAULTS)), "error_addr": Out(a),
            "cycles": Out(32), "compute_cycles": Out(32), "pass_index": Out(PASSES_BITS),
            "axi_rd": Out(AxiReadSignature(a, stream.data_bits)), "axi_wr": Out(AxiWriteSignature(a, stream.data_bits)),
        })  # fmt: skip

    def elaborate(self, platform):
        m = Module()
        cfg, s = self._cfg, self._s
        nb, W = s.word_bytes, s.data_bits
        lognb = nb.bit_length() - 1
        n, mm = cfg.n, cfg.m
        kw = dict(max_beats=MAX_LOADS, max_outstanding=s.max_outstanding, timeout=s.timeout)
        m.submodules.array = arr = WinogradArray(cfg)
        m.submodules.rd = rd = AxiReadEngine(s.addr_bits, W, s.max_burst, **kw)
        m.submodules.wr = wr = AxiWriteEngine(s.addr_bits, W, s.max_burst, **kw)
        wiring.connect(m, rd.axi, wiring.flipped(self.axi_rd))
        wiring.connect(m, wr.axi, wiring.flipped(self.axi_wr))

        layout = pass_layout(cfg, s)
        D = desc_words(cfg, s)
        raw = Signal(D * W)
        desc = data.View(layout, raw[:layout.size])
        desc_ptr = Signal(s.addr_bits)
        pass_left = Signal(PASSES_BITS)

        ld = arr.load.payload
        load_bits = abi.load_layout(cfg).size

        # ---------------------------------------------------------------- X: window rows → input memory
        fifo = SyncFIFO(width=W, depth=s.row_fifo)
        m.submodules.row_fifo = fifo
        reserved = Signal(range(s.row_fifo + 1))  # FIFO words plus words requested and not yet arrived
        ic = Signal(ubits(cfg.c_block))  # next row to request: channel, row, its address, the channel's
        ih = Signal(ubits(cfg.h_max))
        row_addr = Signal(s.addr_bits)
        chan_addr = Signal(s.addr_bits)
        x_req = Signal()
        # the unpacker: the current pixel's column, byte, and running bank/address terms
        col = Signal(ubits(cfg.w_max))
        bi = Signal(ubits(nb - 1))
        wq = Signal(ubits(cfg.x_cols))
        wr_ = Signal(ubits(n - 1))
        hr = Signal(ubits(n - 1))
        hoff = Signal(ubits(cfg.x_depth))
        coff = Signal(ubits(cfg.x_depth))
        xc = Signal(ubits(cfg.c_block))
        xh = Signal(ubits(cfg.h_max))
        x_pixel = Signal()
        x_last = Signal()
        pop = Signal()
        m.d.comb += [x_last.eq((col + 1 == desc.x_cols) & (xh + 1 == desc.x_rows) & (xc + 1 == desc.x_c)),
                     fifo.w_data.eq(rd.data.payload.data), fifo.r_en.eq(pop)]
        issue = Signal()
        m.d.sync += reserved.eq(reserved + Mux(issue, desc.x_beats, 0) - pop)

        # ---------------------------------------------------------------- OUT: output memory → words → writes
        ofifo = SyncFIFO(width=W, depth=2 * s.out_chunk)
        m.submodules.out_fifo = ofifo
        ok = Signal(ubits(cfg.k_max))  # the pixel read next: channel, tile (t, ⌊t/otu_lanes⌋, t mod otu_lanes), i, j
        ot = Signal(ubits(cfg.tiles_max))
        otq = Signal(ubits(cfg.out_tiles))
        otr = Signal(ubits(cfg.otu_lanes - 1))
        oi = Signal(ubits(mm - 1))
        oj = Signal(ubits(mm - 1))
        kbase = Signal(ubits(cfg.k_max * cfg.out_tiles))
        reading = Signal()  # pixels remain to read
        rv = Signal()  # rd_data holds a pixel (read last cycle); rlast: the last one
        rlast = Signal()
        word = Signal(W)
        nbyte = Signal(ubits(nb - 1))
        cur = Signal(W)
        push = Signal()
        pushed = Signal(ubits(MAX_LOADS))  # output words in the FIFO so far, and in issued commands
        committed = Signal(ubits(MAX_LOADS))
        wr_wait = Signal()  # a write command issued and not yet done
        o_last = Signal()
        m.d.comb += [o_last.eq((ok + 1 == desc.out_k) & (ot + 1 == desc.out_tiles) & (oi == mm - 1) & (oj == mm - 1)),
                     arr.rd_bank.eq(otr * (mm * mm) + oi * mm + oj), arr.rd_addr.eq(kbase + otq),
                     cur.eq(word), cur.word_select(nbyte, 8).eq(arr.rd_data.as_signed()),
                     push.eq(rv & ((nbyte == nb - 1) | rlast)),
                     ofifo.w_en.eq(push), ofifo.w_data.eq(cur),
                     wr.data.valid.eq(ofifo.r_rdy), wr.data.payload.data.eq(ofifo.r_data),
                     ofifo.r_en.eq(wr.data.ready)]
        left = Signal(ubits(MAX_LOADS))
        m.d.comb += left.eq(desc.out_words - committed)
        chunk = Signal(ubits(MAX_LOADS))
        m.d.comb += chunk.eq(Mux(left > s.out_chunk, s.out_chunk, left))

        # ---------------------------------------------------------------- descriptor checks
        bad = Signal()
        words_expected = Signal(ubits(MAX_LOADS) + 8)
        m.d.comb += words_expected.eq((desc.out_k * desc.out_tiles * (mm * mm) + (nb - 1)) >> lognb)
        aligned = [desc.loads_addr, desc.x_addr, desc.x_row_stride, desc.x_chan_stride, desc.out_addr]
        m.d.comb += bad.eq(
            (desc.loads == 0) | (desc.x_c == 0) | (desc.x_c > cfg.c_block) | (desc.x_rows == 0)
            | (desc.x_rows > cfg.h_max) | (desc.x_cols == 0) | (desc.x_cols > cfg.w_max) | (desc.x_skip >= nb)
            | (desc.x_beats != ((desc.x_skip + desc.x_cols + (nb - 1)) >> lognb))
            | (desc.out_k == 0) | (desc.out_k > cfg.k_max) | (desc.out_tiles == 0) | (desc.out_tiles > cfg.tiles_max)
            | (desc.finish & (desc.out_words != words_expected))
            | Cat(*[f[:lognb] for f in aligned]).any())  # fmt: skip

        # ---------------------------------------------------------------- faults
        rd_fault = rd.error | rd.timeout | rd.bad_cmd
        wr_fault = wr.error | wr.timeout | wr.bad_cmd
        fault_now = Signal(len(FAULTS))
        m.d.comb += fault_now.eq(Cat(rd.error, wr.error, rd.timeout | wr.timeout, rd.bad_cmd | wr.bad_cmd, 0))

        running = Signal()
        m.d.comb += self.busy.eq(running)
        with m.If(running):
            m.d.sync += self.cycles.eq(self.cycles + 1)

        def stop_on_fault():  # the last word on m.next in a state: an engine fault ends the run
            with m.If(rd_fault | wr_fault):
                m.next = "FAIL"

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [running.eq(1), self.done.eq(0), self.error.eq(0), self.fault.eq(0),
                                 self.error_addr.eq(0), self.cycles.eq(0), self.compute_cycles.eq(0),
                                 self.pass_index.eq(0), desc_ptr.eq(self.desc_addr), pass_left.eq(self.passes)]
                    m.next = "DESC"
            with m.State("DESC"):
                with m.If(pass_left == 0):
                    m.d.sync += [self.done.eq(1), running.eq(0)]
                    m.next = "IDLE"
                with m.Else():
                    m.d.comb += [rd.cmd.valid.eq(1), rd.cmd.payload.addr.eq(desc_ptr), rd.cmd.payload.beats.eq(D)]
                    with m.If(rd.cmd.ready):
                        m.next = "DESC_DATA"
                stop_on_fault()
            with m.State("DESC_DATA"):
                m.d.comb += rd.data.ready.eq(1)
                with m.If(rd.data.valid):
                    m.d.sync += raw.eq(Cat(raw[W:], rd.data.payload.data))
                    with m.If(rd.data.payload.last):
                        m.next = "CHECK"
                stop_on_fault()
            with m.State("CHECK"):
                with m.If(bad):
                    m.d.sync += [self.fault.eq(1 << FAULTS.index("bad_desc")), self.error_addr.eq(desc_ptr)]
                    m.next = "FAIL"
                with m.Else():
                    m.next = "LOADS"
                stop_on_fault()
            with m.State("LOADS"):
                m.d.comb += [rd.cmd.valid.eq(1), rd.cmd.payload.addr.eq(desc.loads_addr),
                             rd.cmd.payload.beats.eq(desc.loads)]
                with m.If(rd.cmd.ready):
                    m.next = "LOADS_DATA"
                stop_on_fault()
            with m.State("LOADS_DATA"):
                m.d.comb += [rd.data.ready.eq(1), arr.load.valid.eq(rd.data.valid),
                             arr.load.payload.as_value().eq(rd.data.payload.data[:load_bits])]
                with m.If(rd.data.valid & rd.data.payload.last):
                    m.d.sync += [ic.eq(0), ih.eq(0), row_addr.eq(desc.x_addr), chan_addr.eq(desc.x_addr),
                                 x_req.eq(1), col.eq(0), bi.eq(desc.x_skip), wq.eq(0), wr_.eq(0), hr.eq(0),
                                 hoff.eq(0), coff.eq(0), xc.eq(0), xh.eq(0)]
                    m.next = "X"
                stop_on_fault()
            with m.State("X"):
                # requests: a row when the FIFO has room for all of it
                m.d.comb += [rd.cmd.valid.eq(x_req & (reserved + desc.x_beats <= s.row_fifo)),
                             rd.cmd.payload.addr.eq(row_addr), rd.cmd.payload.beats.eq(desc.x_beats),
                             issue.eq(rd.cmd.valid & rd.cmd.ready),
                             rd.data.ready.eq(fifo.w_rdy), fifo.w_en.eq(rd.data.valid & fifo.w_rdy)]
                with m.If(issue):
                    with m.If(ih + 1 == desc.x_rows):
                        m.d.sync += [ih.eq(0), ic.eq(ic + 1), chan_addr.eq(chan_addr + desc.x_chan_stride),
                                     row_addr.eq(chan_addr + desc.x_chan_stride)]
                        with m.If(ic + 1 == desc.x_c):
                            m.d.sync += x_req.eq(0)
                    with m.Else():
                        m.d.sync += [ih.eq(ih + 1), row_addr.eq(row_addr + desc.x_row_stride)]
                # the unpacker: one pixel per cycle from the FIFO's head word
                m.d.comb += [x_pixel.eq(fifo.r_rdy), arr.load.valid.eq(x_pixel), ld.sel.eq(Sel.X),
                             ld.bank.eq(hr * n + wr_), ld.addr.eq(coff + hoff + wq),
                             ld.data.eq(fifo.r_data.word_select(bi, 8)),
                             pop.eq(x_pixel & ((bi == nb - 1) | (col + 1 == desc.x_cols)))]
                with m.If(x_pixel):
                    with m.If(col + 1 == desc.x_cols):  # the row's last pixel
                        m.d.sync += [col.eq(0), bi.eq(desc.x_skip), wq.eq(0), wr_.eq(0)]
                        with m.If(xh + 1 == desc.x_rows):
                            m.d.sync += [xh.eq(0), hr.eq(0), hoff.eq(0), xc.eq(xc + 1),
                                         coff.eq(coff + cfg.x_rows * cfg.x_cols)]
                        with m.Else():
                            m.d.sync += xh.eq(xh + 1)
                            with m.If(hr == n - 1):
                                m.d.sync += [hr.eq(0), hoff.eq(hoff + cfg.x_cols)]
                            with m.Else():
                                m.d.sync += hr.eq(hr + 1)
                    with m.Else():
                        m.d.sync += [col.eq(col + 1), bi.eq(Mux(bi == nb - 1, 0, bi + 1))]
                        with m.If(wr_ == n - 1):
                            m.d.sync += [wr_.eq(0), wq.eq(wq + 1)]
                        with m.Else():
                            m.d.sync += wr_.eq(wr_ + 1)
                    with m.If(x_last):
                        m.next = "RUN"
                stop_on_fault()
            with m.State("RUN"):
                m.d.comb += arr.start.eq(1)
                m.next = "RUN_WAIT"
                stop_on_fault()
            with m.State("RUN_WAIT"):
                with m.If(arr.done):
                    m.d.sync += [self.compute_cycles.eq(self.compute_cycles + arr.cycles),
                                 ok.eq(0), ot.eq(0), otq.eq(0), otr.eq(0), oi.eq(0), oj.eq(0), kbase.eq(0),
                                 reading.eq(1), rv.eq(0), word.eq(0), nbyte.eq(0), pushed.eq(0), committed.eq(0),
                                 wr_wait.eq(0)]
                    m.next = "NEXT"
                    with m.If(desc.finish):
                        m.next = "OUT"
                stop_on_fault()
            with m.State("OUT"):
                # read a pixel while the FIFO has room for the words being packed
                go = Signal()
                m.d.comb += go.eq(reading & (ofifo.level < 2 * s.out_chunk - 2))
                m.d.sync += [rv.eq(go), rlast.eq(go & o_last)]
                with m.If(go):
                    with m.If(oj == mm - 1):
                        m.d.sync += oj.eq(0)
                        with m.If(oi == mm - 1):
                            m.d.sync += oi.eq(0)
                            with m.If(ot + 1 == desc.out_tiles):
                                m.d.sync += [ot.eq(0), otq.eq(0), otr.eq(0), ok.eq(ok + 1),
                                             kbase.eq(kbase + cfg.out_tiles)]
                                with m.If(ok + 1 == desc.out_k):
                                    m.d.sync += reading.eq(0)
                            with m.Else():
                                m.d.sync += ot.eq(ot + 1)
                                with m.If(otr == cfg.otu_lanes - 1):
                                    m.d.sync += [otr.eq(0), otq.eq(otq + 1)]
                                with m.Else():
                                    m.d.sync += otr.eq(otr + 1)
                        with m.Else():
                            m.d.sync += oi.eq(oi + 1)
                    with m.Else():
                        m.d.sync += oj.eq(oj + 1)
                with m.If(rv):
                    m.d.sync += [word.eq(Mux(push, 0, cur)), nbyte.eq(Mux(push, 0, nbyte + 1))]
                m.d.sync += pushed.eq(pushed + push)
                # a write command once its words are all in the FIFO and the previous one is done
                m.d.comb += [wr.cmd.valid.eq(~wr_wait & (left != 0) & (pushed - committed >= chunk)),
                             wr.cmd.payload.addr.eq(desc.out_addr + (committed << lognb)),
                             wr.cmd.payload.beats.eq(chunk)]
                with m.If(wr.cmd.valid & wr.cmd.ready):
                    m.d.sync += [wr_wait.eq(1), committed.eq(committed + chunk)]
                with m.If(wr.done):
                    m.d.sync += wr_wait.eq(0)
                    with m.If(left == 0):
                        m.next = "NEXT"
                stop_on_fault()
            with m.State("NEXT"):
                m.d.sync += [pass_left.eq(pass_left - 1), desc_ptr.eq(desc_ptr + D * nb)]
                with m.If(pass_left != 1):
                    m.d.sync += self.pass_index.eq(self.pass_index + 1)
                m.next = "DESC"
                stop_on_fault()
            with m.State("FAIL"):  # the engines keep their fault flags until reset
                m.d.sync += [self.done.eq(1), self.error.eq(1), running.eq(0), self.fault.eq(self.fault | fault_now),
                             self.error_addr.eq(Mux(rd_fault, rd.error_addr, Mux(wr_fault, wr.error_addr,
                                                                                  self.error_addr)))]
                m.next = "IDLE"
        return m


class StreamTop(wiring.Component):
    """:class:`StreamArray` with flat ports and the standard AXI names (module ``winnow_stream``).

    Ports: ``aclk``, ``aresetn`` (synchronous, active low); ``start``, ``desc_addr``,
    ``passes``, ``busy``, ``done``, ``error``, ``fault``, ``error_addr``, ``cycles``,
    ``compute_cycles``, ``pass_index``; ``m_axi_*``, the AXI4 master
    (``cocotbext.axi.AxiBus.from_prefix(dut, "m_axi")``).
    """

    def __init__(self, config: AccelConfig, stream: StreamConfig = StreamConfig()):
        self.core = StreamArray(config, stream)
        self._ports = []
        for path, member, value in self.core.signature.flatten(self.core):
            parts = [str(p) for p in path]
            name = f"m_axi_{parts[1]}" if parts[0] in ("axi_rd", "axi_wr") else "_".join(parts)
            self._ports.append((name, member.flow, value))
        super().__init__({"aclk": In(1), "aresetn": In(1), **{name: flow(len(v)) for name, flow, v in self._ports}})

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = cd = ClockDomain("sync")
        m.d.comb += [cd.clk.eq(self.aclk), cd.rst.eq(~self.aresetn)]
        m.submodules.core = self.core
        for name, flow, value in self._ports:
            port = getattr(self, name)
            m.d.comb += value.eq(port) if flow == In else port.eq(value)
        return m
