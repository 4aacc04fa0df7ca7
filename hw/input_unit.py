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

so it is busy C·L + 4 cycles per group (:data:`latency` = 4).
"""

from __future__ import annotations

import numpy as np
from amaranth import Array, Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from model.datapath import DatapathConfig

from .config import AccelConfig, ubits
from .delay import delay
from .input_transform import InputTransform, input_transform_ref
from .registers import register_layout


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
    load_en, load_bank, load_addr, load_data : In
        Write port of the input memory (bank (h mod n)·n + w mod n, two's complement words).
    regs : In(register_layout)
        The layer's registers (c, h, w, tiles_w, tile origins, winograd_relu).
    start : In(1)
        Run start: the walker goes back to the first tile.
    go : In(1)
        Launch: transform the next tile group.
    half : In(1)
        V-buffer half of the running group (held from the cycle after ``go``).
    busy : Out(1)
    v_en, v_addr, v_lane, v_data : Out
        V-buffer write: address half·c_max + c, lane, n² signed ``v_bits`` values.
    """

    latency = 2 + InputTransform.latency

    def __init__(self, config: AccelConfig):
        self._cfg = config
        dp = config.datapath
        n = config.n
        super().__init__({
            "load_en": In(1), "load_bank": In(ubits(n * n - 1)), "load_addr": In(ubits(config.x_depth - 1)),
            "load_data": In(dp.act_bits),
            "regs": In(register_layout(config)), "start": In(1), "go": In(1), "half": In(1), "busy": Out(1),
            "v_en": Out(1), "v_addr": Out(ubits(2 * config.c_max - 1)), "v_lane": Out(ubits(config.lanes - 1)),
            "v_data": Out(data.ArrayLayout(signed(config.widths.v_bits), n * n)),
        })  # fmt: skip

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        dp = cfg.datapath
        n, mt, L = cfg.n, cfg.m, cfg.lanes
        regs = self.regs

        x_rd = []
        for b in range(n * n):
            mem = Memory(shape=unsigned(dp.act_bits), depth=cfg.x_depth, init=[])
            m.submodules[f"x{b}"] = mem
            wp = mem.write_port()
            m.d.comb += [wp.en.eq(self.load_en & (self.load_bank == b)), wp.addr.eq(self.load_addr),
                         wp.data.eq(self.load_data)]
            x_rd.append(mem.read_port())

        m.submodules.itu = itu = InputTransform(dp)
        coord = regs.h0.shape().width
        c_i = Signal(ubits(cfg.c_max))
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

        with m.If(self.start):
            m.d.sync += reset_state(st) + reset_state(gs)
        nxt = {nm: Signal(kinds[nm], name=f"nx_{nm}") for nm in st}
        m.d.comb += advance(st, nxt)
        with m.If(self.go):
            m.d.sync += [issue.eq(regs.c != 0), c_i.eq(0), l_i.eq(0), base.eq(0)]
        with m.Elif(issue):
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
        s1 = Signal()
        hr1 = Signal.like(st["hr"])
        wr1 = Signal.like(st["wr"])
        c1 = Signal.like(c_i)
        l1 = Signal.like(l_i)
        m.d.sync += [s1.eq(issue & ~self.go), hr1.eq(st["hr"]), wr1.eq(st["wr"]), c1.eq(c_i), l1.eq(l_i)]
        # s1: rotate the banks into tile order (tile[i][j] = bank[(hr+i) mod n][(wr+j) mod n]),
        # rows first, then columns (2·n³ multiplexer inputs instead of n⁴), and register the tile
        masked = [Mux(valid_b[q], x_rd[q].data.as_signed(), 0) for q in range(n * n)]
        rot = [[Signal(signed(dp.act_bits), name=f"rot_{i}_{b}") for b in range(n)] for i in range(n)]
        for i in range(n):
            for b in range(n):
                m.d.comb += rot[i][b].eq(Array([masked[((r + i) % n) * n + b] for r in range(n)])[hr1])
        s2 = Signal()
        m.d.sync += s2.eq(s1)
        for i in range(n):
            for j in range(n):
                m.d.sync += itu.i.payload.tile[i * n + j].eq(Array([rot[i][(r + j) % n] for r in range(n)])[wr1])
        m.d.comb += [itu.i.valid.eq(s2), itu.i.payload.relu.eq(regs.winograd_relu), itu.o.ready.eq(1)]
        # (c, lane) travel beside the transform
        c_out = delay(m, c1, 1 + InputTransform.latency, "c")[-1]
        l_out = delay(m, l1, 1 + InputTransform.latency, "lane")[-1]
        # the V-buffer write
        m.d.comb += [self.v_en.eq(itu.o.valid), self.v_addr.eq(self.half * cfg.c_max + c_out),
                     self.v_lane.eq(l_out), self.v_data.eq(itu.o.payload.v)]
        # the transform's inner stage valids are not ports: track them here
        inner = delay(m, s2, InputTransform.latency - 1, "itu_v")
        m.d.comb += self.busy.eq(issue | s1 | s2 | Cat(*inner).any() | itu.o.valid)
        return m
