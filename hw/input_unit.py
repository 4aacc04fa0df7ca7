"""Input unit: the input memory, the tile walker and the input transform (ITU).

The input activations live in n² banks, bank (h mod n, w mod n) holding pixel (c, h, w)
at address (c·x_rows + ⌊h/n⌋)·x_cols + ⌊w/n⌋: any n×n window touches each bank once,
so one whole tile is read per cycle. For a launched tile group the unit walks the
channels c and, per channel, the group's L lanes (tile t = g·L + l in raster order),
one (c, lane) tile per cycle:

    s0  bank addresses of the tile (padding and the image edge read as zero), from
        running sums (no multiplier)
    s1  rotate the n² bank words into tile order → registered
    s2  :class:`InputTransform` (V' = B'ᵀ x B', optional Winograd-ReLU; two stages)
    s4  V'[c, ·, lane] written to the V buffer half of the group

so it is busy C·L + 4 cycles per group (:data:`winnow.hw.abi.ITU_LATENCY`).

With position-serial memories (``config.serial``) the n² banks are one memory
(address bank·2^a + address in the bank: the load layout is the same) and a tile takes
n² cycles, one pixel each:

    s0  the address of tile element (i, j), running sums as above
    s1  the pixel (zero outside the image) shifts into an n² gather register
    s2  the full tile goes into the :class:`InputTransform` (two stages)
    s4  V' is captured; the next n² cycles write one position p per cycle

so it is busy C·L·n² + 4 + n² cycles per group (:func:`winnow.hw.abi.itu_latency`).
"""

from __future__ import annotations

import numpy as np
from amaranth import Array, Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from winnow.model.integer.datapath import DatapathConfig

from winnow.hw import abi
from winnow.hw.config import AccelConfig, ubits
from winnow.hw.delay import delay
from winnow.hw.input_transform import InputTransform, input_transform_ref
from winnow.hw.ports import LaunchSignature, MemWriteSignature, lanes
from winnow.hw.sequencer import step_layout


def x_write_signature(cfg: AccelConfig) -> MemWriteSignature:
    """The input memory's write port: address (``word`` in bank ``bank``, LSB first), one ``act_bits`` pixel."""
    return MemWriteSignature(data.StructLayout({"word": ubits(cfg.x_depth - 1), "bank": ubits(cfg.positions - 1)}),
                             cfg.datapath.act_bits)


def v_write_signature(cfg: AccelConfig) -> MemWriteSignature:
    """The V buffer's write port: row half·c_block + c, lane (and position, serial); n² values (serial: one)."""
    addr = {"row": ubits(2 * cfg.c_block - 1), "lane": ubits(cfg.lanes - 1)}
    if cfg.serial:
        addr["pos"] = ubits(cfg.positions - 1)
    vb = cfg.widths.v_bits
    return MemWriteSignature(data.StructLayout(addr), signed(vb) if cfg.serial else lanes(vb, cfg.positions))


def input_unit_ref(xq: np.ndarray, config: DatapathConfig, padding, group: int, lanes: int,
                   winograd_relu: bool = False) -> np.ndarray:
    """NumPy twin: V' (C, n², lanes) of tile group ``group`` of the input (C, H, W); lanes past the last tile are 0."""
    C, H, W = xq.shape
    m, n, r = config.m, config.n, config.r
    ph, pw = padding
    th = -(-(H + 2 * ph - r + 1) // m)
    tw = -(-(W + 2 * pw - r + 1) // m)
    big = np.zeros((C, th * m + r - 1, tw * m + r - 1), dtype=np.int64)
    big[:, ph:ph + H, pw:pw + W] = xq  # the tiles cover the padded image: th·m + r − 1 >= H + 2·ph
    out = np.zeros((C, n * n, lanes), dtype=np.int64)
    for lane in range(lanes):
        t = group * lanes + lane
        if t >= th * tw:
            continue
        y, x = (t // tw) * m, (t % tw) * m
        for c in range(C):
            out[c, :, lane] = input_transform_ref(big[c, y:y + n, x:x + n], config, winograd_relu).reshape(-1)
    return out


class InputUnit(wiring.Component):
    """Input memory, tile walker and input transform of the PE array.

    Parameters
    ----------
    config : AccelConfig

    Attributes
    ----------
    load : In(:func:`x_write_signature`)
        Write port of the input memory (bank :func:`winnow.hw.abi.x_bank`, address
        :func:`winnow.hw.abi.x_addr`, two's complement words).
    regs : In(register_layout)
        The layer's registers (c, h, w, tiles_w, tile origins, winograd_relu).
    start : In(1)
        Run start: the walker goes back to the first tile.
    ctl : In(LaunchSignature)
        ``go``: transform the next tile group; ``step.group``: its parity is the V-buffer
        half (held from the cycle after ``go``).
    busy : Out(1)
        Busy :func:`winnow.hw.abi.itu_latency` cycles beyond the tiles' own.
    v : Out(:func:`v_write_signature`)
        V-buffer write: row half·c_block + c, lane, n² signed ``v_bits`` values (serial: one
        value, of position ``addr.pos``).
    """

    def __init__(self, config: AccelConfig):
        self._cfg = config
        if 2 + InputTransform.latency != abi.ITU_LATENCY:  # the stages below: read, rotate, the transform
            raise AssertionError(f"the input unit's pipeline is {2 + InputTransform.latency} deep; the ABI says "
                                 f"{abi.ITU_LATENCY}")
        super().__init__({
            "load": In(x_write_signature(config)), "regs": In(abi.register_layout(config)), "start": In(1),
            "ctl": In(LaunchSignature(step_layout(config))), "busy": Out(1), "v": Out(v_write_signature(config)),
        })  # fmt: skip

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        dp = cfg.datapath
        n, mt, L = cfg.n, cfg.m, cfg.lanes
        regs = self.regs
        half = self.ctl.step.group[0]

        if cfg.serial:
            aw = ubits(cfg.x_depth - 1)
            mem = Memory(shape=unsigned(dp.act_bits), depth=(n * n) << aw, init=[])
            m.submodules.x = mem
            wp = mem.write_port()
            m.d.comb += [wp.en.eq(self.load.en), wp.addr.eq(self.load.addr), wp.data.eq(self.load.data)]
            x_rd = [mem.read_port()]
        else:
            x_rd = []
            for b in range(n * n):
                mem = Memory(shape=unsigned(dp.act_bits), depth=cfg.x_depth, init=[])
                m.submodules[f"x{b}"] = mem
                wp = mem.write_port()
                m.d.comb += [wp.en.eq(self.load.en & (self.load.addr.bank == b)), wp.addr.eq(self.load.addr.word),
                             wp.data.eq(self.load.data)]
                x_rd.append(mem.read_port())

        m.submodules.itu = itu = InputTransform(dp)
        coord = regs.h0.shape().width
        c_i = Signal(ubits(cfg.c_block))
        l_i = Signal(ubits(L))
        issue = Signal()
        base = Signal(ubits(cfg.x_depth))  # c_i · x_rows · x_cols, as a running sum
        # running tile state and the state at the start of the group; hqc = ⌊h0/n⌋ · x_cols
        kinds = {"h0": signed(coord), "hqc": regs.h0_qc.shape(), "hr": unsigned(ubits(n)), "w0": signed(coord),
                 "wq": signed(coord), "wr": unsigned(ubits(n)), "tx": unsigned(regs.tiles_w.shape().width)}
        st = {nm: Signal(shape, name=f"t_{nm}") for nm, shape in kinds.items()}
        gs = {nm: Signal(shape, name=f"gs_{nm}") for nm, shape in kinds.items()}

        def advance(state, dst):
            """Next tile in raster order: ``dst`` ← state + one tile (statements)."""
            wrap = state["tx"] + 1 == regs.tiles_w
            wr2 = state["wr"] + mt
            hr2 = state["hr"] + mt
            return [
                dst["tx"].eq(Mux(wrap, 0, state["tx"] + 1)),
                dst["w0"].eq(Mux(wrap, regs.w0, state["w0"] + mt)),
                dst["wq"].eq(Mux(wrap, regs.w0_q, Mux(wr2 >= n, state["wq"] + 1, state["wq"]))),
                dst["wr"].eq(Mux(wrap, regs.w0_r, Mux(wr2 >= n, wr2 - n, wr2))),
                dst["h0"].eq(Mux(wrap, state["h0"] + mt, state["h0"])),
                dst["hqc"].eq(Mux(wrap & (hr2 >= n), state["hqc"] + cfg.x_cols, state["hqc"])),
                dst["hr"].eq(Mux(wrap, Mux(hr2 >= n, hr2 - n, hr2), state["hr"])),
            ]

        def reset_state(dst):
            return [dst["tx"].eq(0), dst["w0"].eq(regs.w0), dst["wq"].eq(regs.w0_q), dst["wr"].eq(regs.w0_r),
                    dst["h0"].eq(regs.h0), dst["hqc"].eq(regs.h0_qc), dst["hr"].eq(regs.h0_r)]

        # serial: the element (i, j) of the tile; the walk moves on to the next tile after its last one
        ei, ej = Signal(ubits(n - 1), name="el_i"), Signal(ubits(n - 1), name="el_j")
        tile_end = Signal()
        m.d.comb += tile_end.eq(issue & ((ei == n - 1) & (ej == n - 1) if cfg.serial else 1))
        with m.If(self.start):
            m.d.sync += reset_state(st) + reset_state(gs)
        nxt = {nm: Signal(kinds[nm], name=f"nx_{nm}") for nm in st}
        m.d.comb += advance(st, nxt)
        with m.If(self.ctl.go):
            m.d.sync += [issue.eq(regs.c != 0), c_i.eq(0), l_i.eq(0), base.eq(0), ei.eq(0), ej.eq(0)]
        with m.Elif(tile_end):
            with m.If(l_i + 1 == L):
                m.d.sync += l_i.eq(0)
                with m.If(c_i + 1 == regs.c):
                    m.d.sync += [issue.eq(0)] + [gs[k].eq(v) for k, v in nxt.items()] + [st[k].eq(v) for k, v in nxt.items()]
                with m.Else():
                    m.d.sync += [c_i.eq(c_i + 1), base.eq(base + cfg.x_rows * cfg.x_cols)]
                    m.d.sync += [st[k].eq(v) for k, v in gs.items()]
            with m.Else():
                m.d.sync += l_i.eq(l_i + 1)
                m.d.sync += [st[k].eq(v) for k, v in nxt.items()]
        if cfg.serial:
            with m.If(issue & ~self.ctl.go):
                m.d.sync += ej.eq(Mux(ej == n - 1, 0, ej + 1))
                with m.If(ej == n - 1):
                    m.d.sync += ei.eq(Mux(ei == n - 1, 0, ei + 1))
        s1 = Signal()
        c1 = Signal.like(c_i)
        l1 = Signal.like(l_i)
        m.d.sync += [s1.eq(issue & ~self.ctl.go), c1.eq(c_i), l1.eq(l_i)]
        if cfg.serial:
            s2, c2, l2 = self._serial_tile(m, x_rd[0], st, base, ei, ej, s1, tile_end, c1, l1, itu)
        else:
            s2, c2, l2 = self._banked_tile(m, x_rd, st, base, issue, s1, c1, l1, itu)
        m.d.comb += [itu.i.valid.eq(s2), itu.i.payload.relu.eq(regs.winograd_relu), itu.o.ready.eq(1)]
        # (c, lane) travel beside the transform
        c_out = delay(m, c2, InputTransform.latency, "c")[-1]
        l_out = delay(m, l2, InputTransform.latency, "lane")[-1]
        # the transform's inner stage valids are not ports: track them here
        inner = delay(m, s2, InputTransform.latency - 1, "itu_v")
        busy = issue | s1 | s2 | Cat(*inner).any() | itu.o.valid
        if cfg.serial:
            # V' captured, then written one position per cycle (a shift register: position 0 in front)
            ser = [Signal(signed(cfg.widths.v_bits), name=f"ser{p}") for p in range(n * n)]
            w_act, w_pos = Signal(), Signal(ubits(n * n - 1))
            w_c, w_l = Signal.like(c_i), Signal.like(l_i)
            with m.If(w_act):
                m.d.sync += [ser[p].eq(ser[p + 1]) for p in range(n * n - 1)]
                m.d.sync += [w_pos.eq(w_pos + 1), w_act.eq(w_pos != n * n - 1)]
            with m.If(itu.o.valid):
                m.d.sync += [ser[p].eq(itu.o.payload.v[p]) for p in range(n * n)]
                m.d.sync += [w_act.eq(1), w_pos.eq(0), w_c.eq(c_out), w_l.eq(l_out)]
            m.d.comb += [self.v.en.eq(w_act), self.v.addr.row.eq(half * cfg.c_block + w_c), self.v.addr.lane.eq(w_l),
                         self.v.addr.pos.eq(w_pos), self.v.data.eq(ser[0])]
            busy = busy | w_act
        else:
            m.d.comb += [self.v.en.eq(itu.o.valid), self.v.addr.row.eq(half * cfg.c_block + c_out),
                         self.v.addr.lane.eq(l_out), self.v.data.eq(itu.o.payload.v)]
        m.d.comb += self.busy.eq(busy)
        return m

    def _banked_tile(self, m, x_rd, st, base, issue, s1, c1, l1, itu):
        """s0: one whole tile from the n² banks; s1: rotated into tile order → the transform's input (s2)."""
        cfg = self._cfg
        n, regs = cfg.n, self.regs
        coord = regs.h0.shape().width
        # s0: bank addresses for the tile of (c_i, l_i). Bank (a, b) holds tile row (a − hr) mod n,
        # column (b − wr) mod n, in bank row hq (+1 when a < hr) and bank column wq (+1 when b < wr).
        row_off = [Signal(signed(len(base) + 2), name=f"row_off{d}") for d in range(2)]
        col = [Signal(signed(coord + 1), name=f"col{d}") for d in range(2)]
        m.d.comb += [row_off[d].eq(base + st["hqc"] + d * cfg.x_cols) for d in range(2)]
        m.d.comb += [col[d].eq(st["wq"] + d) for d in range(2)]
        ok_row, ok_col = [], []
        for a in range(n):
            hh = st["h0"] + Mux(a >= st["hr"], a - st["hr"], (a + n) - st["hr"])  # (a − hr) mod n, no wrap
            ww = st["w0"] + Mux(a >= st["wr"], a - st["wr"], (a + n) - st["wr"])
            okr, okc = Signal(name=f"ok_row{a}"), Signal(name=f"ok_col{a}")
            m.d.comb += [okr.eq((hh >= 0) & (hh < regs.h)), okc.eq((ww >= 0) & (ww < regs.w))]
            ok_row.append(okr)
            ok_col.append(okc)
        valid_b = []
        for a in range(n):
            for b in range(n):
                okv = ok_row[a] & ok_col[b]
                addr = Mux(a < st["hr"], row_off[1], row_off[0]) + Mux(b < st["wr"], col[1], col[0])
                m.d.comb += x_rd[a * n + b].addr.eq(Mux(okv, addr, 0))
                ok1 = Signal(name=f"x_ok1_{a}_{b}")
                m.d.sync += ok1.eq(okv)
                valid_b.append(ok1)
        hr1 = Signal.like(st["hr"])
        wr1 = Signal.like(st["wr"])
        m.d.sync += [hr1.eq(st["hr"]), wr1.eq(st["wr"])]
        # s1: rotate the banks into tile order (tile[i][j] = bank[(hr+i) mod n][(wr+j) mod n]),
        # rows first, then columns (2·n³ multiplexer inputs instead of n⁴), and register the tile
        masked = [Mux(valid_b[q], x_rd[q].data.as_signed(), 0) for q in range(n * n)]
        rot = [[Signal(signed(cfg.datapath.act_bits), name=f"rot_{i}_{b}") for b in range(n)] for i in range(n)]
        for i in range(n):
            for b in range(n):
                m.d.comb += rot[i][b].eq(Array([masked[((r + i) % n) * n + b] for r in range(n)])[hr1])
        s2, c2, l2 = Signal(), Signal.like(c1), Signal.like(l1)
        m.d.sync += [s2.eq(s1), c2.eq(c1), l2.eq(l1)]
        for i in range(n):
            for j in range(n):
                m.d.sync += itu.i.payload.tile[i * n + j].eq(Array([rot[i][(r + j) % n] for r in range(n)])[wr1])
        return s2, c2, l2

    def _serial_tile(self, m, x_rd, st, base, ei, ej, s1, tile_end, c1, l1, itu):
        """s0: the pixel of element (i, j); s1: shifted into the gather register; s2: the full tile."""
        cfg = self._cfg
        n, regs = cfg.n, self.regs
        aw = ubits(cfg.x_depth - 1)
        # pixel (h0 + i, w0 + j): bank ((hr + i) mod n, (wr + j) mod n), bank row hq (+1 when hr + i ≥ n),
        # bank column wq (+1 when wr + j ≥ n)
        hs, ws = Signal(ubits(2 * n), name="el_hs"), Signal(ubits(2 * n), name="el_ws")
        m.d.comb += [hs.eq(st["hr"] + ei), ws.eq(st["wr"] + ej)]
        h_wrap, w_wrap = hs >= n, ws >= n
        bank = Signal(ubits(n * n - 1))
        m.d.comb += bank.eq(Mux(h_wrap, hs - n, hs) * n + Mux(w_wrap, ws - n, ws))
        addr = Signal(signed(len(base) + regs.h0_qc.shape().width + 2))
        m.d.comb += addr.eq(base + st["hqc"] + Mux(h_wrap, cfg.x_cols, 0) + st["wq"] + w_wrap)
        hh, ww = st["h0"] + ei, st["w0"] + ej
        ok = Signal(name="el_ok")
        m.d.comb += ok.eq((hh >= 0) & (hh < regs.h) & (ww >= 0) & (ww < regs.w))
        m.d.comb += x_rd.addr.eq(Mux(ok, Cat(addr[:aw], bank), 0))
        ok1, last1 = Signal(name="el_ok1"), Signal(name="el_last1")
        m.d.sync += [ok1.eq(ok), last1.eq(tile_end)]
        # s1: gather (element 0 ends in front after n² shifts)
        gather = [Signal(signed(cfg.datapath.act_bits), name=f"gather{q}") for q in range(n * n)]
        with m.If(s1):
            m.d.sync += [gather[q].eq(gather[q + 1]) for q in range(n * n - 1)]
            m.d.sync += gather[-1].eq(Mux(ok1, x_rd.data.as_signed(), 0))
        s2, c2, l2 = Signal(), Signal.like(c1), Signal.like(l1)
        m.d.sync += [s2.eq(s1 & last1), c2.eq(c1), l2.eq(l1)]
        m.d.comb += [itu.i.payload.tile[q].eq(gather[q]) for q in range(n * n)]
        return s2, c2, l2
