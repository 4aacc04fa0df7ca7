"""The sparse Winograd PE array: memories, input/output units, PEs and the sequencer.

Schedule (exact; :mod:`hw.cycle_model` reproduces it)
-----------------------------------------------------
The T output tiles are taken in groups of L (tile t = g·L + l goes to lane l). A run
is G + 2 *phases*; in phase t the input unit transforms group t, the PEs multiply
group t − 1 and the output unit finishes group t − 2 (those that exist). A phase
launches its units in one cycle and ends when all of them are idle; the next phase
launches in that same cycle. The units' busy times are

* input unit:  C·L + 2   (one (c, lane) tile per cycle; X read + transform register)
* PE j:        len_j + 2 (one stream entry per cycle; 0 when its stream is empty)
* output unit: K·L + 4   (one (k, lane) tile per cycle; acc read + 3 OTU stages)

so phase t takes 1 + max(busy times of its units) cycles, and a run takes
Σ_t (1 + max_t) + 1 cycles in the RUN state (``cycles``).

Buffers: the V buffer and the accumulator memory are double-buffered with the parity
of the phase: the input unit writes V half b, the PEs read V half ¬b and write
accumulator half ¬b, the output unit reads (and clears) accumulator half b.

Memories are banked so that every unit moves a whole tile per cycle: input by
(h mod n, w mod n), V' and accumulators by Winograd position, outputs by
(ho mod m, wo mod m).
"""

from __future__ import annotations

from amaranth import Array, Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .config import AccelConfig, load_fields, register_map, ubits
from .input_transform import InputTransform
from .output_transform import OutputTransform
from .packer import SEL_QUANT, SEL_REG, SEL_STREAM, SEL_X
from .pe import SparsePE

#: Cycles a unit stays busy beyond its item count (see the module docstring).
ITU_LATENCY = 1 + InputTransform.latency
PE_LATENCY = SparsePE.latency
OTU_LATENCY = 1 + OutputTransform.latency


def load_layout(cfg: AccelConfig) -> data.StructLayout:
    """Payload of the load port: memory select, bank, address, data word (:func:`hw.config.load_fields`)."""
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
        Output memory read-back address (bank = (ho mod m)·m + wo mod m).
    rd_data : Out
        The output word, one cycle after the address.
    """

    def __init__(self, config: AccelConfig):
        self._cfg = config
        super().__init__({
            "load": In(stream.Signature(load_layout(config))),
            "start": In(1), "busy": Out(1), "done": Out(1), "cycles": Out(32),
            "rd_bank": In(ubits(config.m ** 2 - 1)), "rd_addr": In(ubits(config.out_depth - 1)),
            "rd_data": Out(config.datapath.act_bits),
        })  # fmt: skip

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        dp = cfg.datapath
        w = cfg.widths
        n, mt, L, P, NP = cfg.n, cfg.m, cfg.lanes, cfg.pes, cfg.positions
        ld = self.load.payload
        m.d.comb += self.load.ready.eq(1)

        # ------------------------------------------------------------ registers
        regs = {}
        for i, (name, bits, sgn) in enumerate(register_map(cfg)):
            r = Signal(signed(bits) if sgn else unsigned(bits), name=f"reg_{name}")
            regs[name] = r
            with m.If(self.load.valid & (ld.sel == SEL_REG) & (ld.addr == i)):
                m.d.sync += r.eq(ld.data[:bits])
        owner = [regs[f"owner{p}"] for p in range(NP)]

        # ------------------------------------------------------------ sequencer
        phase = Signal(ubits(cfg.groups_max + 2))
        run = Signal()
        buf = Signal(name="phase_parity")  # parity of the running phase
        itu_go = Signal()
        pe_go = Signal()
        otu_go = Signal()
        units_busy = Signal()
        m.d.comb += self.busy.eq(run)
        with m.If(run):
            m.d.sync += self.cycles.eq(self.cycles + 1)
            with m.If(~units_busy):
                with m.If(phase == regs["groups"] + 2):
                    m.d.sync += [run.eq(0), self.done.eq(1)]
                with m.Else():
                    m.d.comb += [itu_go.eq(phase < regs["groups"]),
                                 pe_go.eq((phase >= 1) & (phase <= regs["groups"])),
                                 otu_go.eq(phase >= 2)]
                    m.d.sync += [phase.eq(phase + 1), buf.eq(phase[0])]
        with m.Elif(self.start):
            m.d.sync += [run.eq(1), self.done.eq(0), phase.eq(0), self.cycles.eq(0)]
        # roles of the buffer halves for the running phase: the input unit and the output
        # unit use half ``buf``, the PEs half ¬buf (set at every launch, so always complementary)
        itu_buf = buf
        otu_buf = buf
        pe_buf = Signal()
        m.d.comb += pe_buf.eq(~buf)

        # ------------------------------------------------------------ input memory (banked h mod n, w mod n)
        x_rd = []
        for b in range(n * n):
            mem = Memory(shape=unsigned(dp.act_bits), depth=cfg.x_depth, init=[])
            m.submodules[f"x{b}"] = mem
            wp = mem.write_port()
            m.d.comb += [wp.en.eq(self.load.valid & (ld.sel == SEL_X) & (ld.bank == b)),
                         wp.addr.eq(ld.addr), wp.data.eq(ld.data)]
            x_rd.append(mem.read_port())

        # ------------------------------------------------------------ V buffer: bank per position, 2 halves
        v_wr, v_rd = [], []
        for p in range(NP):
            mem = Memory(shape=unsigned(L * w.v_bits), depth=2 * cfg.c_max, init=[])
            m.submodules[f"v{p}"] = mem
            v_wr.append(mem.write_port(granularity=w.v_bits))
            v_rd.append(mem.read_port())

        # ------------------------------------------------------------ accumulator memory: bank per position and half
        acc_wr = [[None, None] for _ in range(NP)]
        acc_rd = [[None, None] for _ in range(NP)]
        for p in range(NP):
            for h in range(2):
                mem = Memory(shape=unsigned(L * w.acc_bits), depth=cfg.k_max, init=[])
                m.submodules[f"acc{p}_{h}"] = mem
                acc_wr[p][h] = mem.write_port()
                acc_rd[p][h] = mem.read_port()

        # ------------------------------------------------------------ input unit
        m.submodules.itu = itu = InputTransform(dp)
        coord = regs["h0"].shape().width
        c_i = Signal(ubits(cfg.c_max))
        l_i = Signal(ubits(L))
        issue = Signal()
        # running tile state and the state at the start of the group
        st = {nm: Signal(signed(coord) if nm in ("h0", "hq", "w0", "wq") else unsigned(max(coord, 8)), name=f"itu_{nm}")
              for nm in ("h0", "hq", "hr", "w0", "wq", "wr", "tx")}  # fmt: skip
        gs = {nm: Signal.like(s, name=f"itu_gs_{nm}") for nm, s in st.items()}

        def advance(state, dst):
            """Next tile in raster order: ``dst`` ← state + one tile (statements)."""
            stm = []
            wrap = state["tx"] + 1 == regs["tiles_w"]
            wr2 = state["wr"] + mt
            hr2 = state["hr"] + mt
            stm.append(dst["tx"].eq(Mux(wrap, 0, state["tx"] + 1)))
            stm.append(dst["w0"].eq(Mux(wrap, regs["w0"], state["w0"] + mt)))
            stm.append(dst["wq"].eq(Mux(wrap, regs["w0_q"], Mux(wr2 >= n, state["wq"] + 1, state["wq"]))))
            stm.append(dst["wr"].eq(Mux(wrap, regs["w0_r"], Mux(wr2 >= n, wr2 - n, wr2))))
            stm.append(dst["h0"].eq(Mux(wrap, state["h0"] + mt, state["h0"])))
            stm.append(dst["hq"].eq(Mux(wrap & (hr2 >= n), state["hq"] + 1, state["hq"])))
            stm.append(dst["hr"].eq(Mux(wrap, Mux(hr2 >= n, hr2 - n, hr2), state["hr"])))
            return stm

        def reset_state(dst):
            return [dst["tx"].eq(0), dst["w0"].eq(regs["w0"]), dst["wq"].eq(regs["w0_q"]), dst["wr"].eq(regs["w0_r"]),
                    dst["h0"].eq(regs["h0"]), dst["hq"].eq(regs["h0_q"]), dst["hr"].eq(regs["h0_r"])]

        with m.If(self.start & ~run):
            m.d.sync += reset_state(st) + reset_state(gs)
        nxt = {nm: Signal.like(s, name=f"itu_nx_{nm}") for nm, s in st.items()}
        m.d.comb += advance(st, nxt)
        with m.If(itu_go):
            m.d.sync += [issue.eq(regs["c"] != 0), c_i.eq(0), l_i.eq(0)]
        with m.Elif(issue):
            with m.If(l_i + 1 == L):
                m.d.sync += l_i.eq(0)
                with m.If(c_i + 1 == regs["c"]):
                    m.d.sync += [issue.eq(0)] + [gs[k].eq(v) for k, v in nxt.items()] + [st[k].eq(v) for k, v in nxt.items()]
                with m.Else():
                    m.d.sync += c_i.eq(c_i + 1)
                    m.d.sync += [st[k].eq(v) for k, v in gs.items()]
            with m.Else():
                m.d.sync += l_i.eq(l_i + 1)
                m.d.sync += [st[k].eq(v) for k, v in nxt.items()]
        # s0: bank addresses for the tile of (c_i, l_i)
        valid_b = []
        for a in range(n):
            for b in range(n):
                ia = Mux(a >= st["hr"], a - st["hr"], (a + n) - st["hr"])  # (a − hr) mod n, no wrap
                ib = Mux(b >= st["wr"], b - st["wr"], (b + n) - st["wr"])
                hh = st["h0"] + ia
                ww = st["w0"] + ib
                row = st["hq"] + (a < st["hr"])
                col = st["wq"] + (b < st["wr"])
                ok = (hh >= 0) & (hh < regs["h"]) & (ww >= 0) & (ww < regs["w"])
                okv = Signal(name=f"x_ok_{a}_{b}")
                m.d.comb += okv.eq(ok)
                addr = (c_i * cfg.x_rows + row) * cfg.x_cols + col
                m.d.comb += x_rd[a * n + b].addr.eq(Mux(okv, addr, 0))
                ok1 = Signal(name=f"x_ok1_{a}_{b}")
                m.d.sync += ok1.eq(okv)
                valid_b.append(ok1)
        s1 = Signal()
        hr1 = Signal.like(st["hr"])
        wr1 = Signal.like(st["wr"])
        c1 = Signal.like(c_i)
        l1 = Signal.like(l_i)
        m.d.sync += [s1.eq(issue & ~itu_go), hr1.eq(st["hr"]), wr1.eq(st["wr"]), c1.eq(c_i), l1.eq(l_i)]
        # s1: rotate the banks into tile order (tile[i][j] = bank[(hr+i) mod n][(wr+j) mod n])
        masked = [Mux(valid_b[q], x_rd[q].data.as_signed(), 0) for q in range(n * n)]
        rows = []
        for i in range(n):
            rows.append(Array([Array([masked[((r + i) % n) * n + b] for b in range(n)]) for r in range(n)])[hr1])
        for i in range(n):
            for j in range(n):
                sel = Array([rows[i][(r + j) % n] for r in range(n)])[wr1]
                m.d.comb += itu.i.payload.tile[i * n + j].eq(sel)
        m.d.comb += [itu.i.valid.eq(s1), itu.i.payload.relu.eq(regs["winograd_relu"]), itu.o.ready.eq(1)]
        c2 = Signal.like(c_i)
        l2 = Signal.like(l_i)
        m.d.sync += [c2.eq(c1), l2.eq(l1)]
        for p in range(NP):
            wp = v_wr[p]
            m.d.comb += [wp.addr.eq(itu_buf * cfg.c_max + c2),
                         wp.data.eq(Cat(*[itu.o.payload.v[p]] * L))]
            for l in range(L):
                m.d.comb += wp.en[l].eq(itu.o.valid & (l2 == l))
        itu_busy = issue | s1 | itu.o.valid

        # ------------------------------------------------------------ PEs
        pes = []
        for j in range(P):
            pe = SparsePE(cfg)
            m.submodules[f"pe{j}"] = pe
            pes.append(pe)
            m.d.comb += [pe.start.eq(pe_go), pe.length.eq(regs[f"len{j}"]),
                         pe.load_en.eq(self.load.valid & (ld.sel == SEL_STREAM) & (ld.bank == j)),
                         pe.load_addr.eq(ld.addr), pe.load_data.eq(ld.data)]
        pe_vaddr = Array([pe.v_addr for pe in pes])
        for p in range(NP):
            c_sel = pe_vaddr[owner[p]]
            m.d.comb += v_rd[p].addr.eq(pe_buf * cfg.c_max + c_sel)
        v_data = Array([v_rd[p].data for p in range(NP)])
        for pe in pes:
            pos2 = Signal.like(pe.v_pos)
            m.d.sync += pos2.eq(pe.v_pos)
            m.d.comb += pe.v_data.eq(v_data[pos2])
        pes_busy = Cat(*[pe.busy for pe in pes]).any()

        # ------------------------------------------------------------ output unit
        m.submodules.otu = otu = OutputTransform(dp)
        m.submodules.quant = qmem = Memory(shape=unsigned(cfg.quant_bits), depth=cfg.k_max, init=[])
        qwp = qmem.write_port()
        qrp = qmem.read_port()
        m.d.comb += [qwp.en.eq(self.load.valid & (ld.sel == SEL_QUANT)), qwp.addr.eq(ld.addr), qwp.data.eq(ld.data)]
        k_o = Signal(ubits(cfg.k_max))
        l_o = Signal(ubits(L))
        o_issue = Signal()
        t_run = Signal(ubits(cfg.tiles_max + L))  # tile index of the running lane
        t_gs = Signal.like(t_run)
        ty = Signal(ubits(cfg.tiles_h_max + 1))
        tx = Signal(ubits(cfg.tiles_w_max))
        ty_gs = Signal.like(ty)
        tx_gs = Signal.like(tx)
        with m.If(self.start & ~run):
            m.d.sync += [t_run.eq(0), t_gs.eq(0), ty.eq(0), tx.eq(0), ty_gs.eq(0), tx_gs.eq(0)]
        t_nx = t_run + 1
        tx_wrap = tx + 1 == regs["tiles_w"]
        tx_nx = Mux(tx_wrap, 0, tx + 1)
        ty_nx = Mux(tx_wrap, ty + 1, ty)
        with m.If(otu_go):
            m.d.sync += [o_issue.eq(regs["k"] != 0), k_o.eq(0), l_o.eq(0)]
        with m.Elif(o_issue):
            with m.If(l_o + 1 == L):
                m.d.sync += l_o.eq(0)
                with m.If(k_o + 1 == regs["k"]):
                    m.d.sync += [o_issue.eq(0), t_run.eq(t_nx), t_gs.eq(t_nx), ty.eq(ty_nx), tx.eq(tx_nx),
                                 ty_gs.eq(ty_nx), tx_gs.eq(tx_nx)]
                with m.Else():
                    m.d.sync += [k_o.eq(k_o + 1), t_run.eq(t_gs), ty.eq(ty_gs), tx.eq(tx_gs)]
            with m.Else():
                m.d.sync += [l_o.eq(l_o + 1), t_run.eq(t_nx), ty.eq(ty_nx), tx.eq(tx_nx)]
        # s0: read accumulators (k) and quantization; clear the row after its last lane
        for p in range(NP):
            for h in range(2):
                rp = acc_rd[p][h]
                m.d.comb += rp.addr.eq(k_o)
        m.d.comb += qrp.addr.eq(k_o)
        pe_acc_en = [Signal(name=f"pe_acc_en{p}") for p in range(NP)]
        for p in range(NP):
            m.d.comb += pe_acc_en[p].eq(Cat(*[pe.acc_en & (pe.acc_pos == p) for pe in pes]).any())
            own = Array(pes)[owner[p]]
            for h in range(2):
                wp = acc_wr[p][h]
                pe_side = pe_buf == h
                m.d.comb += [
                    wp.en.eq(Mux(pe_side, pe_acc_en[p], o_issue & (otu_buf == h) & (l_o == L - 1))),
                    wp.addr.eq(Mux(pe_side, own.acc_k, k_o)),
                    wp.data.eq(Mux(pe_side, own.acc_data, 0)),
                ]
        o1 = Signal()
        l1o = Signal.like(l_o)
        buf1 = Signal()
        m.d.sync += [o1.eq(o_issue & ~otu_go), l1o.eq(l_o), buf1.eq(otu_buf)]
        # s1: lane select into the OTU
        for p in range(NP):
            word = Mux(buf1, acc_rd[p][1].data, acc_rd[p][0].data)
            lanes = Array([word[l * w.acc_bits:(l + 1) * w.acc_bits] for l in range(L)])
            m.d.comb += otu.i.payload.m[p].eq(lanes[l1o].as_signed())
        qf = cfg.quant_fields
        qd = qrp.data
        m.d.comb += [otu.i.payload.bias.eq(qd[:qf["bias"]].as_signed()),
                     otu.i.payload.mult.eq(qd[qf["bias"]:qf["bias"] + qf["mult"]]),
                     otu.i.payload.shift.eq(qd[qf["bias"] + qf["mult"]:]),
                     otu.i.payload.relu.eq(regs["relu"]), otu.i.valid.eq(o1), otu.o.ready.eq(1)]
        # output address and lane validity travel beside the OTU pipeline
        oaddr = Signal(ubits(cfg.out_depth - 1))
        ovalid = Signal()
        m.d.comb += [oaddr.eq((k_o * cfg.tiles_h_max + ty) * cfg.tiles_w_max + tx), ovalid.eq(t_run < regs["tiles"])]
        pipe_a, pipe_v = oaddr, ovalid
        for s in range(1 + OutputTransform.latency):
            na = Signal.like(oaddr, name=f"oaddr_d{s}")
            nv = Signal(name=f"ovalid_d{s}")
            m.d.sync += [na.eq(pipe_a), nv.eq(pipe_v)]
            pipe_a, pipe_v = na, nv
        out_rd = []
        for q in range(mt * mt):
            mem = Memory(shape=unsigned(dp.act_bits), depth=cfg.out_depth, init=[])
            m.submodules[f"out{q}"] = mem
            wp = mem.write_port()
            m.d.comb += [wp.en.eq(otu.o.valid & pipe_v), wp.addr.eq(pipe_a), wp.data.eq(otu.o.payload.y[q])]
            rp = mem.read_port()
            m.d.comb += rp.addr.eq(self.rd_addr)
            out_rd.append(rp)
        rdb = Signal.like(self.rd_bank)
        m.d.sync += rdb.eq(self.rd_bank)
        m.d.comb += self.rd_data.eq(Array([rp.data for rp in out_rd])[rdb])
        otu_pipe_busy = Signal()
        m.d.comb += otu_pipe_busy.eq(o_issue | o1 | otu.o.valid)
        # the OTU's inner stages: valid bits are not ports; track them here
        ov = [o1]
        for s in range(OutputTransform.latency - 1):
            v = Signal(name=f"otu_v{s}")
            m.d.sync += v.eq(ov[-1])
            ov.append(v)
        otu_busy = o_issue | Cat(*ov).any() | otu.o.valid

        m.d.comb += units_busy.eq(itu_busy | pes_busy | otu_busy)
        return m
