"""Input transform unit (ITU) core: V' = B'ᵀ x B' on one n×n tile, optional Winograd-ReLU.

One tile per cycle, two register stages (B'ᵀ x, then · B'). The integer B'ᵀ comes from the datapath
configuration; V' has exactly the configuration's ``v_bits`` (the worst case, so the
adder tree cannot overflow).
"""

from __future__ import annotations

import numpy as np
from amaranth import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from winnow.model.integer.datapath import DatapathConfig

from winnow.hw.linear import left, right


def input_transform_ref(tile: np.ndarray, config: DatapathConfig, winograd_relu: bool = False) -> np.ndarray:
    """NumPy twin: the n×n integer tile → V' (n×n, int64)."""
    bt = config.transforms.BT.astype(np.int64)
    v = bt @ np.asarray(tile, dtype=np.int64) @ bt.T
    return np.maximum(v, 0) if winograd_relu else v


class InputTransform(wiring.Component):
    """V' = B'ᵀ x B' per tile in two pipeline stages (B'ᵀ x, then · B' with the ReLU).

    Parameters
    ----------
    config : DatapathConfig
        2-D datapath; supplies B'ᵀ, ``act_bits`` and ``v_bits``.

    Attributes
    ----------
    i : In(stream)
        ``tile``: n² signed ``act_bits`` values, row-major; ``relu``: apply max(V', 0).
    o : Out(stream)
        ``v``: n² signed ``v_bits`` values V', row-major (position p = i·n + j).
    """

    latency = 2

    def __init__(self, config: DatapathConfig):
        self._cfg = config
        n = config.n
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "tile": data.ArrayLayout(signed(config.act_bits), n * n), "relu": 1}))),
            "o": Out(stream.Signature(data.StructLayout({"v": data.ArrayLayout(signed(config.widths.v_bits), n * n)}))),
        })  # fmt: skip

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        n = cfg.n
        bt = cfg.transforms.BT
        tile = [[self.i.payload.tile[i * n + j] for j in range(n)] for i in range(n)]
        en = ~self.o.valid | self.o.ready
        m.d.comb += self.i.ready.eq(en)
        # stage 1: B'ᵀ x (columns), registered at its exact width
        cols = left(bt, tile)
        half = [[Signal(cols[i][j].shape(), name=f"bx_{i}_{j}") for j in range(n)] for i in range(n)]
        v1 = Signal()
        relu1 = Signal()
        # stage 2: (B'ᵀ x) B', optional ReLU
        v = right(half, bt)
        with m.If(en):
            m.d.sync += [v1.eq(self.i.valid), relu1.eq(self.i.payload.relu), self.o.valid.eq(v1)]
            m.d.sync += [half[i][j].eq(cols[i][j]) for i in range(n) for j in range(n)]
            for i in range(n):
                for j in range(n):
                    vij = Signal(signed(cfg.widths.v_bits), name=f"v_{i}_{j}")
                    m.d.comb += vij.eq(v[i][j])
                    m.d.sync += self.o.payload.v[i * n + j].eq(Mux(relu1 & vij[-1], 0, vij))
        return m
