"""Position-serial output transform: Y = A'ᵀ M A' accumulated one Winograd position per cycle.

For the position-serial array (``AccelConfig.serial``) the accumulators deliver one
position p of a tile per cycle. Instead of gathering the n² values and running the
parallel :class:`winnow.hw.output_transform.OutputTransform`, each of the m² outputs
accumulates its term as the positions pass:

    y[i, j] += c[i, j, p] · M_p,   c[i, j, (a, b)] = A'ᵀ[i, a] · A'ᵀ[j, b] · 2^(E − e_(a,b))

(the same integer product the parallel core computes, term by term; the accumulators
are ``biased_bits`` wide and two's-complement sums are exact modulo 2^bits, so the
result is bit-identical). Each term is a constant from a small per-output set, chosen
by p: shift-and-add, no multiplier. After the last position the unit adds the bias
and requantizes R outputs per cycle for Q = m²/R cycles, exactly as the parallel core
(:func:`winnow.hw.output_transform.round_saturate`), while the next tile accumulates.

Timing: positions 0 … n² − 1 of a tile on consecutive (or any) valid cycles; the
outputs sub·R … of the tile leave ``5 + sub`` cycles after its last position, and
``busy`` covers those :func:`winnow.hw.abi.serial_otu_tail` cycles.
"""

from __future__ import annotations

from amaranth import Array, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from winnow.model.integer.datapath import DatapathConfig

from winnow.hw.config import ubits
from winnow.hw.linear import const_dot
from winnow.hw.output_transform import requantizer_ports, round_saturate


def serial_coefficients(config: DatapathConfig) -> list[list[int]]:
    """c[q][p]: the weight of position p in output q = i·m + j (row-major), position shifts included."""
    at = config.transforms.AT
    n, mm = config.n, config.m
    shifts = [int(v) for v in config.shifts.reshape(-1)]
    return [[int(at[i][a]) * int(at[j][b]) << shifts[a * n + b] for a in range(n) for b in range(n)]
            for i in range(mm) for j in range(mm)]


class SerialOutputTransform(wiring.Component):
    """Output transform and requantization fed one position per cycle.

    Parameters
    ----------
    config : DatapathConfig
    requant : int or None
        R, requantizers (divides m²; ``None``: m²).

    Attributes
    ----------
    i : In(stream)
        ``m``: the accumulated value of position ``pos`` (signed ``acc_bits``); ``bias``,
        ``mult``, ``shift``, ``relu``: the tile's quantization, read with its last position.
        Always ready.
    o : Out(stream)
        ``y``: R signed ``act_bits`` outputs (row-major indices sub·R …); ``sub``.
        Not back-pressured (``ready`` is ignored).
    busy : Out(1)
        A tile is between its last position and its last output.
    """

    def __init__(self, config: DatapathConfig, requant: int | None = None):
        self._cfg = config
        self._R, self._shift_bits, _sub, quant, out = requantizer_ports(config, requant)
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "m": signed(config.widths.acc_bits), "pos": ubits(config.n ** 2 - 1), **quant}))),
            "o": out, "busy": Out(1),
        })  # fmt: skip

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        w = cfg.widths
        n2, mm2, R = cfg.n ** 2, cfg.m ** 2, self._R
        Q = mm2 // R
        p = self.i.payload
        m.d.comb += self.i.ready.eq(1)
        last = self.i.valid & (p.pos == n2 - 1)

        # accumulate: y[q] = Σ_p c[q][p] · M_p; each output picks its term from its own constants
        y = [Signal(signed(w.biased_bits), name=f"y_{q}") for q in range(mm2)]
        for q, row in enumerate(serial_coefficients(cfg)):
            consts = sorted(set(row))
            terms = Array([const_dot([c], [p.m]) if c else Const(0, 1) for c in consts])
            pick = Array([Const(consts.index(c), ubits(len(consts) - 1)) for c in row])
            term = Signal(signed(w.biased_bits), name=f"term_{q}")
            m.d.comb += term.eq(terms[pick[p.pos]])
            with m.If(self.i.valid):
                m.d.sync += y[q].eq(Mux(p.pos == 0, 0, y[q]) + term)
        # the tile's quantization, with its last position
        bias = Signal(signed(cfg.bias_bits))
        mult = Signal(unsigned(cfg.mult_bits))
        shift = Signal(unsigned(self._shift_bits))
        relu = Signal()
        done = Signal()
        m.d.sync += done.eq(last)
        with m.If(last):
            m.d.sync += [bias.eq(p.bias), mult.eq(p.mult), shift.eq(p.shift), relu.eq(p.relu)]
        # z = y + bias, held for the Q requantizer cycles (the next tile accumulates meanwhile)
        z = [Signal(signed(w.biased_bits), name=f"z_{q}") for q in range(mm2)]
        zmult, zshift, zrelu = Signal.like(mult), Signal.like(shift), Signal()
        rv = Signal()
        rsub = Signal(ubits(Q - 1))
        with m.If(rv):
            m.d.sync += [rsub.eq(rsub + 1), rv.eq(rsub != Q - 1)]
        with m.If(done):
            m.d.sync += [z[q].eq(y[q] + bias) for q in range(mm2)]
            m.d.sync += [zmult.eq(mult), zshift.eq(shift), zrelu.eq(relu), rv.eq(1), rsub.eq(0)]
        # select R of them, multiply, round/shift/saturate (one register stage each)
        zsel = [Signal(signed(w.biased_bits), name=f"zs_{r}") for r in range(R)]
        v1, v2 = Signal(), Signal()
        sub1, sub2 = Signal.like(rsub), Signal.like(rsub)
        qv = [Signal(signed(w.requant_bits), name=f"q_{r}") for r in range(R)]
        m.d.sync += [zsel[r].eq(Array(z[k * R + r] for k in range(Q))[rsub]) for r in range(R)]
        m.d.sync += [v1.eq(rv), sub1.eq(rsub), v2.eq(v1), sub2.eq(sub1)]
        m.d.sync += [qv[r].eq(zsel[r] * zmult) for r in range(R)]
        m.d.sync += [self.o.valid.eq(v2), self.o.payload.sub.eq(sub2)]
        m.d.sync += [self.o.payload.y[r].eq(round_saturate(m, cfg, qv[r], zshift, zrelu, self._shift_bits, r))
                     for r in range(R)]
        m.d.comb += self.busy.eq(done | rv | v1 | v2 | self.o.valid)
        return m
