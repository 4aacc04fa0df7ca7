"""Output transform unit (OTU) core: per-position shift, Y = A'ᵀ M A', bias, requantize, saturate, ReLU.

Four pipeline stages, one tile (one output channel, one lane) per cycle:

1. shifted_p = M_p · 2^(E−e_p) (constant shifts); A'ᵀ (shifted) (the column pass);
2. Y = (·) A' (the row pass); z = Y + bias (``biased_bits``);
3. q = z · mult (``requant_bits``);
4. out = sat((q + 2^(s−1)) >> s), computed as ((q >> (s−1)) + 1) >> 1 for s ≥ 1 (the
   same round-half-up, without a variable left shift); saturation to ``act_bits``;
   optional ReLU.
"""

from __future__ import annotations

import numpy as np
from amaranth import Array, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from winnow.model.integer.datapath import DatapathConfig, signed_range
from winnow.model.integer.quant import round_shift, saturate

from winnow.hw import abi
from winnow.hw.config import ubits
from winnow.hw.linear import left, right


def output_transform_ref(mvals: np.ndarray, bias: int, mult: int, shift: int, relu: bool,
                         config: DatapathConfig) -> np.ndarray:
    """NumPy twin: accumulated M (n×n) of one tile and one output channel → m×m outputs (int64)."""
    at = config.transforms.AT.astype(np.int64)
    s = np.left_shift(np.asarray(mvals, dtype=np.int64), config.shifts)
    z = at @ s @ at.T + int(bias)
    out = saturate(round_shift(z * int(mult), np.int64(shift)), config.act_bits)
    return np.maximum(out, 0) if relu else out


class OutputTransform(wiring.Component):
    """Output transform and requantization (four register stages), R requantizers.

    With ``requant`` = R < m² the m² outputs of a tile share R multipliers: the tile is
    held at the input for Q = m²/R consecutive cycles with ``sub`` = 0 … Q−1, and each
    cycle requantizes outputs sub·R … sub·R + R − 1 (the cheaper core for a part with
    few DSP blocks: the requantizer is a ``biased_bits`` × ``mult_bits`` multiply).

    Parameters
    ----------
    config : DatapathConfig
    requant : int or None
        R, requantizers (divides m²; ``None``: m², one tile per cycle).

    Attributes
    ----------
    i : In(stream)
        ``m``: n² signed ``acc_bits`` accumulated values (row-major positions);
        ``bias`` (signed ``bias_bits``), ``mult`` (unsigned ``mult_bits``), ``shift``;
        ``relu``; ``sub``: which R outputs to requantize.
    o : Out(stream)
        ``y``: R signed ``act_bits`` outputs (row-major indices sub·R …); ``sub``.
    """

    def __init__(self, config: DatapathConfig, requant: int | None = None):
        self._cfg = config
        self._R, self._shift_bits, sub, quant, out = requantizer_ports(config, requant)
        self.latency = abi.otu_core_latency(config.m, self._R)  # 4, + 1 registering the R selected sums
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "m": data.ArrayLayout(signed(config.widths.acc_bits), config.n ** 2), **quant, "sub": sub}))),
            "o": out,
        })  # fmt: skip

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        w = cfg.widths
        n, mm = cfg.n, cfg.m
        en = ~self.o.valid | self.o.ready
        m.d.comb += self.i.ready.eq(en)
        p = self.i.payload
        shifts = [int(s) for s in cfg.shifts.reshape(-1)]
        sh = [[p.m[i * n + j] << shifts[i * n + j] for j in range(n)] for i in range(n)]

        # stage 1: A'ᵀ (M · 2^(E−e_p)) (columns), registered at its exact width
        cols = left(cfg.transforms.AT, sh)
        a1 = [[Signal(cols[i][j].shape(), name=f"am_{i}_{j}") for j in range(n)] for i in range(mm)]
        v0 = Signal()
        bias0 = Signal(signed(cfg.bias_bits))
        mult0 = Signal(unsigned(cfg.mult_bits))
        shift0 = Signal(unsigned(self._shift_bits))
        relu0 = Signal()
        # stage 2: z = (·) A' + bias
        y = right(a1, cfg.transforms.AT)
        v1 = Signal()
        z = [Signal(signed(w.biased_bits), name=f"z_{q}") for q in range(mm * mm)]
        mult1 = Signal(unsigned(cfg.mult_bits))
        shift1 = Signal(unsigned(self._shift_bits))
        relu1 = Signal()
        # stage 3: q = z · mult
        v2 = Signal()
        R = self._R
        q = [Signal(signed(w.requant_bits), name=f"q_{i}") for i in range(R)]
        shift2 = Signal(unsigned(self._shift_bits))
        relu2 = Signal()
        sub0, sub1, sub2 = (Signal.like(p.sub, name=f"sub{d}") for d in range(3))
        # stage 3 requantizes R of the m² values z[sub·R + r]; with R < m² a Q-way multiplexer picks
        # them and an extra register keeps it off the multiplier's cycle
        shared = R < mm * mm
        if shared:
            zsel = [Signal(signed(w.biased_bits), name=f"zs_{r}") for r in range(R)]
            vs, mults, shifts_s, relus = Signal(), Signal(unsigned(cfg.mult_bits)), Signal(unsigned(self._shift_bits)), Signal()
            subs = Signal.like(p.sub)
        with m.If(en):
            m.d.sync += [v0.eq(self.i.valid), bias0.eq(p.bias), mult0.eq(p.mult), shift0.eq(p.shift), relu0.eq(p.relu),
                         sub0.eq(p.sub)]
            m.d.sync += [a1[i][j].eq(cols[i][j]) for i in range(mm) for j in range(n)]
            m.d.sync += [v1.eq(v0), mult1.eq(mult0), shift1.eq(shift0), relu1.eq(relu0), sub1.eq(sub0)]
            m.d.sync += [z[i * mm + j].eq(y[i][j] + bias0) for i in range(mm) for j in range(mm)]
            if shared:
                m.d.sync += [zsel[r].eq(Array(z[k * R + r] for k in range(mm * mm // R))[sub1]) for r in range(R)]
                m.d.sync += [vs.eq(v1), mults.eq(mult1), shifts_s.eq(shift1), relus.eq(relu1), subs.eq(sub1)]
                src, vsrc, msrc, ssrc, rsrc, subsrc = zsel, vs, mults, shifts_s, relus, subs
            else:
                src, vsrc, msrc, ssrc, rsrc, subsrc = z, v1, mult1, shift1, relu1, sub1
            m.d.sync += [v2.eq(vsrc), shift2.eq(ssrc), relu2.eq(rsrc), sub2.eq(subsrc)]
            m.d.sync += [q[r].eq(src[r] * msrc) for r in range(R)]
            m.d.sync += [self.o.valid.eq(v2), self.o.payload.sub.eq(sub2)]
        for i in range(R):
            with m.If(en):
                m.d.sync += self.o.payload.y[i].eq(round_saturate(m, cfg, q[i], shift2, relu2, self._shift_bits, i))
        return m


def requantizer_ports(config: DatapathConfig, requant: int | None):
    """What both output-transform cores share: R (checked), the shift width, the ``sub`` width,
    the quantization fields of the input (bias, mult, shift, relu) and the output stream port."""
    mm2 = config.m ** 2
    R = mm2 if requant is None else requant
    if not 1 <= R <= mm2 or mm2 % R:
        raise ValueError(f"requant = {R} must divide m² = {mm2}")
    shift_bits = abi.shift_bits(config)
    sub = ubits(mm2 // R - 1)
    quant = {**abi.quant_layout(config).members, "relu": 1}  # the quantization word, as the memory holds it
    out = Out(stream.Signature(data.StructLayout({"y": data.ArrayLayout(signed(config.act_bits), R), "sub": sub})))
    return R, shift_bits, sub, quant, out


def round_saturate(m: Module, cfg: DatapathConfig, q, shift, relu, shift_bits: int, i: int):
    """The requantizer's last stage: sat((q + 2^(s−1)) >> s) as ((q >> (s−1)) + 1) >> 1, optional ReLU."""
    w = cfg.widths
    lo, hi = signed_range(cfg.act_bits)
    half = Signal(signed(w.requant_bits), name=f"half_{i}")
    rnd = Signal(signed(w.requant_bits), name=f"rnd_{i}")
    m.d.comb += half.eq(q >> (shift - 1)[:shift_bits])
    m.d.comb += rnd.eq(Mux(shift == 0, q, (half + 1) >> 1))
    sat = Mux(rnd > hi, hi, Mux(rnd < lo, lo, rnd))
    return Mux(relu & (rnd < 0), 0, sat)
